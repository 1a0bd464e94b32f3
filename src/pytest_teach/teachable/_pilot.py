"""``teach teachable pilot``: phases 0, 1 and 4 end to end into one results folder.

0. **rollouts**: the gridworld suite under the student, recorded (``OUT/experience.db``), and
   its failure snapshots mined (``snapshots.jsonl``);
1. **label**: U, leverage, CPT and quadrants (``labeled_snapshots.jsonl``, the thresholds,
   ``label_summary.json``), then the threshold plots and ``quantiles.json``;
4. **predictor**: ``training_result.json``, ``predictions.jsonl``, ``predictor.pkl``.

``pilot.json`` records the settings, each phase's seconds and the headline figures. Scaling up
is raising ``n_tasks``; with ``resume`` a run that was interrupted keeps its snapshots and the
labels already made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..envs import minigrid as mg
from ._collect import Rollouts, collect
from ._files import write_json
from ._label import LABELED, LabelSettings, label_snapshots
from ._mine import mine
from ._plots import plot_thresholds
from ._predictor import PredictorSettings, train_predictor

__all__ = ["PILOT_OUTPUTS", "PilotSettings", "run_pilot"]

#: What a pilot writes into its folder (``--force`` removes only these).
PILOT_OUTPUTS = (
    "experience.db",
    "experience.db-wal",
    "experience.db-shm",
    "experience.db.journals",
    "rollouts.log",
    "snapshots.jsonl",
    "labels.partial.jsonl",
    "label_config.json",
    "labeled_snapshots.jsonl",
    "quadrant_thresholds_auto.json",
    "label_summary.json",
    "hist_U.png",
    "hist_L.png",
    "scatter_U_L.png",
    "quantiles.json",
    "training_result.json",
    "predictions.jsonl",
    "predictor.pkl",
    "pilot.json",
)

Echo = Callable[[str], None]


@dataclass(frozen=True)
class PilotSettings:
    """One pilot run."""

    output: Path
    suite: str = "scenarios/minigrid"
    student: str = "scripted:noisy-0.5"
    levels: tuple[str, ...] = tuple(mg.DEFAULT_LEVELS)
    n_tasks: int = 2
    seed_start: int = 0
    max_steps: int = 10
    mock_env: bool = False
    per_episode: int | None = 4
    label: LabelSettings = LabelSettings()
    embedder: str = "hashing"
    resume: bool = False
    threads: int = 1


def run_pilot(s: PilotSettings, echo: Echo = lambda line: None) -> dict[str, Any]:
    """Run the pilot into ``s.output``; return what ``pilot.json`` records."""
    out = s.output
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 1)
        clock = now

    snapshots = out / "snapshots.jsonl"
    db = out / "experience.db"
    if s.resume and snapshots.exists():
        echo(f"[0 rollouts] resuming: keeping {snapshots}")
        collected: dict[str, Any] = {"resumed": True}
    else:
        rollouts = Rollouts(s.levels, s.n_tasks, s.seed_start, s.max_steps, s.mock_env)
        echo(
            f"[0 rollouts] {s.student} on {', '.join(s.levels)} x {s.n_tasks} seeds "
            f"(max {s.max_steps} steps{', mock world' if s.mock_env else ''}) -> {db}"
        )
        run = collect(s.suite, db, s.student, rollouts, out / "rollouts.log")
        echo(f"            {run.episodes} episodes, {run.failures} failed (session {run.session})")
        lap("rollouts")
        mined = mine(db, snapshots, session=run.session, per_episode=s.per_episode, echo=echo)
        echo(f"[0 mine]     {mined.snapshots} failure snapshots -> {snapshots}")
        lap("mine")
        collected = {
            "session": run.session,
            "episodes": run.episodes,
            "failed": run.failures,
            "snapshots": mined.snapshots,
        }
    labels = replace(s.label, output=out, restart=False)
    summary = label_snapshots(snapshots, labels, echo=echo)
    echo(f"[1 label]    quadrants {summary['quadrants']}, routes {summary['routes']}")
    lap("label")
    quantiles = None
    if not labels.skip_leverage:
        quantiles = plot_thresholds(out / LABELED, out)
        echo(f"[1 plots]    hist_U.png, hist_L.png, scatter_U_L.png, quantiles.json -> {out}")
    lap("plots")
    predictor = PredictorSettings(out, embedder=s.embedder, threads=s.threads)
    result = train_predictor(out / LABELED, predictor, echo=echo)
    lap("predictor")
    seconds["total"] = round(sum(seconds.values()), 1)
    report = {
        "settings": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in asdict(s).items()},
            "label": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(labels).items()},
        },
        "rollouts": collected,
        "label": summary,
        "quantiles": quantiles,
        "predictor": {k: result[k] for k in ("targets", "quadrant", "ranking", "met")},
        "seconds": seconds,
    }
    write_json(out / "pilot.json", report)
    return report
