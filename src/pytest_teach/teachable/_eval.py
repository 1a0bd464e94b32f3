"""Phase 3: the evaluation suite.

Every model of the training matrix, and the student as it was (``base``), plays the same
fixed set, greedily (its most likely action at every step, so evaluation is deterministic):

- the *tasks*: the snapshots' levels at ``eval_tasks`` fresh seeds each (from
  :data:`~._experiment.EVAL_SEED_START`, apart from the seeds mined and the demonstrations');
- the *held-out snapshots*: the failure states on the held-out side of the matrix's split,
  played on from where the student failed.

Five CSVs come out of it, in the results folder:

==============================  ==============================================================
``overall_task_results.csv``    per model: task success rate, its gain over ``base`` with a
                                paired bootstrap 95% interval, held-out snapshot success
``per_quadrant_results.csv``    per model and held-out quadrant: success from those snapshots
``transfer_matrix.csv``         per format (and their mean): training quadrant x held-out
                                quadrant, the gain over ``base``
``retention_results.csv``       on the tasks ``base`` solved: how many each model still solves
``stuckness_results.csv``       per model: episodes ended by the step limit, loops (a state seen
                                three times), unparseable replies
==============================  ==============================================================

``eval_summary.json`` holds the same figures for the figures and tables. Each model's outcomes
are checkpointed (``eval.partial.jsonl``) so an interrupted evaluation resumes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._progress import Progress
from ._experiment import EVAL_SEED_START, Experiment, shaping
from ._files import (
    TeachableError,
    append_checkpoint,
    read_json,
    resume_checkpoint,
    write_csv,
    write_json,
)
from ._matrix import TRAINING_SUMMARY
from ._quadrants import QUADRANTS
from ._rollout import play
from ._stats import bootstrap_mean
from ._supervision import FORMATS

__all__ = ["EVAL_FILES", "Bench", "EvalSettings", "evaluate", "score"]

EVAL_FILES = (
    "overall_task_results.csv",
    "per_quadrant_results.csv",
    "transfer_matrix.csv",
    "retention_results.csv",
    "stuckness_results.csv",
)
EVAL_SUMMARY = "eval_summary.json"
CHECKPOINT = "eval.partial.jsonl"
CONFIG = "eval_config.json"

Echo = Callable[[str], None]


@dataclass(frozen=True)
class EvalSettings:
    """The evaluation set (the fields before ``results`` shape it)."""

    eval_tasks: int = 25
    eval_seed_start: int = EVAL_SEED_START
    max_steps: int | None = None
    results: Path = Path(".")
    student: str | None = None
    snapshots: Path | None = None
    restart: bool = False


@dataclass
class Bench:
    """The fixed evaluation set: tasks and held-out snapshots."""

    exp: Experiment
    tasks: list[tuple[str, int, int]]  # (level, seed, max_steps)
    mock: bool
    held_out: list[dict[str, Any]]

    @classmethod
    def of(cls, exp: Experiment, held_out: list[dict[str, Any]], s: EvalSettings) -> Bench:
        """The bench for ``exp``: its levels at ``s.eval_tasks`` seeds, and ``held_out``."""
        levels, max_steps, mock = exp.world
        steps = s.max_steps or max_steps
        tasks = [
            (level, seed, steps)
            for level in levels
            for seed in range(s.eval_seed_start, s.eval_seed_start + s.eval_tasks)
        ]
        return cls(exp, tasks, mock, held_out)

    def play(self, name: str, student: Any) -> dict[str, Any]:
        """``student``'s outcomes on every task and held-out snapshot."""
        from ..envs import minigrid as mg

        tasks = {}
        for level, seed, steps in self.tasks:
            outcome = play(mg.make_world(level, seed, max_steps=steps, mock=self.mock), student)
            tasks[f"{level}|{seed}"] = asdict(outcome)
        snapshots = {
            r["id"]: play(mg.World.restore(self.exp.states[r["id"]]), student).success
            for r in self.held_out
        }
        return {"model": name, "tasks": tasks, "snapshots": snapshots}


def _models(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in summary["runs"] if r.get("status") == "done"]


def evaluate(s: EvalSettings, echo: Echo = lambda line: None) -> dict[str, Any]:
    """Evaluate ``base`` and every trained run of the matrix; write the CSVs and
    ``eval_summary.json``; return the summary.

    Raises:
        TeachableError: no training summary, or a bad results folder.
    """
    path = s.results / TRAINING_SUMMARY
    if not path.exists():
        raise TeachableError(
            f"{s.results}: no {TRAINING_SUMMARY}; run teach teachable train-matrix first"
        )
    summary = read_json(path)
    exp = Experiment.open(
        s.results, student=s.student or summary.get("student"), snapshots=s.snapshots
    )
    config = summary["config"]
    split = exp.split(config["test_share"], config["seed"])
    bench = Bench.of(exp, split.test, s)
    runs = _models(summary)
    fingerprint = {
        **shaping(s, exp.student),
        "runs": {r["run"]: [r["model"], r["loss"]] for r in runs},
    }
    done = resume_checkpoint(
        s.results / CHECKPOINT,
        s.results / CONFIG,
        fingerprint,
        restart=s.restart,
        what="evaluations",
    )
    have = {r["model"] for r in done}
    todo = [("base", None)] + [(r["run"], r["model"]) for r in runs]
    echo(
        f"[eval] {len(todo)} models x ({len(bench.tasks)} tasks + {len(bench.held_out)} held-out "
        f"snapshots), greedy; {len(have)} already evaluated"
    )
    started = time.perf_counter()
    finished = sum(name in have for name, _ in todo)
    progress = Progress(len(todo), unit="model", label="", echo=echo, prefix="[eval] ",
                        initial=finished)  # fmt: skip
    for name, model in todo:
        if name in have:
            continue
        clock = time.perf_counter()
        with exp.loaded(model) as student:
            record = bench.play(name, student)
        append_checkpoint(s.results / CHECKPOINT, record)
        done.append(record)
        rate = sum(t["success"] for t in record["tasks"].values()) / max(1, len(record["tasks"]))
        finished += 1
        progress.update(finished, note=f"{name}: tasks {rate:.1%} ({time.perf_counter() - clock:.0f}s)")  # fmt: skip
    progress.close()
    records = {r["model"]: r for r in done}
    result = score(records, runs, split.test)
    result["seconds_now"] = round(time.perf_counter() - started, 1)
    result["settings"] = {**fingerprint, "tasks": len(bench.tasks), "held_out": len(split.test)}
    _write_tables(s.results, result)
    write_json(s.results / EVAL_SUMMARY, result)
    return result


def _rate(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def score(
    records: dict[str, dict[str, Any]], runs: list[dict[str, Any]], held_out: list[dict[str, Any]]
) -> dict[str, Any]:
    """The evaluation's figures from each model's outcomes (``records`` by model name; it
    must hold ``base``)."""
    base = records["base"]
    order = sorted(base["tasks"])
    base_tasks = [bool(base["tasks"][k]["success"]) for k in order]
    quadrant_of = {r["id"]: r["quadrant"] for r in held_out}
    describe = {"base": {"run": "base", "kind": "base", "quadrant": None, "format": None}}
    for r in runs:
        describe[r["run"]] = {k: r[k] for k in ("run", "kind", "quadrant", "format")}
    models = []
    for name in ["base", *(r["run"] for r in runs)]:
        record = records[name]
        tasks = [bool(record["tasks"][k]["success"]) for k in order]
        diffs = [float(a) - float(b) for a, b in zip(tasks, base_tasks, strict=True)]
        gain = bootstrap_mean(diffs)
        solved = [i for i, ok in enumerate(base_tasks) if ok]
        kept = sum(tasks[i] for i in solved)
        outcomes = [record["tasks"][k] for k in order]
        per_quadrant = {}
        for q in QUADRANTS:
            ids = [i for i, qq in quadrant_of.items() if qq == q]
            per_quadrant[q] = {
                "snapshots": len(ids),
                "success": _rate([bool(record["snapshots"][i]) for i in ids]),
                "base_success": _rate([bool(base["snapshots"][i]) for i in ids]),
            }
        snapshot_ids = sorted(quadrant_of)
        snapshot_success = _rate([bool(record["snapshots"][i]) for i in snapshot_ids])
        snapshot_base = _rate([bool(base["snapshots"][i]) for i in snapshot_ids])
        models.append(
            {
                **describe[name],
                "tasks": len(tasks),
                "successes": sum(tasks),
                "success_rate": _rate(tasks),
                "gain": gain["mean"],
                "gain_ci95": gain["ci95"],
                "held_out": len(snapshot_ids),
                "snapshot_success": snapshot_success,
                "snapshot_base": snapshot_base,
                "snapshot_gain": None
                if snapshot_success is None
                else snapshot_success - (snapshot_base or 0.0),
                "per_quadrant": per_quadrant,
                "retention": {
                    "base_solved": len(solved),
                    "still_solved": kept,
                    "retention": kept / len(solved) if solved else None,
                },
                "stuckness": {
                    "episodes": len(outcomes),
                    "timeouts": sum(o["timeout"] for o in outcomes),
                    "loops": sum(o["loop"] for o in outcomes),
                    "invalid": sum(o["invalid"] for o in outcomes),
                    "mean_steps": sum(o["steps"] for o in outcomes) / max(1, len(outcomes)),
                },
            }
        )
    return {
        "models": models,
        "transfer": _transfer(models),
        "quadrant_gain": _quadrant_gain(records, runs, order, base_tasks),
    }


def _quadrant_gain(
    records: dict[str, dict[str, Any]],
    runs: list[dict[str, Any]],
    order: list[str],
    base_tasks: list[bool],
) -> dict[str, Any]:
    """Each training quadrant's task gain over ``base``, averaged over its format runs, with a
    paired bootstrap interval over the tasks."""
    out = {}
    for q in QUADRANTS:
        names = [r["run"] for r in runs if r.get("quadrant") == q]
        if not names:
            out[q] = bootstrap_mean([])
            continue
        diffs = [
            sum(float(records[n]["tasks"][k]["success"]) for n in names) / len(names) - float(b)
            for k, b in zip(order, base_tasks, strict=True)
        ]
        out[q] = {**bootstrap_mean(diffs), "runs": names}
    return out


def _gain(q: dict[str, Any]) -> float | None:
    if q["success"] is None or q["base_success"] is None:
        return None
    return q["success"] - q["base_success"]


def _transfer(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of training quadrant (or baseline) x held-out quadrant gains: one per run under
    its format, then each quadrant's mean over the formats."""

    def row(fmt: str, train: str, same: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"format": fmt, "train": train}
        for q in QUADRANTS:
            gains = [g for g in (_gain(m["per_quadrant"][q]) for m in same) if g is not None]
            out[q] = sum(gains) / len(gains) if gains else None
        return out

    trained = [m for m in models if m["kind"] != "base"]
    rows = [
        row(fmt, m["quadrant"] or m["run"], [m])
        for fmt in FORMATS
        for m in trained
        if m["format"] == fmt
    ]
    for q in QUADRANTS:
        same = [m for m in trained if m["quadrant"] == q]
        if same:
            rows.append(row("mean", q, same))
    return rows


def _stuck(m: dict[str, Any]) -> dict[str, Any]:
    st = m["stuckness"]
    n = max(1, st["episodes"])
    return {
        **m,
        **st,
        "timeout_rate": st["timeouts"] / n,
        "loop_rate": st["loops"] / n,
        "invalid_rate": st["invalid"] / n,
    }


def _write_tables(out: Path, result: dict[str, Any]) -> None:
    models = result["models"]
    ident = ["run", "kind", "quadrant", "format"]
    write_csv(
        out / "overall_task_results.csv",
        [
            *ident,
            "tasks",
            "successes",
            "success_rate",
            "gain",
            "gain_ci_low",
            "gain_ci_high",
            "held_out",
            "snapshot_success",
            "snapshot_gain",
        ],
        (
            {
                **m,
                "gain_ci_low": (m["gain_ci95"] or [None, None])[0],
                "gain_ci_high": (m["gain_ci95"] or [None, None])[1],
            }
            for m in models
        ),
    )
    write_csv(
        out / "per_quadrant_results.csv",
        [*ident, "eval_quadrant", "snapshots", "success_rate", "base_success_rate", "gain"],
        (
            {
                **m,
                "eval_quadrant": q,
                "snapshots": v["snapshots"],
                "success_rate": v["success"],
                "base_success_rate": v["base_success"],
                "gain": _gain(v),
            }
            for m in models
            for q, v in m["per_quadrant"].items()
        ),
    )
    write_csv(out / "transfer_matrix.csv", ["format", "train", *QUADRANTS], result["transfer"])
    write_csv(
        out / "retention_results.csv",
        [*ident, "base_solved", "still_solved", "retention", "retention_drop"],
        (
            {
                **m,
                **m["retention"],
                "retention_drop": None
                if m["retention"]["retention"] is None
                else 1.0 - m["retention"]["retention"],
            }
            for m in models
        ),
    )
    write_csv(
        out / "stuckness_results.csv",
        [
            *ident,
            "episodes",
            "timeouts",
            "timeout_rate",
            "loops",
            "loop_rate",
            "invalid",
            "invalid_rate",
            "mean_steps",
        ],
        (_stuck(m) for m in models),
    )
