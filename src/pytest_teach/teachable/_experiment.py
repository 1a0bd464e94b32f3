"""The results folder that phases 1B to 5 share, and what they read from it.

Labeling (phase 1) leaves ``labeled_snapshots.jsonl`` in a results folder; the snapshots it
labeled (``snapshots.jsonl``, which holds each pickled world) are beside it or named by
``label_summary.json``. :class:`Experiment` opens the folder once for a phase:

- the labeled rows, each checked to carry what the later phases need (a quadrant, a leverage,
  the contextual patch test), with the world state of each;
- the student: an ``hf:`` model directory (the labeling policy unless ``--student`` says
  otherwise), since these phases fine-tune it;
- the split of the snapshots' *episodes* into a training side and a held-out side
  (``split.json``), so no held-out snapshot shares an episode with one trained on;
- the evaluation tasks: the snapshots' levels at fresh seeds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._files import TeachableError, read_json, read_rows, write_json
from ._label import LABELED, SUMMARY, read_snapshots
from ._mine import decode_state
from ._quadrants import QUADRANTS

__all__ = [
    "EVAL_SEED_START",
    "SPLIT",
    "Experiment",
    "SnapshotSplit",
    "shaping",
    "stable_order",
]

SPLIT = "split.json"
#: Evaluation tasks use seeds from here on (mining starts at 0, demonstrations at 100,000).
EVAL_SEED_START = 50_000

Echo = Callable[[str], None]


def shaping(settings: Any, student: str) -> dict[str, Any]:
    """The settings that shape a phase's results (what a resume must match): every field of
    ``settings`` but where its files are and whether to restart, with the student."""
    from dataclasses import asdict

    skip = ("results", "restart", "snapshots", "student")
    return {**{k: v for k, v in asdict(settings).items() if k not in skip}, "student": student}


def stable_order(keys: list[str], seed: int) -> list[str]:
    """``keys`` in an order fixed by ``seed`` (a hash of each key), independent of input order."""
    return sorted(keys, key=lambda k: (hashlib.sha256(f"{seed}|{k}".encode()).hexdigest(), k))


@dataclass(frozen=True)
class SnapshotSplit:
    """Which snapshots train and which are held out (by episode)."""

    train: list[dict[str, Any]]
    test: list[dict[str, Any]]
    test_share: float
    seed: int


@dataclass
class Experiment:
    """A results folder opened for phases 1B to 5."""

    root: Path
    rows: list[dict[str, Any]]
    states: dict[str, bytes]
    student: str
    snapshots: Path

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls, root: Path, *, student: str | None = None, snapshots: Path | None = None
    ) -> Experiment:
        """Open ``root`` (a labeled results folder).

        Raises:
            TeachableError: no labeled snapshots, a row without the labels these phases need
                (file, line and field named), snapshots that don't match the labels, or a
                student that can't be fine-tuned here.
        """
        labeled = root / LABELED
        if not labeled.exists():
            raise TeachableError(
                f"{root}: no {LABELED}; label snapshots first (teach teachable label ... -o "
                f"{root}, or teach teachable pilot -o {root})"
            )
        rows = [_check_labeled(where, row) for where, row in read_rows(labeled, what="labels")]
        source = snapshots or _snapshots_of(root)
        states = {r["id"]: decode_state(r, w) for w, r in read_snapshots(source)}
        missing = [r["id"] for r in rows if r["id"] not in states]
        if missing:
            raise TeachableError(
                f"{source}: no snapshot {missing[0]!r} (and {len(missing) - 1} more) of "
                f"{labeled}; pass --snapshots FILE, the file that was labeled"
            )
        spec = student or _labeling_policy(rows, labeled)
        return cls(root, rows, states, _check_student(spec), source)

    # -- what the phases read --------------------------------------------------------------

    @property
    def model_dir(self) -> Path:
        """The student's model directory (what fine-tuning starts from)."""
        return Path(self.student[len("hf:") :])

    @property
    def world(self) -> tuple[tuple[str, ...], int, bool]:
        """``(levels, max_steps, mock)`` of the snapshots' tasks."""
        levels = tuple(dict.fromkeys(r["level"] for r in self.rows))
        max_steps = max(int(r["max_steps"]) for r in self.rows)
        return levels, max_steps, all(r.get("world") == "mock" for r in self.rows)

    def quadrant_rows(self, rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """``rows`` by quadrant, every quadrant listed."""
        return {q: [r for r in rows if r["quadrant"] == q] for q in QUADRANTS}

    def split(
        self, test_share: float = 0.3, seed: int = 0, *, record: bool = False
    ) -> SnapshotSplit:
        """The episodes split into training and held-out sides (``split.json`` records it
        with ``record``).

        Episodes are ordered by a hash of their id and ``seed``; the first ``test_share`` of
        them (at least one, and at least one left to train on) are held out.

        Raises:
            TeachableError: fewer than two episodes.
        """
        episodes = stable_order(sorted({r["episode_id"] for r in self.rows}), seed)
        if len(episodes) < 2:
            raise TeachableError(
                f"{self.root / LABELED}: the snapshots come from {len(episodes)} episode; "
                "a held-out side needs at least 2 (raise --n-tasks)"
            )
        n_test = min(len(episodes) - 1, max(1, round(test_share * len(episodes))))
        held = set(episodes[:n_test])
        train = [r for r in self.rows if r["episode_id"] not in held]
        test = [r for r in self.rows if r["episode_id"] in held]
        if not record:
            return SnapshotSplit(train, test, test_share, seed)
        write_json(
            self.root / SPLIT,
            {
                "seed": seed,
                "test_share": test_share,
                "train_episodes": sorted(set(episodes) - held),
                "test_episodes": sorted(held),
                "train_snapshots": len(train),
                "test_snapshots": len(test),
            },
        )
        return SnapshotSplit(train, test, test_share, seed)

    @contextmanager
    def loaded(self, model_dir: Path | str | None = None) -> Iterator[Any]:
        """A student playing ``model_dir`` (the experiment's student by default); its weights
        are dropped from memory on leaving."""
        from .._progress import no_progress_bars
        from ..agents import HFChat
        from ..envs.minigrid import LMStudent

        chat = HFChat(str(model_dir or self.model_dir))
        try:
            with no_progress_bars():
                chat.load()
        except ValueError as exc:
            raise TeachableError(str(exc)) from None
        try:
            yield LMStudent(chat)
        finally:
            chat.release()


def _check_labeled(where: str, row: dict[str, Any]) -> dict[str, Any]:
    for field in ("id", "episode_id", "observation", "student_action", "expert_action", "level"):
        if not isinstance(row.get(field), str):
            raise TeachableError(f"{where}: field {field!r} must be a string")
    for field in ("step", "max_steps"):
        if not isinstance(row.get(field), int) or isinstance(row.get(field), bool):
            raise TeachableError(f"{where}: field {field!r} must be an integer")
    if not isinstance(row.get("U"), (int, float)):
        raise TeachableError(f"{where}: field 'U' must be a number")
    if not isinstance(row.get("leverage"), dict):
        raise TeachableError(
            f"{where}: field 'leverage' is missing; these phases need snapshots labeled "
            "without --skip-leverage"
        )
    if not isinstance(row.get("cpt"), dict):
        raise TeachableError(
            f"{where}: field 'cpt' is missing; these phases need snapshots labeled "
            "without --skip-cpt"
        )
    if row.get("quadrant") not in QUADRANTS:
        raise TeachableError(f"{where}: field 'quadrant' must be one of {', '.join(QUADRANTS)}")
    return row


def _snapshots_of(root: Path) -> Path:
    beside = root / "snapshots.jsonl"
    if beside.exists():
        return beside
    summary = root / SUMMARY
    if summary.exists():
        named = read_json(summary).get("snapshots_file")
        if isinstance(named, str) and Path(named).exists():
            return Path(named)
    raise TeachableError(
        f"{root}: no snapshots.jsonl beside the labels; pass --snapshots FILE (the file "
        "teach teachable label read)"
    )


def _labeling_policy(rows: list[dict[str, Any]], labeled: Path) -> str:
    specs = {(r.get("labeled_by") or {}).get("policy") or r.get("model") for r in rows}
    specs.discard(None)
    if len(specs) != 1:
        raise TeachableError(
            f"{labeled}: the snapshots were labeled with {len(specs)} policies "
            f"({', '.join(sorted(map(str, specs))) or 'none recorded'}); pass --student hf:DIR"
        )
    return str(specs.pop())


def _check_student(spec: str) -> str:
    if not spec.startswith("hf:"):
        raise TeachableError(
            f"these phases fine-tune the student, which needs a local hf: model; the snapshots "
            f"were labeled with {spec}: pass --student hf:DIR (teach teachable student builds one)"
        )
    path = Path(spec[len("hf:") :])
    if not (path / "config.json").is_file():
        raise TeachableError(
            f"student {spec}: {path} is not a full model directory (no config.json); "
            "fine-tuning starts from a full model, not an adapter"
        )
    return f"hf:{path.resolve()}"
