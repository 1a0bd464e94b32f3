"""Gridworld scenario family: BabyAI levels with minigrid's ``BabyAIBot`` as the expert.

A :class:`World` is one seeded episode (:func:`make_world`; ``Mock*`` levels are a small
pure-Python room for smoke runs). The agent sees :meth:`World.observe`'s text (egocentric: "a
red ball 2 steps left and 1 forward", what it carries, the mission) and answers with one of
:data:`ACTIONS`, parsed strictly by :func:`parse_action`. :func:`student_for` builds the policy
behind an ``agent`` fixture; :func:`run_episode` runs it on a :class:`Task` and records it. A
world snapshots whole (environment and bot) and restores exactly (:meth:`World.snapshot`,
:meth:`World.restore`); :func:`replay` rebuilds one from its seed and actions.

The names below load on first use, so ``import pytest_teach.envs.minigrid`` (and the fixtures
module) imports neither gymnasium nor minigrid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

_EXPORTS = {
    "_actions": ("ACTIONS", "ActionParseError", "parse_action"),
    "_levels": (
        "DEFAULT_LEVELS",
        "MOCK_LEVELS",
        "UNSOLVABLE",
        "LevelError",
        "is_mock",
        "resolve_level",
        "short_name",
    ),
    "_render": ("Seen", "describe_thing", "relative_position", "render_observation"),
    "_runner": ("DEFAULT_MAX_STEPS", "EpisodeResult", "Task", "run_episode", "tasks"),
    "_students": (
        "SCRIPTED_NAMES",
        "SYSTEM_PROMPT",
        "Decision",
        "ExpertUnavailable",
        "LMStudent",
        "NoisyStudent",
        "OracleStudent",
        "Patch",
        "ScriptedStudent",
        "Student",
        "build_messages",
        "student_for",
    ),
    "_teacher": ("hint_for", "hint_text"),
    "_world": ("EpisodeOver", "SnapshotError", "World", "make_world", "replay"),
}
__all__ = [
    "ACTIONS",
    "ActionParseError",
    "DEFAULT_LEVELS",
    "DEFAULT_MAX_STEPS",
    "Decision",
    "EpisodeOver",
    "EpisodeResult",
    "ExpertUnavailable",
    "LMStudent",
    "LevelError",
    "MOCK_LEVELS",
    "NoisyStudent",
    "OracleStudent",
    "Patch",
    "SCRIPTED_NAMES",
    "SYSTEM_PROMPT",
    "ScriptedStudent",
    "Seen",
    "SnapshotError",
    "Student",
    "Task",
    "UNSOLVABLE",
    "World",
    "build_messages",
    "describe_thing",
    "hint_for",
    "hint_text",
    "is_mock",
    "make_world",
    "parse_action",
    "relative_position",
    "render_observation",
    "replay",
    "resolve_level",
    "run_episode",
    "short_name",
    "student_for",
    "tasks",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from ._actions import ACTIONS, ActionParseError, parse_action
    from ._levels import (
        DEFAULT_LEVELS,
        MOCK_LEVELS,
        UNSOLVABLE,
        LevelError,
        is_mock,
        resolve_level,
        short_name,
    )
    from ._render import Seen, describe_thing, relative_position, render_observation
    from ._runner import DEFAULT_MAX_STEPS, EpisodeResult, Task, run_episode, tasks
    from ._students import (
        SCRIPTED_NAMES,
        SYSTEM_PROMPT,
        Decision,
        ExpertUnavailable,
        LMStudent,
        NoisyStudent,
        OracleStudent,
        Patch,
        ScriptedStudent,
        Student,
        build_messages,
        student_for,
    )
    from ._teacher import hint_for, hint_text
    from ._world import EpisodeOver, SnapshotError, World, make_world, replay
