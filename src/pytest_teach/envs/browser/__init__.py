"""Browser scenario family: local sites driven through Debian Chromium by Playwright.

Three bundled sites (``shop``, ``docs``, ``booking``) are served from ``sites/`` by
:class:`SiteServer`. An agent sees a page as its accessibility snapshot and acts on elements by
the ``ref`` they carry there (:class:`BrowserSession`); :data:`TASKS` are the goals, each checked
against the page's own state; :func:`run_task` runs one task under a policy (see
:func:`browser_policy_for`) and records it as an episode. :func:`record_to_store` records a
person's (or a script's) demonstration on a site into the experience store.

The names below are loaded on first use, so ``import pytest_teach.envs.browser`` (and the
fixtures module) costs next to nothing; Playwright itself is imported only when a browser is
launched or driven.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

_EXPORTS = {
    "_agents": (
        "BrowserPolicy",
        "Decision",
        "LLMPolicy",
        "NoisyOraclePolicy",
        "OraclePolicy",
        "browser_policy_for",
        "build_messages",
    ),
    "_aria": ("find", "parse_snapshot", "resolve_action"),
    "_demo": ("Demonstration", "InteractiveRecorder", "ScriptError", "load_driver", "load_script"),
    "_record": ("record_to_store",),
    "_runner": ("TaskResult", "run_task"),
    "_server": ("SITES", "SITES_DIR", "SiteServer"),
    "_session": (
        "ACTION_TYPES",
        "NO_CHROMIUM",
        "STEP_ERROR_TYPES",
        "BrowserSession",
        "LaunchedBrowser",
        "Observation",
        "find_chromium",
        "launch_browser",
        "parse_action",
        "step_error",
        "validate_action",
    ),
    "_tasks": ("TASKS", "TASKS_BY_ID", "Task", "catalogue"),
}

__all__ = [
    "ACTION_TYPES",
    "BrowserPolicy",
    "BrowserSession",
    "Decision",
    "Demonstration",
    "InteractiveRecorder",
    "LLMPolicy",
    "LaunchedBrowser",
    "NO_CHROMIUM",
    "NoisyOraclePolicy",
    "Observation",
    "OraclePolicy",
    "SITES",
    "SITES_DIR",
    "STEP_ERROR_TYPES",
    "ScriptError",
    "SiteServer",
    "TASKS",
    "TASKS_BY_ID",
    "Task",
    "TaskResult",
    "browser_policy_for",
    "build_messages",
    "catalogue",
    "find",
    "find_chromium",
    "launch_browser",
    "load_driver",
    "load_script",
    "parse_action",
    "parse_snapshot",
    "record_to_store",
    "resolve_action",
    "run_task",
    "step_error",
    "validate_action",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from ._agents import (
        BrowserPolicy,
        Decision,
        LLMPolicy,
        NoisyOraclePolicy,
        OraclePolicy,
        browser_policy_for,
        build_messages,
    )
    from ._aria import find, parse_snapshot, resolve_action
    from ._demo import Demonstration, InteractiveRecorder, ScriptError, load_driver, load_script
    from ._record import record_to_store
    from ._runner import TaskResult, run_task
    from ._server import SITES, SITES_DIR, SiteServer
    from ._session import (
        ACTION_TYPES,
        NO_CHROMIUM,
        STEP_ERROR_TYPES,
        BrowserSession,
        LaunchedBrowser,
        Observation,
        find_chromium,
        launch_browser,
        parse_action,
        step_error,
        validate_action,
    )
    from ._tasks import TASKS, TASKS_BY_ID, Task, catalogue
