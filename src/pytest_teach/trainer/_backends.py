"""Training backends: what the worker process runs for one training run.

:data:`BACKENDS` maps a name (``teach trainer serve --backend NAME``) to a :class:`Backend`
class. A backend reads the run's dataset, writes its output directory and returns metrics; it
runs inside the worker process, so it may import heavy libraries and may crash without taking the
service down.

- ``stub``: validates the dataset and fits a character unigram model of the assistant turns,
  written as ``unigram.json``; its ``loss`` is that model's cross-entropy (nats per character).
  Quick, and no torch.
- ``sft``: a real TRL ``SFTTrainer`` run through :func:`~pytest_teach.train.train_model` (LoRA via PEFT by default) on the tiny local base model
  (built once in ``<data dir>/models``) or ``baseModel``; the output loads as ``hf:<dir>``.
"""

from __future__ import annotations

import json
import math
import re
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..train import StepCallback, ensure_tiny_base, load_chat_rows

__all__ = [
    "BACKENDS",
    "Backend",
    "RunSpec",
    "SFTBackend",
    "StubBackend",
    "base_model_location",
    "check_base_model",
]

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


def base_model_location(base_model: str | None, data_dir: str | Path) -> str | None:
    """Where ``baseModel`` loads from: a path relative to the data dir when it names a directory
    there, else the value as given (an absolute path or a hub id); ``None`` stays ``None``."""
    if base_model is None:
        return None
    text = base_model.strip()
    candidate = Path(text).expanduser() if text.startswith("~") else Path(text)
    if candidate.is_absolute():
        return text
    local = Path(data_dir) / candidate
    try:
        return str(local.resolve()) if local.exists() else text
    except (OSError, RuntimeError, ValueError):
        return text


def check_base_model(
    base_model: str | None, data_dir: str | Path, model_dirs: Sequence[str | Path] = ()
) -> None:
    """Refuse a ``baseModel`` that can't be used. A local model must be a directory (with
    ``config.json``) inside the data dir or one of ``model_dirs``; relative paths are taken from
    the data dir. Anything that isn't an existing directory there must look like a hub id.
    ``None`` (the tiny local model) is fine.

    A path outside the allowed directories gets the same answer whether it exists or not, and
    no message names a server path.

    Raises:
        ValueError: the reason, naming the value as the client sent it.
    """
    if base_model is None:
        return
    text = base_model.strip()
    if not text or "\x00" in text:
        raise ValueError(
            "baseModel must be a model directory in the trainer's data dir or a hub id"
        )
    pathlike = text.startswith((".", "/", "~", "\\")) or not _HUB_ID.match(text)
    candidate = Path(text).expanduser() if text.startswith("~") else Path(text)
    if not candidate.is_absolute():
        candidate = Path(data_dir) / candidate
    roots = [Path(data_dir), *(Path(d) for d in model_dirs)]
    try:
        resolved = candidate.resolve()
        inside = any(resolved.is_relative_to(root.resolve()) for root in roots)
        is_dir = inside and resolved.is_dir()
        is_model = is_dir and (resolved / "config.json").is_file()
    except (OSError, RuntimeError, ValueError):
        inside = is_dir = is_model = False
    if is_model:
        return
    if is_dir:
        raise ValueError(
            f"baseModel {text!r} is not a transformers model directory (no config.json)"
        )
    if not pathlike:
        return  # a hub id: loads with network access or a warm cache
    if not inside:
        raise ValueError(
            f"baseModel {text!r} is outside the trainer's data dir; put the model in it (for "
            "example models/NAME) and pass its path relative to the data dir, or start the "
            "trainer with --models-dir"
        )
    raise ValueError(f"baseModel {text!r}: no such model directory in the trainer's data dir")


class Backend(ABC):
    """One way of training. Subclasses set ``name``/``description`` and implement :meth:`train`."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: Whether every rank of a launched run may call :meth:`train` with the same output
    #: directory (the backend writes it from rank 0 only); otherwise only rank 0's is kept.
    distributed: ClassVar[bool] = False

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
    distributed = True

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
        from ..train import TrainSettings, train_model

        params = spec.params
        base = base_model_location(spec.base_model, self.data_dir) or str(
            ensure_tiny_base(self.models_dir)
        )
        settings = TrainSettings(
            max_steps=int(params.get("max_steps", 1)),
            lora=bool(params.get("lora", True)),
            learning_rate=float(params.get("learning_rate", 2e-4)),
            batch_size=int(params.get("batch_size", 4)),
            max_length=int(params.get("max_length", 2048)),
            seed=int(params.get("seed", 0)),
        )
        run = train_model(
            "sft",
            spec.dataset_path,
            spec.output_dir,
            settings,
            base_model=base,
            on_step=on_step,
            lora_r=int(params.get("lora_r", 8)),
        )
        return run.metrics


BACKENDS: dict[str, type[Backend]] = {cls.name: cls for cls in (StubBackend, SFTBackend)}
