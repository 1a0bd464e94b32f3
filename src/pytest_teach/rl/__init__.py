"""Scenario families as multi-turn RL environments, rewarded by the suite's own tests.

A family's TRL environment (:class:`ScenarioEnv`: ``reset``, tool methods, ``get_reward``) is
what ``GRPOTrainer(environment_factory=...)`` runs; its reward comes from the scenario's test,
replayed in the reward pool on the rollout's actions, and every rollout is stored as an episode
(``meta.source = rl``). :func:`train_env_grpo` is ``teach train grpo --env``; the tool-calling
student and its warm start are :func:`write_tool_model`, :func:`oracle_demonstrations` and
:func:`warm_start`.

Light to import: torch, transformers and trl load only when a model is built or trained.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "_env": (
        "ActionError",
        "RolloutContext",
        "RolloutStats",
        "ScenarioEnv",
        "environment_factory",
        "task_of",
    ),
    "_gridworld": ("GRIDWORLD_INSTRUCTIONS", "GridworldEnv", "gridworld_task_ids"),
    "_browser": ("BROWSER_INSTRUCTIONS", "BrowserEnv", "browser_task_ids", "close_browser"),
    "_train": (
        "ENVS",
        "EnvRun",
        "EnvTrainError",
        "parse_task_spec",
        "resolve_env",
        "train_env_grpo",
    ),
    "_student": (
        "TOOL_TOKENS",
        "oracle_demonstrations",
        "tool_schemas",
        "warm_start",
        "write_demonstrations",
        "write_tool_model",
    ),
}

__all__ = sorted(name for names in _EXPORTS.values() for name in names)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
