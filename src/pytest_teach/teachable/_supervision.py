"""Supervision formats: how a failure snapshot becomes a training row, and the fine-tune that
trains on such rows.

Every row answers the snapshot's state with the expert's action; the formats differ in what
the prompt holds besides the observation:

- ``demo``: nothing (behaviour cloning at the moment of failure);
- ``hint``: the teacher's one- or two-sentence hint (the contextual patch test's, else the
  oracle's, from where the mission's object is);
- ``contrast``: the student's action set against the right one.

Evaluation never shows advice, so ``hint`` and ``contrast`` measure how far learning to follow
advice carries over to acting alone. :func:`finetune` runs what ``teach train sft --data ROWS``
runs (:func:`~pytest_teach.train.sft.train_sft`) and records that command line. With
``rehearsal`` it mixes in that many rows the student was trained on (``demos.jsonl`` beside
its model, or ``rehearsal_data``), a seeded sample: failure states alone are mostly turns, and
a student trained on them alone learns to turn.
"""

from __future__ import annotations

import math
import random
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._files import TeachableError, write_rows
from ._patches import contrast_patch, hint_patch

__all__ = ["FORMATS", "FineTune", "finetune", "rehearsal_rows", "supervision_row"]

FORMATS: tuple[str, ...] = ("demo", "hint", "contrast")

Echo = Callable[[str], None]


def supervision_row(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The chat row that teaches snapshot ``row`` in format ``fmt``.

    Raises:
        TeachableError: an unknown format.
    """
    from ..envs import minigrid as mg

    action = row["expert_action"]
    if fmt == "demo":
        patch = None
    elif fmt == "hint":
        given = ((row.get("cpt") or {}).get("patches") or {}).get("hint") or {}
        target = row.get("target")
        text = given.get("text") or mg.hint_text(
            (target["object"], target["right"], target["forward"]) if target else None, action
        )
        patch = hint_patch(text, action)
    elif fmt == "contrast":
        patch = contrast_patch(row["student_action"], action)
    else:
        raise TeachableError(f"unknown supervision format {fmt!r}; use one of {FORMATS}")
    messages = mg.build_messages(row["observation"], patch)
    return {"messages": [*messages, {"role": "assistant", "content": action}]}


@dataclass(frozen=True)
class FineTune:
    """How the student is fine-tuned on supervision rows: ``steps`` optimiser steps, or
    ``epochs`` passes over the rows (``ceil(epochs * rows / batch_size)`` steps)."""

    steps: int | None = None
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 8
    lora: bool = False
    seed: int = 0
    rehearsal: int = 0
    rehearsal_data: str | None = None

    def steps_for(self, rows: int) -> int:
        """The optimiser steps for ``rows`` rows."""
        return self.steps or max(1, math.ceil(self.epochs * rows / self.batch_size))


def rehearsal_rows(ft: FineTune, base: Path) -> list[dict[str, Any]]:
    """``ft.rehearsal`` of the student's own training rows, sampled with ``ft.seed``.

    Raises:
        TeachableError: no such rows, or fewer than asked for.
    """
    if not ft.rehearsal:
        return []
    from ..train.sft import SFTDataError, load_chat_rows

    path = Path(ft.rehearsal_data) if ft.rehearsal_data else base.parent / "demos.jsonl"
    if not path.exists():
        raise TeachableError(
            f"--rehearsal {ft.rehearsal} needs the student's training rows: no {path}; pass "
            "--rehearsal-data FILE (chat rows)"
        )
    try:
        rows = load_chat_rows(path)
    except SFTDataError as exc:
        raise TeachableError(str(exc)) from None
    if len(rows) < ft.rehearsal:
        raise TeachableError(f"--rehearsal {ft.rehearsal}: {path} holds {len(rows)} rows")
    return random.Random(ft.seed).sample(rows, ft.rehearsal)


def finetune(rows: list[dict[str, Any]], base: Path, folder: Path, ft: FineTune) -> dict[str, Any]:
    """Write ``rows`` (with ``ft.rehearsal`` rows of the student's own mixed in) to
    ``folder/rows.jsonl`` and fine-tune ``base`` on them into ``folder/model``; return the
    training metrics with the equivalent ``command``."""
    from .._progress import no_progress_bars
    from ..train.sft import train_sft

    if not rows:
        raise TeachableError(f"{folder}: no supervision rows to train on")
    rows = [*rows, *rehearsal_rows(ft, base)]
    folder.mkdir(parents=True, exist_ok=True)
    data, model = folder / "rows.jsonl", folder / "model"
    write_rows(data, rows)
    steps = ft.steps_for(len(rows))
    with no_progress_bars():
        metrics = train_sft(
            data,
            base,
            model,
            max_steps=steps,
            lora=ft.lora,
            learning_rate=ft.lr,
            batch_size=ft.batch_size,
            seed=ft.seed,
        )
    command = [
        "teach", "train", "sft", "--data", str(data), "--base-model", str(base),
        "--lora" if ft.lora else "--full", "--max-steps", str(steps), "--lr", f"{ft.lr:g}",
        "--batch-size", str(ft.batch_size), "--seed", str(ft.seed), "-o", str(model),
    ]  # fmt: skip
    return {
        **metrics,
        "model": str(model),
        "command": shlex.join(command),
        "rehearsal_rows": ft.rehearsal,
    }
