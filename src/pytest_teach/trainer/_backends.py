"""Training backends: what the worker process runs for one training run.

:data:`BACKENDS` maps a name (``teach trainer serve --backend NAME``) to a :class:`Backend`
class. A backend reads the run's dataset, writes its output directory and returns metrics; it
runs inside the worker process, so it may import heavy libraries and may crash without taking the
service down.

- ``stub``: validates the dataset and fits a character unigram model of the assistant turns,
  written as ``unigram.json``; its ``loss`` is that model's cross-entropy (nats per character).
  Quick, and no torch.
- ``sft``: a real TRL ``SFTTrainer`` run (LoRA via PEFT by default) on the tiny local base model
  (built once in ``<data dir>/models``) or ``baseModel``; the output loads as ``hf:<dir>``.
"""

from __future__ import annotations

import json
import math
import re
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..train.sft import StepCallback, ensure_tiny_base, load_chat_rows

__all__ = ["BACKENDS", "Backend", "RunSpec", "SFTBackend", "StubBackend", "check_base_model"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass
class RunSpec:
    """What a backend needs to run one training run (plain values: it crosses processes)."""

    run_id: str
    job_id: str
    dataset_path: str
    output_dir: str
    data_dir: str
    base_model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def check_base_model(base_model: str | None) -> None:
    """Refuse a ``baseModel`` that can't be a model: a missing or non-model directory, or text
    that is neither a path nor a hub id. ``None`` (the tiny local model) is fine.

    Raises:
        ValueError: the reason, naming the value.
    """
    if base_model is None:
        return
    text = base_model.strip()
    if not text or "\x00" in text:
        raise ValueError("baseModel must be a model directory or a hub id")
    path = Path(text).expanduser()
    try:
        exists = path.exists()
    except (OSError, ValueError):
        exists = False
    if exists:
        if not (path / "config.json").is_file():
            raise ValueError(f"baseModel {text!r} is not a transformers model directory")
        return
    if text.startswith((".", "/", "~")) or not _HUB_ID.match(text):
        raise ValueError(f"baseModel {text!r} is neither an existing directory nor a hub id")


class Backend(ABC):
    """One way of training. Subclasses set ``name``/``description`` and implement :meth:`train`."""

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)

    def warm(self) -> None:
        """Prepare for the first run (import libraries, build caches); the worker calls it once
        when it starts, so the first run doesn't pay for it. Nothing to do by default."""
        return None

    @abstractmethod
    def train(self, spec: RunSpec, on_step: StepCallback) -> dict[str, Any]:
        """Train, write ``spec.output_dir`` and return metrics with at least ``loss``,
        ``steps`` and ``seconds``. Raise on failure; the message becomes the run's ``error``."""


class StubBackend(Backend):
    """A quick stand-in: validates the data, fits a character unigram model, writes it."""

    name = "stub"
    description = "validate the dataset and write a character unigram model (no torch)"

    def train(self, spec: RunSpec, on_step: StepCallback) -> dict[str, Any]:
        started = time.perf_counter()
        rows = load_chat_rows(spec.dataset_path)
        counts: Counter[str] = Counter()
        for row in rows:
            for message in row["messages"]:
                if message["role"] == "assistant":
                    counts.update(message["content"])
        total = sum(counts.values())
        vocab = len(counts) + 1  # add-one smoothing, one slot for unseen characters
        loss = (
            -sum(n * math.log((n + 1) / (total + vocab)) for n in counts.values()) / total
            if total
            else 0.0
        )
        steps = int(spec.params.get("max_steps", 1))
        delay = float(spec.params.get("delay_s", 0.0))
        for step in range(1, steps + 1):
            deadline = time.monotonic() + delay / steps
            while time.monotonic() < deadline:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            on_step(step, loss)
        out = Path(spec.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        model = {"kind": "char-unigram", "total": total, "counts": dict(sorted(counts.items()))}
        (out / "unigram.json").write_text(json.dumps(model, ensure_ascii=False), encoding="utf-8")
        card = {"backend": self.name, "run_id": spec.run_id, "rows": len(rows), "loss": loss}
        (out / "model_card.json").write_text(json.dumps(card, indent=1), encoding="utf-8")
        return {
            "loss": loss,
            "steps": steps,
            "seconds": round(time.perf_counter() - started, 3),
            "rows": len(rows),
        }


class SFTBackend(Backend):
    """Real supervised fine-tuning with TRL (LoRA by default); see :func:`train_sft`."""

    name = "sft"
    description = "TRL SFTTrainer, LoRA via PEFT, on the tiny local model or baseModel"

    @property
    def models_dir(self) -> Path:
        """Where the tiny base model is cached."""
        return self.data_dir / "models"

    def warm(self) -> None:
        import datasets  # noqa: F401
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401

        ensure_tiny_base(self.models_dir)

    def train(self, spec: RunSpec, on_step: StepCallback) -> dict[str, Any]:
        from ..train.sft import train_sft

        params = spec.params
        base = spec.base_model or str(ensure_tiny_base(self.models_dir))
        return train_sft(
            spec.dataset_path,
            base,
            spec.output_dir,
            max_steps=int(params.get("max_steps", 1)),
            lora=bool(params.get("lora", True)),
            learning_rate=float(params.get("learning_rate", 2e-4)),
            batch_size=int(params.get("batch_size", 4)),
            max_length=int(params.get("max_length", 2048)),
            lora_r=int(params.get("lora_r", 8)),
            seed=int(params.get("seed", 0)),
            on_step=on_step,
        )


BACKENDS: dict[str, type[Backend]] = {cls.name: cls for cls in (StubBackend, SFTBackend)}
