"""``teach train grpo --env``: multi-turn GRPO on a scenario family, rewarded by its own tests.

:func:`train_env_grpo` starts the reward pool over the family's suite, checks the task split
(training tasks collected, held-out tasks never among them), builds the TRL environment factory
and runs ``GRPOTrainer(environment_factory=...)``. Every rollout is scored by replaying it in
its scenario's test and stored as an episode; the tasks trained on and held out are part of
the returned metrics (and of the registered model's record).
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._env import RolloutContext, ScenarioEnv, environment_factory, task_of

__all__ = ["ENVS", "EnvRun", "EnvTrainError", "parse_task_spec", "resolve_env", "train_env_grpo"]

#: The bundled families ``--env`` names, and where each environment class lives.
ENVS: dict[str, str] = {
    "gridworld": "pytest_teach.rl._gridworld:GridworldEnv",
    "browser": "pytest_teach.rl._browser:BrowserEnv",
    "minigrid": "pytest_teach.rl._gridworld:GridworldEnv",
}

#: The name of the tool-calling tiny base model in the user cache directory.
TOOL_BASE_NAME = "tiny-tools"


class EnvTrainError(ValueError):
    """A ``--env`` run that can't start: the message says which option and why."""


def resolve_env(spec: str) -> type[ScenarioEnv]:
    """The environment class ``--env`` names: a bundled family (``gridworld``, ``browser``) or
    ``MODULE:CLASS``, a :class:`ScenarioEnv` subclass.

    Raises:
        EnvTrainError: an unknown family, a module that doesn't import, or not a ScenarioEnv.
    """
    target = ENVS.get(spec, spec)
    if ":" not in target:
        raise EnvTrainError(f"--env {spec!r}: use one of {', '.join(ENVS)} or MODULE:CLASS")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EnvTrainError(f"--env {spec}: cannot import {module_name} ({exc})") from None
    value = getattr(module, attr, None)
    if value is None:
        raise EnvTrainError(f"--env {spec}: {module_name} has no attribute {attr!r}")
    if not (isinstance(value, type) and issubclass(value, ScenarioEnv)):
        raise EnvTrainError(
            f"--env {spec}: {attr} is not a ScenarioEnv subclass (see docs/rl-environments.md)"
        )
    return value


_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_task_spec(spec: str, *, expand: Callable[[list[int]], list[str]] | None) -> list[str]:
    """Task ids from a split: comma-separated task ids and seeds or seed ranges (``0-7``),
    seeds expanded to task ids by ``expand`` (the family's seeds, e.g. one per level).

    Raises:
        EnvTrainError: a seed where the family has none, a reversed range, or nothing.
    """
    ids: list[str] = []
    seeds: list[int] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        match = _RANGE.match(part)
        if match:
            low, high = int(match[1]), int(match[2] or match[1])
            if high < low:
                raise EnvTrainError(f"seed range {part!r} runs backwards")
            seeds.extend(range(low, high + 1))
        else:
            ids.append(part)
    if seeds:
        if expand is None:
            raise EnvTrainError(f"{spec!r}: this family's tasks are named by id, not by seed")
        ids.extend(expand(seeds))
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise EnvTrainError(f"{spec!r} names no task")
    return ids


@dataclass
class EnvRun:
    """What :func:`train_env_grpo` trained: the model, its metrics and the rollouts' record."""

    output: Path
    metrics: dict[str, Any]
    train_tasks: list[str]
    held_out_tasks: list[str]
    session_id: str | None
    registered: Any = None
    stats: dict[str, Any] = field(default_factory=dict)


def _tool_base() -> Path:
    from ..train import tiny_base_cache
    from ._student import write_tool_model

    target = tiny_base_cache() / TOOL_BASE_NAME
    if not (target / "config.json").is_file():
        write_tool_model(target)
    return target.resolve()


def train_env_grpo(
    env: str | type[ScenarioEnv],
    output_dir: str | os.PathLike[str],
    *,
    tasks: Sequence[str],
    held_out: Sequence[str] = (),
    suite: Sequence[str] | None = None,
    suite_args: Sequence[str] = (),
    options: dict[str, Any] | None = None,
    base_model: str | os.PathLike[str] | None = None,
    store: Any = None,
    model_name: str | None = None,
    reward: str = "value",
    max_steps: int = 2,
    num_generations: int = 4,
    batch_size: int = 1,
    max_completion_length: int = 512,
    max_turns: int | None = None,
    learning_rate: float = 1e-4,
    temperature: float = 1.0,
    lora: bool = False,
    workers: int = 2,
    check_timeout: float = 30.0,
    seed: int = 0,
    agent: str | None = None,
    name: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> EnvRun:
    """Multi-turn GRPO of a tool-calling model on a scenario family's tasks.

    Args:
        env: ``gridworld``, ``MODULE:CLASS`` or a :class:`ScenarioEnv` subclass.
        output_dir: where the trained model goes (loads as ``hf:DIR``).
        tasks: the training task ids (see :func:`parse_task_spec`).
        held_out: task ids never trained on (recorded; a rollout can't start one).
        suite: the family's pytest suite (default: the class's ``suite``).
        suite_args: extra pytest arguments for the suite's reward workers.
        options: the family's settings (gridworld: ``max_steps``, ``mock``).
        base_model: a tool-calling model (default: the tiny one in the user cache).
        store: the experience store the rollouts are written to (and the model registered in,
            when ``agent`` is given); ``None`` keeps them out.
        model_name: the model the episodes are recorded under (default ``hf:<output_dir>``).
        reward: ``value`` (the test's reward) or a reward component the test reports.
        max_turns: tool-calling turns per rollout (default: unlimited, the task ends it).
        lora: a LoRA adapter instead of every weight.
        agent: register the model as this agent's specialist (needs ``store``).

    Raises:
        EnvTrainError: a bad split or suite; :class:`~pytest_teach.rewards.RewardPoolError`
            when the suite can't be collected.
    """
    from ..rewards import RewardPool
    from ..train import check_args, fit_trl, load_base, lora_config

    check_args(max_steps, batch_size, 8, learning_rate)
    if num_generations < 2:
        raise EnvTrainError(
            f"--num-generations must be >= 2 (GRPO compares a group), got {num_generations}"
        )
    env_class = resolve_env(env) if isinstance(env, str) else env
    options = dict(options or {})
    train_tasks = list(dict.fromkeys(tasks))
    held = list(dict.fromkeys(held_out))
    overlap = sorted(set(train_tasks) & set(held))
    if overlap:
        raise EnvTrainError(f"tasks both trained on and held out: {', '.join(overlap)}")
    paths = list(suite or ([env_class.suite] if env_class.suite else []))
    if not paths:
        raise EnvTrainError(f"{env_class.__name__} names no suite: pass --suite PATH")
    for path in paths:
        if not Path(path.split("::")[0]).exists():
            raise EnvTrainError(
                f"--suite {path} does not exist (the {env_class.family} suite scores the rollouts)"
            )
    out = Path(output_dir)
    pytest_args = [*env_class._suite_args(train_tasks, options), *suite_args]
    base = str(base_model) if base_model else str(_tool_base())
    with RewardPool(paths, workers=workers, timeout=check_timeout, pytest_args=pytest_args) as pool:
        collected = {task_of(n): n for n in pool.nodeids}
        missing = [t for t in train_tasks if t not in collected]
        if missing:
            raise EnvTrainError(
                f"the suite {' '.join(paths)} has no test for task(s) {', '.join(missing[:5])}"
                f" (it collected {', '.join(list(collected)[:5])}"
                + (", ..." if len(collected) > 5 else "")
                + ")"
            )
        if echo:
            echo(
                f"{env_class.family}: {len(train_tasks)} training task(s), {len(held)} held out; "
                f"rewards from {' '.join(paths)} ({len(pool.nodeids)} tests, {workers} worker(s))"
            )
        context = RolloutContext(
            pool,
            {t: collected[t] for t in train_tasks},
            held_out=held,
            store=store,
            model=model_name or f"hf:{out.resolve()}",
            reward=reward,
            options=options,
            argv=["teach", "train", "grpo", "--env", str(env)],
        )
        with context:
            from trl import GRPOConfig, GRPOTrainer

            model, tokenizer = load_base(base)
            tokenizer.padding_side = "left"
            rows = [
                {
                    "prompt": [
                        {"role": "system", "content": env_class.instructions},
                        {"role": "user", "content": ""},
                    ],
                    "task": task,
                }
                for task in train_tasks
            ]

            def on_step(step: int, loss: float | None) -> None:
                context.step = step

            metrics = fit_trl(
                "grpo",
                GRPOConfig,
                GRPOTrainer,
                model,
                tokenizer,
                rows,
                out,
                max_steps=max_steps,
                learning_rate=learning_rate,
                seed=seed,
                peft_config=lora_config(lora, 8, None),
                on_step=on_step,
                config={
                    "per_device_train_batch_size": batch_size * num_generations,
                    "num_generations": num_generations,
                    "max_completion_length": max_completion_length,
                    "max_tool_calling_iterations": max_turns,
                    "temperature": float(temperature),
                    "beta": 0.0,
                },
                trainer_args={"environment_factory": environment_factory(env_class, context)},
                keys=("reward", "reward_std", "frac_reward_zero_std", "tools/"),
            )
        stats = context.stats.as_dict()
    run_metrics = {
        **metrics,
        "env": env_class.family,
        "reward_source": reward,
        "base_model": base,
        "num_generations": num_generations,
        "train_tasks": train_tasks,
        "held_out_tasks": held,
        "rollouts": stats,
    }
    (out / "rl-run.json").write_text(json.dumps(run_metrics, indent=2, sort_keys=True) + "\n")
    run = EnvRun(out.resolve(), run_metrics, train_tasks, held, context.session_id, stats=stats)
    if agent and store is not None:
        from ..pipeline import register_trained_model
        from ..store import open_store

        opened = open_store(store, create=True) if isinstance(store, (str, os.PathLike)) else store
        try:
            run.registered = register_trained_model(
                opened, str(out), agent=agent, name=name, metrics={**run_metrics, "method": "grpo"}
            )
        finally:
            if opened is not store:
                opened.close()
    return run
