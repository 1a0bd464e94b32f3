"""``teach teachable micro-train | train-matrix | eval | select | figures | tables``: the
experiments that test whether the teachability labels predict what training does.

Each verb reads and writes one results folder (``--results``, by default where ``teach
teachable label`` writes), so they chain; ``teach teachable pilot --full`` runs them all. The
work lives in :mod:`pytest_teach.teachable`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ._teachable import EMBEDDER, TEACHABLE_DIR, THREADS, TeachableCommand, _threads

RESULTS = TEACHABLE_DIR / "results"


def _apply(func: Any, options: tuple[Any, ...]) -> Any:
    for option in reversed(options):
        func = option(func)
    return func


RESULTS_OPTION = click.option(
    "-r",
    "--results",
    type=click.Path(file_okay=False, path_type=Path),
    default=str(RESULTS),
    show_default=True,
    help="the results folder (teach teachable label/pilot -o), which each phase reads and writes",
)


def _results_options(func: Any) -> Any:
    """--results, --student, --snapshots, --restart and --threads."""
    return _apply(
        func,
        (
            RESULTS_OPTION,
            click.option(
                "--student",
                metavar="hf:DIR",
                help="the student to fine-tune (default: the policy the snapshots were labeled with)",
            ),
            click.option(
                "--snapshots",
                type=click.Path(dir_okay=False, path_type=Path),
                help="the snapshots that were labeled (default: RESULTS/snapshots.jsonl)",
            ),
            click.option("--restart", is_flag=True, help="discard earlier results and start over"),
            THREADS,
        ),
    )


def _finetune_options(func: Any) -> Any:
    """How each run fine-tunes the student: --epochs/--max-steps, --lr, --batch-size, LoRA."""
    return _apply(
        func,
        (
            click.option(
                "--epochs",
                type=click.IntRange(min=1),
                default=3,
                show_default=True,
                help="passes over a run's rows",
            ),
            click.option(
                "--max-steps",
                "train_steps",
                type=click.IntRange(min=1),
                help="optimiser steps per run instead of --epochs",
            ),
            click.option(
                "--lr", type=click.FloatRange(0, 1, min_open=True), default=1e-3, show_default=True
            ),
            click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True),
            click.option(
                "--lora/--full",
                default=False,
                show_default=True,
                help="train a LoRA adapter, or every weight of the student",
            ),
            click.option(
                "--rehearsal",
                type=click.IntRange(min=0),
                default=0,
                show_default=True,
                metavar="N",
                help="mix N rows the student was trained on into each run (against forgetting)",
            ),
            click.option(
                "--rehearsal-data",
                type=click.Path(dir_okay=False),
                metavar="FILE",
                help="the rows --rehearsal samples (default: demos.jsonl beside the student's "
                "model, as teach teachable student writes it)",
            ),
        ),
    )


def _eval_seed_start() -> int:
    from ..teachable import EVAL_SEED_START

    return EVAL_SEED_START


def _bench_options(func: Any) -> Any:
    """The evaluation set: --eval-tasks, --eval-seed-start, --eval-max-steps."""
    return _apply(
        func,
        (
            click.option(
                "--eval-tasks",
                type=click.IntRange(min=1),
                default=25,
                show_default=True,
                help="evaluation tasks (seeds) per level",
            ),
            click.option(
                "--eval-seed-start",
                type=int,
                default=_eval_seed_start,
                help="the evaluation tasks' first seed [default: 50000], apart from the mined "
                "ones (from 0) and the demonstrations' (from 100000)",
            ),
            click.option(
                "--eval-max-steps",
                type=click.IntRange(min=1),
                help="step limit of an evaluation task (default: the snapshots')",
            ),
        ),
    )


def _finetune(kw: dict[str, Any], seed: int) -> Any:
    from ..teachable import FineTune

    return FineTune(
        steps=kw.pop("train_steps"),
        epochs=kw.pop("epochs"),
        lr=kw.pop("lr"),
        batch_size=kw.pop("batch_size"),
        lora=kw.pop("lora"),
        seed=seed,
        rehearsal=kw.pop("rehearsal"),
        rehearsal_data=kw.pop("rehearsal_data"),
    )


def _bench(kw: dict[str, Any], common: dict[str, Any]) -> Any:
    from ..teachable import EvalSettings

    return EvalSettings(
        eval_tasks=kw.pop("eval_tasks"),
        eval_seed_start=kw.pop("eval_seed_start"),
        max_steps=kw.pop("eval_max_steps"),
        **common,
    )


def _common(kw: dict[str, Any]) -> dict[str, Any]:
    _threads(kw.pop("threads"))
    return {k: kw.pop(k) for k in ("results", "student", "snapshots", "restart")}


@click.command("micro-train", cls=TeachableCommand)
@_results_options
@click.option(
    "--n-per-quadrant",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="snapshots sampled per quadrant",
)
@click.option(
    "--n-steps", type=click.IntRange(min=1), default=2, show_default=True, help="optimiser steps"
)
@click.option("--lr", type=click.FloatRange(0, 1, min_open=True), default=1e-3, show_default=True)
@click.option(
    "--n-validation-rollouts",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="sampled rollouts from the snapshot, before and after",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["route", "demo", "hint", "contrast"]),
    default="demo",
    show_default=True,
    help="the supervision row's format; route: the format of the patch the CPT found best "
    "(demo if none did)",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print cpt_correlation.json")
def micro_cmd(as_json: bool, **kw: Any) -> None:
    """Phase 1B: validate the CPT score by micro-training.

    For each sampled snapshot, fine-tune the student for a few steps on that snapshot's
    supervision and measure the change in its success rate from that state. Writes
    micro_training_results.json and cpt_correlation.json (Spearman correlation of ELP_net with
    the measured utility, bootstrap 95% CI, Q1 against Q2).

    Exit status: 0 when the correlation is at least 0.3, 1 otherwise.

    \b
    Example:
      teach teachable micro-train --n-per-quadrant 10 --n-steps 2 --lr 1e-3 \\
          --n-validation-rollouts 3
    """
    from ..teachable import MicroSettings, micro_train, render_correlation

    common = _common(kw)
    settings = MicroSettings(
        n_per_quadrant=kw["n_per_quadrant"],
        n_steps=kw["n_steps"],
        lr=kw["lr"],
        n_validation_rollouts=kw["n_validation_rollouts"],
        format=kw["fmt"],
        seed=kw["seed"],
        **common,
    )
    result = micro_train(settings, echo=click.echo)
    click.echo(render_correlation(result))
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
    sys.exit(0 if result["passed"] else 1)


@click.command("train-matrix", cls=TeachableCommand)
@_results_options
@click.option(
    "--per-run",
    type=click.IntRange(min=1),
    help="snapshots per quadrant run (default: the smallest quadrant's count)",
)
@_finetune_options
@click.option(
    "--test-share",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.3,
    show_default=True,
    help="share of the episodes held out for evaluation",
)
@click.option("--seed", type=int, default=0, show_default=True, help="split, sample and training")
def matrix_cmd(**kw: Any) -> None:
    """Phase 2: the training matrix, 14 fine-tunes of the student.

    4 quadrants x 3 supervision formats (demo, hint, contrast), plus two baselines in the demo
    format: all failures, and a random sample of a quadrant run's size. Each run is what
    `teach train sft --data ROWS` does; training_summary.json records every run (rerunning
    resumes after an interruption).
    """
    from ..teachable import MatrixSettings, train_matrix

    common = _common(kw)
    settings = MatrixSettings(
        per_run=kw.pop("per_run"),
        finetune=_finetune(kw, kw["seed"]),
        test_share=kw["test_share"],
        seed=kw["seed"],
        **common,
    )
    summary = train_matrix(settings, echo=click.echo)
    trained = sum(r["status"] == "done" for r in summary["runs"])
    click.echo(
        f"{trained} of {len(summary['planned'])} runs trained -> "
        f"{settings.results / 'training_summary.json'}"
    )


@click.command("eval", cls=TeachableCommand)
@_results_options
@_bench_options
def eval_cmd(**kw: Any) -> None:
    """Phase 3: the evaluation suite (greedy, deterministic).

    The student and every model of the training matrix play fresh tasks of the snapshots'
    levels and the held-out failure snapshots. Writes overall_task_results.csv,
    per_quadrant_results.csv, transfer_matrix.csv, retention_results.csv and
    stuckness_results.csv (and eval_summary.json).
    """
    from ..teachable import evaluate, render_evaluation

    common = _common(kw)
    settings = _bench(kw, common)
    result = evaluate(settings, echo=click.echo)
    click.echo(render_evaluation(result, common["results"]))


@click.command("select", cls=TeachableCommand)
@_results_options
@click.option(
    "--budget",
    type=click.IntRange(min=1),
    required=True,
    help="K: snapshots each method may pick",
)
@click.option(
    "--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="repeats per method"
)
@_finetune_options
@_bench_options
@EMBEDDER
def select_cmd(**kw: Any) -> None:
    """Phase 5: the selection experiment at a fixed budget.

    RANDOM, ENTROPY (highest U), PREDICTOR (highest predicted ELP, out of fold) and ORACLE
    (highest true ELP_net) each pick K training snapshots; each choice is trained on and
    evaluated. Writes selection_summary.json: each method's reliability gain, held-out
    snapshot gain and retention, with 95% t-intervals over the seeds.
    """
    from ..teachable import SelectSettings, render_selection, run_selection

    common = _common(kw)
    settings = SelectSettings(
        budget=kw["budget"],
        seeds=kw["seeds"],
        finetune=_finetune(kw, 0),
        eval=_bench(kw, common),
        embedder=kw["embedder"],
        **common,
    )
    summary = run_selection(settings, echo=click.echo)
    click.echo(render_selection(summary, common["results"]))


def _artifact_options(func: Any) -> Any:
    return _apply(
        func,
        (
            RESULTS_OPTION,
            click.option(
                "-o", "--output", type=click.Path(file_okay=False, path_type=Path), metavar="DIR"
            ),
        ),
    )


@click.command("figures", cls=TeachableCommand)
@_artifact_options
def figures_cmd(results: Path, output: Path | None) -> None:
    """The experiment's figures (PNG) from RESULTS, into RESULTS/figures or --output.

    quadrant scatter, CPT score against utility, gain per quadrant and format, transfer
    heat-map, reliability-retention frontier, selection bars with CIs: each drawn when the
    phase behind it has run.
    """
    from ..teachable import write_figures

    for path in write_figures(results, output):
        click.echo(str(path))


@click.command("tables", cls=TeachableCommand)
@_artifact_options
def tables_cmd(results: Path, output: Path | None) -> None:
    """The experiment's tables (CSV and Markdown) from RESULTS, into RESULTS/tables or --output:
    the training matrix, selection, CPT correlation, and the seed's hypotheses."""
    from ..teachable import write_tables

    written = write_tables(results, output)
    for path in written:
        click.echo(str(path))
    hypotheses = next(p for p in written if p.name == "hypotheses.md")
    click.echo(hypotheses.read_text(encoding="utf-8"), nl=False)


EXPERIMENT_COMMANDS = (micro_cmd, matrix_cmd, eval_cmd, select_cmd, figures_cmd, tables_cmd)
