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
    ORACLE,
    LoopResult,
    LoopSettings,
    PassRate,
    TinyShape,
    collect_nodeids,
    run_loop,
)
from ._split import LoopError, SuiteSplit, read_ids, scenario_id, split_tests, write_ids

__all__ = [
    "AGENT",
    "ORACLE",
    "LoopError",
    "LoopResult",
    "LoopSettings",
    "PassRate",
    "SuiteSplit",
    "TinyShape",
    "collect_nodeids",
    "read_ids",
    "run_loop",
    "scenario_id",
    "split_tests",
    "write_ids",
]
