"""The four phases of ``teach loop``: split, collect, train, A/B.

Each pytest phase runs the suite in a fresh ``python -m pytest`` process (the same run a user
would type), with its output kept in a log file beside the model. Pass rates are read back from
the store, so what is printed is what was recorded. ``torch`` and friends load only in the
train phase.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .._progress import Progress, no_progress_bars
from .._util import PhaseTimer, PytestRun, run_pytest
from ._split import LoopError, SuiteSplit, split_tests, write_ids

__all__ = [
    "AGENT",
    "LOOP_OUTPUTS",
    "ORACLE",
    "LoopResult",
    "LoopSettings",
    "PassRate",
    "TinyShape",
    "clear_outputs",
    "collect_nodeids",
    "new_session",
    "recorded_sessions",
    "run_loop",
    "run_suite",
]

#: The model that collects the training data.
ORACLE = "scripted:oracle"
#: The agent the trained model is registered for.
AGENT = "tool_selection"
#: ``--base`` value that builds a fresh tiny model.
TINY = "tiny"
#: What a loop run writes into its output folder (all that :func:`clear_outputs` removes).
LOOP_OUTPUTS = (
    "base",
    "model",
    "train.jsonl",
    "train-ids.txt",
    "held-out-ids.txt",
    "report.html",
    "collect-only.log",
    "collect.log",
    "ab.log",
)

_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

Echo = Callable[[str], None]


@dataclass(frozen=True)
class TinyShape:
    """The fresh tiny model ``--base tiny`` builds (see
    :func:`~pytest_teach.train.tiny.build_tiny_model`).

    The tool-selection prompt is a ~450-token tool registry followed by a short query (at most
    ~32 tokens). With full attention, a random model this small needs well over 1,000 steps
    to learn to find the query behind the registry (2 layers: 40% held-out after 1,000 steps).
    One layer of local attention over the last ``sliding_window`` tokens sees the query, the
    chat markers and the plan so far, never the registry: a query-to-plan mapping it learns
    in a few hundred steps (about 75% held-out after 400). The tokenizer learns its merges
    from the training rows only; a vocabulary of 1,024 still holds every registry word (the
    prompt stays ~450 tokens) but splits rarer query words into pieces, so unseen names in
    held-out queries are made of pieces training has seen (2,048 scored several points lower).
    """

    vocab_size: int = 1024
    hidden_size: int = 128
    num_layers: int = 1
    num_heads: int = 4
    sliding_window: int | None = 48

    def describe(self) -> str:
        """One line for the progress output."""
        window = f"window {self.sliding_window}" if self.sliding_window else "full attention"
        return (
            f"vocab {self.vocab_size}, hidden {self.hidden_size}, {self.num_layers} "
            f"layer{'s' if self.num_layers != 1 else ''}, "
            f"{self.num_heads} heads, {window}"
        )


@dataclass(frozen=True)
class LoopSettings:
    """Everything one loop run needs."""

    suite: str
    output: Path
    #: the store: a SQLite file, or a ``postgresql://`` URL
    db: Path | str
    report: Path
    base: str = TINY
    held_out: float = 0.25
    split_seed: int = 0
    epochs: int = 16
    learning_rate: float = 1e-3
    batch_size: int = 8
    max_length: int = 2048
    lora: bool = False
    seed: int = 0
    tiny: TinyShape = field(default_factory=TinyShape)


@dataclass(frozen=True)
class PassRate:
    """How many of an arm's held-out episodes passed (errors count as not passed)."""

    passed: int
    total: int
    errors: int = 0

    @property
    def rate(self) -> float:
        """``passed / total`` (0.0 for no episodes)."""
        return self.passed / self.total if self.total else 0.0

    def __str__(self) -> str:
        text = f"{self.passed}/{self.total} ({100 * self.rate:.1f}%)"
        return text + (f", {self.errors} errors" if self.errors else "")


@dataclass
class LoopResult:
    """What a loop run did, with the figures read back from the store."""

    split: SuiteSplit
    output: Path
    collect_session: str
    rows: int
    base_model: str
    model_dir: Path
    train_metrics: dict[str, Any]
    registered: Any
    ab_session: str
    before: PassRate
    after: PassRate
    verdict: str
    report: Path
    seconds: dict[str, float] = field(default_factory=dict)


# -- pytest processes --------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, **_OFFLINE_ENV}


#: The count at the end of a test's line under ``-v -o console_output_style=count``.
_COUNT = re.compile(r"\[\s*(\d+)/(\d+)\]\s*$")


def run_suite(args: Sequence[str], log: Path, progress: Progress | None = None) -> PytestRun:
    """Run ``python -m pytest ARGS`` offline from the current directory; its output goes to
    ``log``, secrets masked (the password of a ``--teach-db`` URL among them).

    With ``progress``, pytest runs verbose with the ``count`` output style (``-q`` dropped),
    its output is read as it comes, and each test's ``[done/total]`` advances ``progress``.
    """
    on_line = None
    if progress is not None:
        args = [a for a in args if a != "-q"] + ["-v", "-o", "console_output_style=count"]

        def on_line(line: str) -> None:
            found = _COUNT.search(line)
            if found:
                progress.update(int(found[1]), total=int(found[2]))

    from ..redaction import redact

    env = {**_env(), "PYTHONUNBUFFERED": "1"}
    return run_pytest(args, env=env, log=log, on_line=on_line, mask=redact)


def collect_nodeids(suite: str, log: Path) -> list[str]:
    """The suite's test node ids (``pytest --collect-only -q``).

    Raises:
        LoopError: pytest could not collect the suite (the log has the details).
    """
    run = run_suite([suite, "--collect-only", "-q", "-p", "no:cacheprovider"], log)
    if run.returncode != 0:
        raise LoopError(
            f"pytest could not collect {suite} (exit {run.returncode}): {run.last_line()}; "
            f"see {log}"
        )
    nodeids = []
    for line in run.output.splitlines():
        if not line.strip():
            break  # the node ids come first, then a blank line and the summary
        if "::" in line:
            nodeids.append(line.strip())
    return nodeids


def new_session(db: Path | str, before: set[str], marker: str) -> str:
    """The session a pytest run just added to the store: not in ``before``, its argv naming
    ``marker``.

    Raises:
        LoopError: the run recorded none.
    """
    from ..store import Store

    with Store.open(db, create=False) as store:
        found = [
            s["id"]
            for s in store.sessions()
            if s["id"] not in before and any(marker in str(a) for a in s["argv"] or [])
        ]
        where = store.location
    if not found:
        raise LoopError(f"the pytest run recorded no session in {where}; see the log")
    return found[-1]


def recorded_sessions(db: Path | str) -> set[str]:
    """The ids of the sessions in the store at ``db`` (none when its file doesn't exist yet)."""
    from ..store import Store, is_url

    if not is_url(db) and not Path(db).exists():
        return set()
    with Store.open(db, create=False) as store:
        return {s["id"] for s in store.sessions()}


def _section(output: str, title: str) -> list[str]:
    """The lines of a pytest terminal section (``---- title ----``), without the separator."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("-", "=")) and f" {title} " in line:
            body = []
            for text in lines[i + 1 :]:
                if text.startswith(("---", "===")):
                    break
                body.append(text)
            return body
    return []


# -- phases ------------------------------------------------------------------------------------


def _phase_split(s: LoopSettings, echo: Echo) -> SuiteSplit:
    nodeids = collect_nodeids(s.suite, s.output / "collect-only.log")
    split = split_tests(nodeids, held_out=s.held_out, seed=s.split_seed, suite=s.suite)
    write_ids(s.output / "train-ids.txt", split.train)
    write_ids(s.output / "held-out-ids.txt", split.held_out)
    total = len(split.train) + len(split.held_out)
    echo(
        f"[1/4 split]   {total} tests: {len(split.train)} train, {len(split.held_out)} held out "
        f"({100 * len(split.held_out) / total:.0f}%, split seed {s.split_seed}) -> "
        f"{s.output / 'train-ids.txt'}, {s.output / 'held-out-ids.txt'}"
    )
    return split


def _recorded_run(
    s: LoopSettings,
    ids_file: str,
    options: Sequence[str],
    log: Path,
    what: str,
    progress: Progress | None = None,
) -> tuple[str, PytestRun]:
    """Run the tests listed in ``ids_file`` with ``options``, recording into the store; return
    the session the run recorded and the run.

    Raises:
        LoopError: pytest failed for another reason than failing tests (``what`` failed).
    """
    before = recorded_sessions(s.db)
    args = [
        *(s.suite, "-p", "pytest_teach.loop.select", "--teach-ids", ids_file),
        *options,
        *("--collect-training-data", "--teach-db", str(s.db)),
        *("-q", "--tb=line", "-p", "no:cacheprovider"),
    ]
    run = run_suite(args, log, progress)
    if run.returncode not in (0, 1):
        raise LoopError(
            f"{what} failed (pytest exit {run.returncode}): {run.last_line()}; see {log}"
        )
    return new_session(s.db, before, ids_file), run


def _phase_collect(s: LoopSettings, split: SuiteSplit, where: str, echo: Echo) -> str:
    ids_file = str((s.output / "train-ids.txt").resolve())
    log = s.output / "collect.log"
    total = len(split.train)
    with Progress(total, unit="test", echo=echo, prefix="[2/4 collect] ", every=None) as progress:
        session, _ = _recorded_run(
            s, ids_file, ("--model", ORACLE), log, f"collecting with {ORACLE}", progress
        )
    rate = _rates(s.db, session)[None]
    echo(
        f"[2/4 collect] {ORACLE} on the {len(split.train)} training tests: {rate} passed -> "
        f"session {session} in {where}"
    )
    return session


def _rates(db: Path | str, session: str) -> dict[str | None, PassRate]:
    """Pass rates per arm (``None`` without ``--ab``) of a session's episodes, from the store."""
    from ..store import Store

    counts: dict[str | None, list[int]] = {}
    with Store.open(db, create=False) as store:
        for episode in store.episodes(session=session):
            c = counts.setdefault(episode.arm, [0, 0, 0])
            c[0] += episode.outcome == "success"
            c[1] += 1
            c[2] += episode.outcome == "error"
    return {arm: PassRate(*c) for arm, c in counts.items()}


def _fresh_tiny(s: LoopSettings, rows: list[dict], echo: Echo) -> str:
    """Build the fresh tiny base, its tokenizer trained on the training rows' texts only."""
    from ..train import build_tiny_model

    corpus = [m["content"] for row in rows for m in row["messages"] if m["content"]]
    shape = s.tiny
    path = build_tiny_model(
        s.output / "base",
        corpus,
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        num_layers=shape.num_layers,
        num_heads=shape.num_heads,
        sliding_window=shape.sliding_window,
        seed=s.seed,
    )
    base = str(path.resolve())
    echo(
        f"[3/4 train]   a fresh tiny qwen2 ({s.tiny.describe()}), tokenizer trained on "
        f"the {len(rows)} training rows -> {base}"
    )
    return base


def _phase_train(
    s: LoopSettings, split: SuiteSplit, session: str, echo: Echo
) -> tuple[str, Path, dict[str, Any], Any, int]:
    from ..pipeline import NothingToTrain, train_from_store
    from ..train import TrainSettings, base_ref

    base: Any = partial(_fresh_tiny, s, echo=echo) if s.base == TINY else base_ref(s.base)

    def announce(plan: Any) -> None:
        if s.base != TINY:
            echo(f"[3/4 train]   base model {plan.base_model}")
        echo(
            f"              {'LoRA' if s.lora else 'full'} SFT on {len(plan.rows)} rows "
            f"({plan.data}): {s.epochs} epochs = {plan.steps} steps, lr {s.learning_rate:g}, "
            f"batch {s.batch_size}, max_length {s.max_length}, seed {s.seed}"
        )

    try:
        trained = train_from_store(
            "sft",
            s.output / "model",
            TrainSettings(
                epochs=s.epochs,
                lora=s.lora,
                learning_rate=s.learning_rate,
                batch_size=s.batch_size,
                max_length=s.max_length,
                seed=s.seed,
            ),
            store=s.db,
            filters={"session": session},
            export_to=s.output / "train.jsonl",
            base_model=base,
            agent=AGENT,
            details={
                "data": {"session": session, "held_out": len(split.held_out)},
                "loop": {
                    "suite": s.suite,
                    "held_out_fraction": s.held_out,
                    "split_seed": s.split_seed,
                    "epochs": s.epochs,
                    "learning_rate": s.learning_rate,
                    "batch_size": s.batch_size,
                    "max_length": s.max_length,
                    "tiny": vars(s.tiny) if s.base == TINY else None,
                },
            },
            announce=announce,
            echo=echo,
            progress=lambda steps: Progress(
                steps, echo=echo, prefix=" " * 14, every=max(1, steps // 8)
            ),
        )
    except NothingToTrain:
        raise LoopError(
            f"the collect session {session} gave no SFT rows (did the oracle pass?); "
            f"see {s.output / 'collect.log'}"
        ) from None
    registered = trained.registered
    if registered is not None:
        echo(
            f"              saved {trained.output}; registered {registered.name} "
            f"({registered.id}) for agent {AGENT}"
        )
    return (
        trained.plan.base_model,
        trained.output,
        trained.metrics,
        registered,
        len(trained.plan.rows),
    )


def _phase_ab(
    s: LoopSettings, split: SuiteSplit, base: str, model_dir: Path, echo: Echo
) -> tuple[str, dict[str | None, PassRate], str, list[str]]:
    ids_file = str((s.output / "held-out-ids.txt").resolve())
    log = s.output / "ab.log"
    spec_a, spec_b = f"hf:{base}", f"hf:{model_dir}"
    echo(
        f"[4/4 a/b]     {spec_a} (A) vs {spec_b} (B) on the {len(split.held_out)} held-out "
        f"tests, greedy"
    )
    options = ("--ab", f"{spec_a},{spec_b}", "--ab-gate", "--teach-report", str(s.report))
    session, run = _recorded_run(s, ids_file, options, log, "the A/B run")
    verdict = "APPROVE" if run.returncode == 0 else "REJECT"
    return session, _rates(s.db, session), verdict, _section(run.output, "A/B comparison")


# -- the loop ----------------------------------------------------------------------------------


def clear_outputs(output: Path) -> None:
    """Remove what an earlier loop run wrote into ``output`` (:data:`LOOP_OUTPUTS`), and
    nothing else, so the folder can be reused."""
    for name in LOOP_OUTPUTS:
        path = output / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_loop(settings: LoopSettings, echo: Echo = lambda line: None) -> LoopResult:
    """Run the loop: split the suite, collect with the oracle on the training split, fine-tune,
    then A/B the base against the trained model on the held-out split with the HTML report.

    ``echo`` gets one line per phase and progress lines while training.

    Raises:
        LoopError: a phase failed (the message names it and its log).
        ValueError, OSError: bad settings, an unreadable model, an unwritable output.
    """
    s = settings
    s.output.mkdir(parents=True, exist_ok=True)
    from ..store import prepare_store

    where = prepare_store(s.db)
    s.report.parent.mkdir(parents=True, exist_ok=True)
    timer = PhaseTimer()
    lap = timer.lap
    split = _phase_split(s, echo)
    lap("split")
    collect_session = _phase_collect(s, split, where, echo)
    lap("collect")
    with no_progress_bars():
        base, model_dir, metrics, registered, rows = _phase_train(s, split, collect_session, echo)
    lap("train")
    ab_session, rates, verdict, comparison = _phase_ab(s, split, base, model_dir, echo)
    lap("ab")
    for line in comparison:
        echo(f"              {line}")
    empty = PassRate(0, 0)
    result = LoopResult(
        split=split,
        output=s.output,
        collect_session=collect_session,
        rows=rows,
        base_model=base,
        model_dir=model_dir,
        train_metrics=metrics,
        registered=registered,
        ab_session=ab_session,
        before=rates.get("A", empty),
        after=rates.get("B", empty),
        verdict=verdict,
        report=s.report,
        seconds=timer.seconds,
    )
    timer.total()
    return result
