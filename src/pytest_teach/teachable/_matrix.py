"""Phase 2: the training matrix.

Fourteen fine-tunes of the student on failure snapshots of the training side of the split
(:meth:`Experiment.split`): each quadrant in each supervision format (4 x 3), and two
baselines in the ``demo`` format, ``all_failures`` (every training snapshot) and ``random``
(a seeded sample of the quadrant runs' size). Each quadrant run takes the same number of
snapshots (``per_run``: by default the smallest quadrant's count), so the quadrants compare at
equal data. Every run is what ``teach train sft --data ROWS`` does (LoRA or full), and
``training_summary.json`` records each with its snapshots, steps, metrics and command line.

The summary is rewritten after every run; a rerun with the same settings skips the runs whose
model is already there (resume after an interruption), and a rerun with other settings is
refused unless ``--restart``.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._progress import Progress
from ._experiment import Experiment, SnapshotSplit, stable_order
from ._files import TeachableError, read_json, write_json
from ._quadrants import QUADRANTS
from ._supervision import FORMATS, FineTune, finetune, supervision_row

__all__ = ["BASELINES", "MATRIX_DIR", "TRAINING_SUMMARY", "MatrixSettings", "Run", "train_matrix"]

TRAINING_SUMMARY = "training_summary.json"
MATRIX_DIR = "matrix"
BASELINES = ("all_failures", "random")

Echo = Callable[[str], None]


@dataclass(frozen=True)
class MatrixSettings:
    """The training matrix (the fields before ``results`` shape the runs)."""

    per_run: int | None = None
    finetune: FineTune = field(default_factory=lambda: FineTune(epochs=3, lr=1e-3, batch_size=8))
    test_share: float = 0.3
    seed: int = 0
    results: Path = Path(".")
    student: str | None = None
    snapshots: Path | None = None
    restart: bool = False


@dataclass(frozen=True)
class Run:
    """One fine-tune of the matrix."""

    name: str
    kind: str  # "quadrant" or "baseline"
    quadrant: str | None
    format: str
    snapshots: tuple[str, ...]


def plan_runs(split: SnapshotSplit, per_run: int | None, seed: int) -> tuple[list[Run], int]:
    """The matrix's runs and the quadrant runs' size.

    Raises:
        TeachableError: no quadrant has a training snapshot.
    """
    by_quadrant = {q: [r["id"] for r in split.train if r["quadrant"] == q] for q in QUADRANTS}
    sizes = [len(v) for v in by_quadrant.values() if v]
    if not sizes:
        raise TeachableError("the training side of the split has no snapshot with a quadrant")
    size = per_run or min(sizes)
    runs = []
    for quadrant, ids in by_quadrant.items():
        chosen = tuple(stable_order(ids, seed)[:size])
        runs += [Run(f"{quadrant}-{fmt}", "quadrant", quadrant, fmt, chosen) for fmt in FORMATS]
    every = [r["id"] for r in split.train]
    runs.append(Run("all_failures", "baseline", None, "demo", tuple(every)))
    sample = random.Random(seed).sample(sorted(every), min(size, len(every)))
    runs.append(Run("random", "baseline", None, "demo", tuple(sample)))
    return runs, size


def _config(s: MatrixSettings, exp: Experiment) -> dict[str, Any]:
    return {
        "per_run": s.per_run,
        "finetune": asdict(s.finetune),
        "test_share": s.test_share,
        "seed": s.seed,
        "student": exp.student,
        "labels": sorted(r["id"] for r in exp.rows),
    }


def _previous(path: Path, config: dict[str, Any], restart: bool) -> dict[str, dict[str, Any]]:
    """The finished runs of an earlier summary made with the same settings."""
    if restart or not path.exists():
        return {}
    before = read_json(path)
    done = {r["run"]: r for r in before.get("runs", []) if r.get("status") == "done"}
    if done and before.get("config") != config:
        changed = sorted(
            k for k in set(config) | set(before.get("config", {}))
            if before.get("config", {}).get(k) != config.get(k)
        )  # fmt: skip
        raise TeachableError(
            f"{path} holds {len(done)} runs trained with other settings ({', '.join(changed)}); "
            "pass --restart to train again"
        )
    return {k: v for k, v in done.items() if Path(v["model"], "config.json").exists()}


def train_matrix(s: MatrixSettings, echo: Echo = lambda line: None) -> dict[str, Any]:
    """Train every run of the matrix (resuming); return ``training_summary.json``'s content."""
    exp = Experiment.open(s.results, student=s.student, snapshots=s.snapshots)
    split = exp.split(s.test_share, s.seed, record=True)
    runs, size = plan_runs(split, s.per_run, s.seed)
    config = _config(s, exp)
    summary_path = s.results / TRAINING_SUMMARY
    done = _previous(summary_path, config, s.restart)
    by_id = {r["id"]: r for r in split.train}
    folder = s.results / MATRIX_DIR
    if s.restart and folder.exists():
        shutil.rmtree(folder)
    echo(
        f"[matrix] {len(runs)} runs on {len(split.train)} training snapshots "
        f"({len(split.test)} held out); {size} snapshots per quadrant run; "
        f"{len(done)} already trained; {'LoRA' if s.finetune.lora else 'full'}, "
        f"{s.finetune.epochs} epochs, lr {s.finetune.lr:g}, batch {s.finetune.batch_size}"
    )
    entries: list[dict[str, Any]] = []
    started = time.perf_counter()
    finished = sum(run.name in done for run in runs)
    progress = Progress(len(runs), unit="run", label="", echo=echo, prefix="[matrix] ",
                        initial=finished)  # fmt: skip
    for run in runs:
        if run.name in done:
            entries.append(done[run.name])
            continue
        entry: dict[str, Any] = {
            "run": run.name,
            "kind": run.kind,
            "quadrant": run.quadrant,
            "format": run.format,
            "snapshots": list(run.snapshots),
            "n_snapshots": len(run.snapshots),
        }
        if not run.snapshots:
            entry.update(status="skipped", reason=f"no training snapshot in {run.quadrant}")
        else:
            clock = time.perf_counter()
            rows = [supervision_row(by_id[i], run.format) for i in run.snapshots]
            metrics = finetune(rows, exp.model_dir, folder / run.name, s.finetune)
            entry.update(
                status="done",
                rows=len(rows),
                rehearsal_rows=metrics["rehearsal_rows"],
                steps=metrics["steps"],
                loss=metrics["loss"],
                train_loss=metrics["train_loss"],
                model=metrics["model"],
                command=metrics["command"],
                seconds=round(time.perf_counter() - clock, 1),
            )
        entries.append(entry)
        _write(summary_path, exp, split, size, config, entries, runs)
        finished += 1
        progress.update(
            finished,
            note=f"{run.name}: "
            + (
                f"{entry['rows']} rows (+{entry['rehearsal_rows']} rehearsal), {entry['steps']} "
                f"steps, loss {entry['loss']:.3f} "
                f"({entry['seconds']:.0f}s)"
                if entry["status"] == "done"
                else entry["reason"]
            ),
        )
    progress.close()
    summary = _write(summary_path, exp, split, size, config, entries, runs)
    summary["seconds_now"] = round(time.perf_counter() - started, 1)
    return summary


def _write(
    path: Path,
    exp: Experiment,
    split: SnapshotSplit,
    size: int,
    config: dict[str, Any],
    entries: list[dict[str, Any]],
    runs: list[Run],
) -> dict[str, Any]:
    summary = {
        "student": exp.student,
        "config": config,
        "per_run": size,
        "split": {"train": len(split.train), "test": len(split.test)},
        "planned": [r.name for r in runs],
        "runs": entries,
        "complete": len(entries) == len(runs),
    }
    write_json(path, summary)
    return summary
