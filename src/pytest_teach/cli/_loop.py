"""``teach loop``: collect with the oracle, fine-tune, A/B on held-out scenarios, in one command."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from ._common import DB_OPTION, TeachCommand, fail

#: Where runs go without --output (one folder per run).
LOOP_DIR = Path(".teach") / "loop"


@click.command("loop", cls=TeachCommand)
@click.option(
    "--suite",
    required=True,
    metavar="PATH",
    help="the pytest suite of tool-selection scenarios (e.g. scenarios/tool_selection)",
)
@click.option(
    "--base",
    default="tiny",
    show_default=True,
    metavar="tiny|DIR",
    help="the model to improve: 'tiny' builds a fresh random tiny model (its tokenizer trained "
    "on the training rows only), or a local model directory",
)
@click.option(
    "--output",
    "-o",
    metavar="DIR",
    help=f"where the base, the trained model, the data and the logs go "
    f"(default: {LOOP_DIR}/<date-time>)",
)
@click.option("--force", is_flag=True, help="reuse --output even if a loop already wrote to it")
@click.option(
    "--held-out-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.25,
    show_default=True,
    help="share of scenarios held out of training (by a stable hash of the scenario id)",
)
@click.option(
    "--split-seed", type=int, default=0, show_default=True, help="seed of the held-out hash"
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="passes over the training rows: steps = epochs * ceil(rows / batch size)",
)
@click.option(
    "--lr",
    type=click.FloatRange(0, 1, min_open=True),
    default=1e-3,
    show_default=True,
    help="learning rate (constant; a random base takes a high one)",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--max-length",
    type=click.IntRange(min=16),
    default=2048,
    show_default=True,
    help="longest training row in tokens (the prompt lists every tool)",
)
@click.option(
    "--lora/--full",
    default=False,
    show_default=True,
    help="train a LoRA adapter or every weight (a random base needs --full)",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="seed of the tiny model and training"
)
@click.option(
    "--report",
    metavar="PATH",
    help="the A/B's HTML report (default: OUTPUT/report.html)",
)
@DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="end with a JSON summary line")
def loop_cmd(
    suite: str,
    base: str,
    output: str | None,
    force: bool,
    held_out_fraction: float,
    split_seed: int,
    epochs: int,
    lr: float,
    batch_size: int,
    max_length: int,
    lora: bool,
    seed: int,
    report: str | None,
    db: str,
    as_json: bool,
) -> None:
    """The closed loop on a suite: collect, fine-tune, and measure on held-out scenarios.

    \b
    1. split    the suite's scenarios into train and held-out, by a stable hash of the id
                (every held-out plan is one training teaches, never for that query)
    2. collect  pytest TRAIN --model scripted:oracle --collect-training-data
    3. train    SFT (TRL, assistant-only loss) of the base on that session's rows;
                the result is registered for agent tool_selection (`teach models list`)
    4. a/b      pytest HELD_OUT --ab hf:BASE,hf:TRAINED --ab-gate --teach-report PATH

    Prints each phase, the held-out pass rates before (base) and after (trained) as read from
    the store, and the A/B verdict. The exit status is 0 whatever the verdict; pytest's logs
    are kept in OUTPUT. Runs offline on a CPU: the defaults take a fresh tiny model on
    scenarios/tool_selection from 0% to 74-81% held-out (five seeds) in about two minutes.

    \b
    Example:
      teach loop --suite scenarios/tool_selection --base tiny
    """
    from ..loop import LoopSettings, clear_outputs, run_loop
    from ..store import is_url

    if not Path(suite).exists():
        fail(f"--suite {suite} does not exist")
    if base != "tiny" and not (Path(base).expanduser() / "config.json").is_file():
        fail(f"--base {base}: not 'tiny' nor a model directory (no config.json)")
    out = Path(output) if output else LOOP_DIR / datetime.now().strftime("%Y%m%d-%H%M%S")
    if out.exists() and not out.is_dir():
        fail(f"--output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            fail(f"--output {out} is not empty; pass --force to reuse it or give a new directory")
        clear_outputs(out)
    settings = LoopSettings(
        suite=suite,
        output=out,
        db=db if is_url(db) else Path(db).expanduser().resolve(),
        report=Path(report).expanduser().resolve() if report else (out / "report.html").resolve(),
        base=base,
        held_out=held_out_fraction,
        split_seed=split_seed,
        epochs=epochs,
        learning_rate=lr,
        batch_size=batch_size,
        max_length=max_length,
        lora=lora,
        seed=seed,
    )
    click.echo(f"teach loop: {suite} -> {out}")
    result = run_loop(settings, echo=click.echo)
    click.echo(
        f"held-out pass rate: before {result.before} -> after {result.after}   "
        f"verdict {result.verdict}"
    )
    click.echo(f"report: {result.report}")
    times = ", ".join(f"{k} {v:.0f}s" for k, v in result.seconds.items() if k != "total")
    click.echo(f"total {result.seconds['total']:.0f}s ({times})")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "before": vars(result.before) | {"rate": result.before.rate},
                    "after": vars(result.after) | {"rate": result.after.rate},
                    "verdict": result.verdict,
                    "train": len(result.split.train),
                    "held_out": len(result.split.held_out),
                    "collect_session": result.collect_session,
                    "ab_session": result.ab_session,
                    "model": str(result.model_dir),
                    "registered": result.registered.id,
                    "report": str(result.report),
                    "seconds": result.seconds,
                },
                sort_keys=True,
            )
        )
