"""``teach teachable pilot``: phases 0, 1 and 4 end to end into one results folder.

0. **rollouts**: the gridworld suite under the student, recorded (``OUT/experience.db``), and
   its failure snapshots mined (``snapshots.jsonl``);
1. **label**: U, leverage, CPT and quadrants (``labeled_snapshots.jsonl``, the thresholds,
   ``label_summary.json``), then the threshold plots and ``quantiles.json``;
4. **predictor**: ``training_result.json``, ``predictions.jsonl``, ``predictor.pkl``.

With ``full`` the experiments follow in the same folder, and the pilot needs an LM student
(one is built first, ``student/``, unless an ``hf:`` student is given):

1B. **micro-train**: ``micro_training_results.json``, ``cpt_correlation.json``;
2. **train-matrix**: ``training_summary.json`` (14 runs under ``matrix/``);
3. **eval**: the five CSVs and ``eval_summary.json``;
5. **select**: ``selection_summary.json``;
then ``figures/`` and ``tables/``.

``pilot.json`` records the settings, each phase's seconds and the headline figures. Scaling up
is raising ``n_tasks``; with ``resume`` a run that was interrupted keeps its snapshots and the
labels already made (and the experiments resume where they stopped).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..envs import minigrid as mg
from ._artifacts import hypotheses, load_results, write_figures, write_tables
from ._collect import Rollouts, collect
from ._eval import EVAL_FILES, EvalSettings, evaluate
from ._files import TeachableError, write_json
from ._label import LABELED, LabelSettings, label_snapshots
from ._matrix import MatrixSettings, train_matrix
from ._micro import MicroSettings, micro_train
from ._mine import mine
from ._plots import plot_thresholds
from ._regressor import RegressorSettings, train_teachability_regressor
from ._select import SelectSettings, run_selection
from ._student import StudentSettings, build_student
from ._supervision import FineTune

__all__ = [
    "FULL_OUTPUTS",
    "PILOT_OUTPUTS",
    "ExperimentSettings",
    "PilotSettings",
    "prepare_pilot_output",
    "run_pilot",
]

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
#: What ``--full`` adds (files and folders).
FULL_OUTPUTS = (
    "student",
    "micro_training_results.json",
    "cpt_correlation.json",
    "micro.partial.jsonl",
    "micro_config.json",
    "micro",
    "split.json",
    "training_summary.json",
    "matrix",
    *EVAL_FILES,
    "eval_summary.json",
    "eval.partial.jsonl",
    "eval_config.json",
    "selection_summary.json",
    "select.partial.jsonl",
    "select_config.json",
    "select",
    "figures",
    "tables",
)

Echo = Callable[[str], None]


@dataclass(frozen=True)
class ExperimentSettings:
    """The sizes of ``--full``'s phases (tiny by default: a pilot)."""

    n_per_quadrant: int = 2
    micro_steps: int = 2
    micro_lr: float = 1e-3
    n_validation_rollouts: int = 3
    finetune: FineTune = FineTune(epochs=3, lr=1e-3, batch_size=8)
    eval_tasks: int = 5
    budget: int = 4
    seeds: int = 2
    student_episodes: int = 20
    student_steps: int = 200


@dataclass(frozen=True)
class PilotSettings:
    """One pilot run (``student`` ``None``: ``scripted:noisy-0.5``, or with ``full`` a tiny LM
    student built first)."""

    output: Path
    suite: str = "scenarios/minigrid"
    student: str | None = None
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
    full: bool = False
    experiment: ExperimentSettings = ExperimentSettings()


def _student(s: PilotSettings, echo: Echo) -> str:
    """The student the pilot rolls out (building the tiny one for ``full`` when needed)."""
    if s.student is not None:
        if s.full and not s.student.startswith("hf:"):
            raise TeachableError(
                f"--full fine-tunes the student, which needs an hf: model, not {s.student}; "
                "leave --student out to build a tiny one"
            )
        return s.student
    if not s.full:
        return "scripted:noisy-0.5"
    folder = s.output / "student"
    manifest = folder / "student.json"
    if s.resume and manifest.exists():
        echo(f"[student]    resuming: keeping {folder}")
        return f"hf:{(folder / 'model').resolve()}"
    built = build_student(
        StudentSettings(
            output=folder,
            db=folder / "demos.db",
            suite=s.suite,
            levels=s.levels,
            episodes=s.experiment.student_episodes,
            max_steps=s.max_steps,
            mock=s.mock_env,
            steps=s.experiment.student_steps,
        ),
        echo=lambda line: echo(f"[student]    {line.strip()}"),
    )
    return str(built["spec"])


def _experiments(s: PilotSettings, student: str, lap: Callable[[str], None], echo: Echo) -> dict:
    """Phases 1B, 2, 3 and 5, then the figures and tables, into ``s.output``."""
    x, out = s.experiment, s.output
    common: dict[str, Any] = {"results": out, "student": student}
    correlation = micro_train(
        MicroSettings(
            n_per_quadrant=x.n_per_quadrant,
            n_steps=x.micro_steps,
            lr=x.micro_lr,
            n_validation_rollouts=x.n_validation_rollouts,
            **common,
        ),
        echo=echo,
    )
    lap("micro_train")
    train_matrix(MatrixSettings(finetune=x.finetune, **common), echo=echo)
    lap("train_matrix")
    bench = EvalSettings(eval_tasks=x.eval_tasks, **common)
    evaluate(bench, echo=echo)
    lap("eval")
    selection = run_selection(
        SelectSettings(budget=x.budget, seeds=x.seeds, finetune=x.finetune, eval=bench, **common),
        echo=echo,
    )
    lap("select")
    figures = write_figures(out)
    tables = write_tables(out)
    echo(f"[artifacts]  {len(figures)} figures -> {out / 'figures'}, {len(tables)} tables -> "
         f"{out / 'tables'}")  # fmt: skip
    lap("artifacts")
    return {
        "spearman": correlation["rho"],
        "spearman_passed": correlation["passed"],
        "selection_order": selection["order_by_reliability_gain"],
        "hypotheses": {row[0]: row[1] for row in hypotheses(load_results(out))},
    }


def prepare_pilot_output(output: Path, *, force: bool = False, resume: bool = False) -> None:
    """Ready ``output`` for a pilot: a missing or empty folder is fine, and so is a non-empty
    one with ``resume`` (its snapshots and labels are kept); with ``force`` the files a pilot
    writes there (:data:`PILOT_OUTPUTS`, :data:`FULL_OUTPUTS`) are removed and nothing else.

    Raises:
        TeachableError: ``output`` is a file, or a non-empty folder without ``resume`` or
            ``force``.
    """
    if output.exists() and not output.is_dir():
        raise TeachableError(f"--output {output} exists and is not a directory")
    if not output.is_dir() or not any(output.iterdir()) or resume:
        return
    if not force:
        raise TeachableError(
            f"--output {output} is not empty; pass --resume to go on, --force to start over"
        )
    for name in (*PILOT_OUTPUTS, *FULL_OUTPUTS):
        path = output / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


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

    student = _student(s, echo)
    if s.full:
        lap("student")
    snapshots = out / "snapshots.jsonl"
    db = out / "experience.db"
    if s.resume and snapshots.exists():
        echo(f"[0 rollouts] resuming: keeping {snapshots}")
        collected: dict[str, Any] = {"resumed": True}
    else:
        rollouts = Rollouts(s.levels, s.n_tasks, s.seed_start, s.max_steps, s.mock_env)
        echo(
            f"[0 rollouts] {student} on {', '.join(s.levels)} x {s.n_tasks} seeds "
            f"(max {s.max_steps} steps{', mock world' if s.mock_env else ''}) -> {db}"
        )
        run = collect(s.suite, db, student, rollouts, out / "rollouts.log", echo=echo,
                      prefix="[0 rollouts] ")  # fmt: skip
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
    if s.full and (labels.skip_leverage or labels.skip_cpt):
        raise TeachableError("--full needs leverage and the CPT: drop --skip-leverage/--skip-cpt")
    summary = label_snapshots(snapshots, labels, echo=echo)
    echo(f"[1 label]    quadrants {summary['quadrants']}, routes {summary['routes']}")
    lap("label")
    quantiles = None
    if not labels.skip_leverage:
        quantiles = plot_thresholds(out / LABELED, out)
        echo(f"[1 plots]    hist_U.png, hist_L.png, scatter_U_L.png, quantiles.json -> {out}")
    lap("plots")
    predictor = RegressorSettings(out, embedder=s.embedder, threads=s.threads)
    result = train_teachability_regressor(out / LABELED, predictor, echo=echo)
    lap("predictor")
    experiments = _experiments(s, student, lap, echo) if s.full else None
    seconds["total"] = round(sum(seconds.values()), 1)
    report = {
        "settings": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in asdict(s).items()},
            "label": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(labels).items()},
        },
        "rollouts": collected,
        "label": summary,
        "quantiles": quantiles,
        "student": student,
        "predictor": {k: result[k] for k in ("targets", "quadrant", "ranking", "met")},
        "experiments": experiments,
        "seconds": seconds,
    }
    write_json(out / "pilot.json", report)
    return report
