"""``teach train grpo --env``: the options of multi-turn GRPO on a scenario family, and the
wiring to :func:`~pytest_teach.rl.train_env_grpo`."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any

import click

from ._common import fail

__all__ = ["env_options", "train_env_cmd"]

#: The longest completion (all turns, tool responses included) when --max-completion-length is
#: left at the single-turn default.
ENV_COMPLETION_LENGTH = 512


def env_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--env`` options of ``teach train grpo``."""
    options = [
        click.option(
            "--env",
            metavar="gridworld|browser|MODULE:CLASS",
            help="multi-turn GRPO on a scenario family: its actions are the tools, its test the "
            "reward (see docs/rl-environments.md)",
        ),
        click.option(
            "--tasks",
            "env_tasks",
            metavar="SPEC",
            help="--env training tasks: seeds or seed ranges (0-7) and task ids "
            "(browser: docs-cli-reference, ...), comma-separated",
        ),
        click.option(
            "--held-out",
            "env_held_out",
            metavar="SPEC",
            help="--env tasks never trained on (recorded with the run)",
        ),
        click.option(
            "--levels",
            "env_levels",
            metavar="L1,L2",
            help="gridworld levels the seeds of --tasks/--held-out run on (default MockGoTo)",
        ),
        click.option(
            "--env-max-steps",
            type=click.IntRange(min=1),
            help="gridworld step limit of a task (default 24)",
        ),
        click.option(
            "--max-turns",
            type=click.IntRange(min=1),
            help="--env tool-calling turns per rollout (default: until the task ends)",
        ),
        click.option(
            "--reward",
            "env_reward",
            default="value",
            show_default=True,
            metavar="value|COMPONENT",
            help="--env reward: the test's value, or a reward component it reports",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def train_env_cmd(
    opts: dict[str, Any],
    *,
    num_generations: int,
    max_completion_length: int,
    suite: tuple[str, ...],
    suite_args: str | None,
    reward_workers: int,
    check_timeout: float,
) -> None:
    """Check the options, run :func:`~pytest_teach.rl.train_env_grpo`, print the result."""
    from ..rewards import RewardPoolError
    from ..rl import EnvTrainError, parse_task_spec, resolve_env, train_env_grpo

    spec = opts["env"]
    used = [f"--{name}" for name in ("data", "label", "scenario", "since") if opts.get(name)] + (
        ["--model"] if opts.get("models") else []
    )
    if used:
        fail(f"--env trains on the family's tasks, not the store's rows: drop {', '.join(used)}")
    if opts.get("epochs"):
        fail("--env counts optimiser steps: use --max-steps, not --epochs")
    if not opts.get("env_tasks"):
        fail("--env needs --tasks SPEC (seeds such as 0-7, or task ids)")
    ctx = click.get_current_context()
    if ctx.get_parameter_source("max_completion_length") == click.core.ParameterSource.DEFAULT:
        max_completion_length = ENV_COMPLETION_LENGTH
    options: dict[str, Any] = {}
    if opts.get("env_levels"):
        options["levels"] = [p.strip() for p in opts["env_levels"].split(",") if p.strip()]
    if opts.get("env_max_steps"):
        options["max_steps"] = opts["env_max_steps"]
    try:
        env_class = resolve_env(spec)

        def expand(seeds: list[int]) -> list[str]:
            try:
                return env_class._seed_tasks(seeds, options)
            except ValueError as exc:
                raise EnvTrainError(str(exc)) from None

        tasks = parse_task_spec(opts["env_tasks"], expand=expand)
        held_out = (
            parse_task_spec(opts["env_held_out"], expand=expand) if opts.get("env_held_out") else []
        )
        click.echo(
            f"teach train grpo --env {spec}: {len(tasks)} task(s), {len(held_out)} held out, "
            f"{opts['max_steps'] or 1} steps, {'LoRA' if opts['lora'] else 'full'}"
        )
        run = train_env_grpo(
            env_class,
            opts["output"],
            tasks=tasks,
            held_out=held_out,
            suite=list(suite) or None,
            suite_args=shlex.split(suite_args or ""),
            options=options,
            base_model=opts.get("base_model"),
            store=opts["db"],
            reward=opts["env_reward"],
            max_steps=opts["max_steps"] or 1,
            num_generations=num_generations,
            batch_size=opts["batch_size"],
            max_completion_length=max_completion_length,
            max_turns=opts.get("max_turns"),
            learning_rate=opts["lr"],
            lora=opts["lora"],
            workers=reward_workers,
            check_timeout=check_timeout,
            seed=opts["seed"],
            agent=opts["agent"],
            name=opts["name"],
            echo=click.echo,
        )
    except (EnvTrainError, RewardPoolError, ValueError) as exc:
        fail(str(exc))
    stats = run.stats
    click.echo(
        f"rollouts: {stats['rollouts']}, tool calls {stats['tool_calls']} "
        f"({stats['tool_calls_executed']} carried out, {stats['action_errors']} refused), "
        f"groups with reward variance {stats['groups_with_variance']} of {stats['groups']}, "
        f"{stats['episodes_stored']} episodes stored (session {run.session_id})"
    )
    click.echo(f"saved to {run.output}; use it as --model hf:{run.output}")
    click.echo("metrics " + json.dumps(run.metrics, sort_keys=True))
    if run.registered is not None:
        click.echo(
            f"registered {run.registered.name} ({run.registered.id}) for agent "
            f"{run.registered.agent}"
        )
