"""``teach train sft|dpo|grpo``: fine-tune a local model on the store's experience with TRL.

Each verb is a thin layer: it exports the store (or takes ``--data FILE``), then calls
:func:`~pytest_teach.train.sft.train_sft`, :func:`~pytest_teach.train.dpo.train_dpo` or
:func:`~pytest_teach.train.grpo.train_grpo`, which build TRL's ``SFTConfig``/``DPOConfig``/
``GRPOConfig`` and run its trainer. It works unchanged under ``accelerate launch``: every process
exports and trains (TRL shards the batches); only the main process (``RANK`` 0) prints and
registers the result in the store's model registry.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ._common import DB_OPTION, TeachGroup, fail, open_db
from ._predictor import encoder_cmd, predictor_cmd

#: The export format each method trains on.
FORMATS = {"sft": "sft", "dpo": "dpo", "grpo": "grpo"}


@click.group("train", cls=TeachGroup)
def train() -> None:
    """Fine-tune a local model with TRL on the store's experience (or a JSONL file).

    sft trains on chat rows, dpo on preference pairs, grpo on prompts scored by reward
    functions. The result loads as --model hf:DIR and, when trained from the store, is
    registered as a specialist (see `teach models list`).
    """


def _is_main_process() -> bool:
    """Whether this is the main process (``accelerate launch``/``torchrun`` set ``RANK``)."""
    return os.environ.get("RANK", "0") == "0"


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


def _train(
    method: str,
    opts: dict[str, Any],
    load_rows: Callable[[str], list[dict]],
    run: Callable[..., dict[str, Any]],
    suite: SuiteSource | None = None,
    **extra: Any,
) -> None:
    """Export (or take ``--data``, or a suite's prompts), train with ``run``, print progress and
    metrics, register."""
    filters = {
        "label": opts["label"],
        "model": list(opts["models"]) or None,
        "scenario": opts["scenario"],
        "since": opts["since"],
    }
    used = {k: v for k, v in filters.items() if v}
    given = [name for name, on in (("--data", opts["data"]), ("--suite", suite)) if on]
    if len(given) > 1:
        fail("--data and --suite exclude each other: give one")
    if given and used:
        fail(
            f"{given[0]} excludes the store filters ({', '.join('--' + k for k in used)}): give one"
        )
    if opts["max_steps"] and opts["epochs"]:
        fail("--max-steps and --epochs exclude each other: give one")
    main = _is_main_process()
    with tempfile.TemporaryDirectory(prefix="teach-train-") as tmp, contextlib.ExitStack() as stack:
        if suite is not None:
            path, source = suite.prepare(Path(tmp), stack, echo=click.echo if main else None)
            extra["reward_funcs"] = [suite.reward_func()]
        elif opts["data"]:
            path = str(opts["data"])
            source = {"file": str(Path(path).resolve())}
        else:
            fmt = FORMATS[method]
            from ..export import export

            with open_db(opts["db"]) as store:
                result = export(store, fmt, Path(tmp) / f"{fmt}.jsonl", **filters)
            if result.rows == 0:
                fail(
                    f"no {fmt} rows in the store {opts['db']}"
                    + (" match the filters" if used else "")
                    + "; check with `teach stats`"
                )
            path = str(result.path)
            source = {
                "db": str(Path(opts["db"]).resolve()),
                "format": fmt,
                "filters": {k: str(v) for k, v in used.items()},
            }
        rows = load_rows(path)  # validate before loading a model; errors name file and line
        source["rows"] = len(rows)
        steps = opts["max_steps"] or (opts["epochs"] or 1) * math.ceil(
            len(rows) / opts["batch_size"]
        )
        if opts["base_model"]:
            base = opts["base_model"]
        else:
            from ..train.sft import ensure_tiny_base
            from ..train.tiny import tiny_base_cache

            base = str(ensure_tiny_base(tiny_base_cache()))
            if main:
                click.echo(f"base model: the tiny offline model in {base}")

        if main:
            click.echo(
                f"teach train {method}: {len(rows)} rows, {steps} steps, "
                f"{'LoRA' if opts['lora'] else 'full'} on {base}"
            )
        from .._progress import Progress, no_progress_bars

        # a bar with the loss and an ETA on a terminal (the only one), one line per step in a log
        progress = stack.enter_context(Progress(steps, echo=click.echo if main else None))
        if progress.is_bar:
            stack.enter_context(no_progress_bars())

        def on_step(step: int, loss: float | None) -> None:
            progress.update(step, loss=loss)

        metrics = run(
            path,
            base,
            opts["output"],
            max_steps=steps,
            lora=opts["lora"],
            learning_rate=opts["lr"],
            batch_size=opts["batch_size"],
            seed=opts["seed"],
            on_step=on_step,
            **extra,
        )
        if suite is not None:
            metrics["checks"] = suite.report(echo=click.echo if main else None)
    if not main:
        return
    output = Path(opts["output"]).resolve()
    click.echo(f"saved to {output}; use it as --model hf:{output}")
    click.echo("metrics " + json.dumps(metrics, sort_keys=True))
    if opts["data"]:
        return
    from ..pipeline import register_trained_model
    from ..store import Store

    # a suite run may have no store yet: the registry lives in it, so create it
    with Store.open(opts["db"], create=suite is not None) as store:
        registered = register_trained_model(
            store,
            str(output),
            agent=opts["agent"],
            name=opts["name"],
            metrics={**metrics, "method": method, "data": source},
        )
    click.echo(f"registered {registered.name} ({registered.id}) for agent {registered.agent}")


class SuiteSource:
    """``teach train grpo --suite``: prompts and rewards from a pytest suite's own tests."""

    def __init__(
        self,
        paths: Sequence[str],
        pytest_args: str | None,
        workers: int,
        timeout: float,
        recycle_after: int | None = None,
        max_rss_mb: float | None = None,
    ) -> None:
        self.paths = list(paths)
        self.pytest_args = shlex.split(pytest_args or "")
        self.workers = workers
        self.timeout = timeout
        self.recycle_after = recycle_after
        self.max_rss_mb = max_rss_mb
        self.pool: Any = None

    def prepare(
        self, tmp: Path, stack: contextlib.ExitStack, echo: Callable[[str], None] | None
    ) -> tuple[str, dict[str, Any]]:
        """Start the reward pool, capture the prompts, write them as the GRPO dataset."""
        from ..rewards import RewardPool, RewardPoolError

        try:
            pool = RewardPool(
                self.paths,
                workers=self.workers,
                timeout=self.timeout,
                pytest_args=self.pytest_args,
                max_checks_per_worker=self.recycle_after,
                max_worker_rss_mb=self.max_rss_mb,
            )
            stack.enter_context(pool)
            tasks = pool.tasks()
        except RewardPoolError as exc:
            fail(str(exc))
        self.pool = pool
        if echo:
            echo(
                f"suite {' '.join(self.paths)}: {len(pool.nodeids)} tests collected, "
                f"{len(tasks)} prompts captured by {self.workers} reward worker(s)"
            )
            for nodeid, reason in list(pool.skipped.items())[:3]:
                echo(f"  no prompt from {nodeid}: {reason}")
        if not tasks:
            fail(
                f"no test in {' '.join(self.paths)} sent a prompt through the `agent` fixture"
                + (f" (first: {next(iter(pool.skipped.values()))})" if pool.skipped else "")
            )
        path = tmp / "suite-prompts.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for task in tasks:
                fh.write(json.dumps(task.row(), ensure_ascii=False) + "\n")
        source = {
            "suite": self.paths,
            "pytest_args": self.pytest_args,
            "tasks": len(tasks),
            "skipped": len(pool.skipped),
        }
        return str(path), source

    def reward_func(self) -> Any:
        return self.pool.reward_func()

    def report(self, echo: Callable[[str], None] | None) -> dict[str, Any]:
        stats = self.pool.stats
        if echo:
            echo(stats.summary())
        return {
            "scored": stats.scored,
            "none": stats.none,
            "groups": stats.groups,
            "zero_variance_groups": len(stats.zero_variance),
            "worker_restarts": stats.restarts,
            "worker_recycles": stats.recycled,
        }


@train.command("sft")
@_options
def sft_cmd(**opts: Any) -> None:
    """Supervised fine-tuning (TRL SFTTrainer) on chat rows (the sft export)."""
    from ..train.sft import load_chat_rows, train_sft

    _train("sft", opts, load_chat_rows, train_sft)


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
    from ..train.dpo import load_preference_rows, train_dpo

    _train("dpo", opts, load_preference_rows, train_dpo, beta=beta)


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
def grpo_cmd(
    num_generations: int,
    max_completion_length: int,
    suite: tuple[str, ...],
    suite_args: str | None,
    reward_workers: int,
    check_timeout: float,
    reward_recycle_after: int | None,
    reward_max_rss_mb: float | None,
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
    afresh after --reward-recycle-after checks or past --reward-max-rss-mb of memory.

    Without --suite it trains on the store's grpo export (or --data) with the tool-selection
    reward (the scenario's check, with partial credit for plan-shaped output).
    """
    from ..train.grpo import load_prompt_rows, tool_selection_reward, train_grpo

    source = None
    if suite:
        source = SuiteSource(
            suite,
            suite_args,
            reward_workers,
            check_timeout,
            recycle_after=reward_recycle_after,
            max_rss_mb=reward_max_rss_mb,
        )
    elif suite_args:
        fail("--suite-args needs --suite")
    elif reward_recycle_after is not None:
        fail("--reward-recycle-after needs --suite")
    elif reward_max_rss_mb is not None:
        fail("--reward-max-rss-mb needs --suite")
    _train(
        "grpo",
        opts,
        load_prompt_rows,
        train_grpo,
        suite=source,
        reward_funcs=[tool_selection_reward],
        num_generations=num_generations,
        max_completion_length=max_completion_length,
    )


train.add_command(encoder_cmd)
train.add_command(predictor_cmd)
