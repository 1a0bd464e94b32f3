"""A pytest plugin that runs only the tests listed in a file: ``-p pytest_teach.loop.select
--teach-ids FILE``.

``teach loop`` uses it to run the training split with the oracle and the held-out split under
``--ab``. The file holds node ids as collected without ``--ab`` (one per line, as
``pytest --collect-only -q`` prints them); under ``--ab`` each test's agent parameter is
ignored, so both arms of a listed test run. A listed id that matches no test is a usage error:
the suite changed since the file was written.
"""

from __future__ import annotations

from typing import Any

import pytest

from .._collector import AB_KEY
from ._split import read_ids

__all__ = ["base_nodeid"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("teach", "pytest-teach: labeled training data from agent scenarios")
    group.addoption(
        "--teach-ids",
        metavar="FILE",
        default=None,
        help="run only the tests whose node ids (as collected without --ab) FILE lists",
    )


def base_nodeid(item: pytest.Item, ab: tuple[str, str] | None) -> str:
    """``item``'s node id without the agent parameter ``--ab`` adds (``[case-SPEC]`` ->
    ``[case]``)."""
    nodeid = item.nodeid
    callspec: Any = getattr(item, "callspec", None)
    spec = callspec.params.get("agent") if callspec is not None and ab else None
    if not isinstance(spec, str) or spec not in ab:  # type: ignore[operator]
        return nodeid
    for suffix, keep in ((f"-{spec}]", "]"), (f"[{spec}]", "")):
        if nodeid.endswith(suffix):
            return nodeid[: -len(suffix)] + keep
    return nodeid


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    path = config.getoption("teach_ids")
    if not path:
        return
    try:
        wanted = read_ids(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise pytest.UsageError(f"--teach-ids {path}: cannot read it ({exc})") from None
    if not wanted:
        raise pytest.UsageError(f"--teach-ids {path} lists no test ids")
    ab = config.stash.get(AB_KEY, None)
    chosen = set(wanted)
    keep, drop, seen = [], [], set()
    for item in items:
        base = base_nodeid(item, ab)
        if base in chosen:
            keep.append(item)
            seen.add(base)
        else:
            drop.append(item)
    missing = [n for n in wanted if n not in seen]
    if missing:
        raise pytest.UsageError(
            f"--teach-ids {path}: {len(missing)} listed test(s) were not collected, e.g. "
            f"{missing[0]}; the suite changed since the file was written"
        )
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
