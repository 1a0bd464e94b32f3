"""The closed loop: collect with the oracle, fine-tune, and A/B on held-out scenarios.

    from pathlib import Path
    from pytest_teach.loop import LoopSettings, run_loop

    result = run_loop(
        LoopSettings(
            suite="scenarios/tool_selection",
            output=Path(".teach/loop/run"),
            db=Path(".teach/experience.db"),
            report=Path(".teach/loop/run/report.html"),
        ),
        echo=print,
    )
    print(result.before, "->", result.after, result.verdict)

``teach loop`` is the command-line face of :func:`run_loop`. The pytest plugin
``pytest_teach.loop.select`` (``-p pytest_teach.loop.select --teach-ids FILE``) runs only the
tests a split file lists, with or without ``--ab``.
"""

from ._loop import (
    AGENT,
    LOOP_OUTPUTS,
    ORACLE,
    LoopResult,
    LoopSettings,
    PassRate,
    TinyShape,
    clear_outputs,
    collect_nodeids,
    new_session,
    recorded_sessions,
    run_loop,
    run_suite,
)
from ._split import LoopError, SuiteSplit, read_ids, scenario_id, split_tests, write_ids

__all__ = [
    "AGENT",
    "LOOP_OUTPUTS",
    "ORACLE",
    "LoopError",
    "LoopResult",
    "LoopSettings",
    "PassRate",
    "SuiteSplit",
    "TinyShape",
    "clear_outputs",
    "collect_nodeids",
    "new_session",
    "read_ids",
    "recorded_sessions",
    "run_loop",
    "run_suite",
    "scenario_id",
    "split_tests",
    "write_ids",
]
