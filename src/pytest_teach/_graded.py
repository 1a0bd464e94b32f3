"""Graded rewards from pytest's ``subtests`` fixture.

A recorded test that runs subtests (``with subtests.test("name", key=value): ...``) earns the
share of its subtests that passed, and each subtest is a named reward component: 1.0 when it
passed, 0.0 when it failed. Skipped subtests don't count. A failure in the test body outside
any subtest counts as one more failed component, ``test body``, so a failing test never earns
full credit. A reward the test gives ``episode.reward()`` itself still wins.

:class:`SubtestGrader` is the pytest plugin that hears each subtest's report in the process that
runs the test (an xdist worker, a reward worker) and hands it to the test's recorder.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .redaction import redact

if TYPE_CHECKING:
    import pytest


class EpisodeRecorder(Protocol):
    """What the grader needs of a test's recorder (:class:`pytest_teach.recorder.EpisodeRecorder`):
    the subtest results it collects."""

    subtests: list[SubtestResult]


__all__ = [
    "BODY_COMPONENT",
    "SubtestGrader",
    "SubtestResult",
    "failed_subtests",
    "graded_reward",
    "grading_subtests",
    "subtest_name",
]

#: The component a failure outside every subtest is recorded under.
BODY_COMPONENT = "test body"
_REASON_LIMIT = 500
_TEXT_LIMIT = 20_000


@dataclass(frozen=True)
class SubtestResult:
    """One finished subtest of a recorded test."""

    name: str
    passed: bool
    #: the exception a failed subtest raised (None when it passed or none was seen)
    raised: type[BaseException] | None = None
    #: the first line of that exception
    reason: str | None = None
    #: pytest's report of the failure
    text: str = ""


def _plain(value: str) -> str:
    """A subtest parameter as pytest reports it (its ``repr``), unquoted when it is a string."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        try:
            literal = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
        if isinstance(literal, str):
            return literal
    return value


def subtest_name(msg: str | None, params: Mapping[str, Any], index: int) -> str:
    """The component name of a subtest: its message, its parameters (``key=value``), or both
    (``msg (key=value, ...)``); ``subtest N`` (1-based) when it has neither."""
    shown = ", ".join(f"{k}={_plain(str(v))}" for k, v in params.items())
    if msg and shown:
        return f"{msg} ({shown})"
    return str(msg or shown or f"subtest {index}")


def graded_reward(
    results: Sequence[SubtestResult], *, body_failed: bool = False
) -> tuple[float, dict[str, float]] | None:
    """``(share passed, {name: 1.0 or 0.0})`` over ``results``, with the failed body as one more
    failed component; None when no subtest ran to a verdict."""
    if not results:
        return None
    components = {r.name: 1.0 if r.passed else 0.0 for r in results}
    if body_failed:
        components[BODY_COMPONENT] = 0.0
    return sum(components.values()) / len(components), components


def failed_subtests(
    results: Sequence[SubtestResult],
    agent_failures: tuple[type[BaseException], ...],
    *,
    never: tuple[type[BaseException], ...] = (),
) -> tuple[str, str, str] | None:
    """``(outcome, reason, error text)`` of a test whose body passed but whose subtests did not
    all pass; None when they all passed.

    The outcome is ``intervention`` when every failed subtest raised one of ``agent_failures``
    (an assertion, ``pytest.fail``, a declared agent exception) and ``error`` (the test code's
    bug, with the culprit's type in the reason) when one raised anything else or one of
    ``never`` (bad episode data, a broken harness).
    """
    failed = [r for r in results if not r.passed]
    if not failed:
        return None
    text = "\n\n".join(f"subtest {r.name}:\n{r.text}" for r in failed)[:_TEXT_LIMIT]
    for result in failed:
        raised = result.raised
        if raised is not None and (
            issubclass(raised, never) or not issubclass(raised, agent_failures)
        ):
            return "error", f"subtest {result.name}: {result.reason}"[:_REASON_LIMIT], text
    first = failed[0]
    count = f"{len(failed)} of {len(results)} subtests failed"
    reason = f"{count}; {first.name}: {first.reason}" if first.reason else count
    return "intervention", reason[:_REASON_LIMIT], text


class SubtestGrader:
    """A pytest plugin: hands each subtest report of a watched test to the test's recorder.

    A subtest's exit calls ``pytest_runtest_makereport`` (where its exception is seen) and then
    ``pytest_runtest_logreport`` with a :class:`pytest.SubtestReport` (its name and verdict);
    both happen in the process that runs the test.
    """

    def __init__(self) -> None:
        self.recorders: dict[str, EpisodeRecorder] = {}
        self._raised: dict[str, tuple[type[BaseException], str]] = {}

    def watch(self, nodeid: str, recorder: EpisodeRecorder) -> None:
        """Record the subtests of the test ``nodeid`` into ``recorder``."""
        self.recorders[nodeid] = recorder

    def forget(self, nodeid: str) -> None:
        """Stop recording the subtests of ``nodeid``."""
        self.recorders.pop(nodeid, None)
        self._raised.pop(nodeid, None)

    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[Any]) -> None:
        if call.when != "call" or item.nodeid not in self.recorders:
            return
        self._raised.pop(item.nodeid, None)
        if call.excinfo is not None:
            text = call.excinfo.exconly().strip()
            first = text.splitlines()[0] if text else call.excinfo.typename
            self._raised[item.nodeid] = (call.excinfo.type, redact(first)[:_REASON_LIMIT])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        import pytest

        recorder = self.recorders.get(report.nodeid)
        if recorder is None or not isinstance(report, pytest.SubtestReport):
            return
        raised, reason = self._raised.pop(report.nodeid, (None, None))
        if report.outcome not in ("passed", "failed") or hasattr(report, "wasxfail"):
            return  # skipped and expected failures are no verdict
        name = redact(
            subtest_name(report.context.msg, report.context.kwargs, len(recorder.subtests) + 1)
        )
        taken = {r.name for r in recorder.subtests}
        if name in taken or name == BODY_COMPONENT:
            n = 2
            while f"{name} #{n}" in taken:
                n += 1
            name = f"{name} #{n}"
        passed = report.outcome == "passed"
        recorder.subtests.append(
            SubtestResult(
                name=name,
                passed=passed,
                raised=None if passed else raised,
                reason=None if passed else reason,
                text="" if passed else redact(report.longreprtext)[:_TEXT_LIMIT],
            )
        )


@contextmanager
def grading_subtests(item: pytest.Item, recorder: EpisodeRecorder) -> Iterator[None]:
    """While the block runs ``item``, its subtests are recorded into ``recorder``."""
    grader = SubtestGrader()
    grader.watch(item.nodeid, recorder)
    manager = item.config.pluginmanager
    manager.register(grader)
    try:
        yield
    finally:
        manager.unregister(grader)
