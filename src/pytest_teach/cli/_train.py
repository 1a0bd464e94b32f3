"""``teach train sft|dpo|grpo``: fine-tune a local model on the store's experience with TRL.

Each verb parses its options and calls :func:`~pytest_teach.pipeline.train_from_store`, which
exports the store (or takes ``--data FILE``, or a suite's prompts), validates the rows, trains
with TRL and registers the result. It works unchanged under ``torchrun --nproc_per_node N -m
pytest_teach.cli train ...`` (or ``accelerate launch --multi_gpu``): only rank 0 opens the store,
prints and registers; a rank that fails prints one line naming it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from ._common import DB_OPTION, TeachGroup, fail
from ._predictor import encoder_cmd, predictor_cmd
from ._rl import env_options, train_env_cmd


@click.group("train", cls=TeachGroup)
def train() -> None:
    """Fine-tune a local model with TRL on the store's experience (or a JSONL file).

    sft trains on chat rows, dpo on preference pairs, grpo on prompts scored by reward
    functions. The result loads as --model hf:DIR and, when trained from the store, is
    registered as a specialist (see `teach models list`).
    """


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every ``teach train`` verb shares."""
    options = [
        DB_OPTION,
        click.option(
            "--data",
            metavar="FILE",
            help="train on this JSONL file instead of exporting the store (nothing is registered)",
        ),
        click.option(
            "--label",
            type=click.Choice(["success", "intervention"]),
            help="only episodes with this label",
        ),
        click.option("--model", "models", multiple=True, metavar="SPEC", help="only these models"),
        click.option("--scenario", metavar="GLOB", help="only scenarios matching this glob"),
        click.option("--since", metavar="WHEN", help="only episodes since a date or span (7d)"),
        click.option(
            "--base-model",
            metavar="DIR",
            help="the model to fine-tune (default: a tiny random model, built offline once and "
            "kept in the user cache directory, e.g. ~/.cache/pytest-teach/models/tiny-base)",
        ),
        click.option(
            "--lora/--full", default=True, show_default=True, help="train a LoRA adapter or all"
        ),
        click.option("--max-steps", type=click.IntRange(min=1), help="optimiser steps"),
        click.option(
            "--epochs",
            type=click.IntRange(min=1),
            help="passes over the rows: steps = epochs * ceil(rows / batch size) (default 1)",
        ),
        click.option(
            "--lr",
            type=click.FloatRange(0, 1, min_open=True),
            default=2e-4,
            show_default=True,
            help="learning rate",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            default=4,
            show_default=True,
            help="rows per step (grpo: prompts per step)",
        ),
        click.option("--output", "-o", required=True, metavar="DIR", help="where to save"),
        click.option(
            "--agent",
            default="default",
            show_default=True,
            help="the agent the registered model specialises",
        ),
        click.option("--name", metavar="NAME", help="the registered model's name"),
        click.option("--seed", type=int, default=0, show_default=True),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _train(method: str, opts: dict[str, Any], suite: Any = None, **extra: Any) -> None:
    """Check the options' combinations, train with :func:`~pytest_teach.pipeline.train_from_store`,
    print where the model went, its metrics and its registration (main process only)."""
    from ..pipeline import train_from_store

    filters = {
        "label": opts["label"],
        "model": list(opts["models"]) or None,
        "scenario": opts["scenario"],
        "since": opts["since"],
    }
    used = [k for k, v in filters.items() if v]
    given = [name for name, on in (("--data", opts["data"]), ("--suite", suite)) if on]
    if len(given) > 1:
        fail("--data and --suite exclude each other: give one")
    if given and used:
        fail(
            f"{given[0]} excludes the store filters ({', '.join('--' + k for k in used)}): give one"
        )
    if opts["max_steps"] and opts["epochs"]:
        fail("--max-steps and --epochs exclude each other: give one")

    def announce(plan: Any) -> None:
        click.echo(
            f"teach train {method}: {len(plan.rows)} rows, {plan.steps} steps, "
            f"{'LoRA' if opts['lora'] else 'full'} on {plan.base_model}"
        )

    from ..train import TrainSettings, ranks

    here = ranks()
    try:
        trained = train_from_store(
            method,
            opts["output"],
            TrainSettings(
                max_steps=opts["max_steps"],
                epochs=opts["epochs"],
                lora=opts["lora"],
                learning_rate=opts["lr"],
                batch_size=opts["batch_size"],
                seed=opts["seed"],
            ),
            store=opts["db"],
            filters=None if given else filters,
            data=opts["data"],
            suite=suite,
            base_model=opts["base_model"],
            agent=opts["agent"],
            name=opts["name"],
            announce=announce,
            echo=click.echo,
            **extra,
        )
    except Exception as exc:
        if not here.distributed:
            raise
        # several processes: one line naming the rank (the launcher stops the others)
        first = (str(exc).strip().splitlines() or [""])[0]
        fail(f"{here.label}: {type(exc).__name__}: {first}", code=1)
    if not trained.main_process:
        return
    click.echo(f"saved to {trained.output}; use it as --model hf:{trained.output}")
    click.echo("metrics " + json.dumps(trained.metrics, sort_keys=True))
    registered = trained.registered
    if registered is not None:
        click.echo(f"registered {registered.name} ({registered.id}) for agent {registered.agent}")


@train.command("sft")
@_options
def sft_cmd(**opts: Any) -> None:
    """Supervised fine-tuning (TRL SFTTrainer) on chat rows (the sft export)."""
    _train("sft", opts)


@train.command("dpo")
@_options
@click.option(
    "--beta",
    type=click.FloatRange(0, min_open=True),
    default=0.1,
    show_default=True,
    help="DPO's KL coefficient",
)
def dpo_cmd(beta: float, **opts: Any) -> None:
    """Direct preference optimisation (TRL DPOTrainer) on preference pairs (the dpo export)."""
    _train("dpo", opts, beta=beta)


@train.command("grpo")
@_options
@click.option(
    "--num-generations",
    type=click.IntRange(min=2),
    default=4,
    show_default=True,
    help="completions sampled per prompt (the group)",
)
@click.option(
    "--max-completion-length",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="longest completion in tokens",
)
@click.option(
    "--suite",
    multiple=True,
    metavar="PATH",
    help="take prompts and rewards from this pytest suite's tests (repeatable)",
)
@click.option(
    "--suite-args",
    metavar="ARGS",
    help='extra pytest arguments for the suite, e.g. "-k weather -m smoke"',
)
@click.option(
    "--reward-workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="persistent pytest workers scoring completions",
)
@click.option(
    "--check-timeout",
    type=click.FloatRange(0, min_open=True),
    default=30.0,
    show_default=True,
    help="seconds one check may run before its reward is None",
)
@click.option(
    "--reward-recycle-after",
    type=click.IntRange(min=1),
    metavar="N",
    help="start a reward worker afresh after N checks (frees what checks leak)",
)
@click.option(
    "--reward-max-rss-mb",
    type=click.FloatRange(0, min_open=True),
    metavar="MB",
    help="start a reward worker afresh once its resident memory passes MB MiB",
)
@click.option(
    "--reward-backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="where the reward workers run: local processes, or Ray actors (the ray extra)",
)
@click.option(
    "--ray-address",
    metavar="auto|ADDR",
    help="the Ray cluster for --reward-backend ray (default: a local one for the run)",
)
@env_options
def grpo_cmd(
    num_generations: int,
    max_completion_length: int,
    suite: tuple[str, ...],
    suite_args: str | None,
    reward_workers: int,
    check_timeout: float,
    reward_recycle_after: int | None,
    reward_max_rss_mb: float | None,
    reward_backend: str,
    ray_address: str | None,
    **opts: Any,
) -> None:
    """Group relative policy optimisation (TRL GRPOTrainer).

    With --suite PATH the prompts and the rewards come from a pytest suite: its tests are
    collected by pytest (parametrization, markers and --suite-args such as "-k weather" apply),
    each test's prompt is captured from its `agent` call, and every sampled completion is scored
    by running that test with the agent answering it, in --reward-workers persistent workers
    whose fixtures stay warm. The reward is what the test gives episode.reward() (1.0/0.0 for
    pass/fail without one); a check that raises or runs past --check-timeout is left out (None)
    and logged. Groups with no reward variance are reported at the end. A worker can be started
    afresh after --reward-recycle-after checks or past --reward-max-rss-mb of memory. With
    --reward-backend ray the workers are Ray actors, on the cluster at --ray-address (auto, or
    HOST:PORT) or on a local cluster started for the run.

    Without --suite it trains on the store's grpo export (or --data) with the tool-selection
    reward (the scenario's check, with partial credit for plan-shaped output).

    With --env gridworld (or MODULE:CLASS) it is multi-turn: the family's actions are tools the
    model calls, each rollout is scored by replaying it in the scenario's own test (--suite,
    default the family's bundled suite) and stored as an episode; --tasks and --held-out split
    the tasks by seed or id, and the held-out ones are never trained on.
    """
    if opts.get("env"):
        train_env_cmd(
            opts,
            num_generations=num_generations,
            max_completion_length=max_completion_length,
            suite=suite,
            suite_args=suite_args,
            reward_workers=reward_workers,
            check_timeout=check_timeout,
        )
        return
    from ..pipeline import SuiteSource
    from ..train import tool_selection_reward

    source = None
    if suite:
        source = SuiteSource(
            suite,
            suite_args,
            reward_workers,
            check_timeout,
            recycle_after=reward_recycle_after,
            max_rss_mb=reward_max_rss_mb,
            backend=reward_backend,
            ray_address=ray_address,
        )
    elif suite_args:
        fail("--suite-args needs --suite")
    elif reward_recycle_after is not None:
        fail("--reward-recycle-after needs --suite")
    elif reward_max_rss_mb is not None:
        fail("--reward-max-rss-mb needs --suite")
    elif reward_backend != "local":
        fail("--reward-backend needs --suite")
    if ray_address is not None and reward_backend != "ray":
        fail("--ray-address needs --reward-backend ray")
    _train(
        "grpo",
        opts,
        suite=source,
        reward_funcs=[tool_selection_reward],
        num_generations=num_generations,
        max_completion_length=max_completion_length,
    )


train.add_command(encoder_cmd)
train.add_command(predictor_cmd)
