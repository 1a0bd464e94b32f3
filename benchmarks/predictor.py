"""The intervention predictor on a real browser training set: training time, held-out scores
beside the baseline, lead time, and the cost of scoring a suite live.

Needs a store collected by ``scripts/collect_browser_experience.py`` (1,224 episodes from
``scripted:noisy-0.5`` ... ``noisy-1`` by default). Three measurements, each in a fresh
subprocess of this interpreter:

1. ``teach train predictor`` with its defaults (20 contrastive epochs, 10 classifier epochs,
   batch 4, CPU), timed from the command's start to its end: the cold path, imports and the
   screenshot embeddings included.
2. ``teach evaluate --json`` on the episodes the training held out: ROC AUC, F1, precision and
   recall of the experience encoder and of the logistic-regression baseline, the early warnings'
   median lead time, and the same scores on the held-out episodes whose trajectory no training
   episode took.
3. With ``--live``: the browser suite under ``scripted:noisy-LEVEL`` (a level the training set
   does not hold) with and without ``--intervention-predictor``, alternating, and their ratio.

The load average is printed before and after, since the machine may be shared::

    .venv/bin/python benchmarks/predictor.py [--db .teach/predictor.db] [--live] [--json PATH]
        [--output DIR] [--seed N]

Exit status: 1 when a command fails; the figures are printed whatever they are.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _teach(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest_teach.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return time.perf_counter() - started, done


def _suite(level: str, db: Path, predictor: Path | None) -> float:
    from pytest_teach._util import run_pytest

    args = [
        "scenarios/browser",
        "-q",
        "-p",
        "no:cacheprovider",
        "--tb=no",
        "-n",
        "2",
        "--collect-training-data",
        "--teach-db",
        str(db),
        "--model",
        f"scripted:noisy-{level}",
    ]
    if predictor is not None:
        args.append(f"--intervention-predictor={predictor}")
    run = run_pytest(args, cwd=REPO)
    if run.returncode not in (0, 1):
        raise SystemExit(f"the browser suite exited {run.returncode}:\n{run.output[-3000:]}")
    return run.seconds


def _row(name: str, r: dict[str, Any]) -> str:
    return (
        f"  {name:<22}{r['roc_auc']:>8.3f}{r['f1']:>8.3f}{r['precision']:>11.3f}"
        f"{r['recall']:>8.3f}{r['threshold']:>11.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the measurements; print them (and write ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=".teach/predictor.db")
    parser.add_argument("--live", action="store_true", help="also time live scoring")
    parser.add_argument("--live-level", default="0.455", help="the noise level of the live runs")
    parser.add_argument("--rounds", type=int, default=1, help="live rounds (each: off, on)")
    parser.add_argument(
        "--seed", type=int, default=0, help="the training seed (it also draws the split)"
    )
    parser.add_argument("--json", metavar="PATH", help="write the figures here too")
    parser.add_argument(
        "--output",
        metavar="DIR",
        help="keep the trained model, evaluation_metrics.json and the two plots here "
        "(default: a temporary directory, removed at the end)",
    )
    args = parser.parse_args(argv)
    db = Path(args.db).resolve()
    if not db.is_file():
        print(f"no store at {db}; run scripts/collect_browser_experience.py first", file=sys.stderr)
        return 1
    figures: dict[str, Any] = {
        "load_before": os.getloadavg(),
        "cpus": os.cpu_count(),
        "seed": args.seed,
    }
    with tempfile.TemporaryDirectory(prefix="teach-predictor-bench-") as tmp:
        model = Path(args.output).resolve() if args.output else Path(tmp) / "model"
        copy = Path(tmp) / "store.db"  # training registers the model: keep the store as it is
        source, target = sqlite3.connect(db), sqlite3.connect(copy)
        source.backup(target)
        source.close()
        target.close()
        os.symlink(db.parent / "artifacts", Path(tmp) / "artifacts")
        seconds, done = _teach(
            "train", "predictor", "--db", str(copy), "-o", str(model), "--seed", str(args.seed)
        )
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        figures["train_seconds"] = round(seconds, 1)
        figures["train_report"] = done.stdout.strip().splitlines()[0]
        _, done = _teach("evaluate", "--db", str(copy), "--model", str(model), "--json")
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        metrics = json.loads(done.stdout)
        figures["evaluation"] = metrics
        if args.live:
            off: list[float] = []
            on: list[float] = []
            for _ in range(args.rounds):
                off.append(_suite(args.live_level, Path(tmp) / "off.db", None))
                on.append(_suite(args.live_level, Path(tmp) / "on.db", model))
            figures["live_seconds"] = {"without": off, "with": on}
    figures["load_after"] = os.getloadavg()

    enc, base = metrics["encoder"], metrics["baseline_logistic_regression"]
    novel = metrics["novel_test_episodes"]
    print(
        f"store {db}: {metrics['train_episodes']} training, {metrics['val_episodes']} validation,"
    )
    print(
        f"  {metrics['test_episodes']} held-out episodes ({metrics['test_steps']} steps, "
        f"{metrics['test_positive_steps']} needing intervention)"
    )
    print(
        f"teach train predictor --seed {args.seed}: {figures['train_seconds']} s wall (cold, CPU)"
    )
    print(f"  {figures['train_report']}")
    header = ("ROC AUC", 8), ("F1", 8), ("precision", 11), ("recall", 8), ("threshold", 11)
    print(f"  {'held-out steps':<22}" + "".join(f"{name:>{width}}" for name, width in header))
    print(_row("experience encoder", enc))
    print(_row("logistic regression", base))
    if "encoder" in novel:
        print(f"  novel trajectories only ({novel['episodes']} episodes, {novel['steps']} steps):")
        print(_row("experience encoder", novel["encoder"]))
        print(_row("logistic regression", novel["baseline_logistic_regression"]))
    for name, r in (("encoder", enc), ("baseline", base)):
        w = r["early_warning"]
        print(
            f"  early warning ({name}): median lead time {w['median_lead_time_steps']} steps; "
            f"{w['failing_warned']}/{w['failing_episodes']} failing episodes warned "
            f"({w['failing_warned_early']} at least a step early); "
            f"{w['false_alarms']}/{w['passing_episodes']} false alarms "
            f"({w['false_alarms_after_a_detour']} of them in the {w['passing_with_a_detour']} "
            "passing runs that recovered from a mistake)"
        )
    lead = enc["early_warning"]["median_lead_time_steps"]
    checks = [
        ("ROC AUC", enc["roc_auc"], ">=", 0.85),
        ("F1", enc["f1"], ">=", 0.75),
        ("median lead time (steps)", lead, ">=", 1),
        ("training (s)", figures["train_seconds"], "<=", 600),
    ]
    figures["targets"] = {
        name: value is not None and (value >= bound if op == ">=" else value <= bound)
        for name, value, op, bound in checks
    }
    print(
        "targets: "
        + "; ".join(
            f"{name} {'-' if value is None else f'{value:g}'} {op} {bound:g} "
            f"({'met' if figures['targets'][name] else 'NOT met'})"
            for name, value, op, bound in checks
        )
    )
    if "live_seconds" in figures:
        off, on = figures["live_seconds"]["without"], figures["live_seconds"]["with"]
        ratio = (sum(on) / len(on)) / (sum(off) / len(off))
        print(
            f"live: browser suite without {min(off):.1f} s, with --intervention-predictor "
            f"{min(on):.1f} s (mean ratio {ratio:.2f})"
        )
    print(
        "load average before {0[0]:.2f} {0[1]:.2f} {0[2]:.2f}, after {1[0]:.2f} {1[1]:.2f} "
        "{1[2]:.2f} ({2} CPUs)".format(
            figures["load_before"], figures["load_after"], figures["cpus"]
        )
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
