"""The loop's train / held-out split of a suite's tests, by scenario id."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoopError", "SuiteSplit", "read_ids", "scenario_id", "split_tests", "write_ids"]

_PARAM_ID = re.compile(r"\[(?P<id>[^\[\]]+)\]$")


class LoopError(ValueError):
    """A phase of the loop could not run; the message says which, why and what to do."""


@dataclass(frozen=True)
class SuiteSplit:
    """The suite's test node ids, as collected without ``--ab``, in collection order."""

    train: tuple[str, ...]
    held_out: tuple[str, ...]


def scenario_id(nodeid: str) -> str | None:
    """The scenario id a parametrized test's node id ends with (``...[weather-001]``), or None."""
    match = _PARAM_ID.search(nodeid)
    return match.group("id") if match else None


def split_tests(
    nodeids: Iterable[str], *, held_out: float = 0.25, seed: int = 0, suite: str = "the suite"
) -> SuiteSplit:
    """SuiteSplit tool-selection tests into train and held-out by their scenario ids.

    The split is :func:`~pytest_teach.envs.tool_selection.split_scenarios`: a stable hash of
    each scenario id decides, and every held-out scenario's exact tool set is also needed by
    some training scenario. It depends on the ids only, never on order or on the machine.

    Raises:
        LoopError: a test is not a tool-selection scenario, or a side of the split is empty.
    """
    from ..envs import tool_selection as ts

    ids = list(dict.fromkeys(nodeids))
    if not ids:
        raise LoopError(f"{suite} collected no tests")
    known = {s.id: s for s in ts.SCENARIOS}
    by_scenario: dict[str, list[str]] = {}
    for nodeid in ids:
        sid = scenario_id(nodeid)
        if sid not in known:
            raise LoopError(
                f"{suite}: {nodeid} is not a tool-selection scenario; teach loop splits "
                "tool_selection scenarios by id (see scenarios/tool_selection)"
            )
        by_scenario.setdefault(sid, []).append(nodeid)
    try:
        _, out = ts.split_scenarios(
            [known[sid] for sid in by_scenario], held_out=held_out, seed=seed
        )
    except ValueError as exc:
        raise LoopError(f"--held-out-fraction: {exc}") from None
    out_ids = {s.id for s in out}
    held = tuple(n for n in ids if scenario_id(n) in out_ids)
    train = tuple(n for n in ids if scenario_id(n) not in out_ids)
    if not train or not held:
        raise LoopError(
            f"{suite}: the split left {len(train)} training and {len(held)} held-out tests; "
            "both need at least one (run more scenarios or change --held-out-fraction)"
        )
    return SuiteSplit(train=train, held_out=held)


def write_ids(path: str | os.PathLike[str], nodeids: Iterable[str]) -> Path:
    """Write node ids one per line (the file ``--teach-ids`` reads)."""
    target = Path(path)
    target.write_text("".join(f"{n}\n" for n in nodeids), encoding="utf-8")
    return target


def read_ids(path: str | os.PathLike[str]) -> list[str]:
    """The node ids of an ids file: one per line; blank lines and ``#`` comments are skipped."""
    text = Path(path).read_text(encoding="utf-8")
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]
