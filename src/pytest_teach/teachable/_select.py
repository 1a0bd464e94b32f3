"""Phase 5: the selection experiment. With a labeling budget of K snapshots, which K teach the
most?

Seed ``s`` splits the episodes with the matrix's split seed plus ``s`` (seed 0 is the matrix's
own split), and from the training side of that split each method picks K snapshots:

- ``RANDOM``: a seeded sample;
- ``ENTROPY``: the highest U (the student's uncertainty, free to compute);
- ``PREDICTOR``: the highest ELP the teachability predictor predicts. The predictor is trained
  on the training side only and each snapshot's prediction is out of fold, so no snapshot is
  ranked by a model that saw its own label;
- ``ORACLE``: the highest true ``ELP_net`` (the contextual patch test's, which costs rollouts).

Ties are broken by a seeded hash of the ids. Each choice is trained on (``demo`` rows, as
``teach train sft`` does) and evaluated on the evaluation suite's fixed set (:mod:`._eval`):
the *reliability gain* is the task success rate minus the student's, the *retention* the
share of the tasks the student solved that are still solved, and the *snapshot gain* the same
gain on that split's held-out failure snapshots. Repeating with ``seeds`` seeds (the split,
the sample, the tie order and the training seed) gives each method's mean with a Student-t 95%
interval.

``selection_summary.json`` holds the figures; each run is checkpointed
(``select.partial.jsonl``) so an interrupted experiment resumes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._eval import Bench, EvalSettings, score
from ._experiment import Experiment, SnapshotSplit, stable_order
from ._files import (
    TeachableError,
    append_checkpoint,
    read_json,
    read_rows,
    resume_checkpoint,
    write_json,
    write_rows,
)
from ._label import LABELED
from ._matrix import TRAINING_SUMMARY
from ._regressor import RegressorSettings, train_teachability_regressor
from ._stats import t_interval
from ._supervision import FineTune, finetune, supervision_row

__all__ = ["METHODS", "SELECTION_SUMMARY", "SelectSettings", "run_selection"]

METHODS: tuple[str, ...] = ("RANDOM", "ENTROPY", "PREDICTOR", "ORACLE")
SELECTION_SUMMARY = "selection_summary.json"
SELECT_DIR = "select"
CHECKPOINT = "select.partial.jsonl"
CONFIG = "select_config.json"

Echo = Callable[[str], None]


@dataclass(frozen=True)
class SelectSettings:
    """The selection experiment (the fields before ``results`` shape it)."""

    budget: int = 20
    seeds: int = 3
    finetune: FineTune = field(default_factory=lambda: FineTune(epochs=3, lr=1e-3, batch_size=8))
    eval: EvalSettings = field(default_factory=EvalSettings)
    embedder: str = "hashing"
    test_share: float = 0.3
    split_seed: int = 0
    results: Path = Path(".")
    student: str | None = None
    snapshots: Path | None = None
    restart: bool = False


def _split_of(s: SelectSettings) -> tuple[float, int]:
    """The matrix's split when it has run (so both phases hold out the same episodes)."""
    summary = s.results / TRAINING_SUMMARY
    if summary.exists():
        config = read_json(summary).get("config", {})
        return float(config.get("test_share", s.test_share)), int(config.get("seed", s.split_seed))
    return s.test_share, s.split_seed


def _predicted_elp(
    pool: list[dict[str, Any]], s: SelectSettings, seed: int, echo: Echo
) -> dict[str, float]:
    """Out-of-fold predicted ELP for each snapshot of ``pool`` (the predictor trained on the
    pool only)."""
    folder = s.results / SELECT_DIR / f"predictor-s{seed}"
    labels = folder / LABELED
    write_rows(labels, pool)
    result = train_teachability_regressor(
        labels, RegressorSettings(folder, embedder=s.embedder, seed=seed)
    )
    r2 = result["targets"].get("ELP", {}).get("r2")
    echo(
        f"[select] seed {seed}: predictor on its {len(pool)} training snapshots, out-of-fold "
        f"R2 ELP {'-' if r2 is None else f'{r2:.3f}'}"
    )
    return {r["id"]: float(r["ELP_pred"]) for _, r in read_rows(folder / "predictions.jsonl")}


def choose(
    method: str, pool: list[dict[str, Any]], k: int, seed: int, predicted: dict[str, float]
) -> list[str]:
    """The ``k`` snapshot ids ``method`` picks from ``pool`` (ties: a seeded hash order)."""
    ids = stable_order([r["id"] for r in pool], seed)
    if method == "RANDOM":
        return random.Random(seed).sample(ids, min(k, len(ids)))
    key = {
        "ENTROPY": {r["id"]: float(r["U"]) for r in pool},
        "PREDICTOR": predicted,
        "ORACLE": {r["id"]: float(r["cpt"]["ELP_net"]) for r in pool},
    }.get(method)
    if key is None:
        raise TeachableError(f"unknown selection method {method!r}; use {', '.join(METHODS)}")
    rank = {i: n for n, i in enumerate(ids)}
    return sorted(ids, key=lambda i: (-key[i], rank[i]))[:k]


def run_selection(s: SelectSettings, echo: Echo = lambda line: None) -> dict[str, Any]:
    """Run every method at every seed (resuming); write ``selection_summary.json``; return it.

    Raises:
        TeachableError: a budget larger than the training side, or a bad results folder.
    """
    exp = Experiment.open(s.results, student=s.student, snapshots=s.snapshots)
    test_share, split_seed = _split_of(s)
    splits = [exp.split(test_share, split_seed + seed) for seed in range(s.seeds)]
    smallest = min(len(split.train) for split in splits)
    if s.budget > smallest:
        raise TeachableError(
            f"--budget {s.budget} is more than the {smallest} snapshots on the training side "
            "of a split; lower it or label more snapshots"
        )
    config = {
        "budget": s.budget,
        "seeds": s.seeds,
        "finetune": asdict(s.finetune),
        "bench": [s.eval.eval_tasks, s.eval.eval_seed_start, s.eval.max_steps],
        "embedder": s.embedder,
        "student": exp.student,
        "split": [test_share, split_seed],
    }
    done = resume_checkpoint(
        s.results / CHECKPOINT, s.results / CONFIG, config, restart=s.restart, what="selection runs"
    )
    records = {r["model"]: r for r in done}
    benches = [Bench.of(exp, split.test, s.eval) for split in splits]
    echo(
        f"[select] budget {s.budget}; {len(METHODS)} methods x {s.seeds} seeds (seed s holds "
        f"out split {split_seed}+s: {', '.join(str(len(x.train)) for x in splits)} training "
        f"snapshots); {len(benches[0].tasks)} tasks; {len(records)} runs already done"
    )
    started = time.perf_counter()
    predicted: dict[int, dict[str, float]] = {}
    for seed, (split, bench) in enumerate(zip(splits, benches, strict=True)):
        if f"base-s{seed}" not in records:
            with exp.loaded() as student:
                _keep(s, records, bench.play(f"base-s{seed}", student))
        by_id = {r["id"]: r for r in split.train}
        predicted[seed] = _predicted_elp(split.train, s, seed, echo)
        for method in METHODS:
            name = f"{method}-s{seed}"
            if name in records:
                continue
            clock = time.perf_counter()
            chosen = choose(method, split.train, s.budget, seed, predicted[seed])
            rows = [supervision_row(by_id[i], "demo") for i in chosen]
            ft = FineTune(**{**asdict(s.finetune), "seed": seed})
            metrics = finetune(rows, exp.model_dir, s.results / SELECT_DIR / name, ft)
            with exp.loaded(metrics["model"]) as student:
                record = bench.play(name, student)
            record.update(method=method, seed=seed, chosen=chosen, loss=metrics["loss"])
            _keep(s, records, record)
            echo(f"[select] {name}: trained and evaluated ({time.perf_counter() - clock:.0f}s)")
    summary = _summarise(s, records, splits)
    summary["seconds_now"] = round(time.perf_counter() - started, 1)
    write_json(s.results / SELECTION_SUMMARY, summary)
    return summary


def _keep(s: SelectSettings, records: dict[str, dict[str, Any]], record: dict[str, Any]) -> None:
    append_checkpoint(s.results / CHECKPOINT, record)
    records[record["model"]] = record


def _summarise(
    s: SelectSettings, records: dict[str, dict[str, Any]], splits: list[SnapshotSplit]
) -> dict[str, Any]:
    entries: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    bases = []
    for seed, split in enumerate(splits):
        by_id = {r["id"]: r for r in split.train}
        names = [f"{m}-s{seed}" for m in METHODS]
        runs = [{"run": n, "kind": "selection", "quadrant": None, "format": "demo"} for n in names]
        seeded = {"base": records[f"base-s{seed}"], **{n: records[n] for n in names}}
        scored = {m["run"]: m for m in score(seeded, runs, split.test)["models"]}
        bases.append(scored["base"])
        for method, name in zip(METHODS, names, strict=True):
            m, record = scored[name], records[name]
            entries[method].append(
                {
                    "seed": seed,
                    "chosen": record["chosen"],
                    "reliability_gain": m["gain"],
                    "retention": m["retention"]["retention"],
                    "snapshot_gain": m["snapshot_gain"],
                    "mean_ELP_chosen": _mean(by_id[i]["cpt"]["ELP_net"] for i in record["chosen"]),
                    "mean_U_chosen": _mean(by_id[i]["U"] for i in record["chosen"]),
                    "loss": record["loss"],
                }
            )
    methods = {
        method: {
            "runs": runs,
            **{
                key: t_interval([e[key] for e in runs if e[key] is not None])
                for key in ("reliability_gain", "retention", "snapshot_gain", "mean_ELP_chosen")
            },
        }
        for method, runs in entries.items()
    }
    means = {m: methods[m]["reliability_gain"]["mean"] for m in METHODS}
    order = sorted(METHODS, key=lambda m: -(means[m] if means[m] is not None else float("-inf")))
    return {
        "budget": s.budget,
        "seeds": s.seeds,
        "pools": [len(split.train) for split in splits],
        "format": "demo",
        "base": {
            "success_rate": bases[0]["success_rate"],
            "tasks": bases[0]["tasks"],
            "snapshot_success": [b["snapshot_success"] for b in bases],
            "held_out": [b["held_out"] for b in bases],
        },
        "methods": methods,
        "order_by_reliability_gain": order,
        "predictor_gt_entropy_gt_random": None
        if None in means.values()
        else means["PREDICTOR"] > means["ENTROPY"] > means["RANDOM"],
        "predicted_elp": "out of fold, by a predictor trained on that seed's training side only",
    }


def _mean(values: Any) -> float | None:
    items = [float(v) for v in values]
    return sum(items) / len(items) if items else None
