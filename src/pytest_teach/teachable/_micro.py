"""Phase 1B: does the contextual patch test predict what training does?

For each sampled snapshot (``n_per_quadrant`` per quadrant, chosen by a seeded hash of its id):

1. fine-tune the student for ``n_steps`` optimiser steps on that snapshot's supervision: one
   row, the state answered with the expert's action, in the ``demo`` format by default (or
   ``hint``/``contrast``, or ``route``: the format of the patch the CPT found best, ``demo``
   when none won; see :mod:`._supervision`);
2. play ``n_validation_rollouts`` sampled rollouts from the snapshot with the fine-tuned
   student and as many with the student as it was, on paired random streams;
3. its *measured utility* is the success rate after minus the rate before. The student's
   probability of the expert's action at the snapshot, before and after, shows whether the
   few steps took at all.

``micro_training_results.json`` holds every snapshot's figures and the mean utility per
quadrant; ``cpt_correlation.json`` the Spearman correlation of the CPT score (``ELP_net``)
with the measured utility, its bootstrap 95% interval, and Q1's utility against Q2's. Each
snapshot is checkpointed as it finishes (``micro.partial.jsonl``), so an interrupted run
resumes without redoing work.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._progress import Progress
from ._experiment import Experiment, shaping, stable_order
from ._files import TeachableError, append_checkpoint, resume_checkpoint, write_json
from ._quadrants import QUADRANTS
from ._rollout import rollout, rollout_rng
from ._stats import bootstrap_mean, spearman
from ._supervision import FORMATS, FineTune, finetune, supervision_row

__all__ = ["CORRELATION", "MICRO_RESULTS", "MicroSettings", "micro_train"]

MICRO_RESULTS = "micro_training_results.json"
CORRELATION = "cpt_correlation.json"
CHECKPOINT = "micro.partial.jsonl"
CONFIG = "micro_config.json"
#: The correlation the seed hypothesises (the command exits 1 below it).
SPEARMAN_TARGET = 0.3

Echo = Callable[[str], None]


@dataclass(frozen=True)
class MicroSettings:
    """One micro-training run (the fields before ``results`` shape the figures)."""

    n_per_quadrant: int = 10
    n_steps: int = 2
    lr: float = 1e-3
    n_validation_rollouts: int = 3
    format: str = "demo"  # or hint, contrast, or route (the CPT's winning patch)
    seed: int = 0
    results: Path = Path(".")
    student: str | None = None
    snapshots: Path | None = None
    restart: bool = False


def _format_of(row: dict[str, Any], fmt: str) -> str:
    if fmt != "route":
        return fmt
    route = (row.get("cpt") or {}).get("route_net")
    return route if route in FORMATS else "demo"


def _success(exp: Experiment, row: dict[str, Any], student: Any, s: MicroSettings) -> float:
    blob = exp.states[row["id"]]
    wins = sum(
        rollout(blob, student, rollout_rng(s.seed, f"micro|{row['id']}", i))
        for i in range(s.n_validation_rollouts)
    )
    return wins / s.n_validation_rollouts


def _p_expert(exp: Experiment, row: dict[str, Any], student: Any) -> float | None:
    from ..envs import minigrid as mg

    probs = student.greedy(mg.World.restore(exp.states[row["id"]]), row["observation"]).probs
    return None if probs is None else float(probs.get(row["expert_action"], 0.0))


def _sample(exp: Experiment, s: MicroSettings) -> list[dict[str, Any]]:
    chosen = []
    for rows in exp.quadrant_rows(exp.rows).values():
        by_id = {r["id"]: r for r in rows}
        chosen += [by_id[i] for i in stable_order(list(by_id), s.seed)[: s.n_per_quadrant]]
    return chosen


def micro_train(s: MicroSettings, echo: Echo = lambda line: None) -> dict[str, Any]:
    """Micro-train on each sampled snapshot; write both JSON files; return the correlation.

    Raises:
        TeachableError: bad results folder, or a format that doesn't exist.
    """
    if s.format != "route" and s.format not in FORMATS:
        raise TeachableError(f"unknown --format {s.format!r}; use route, {', '.join(FORMATS)}")
    exp = Experiment.open(s.results, student=s.student, snapshots=s.snapshots)
    sampled = _sample(exp, s)
    done = resume_checkpoint(
        s.results / CHECKPOINT,
        s.results / CONFIG,
        shaping(s, exp.student),
        restart=s.restart,
        what="micro-training results",
    )
    finished = {r["id"] for r in done}
    todo = [r for r in sampled if r["id"] not in finished]
    echo(
        f"[micro] {len(sampled)} snapshots ({s.n_per_quadrant} per quadrant at most), "
        f"{len(finished)} done, {len(todo)} to go; {s.n_steps} steps at lr {s.lr:g}, "
        f"{s.n_validation_rollouts} validation rollouts each side; student {exp.student}"
    )
    work = s.results / "micro"
    ft = FineTune(steps=s.n_steps, lr=s.lr, batch_size=1, seed=s.seed)
    progress = Progress(len(sampled), unit="snapshot", label="", echo=echo, prefix="[micro] ",
                        every=5, initial=len(sampled) - len(todo))  # fmt: skip
    with progress, exp.loaded() as base:
        for number, row in enumerate(todo, 1):
            fmt = _format_of(row, s.format)
            clock = time.perf_counter()
            before = _success(exp, row, base, s)
            p_before = _p_expert(exp, row, base)
            folder = work / row["id"]
            metrics = finetune([supervision_row(row, fmt)], exp.model_dir, folder, ft)
            with exp.loaded(folder / "model") as trained:
                after = _success(exp, row, trained, s)
                p_after = _p_expert(exp, row, trained)
            shutil.rmtree(folder, ignore_errors=True)
            result = {
                "id": row["id"],
                "episode_id": row["episode_id"],
                "quadrant": row["quadrant"],
                "U": row["U"],
                "L_local": row["leverage"]["L_local"],
                "ELP_net": row["cpt"]["ELP_net"],
                "route_net": row["cpt"].get("route_net"),
                "format": fmt,
                "success_before": before,
                "success_after": after,
                "utility": after - before,
                "p_expert_before": p_before,
                "p_expert_after": p_after,
                "train_loss": metrics["loss"],
                "seconds": round(time.perf_counter() - clock, 2),
            }
            append_checkpoint(s.results / CHECKPOINT, result)
            done.append(result)
            progress.update(len(sampled) - len(todo) + number,
                            utility=f"{result['utility']:+.2f} ({row['quadrant']})")  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    order = {r["id"]: i for i, r in enumerate(sampled)}
    results = sorted((r for r in done if r["id"] in order), key=lambda r: order[r["id"]])
    return _write(s, exp, results)


def _write(s: MicroSettings, exp: Experiment, results: list[dict[str, Any]]) -> dict[str, Any]:
    utility = {q: [r["utility"] for r in results if r["quadrant"] == q] for q in QUADRANTS}
    by_quadrant = {q: bootstrap_mean(v, seed=s.seed) for q, v in utility.items()}
    write_json(
        s.results / MICRO_RESULTS,
        {
            "settings": {
                **{k: str(v) if isinstance(v, Path) else v for k, v in asdict(s).items()},
                "student": exp.student,
            },
            "n": len(results),
            "by_quadrant": by_quadrant,
            "snapshots": results,
        },
    )
    rho = spearman([r["ELP_net"] for r in results], [r["utility"] for r in results], seed=s.seed)
    q1, q2 = utility[QUADRANTS[0]], utility[QUADRANTS[1]]
    correlation = {
        "cpt_score": "ELP_net",
        "utility": "success after micro-training minus before, from the snapshot",
        **rho,
        "target": SPEARMAN_TARGET,
        "passed": rho["rho"] is not None and rho["rho"] >= SPEARMAN_TARGET,
        "q1_vs_q2": {
            "Q1": by_quadrant[QUADRANTS[0]],
            "Q2": by_quadrant[QUADRANTS[1]],
            "difference": bootstrap_mean(q1, minus=q2, seed=s.seed),
        },
    }
    write_json(s.results / CORRELATION, correlation)
    return correlation
