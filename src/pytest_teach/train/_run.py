"""One training run from a JSONL file: validate the rows, settle the base model and the number of
steps, then run the method's TRL trainer with progress.

:func:`train_model` is the training core that :func:`pytest_teach.pipeline.train_from_store`
(``teach train``, ``teach loop``, the teachable student) and the trainer service's ``sft``
backend share. Heavy libraries load only when a model is trained.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._progress import Echo, Progress, no_progress_bars
from ._common import StepCallback
from ._dist import ranks

__all__ = [
    "METHODS",
    "BaseModel",
    "TrainPlan",
    "TrainSettings",
    "TrainedRun",
    "load_rows",
    "train_model",
]

#: The training methods, each with the export format it trains on.
METHODS = ("sft", "dpo", "grpo")

#: The model to fine-tune: a directory or hub id; ``None`` for the tiny offline base in the user
#: cache directory; or a callable that builds one from the validated rows and returns its path.
BaseModel = str | os.PathLike | Callable[[list[dict]], "str | os.PathLike[str]"] | None


@dataclass(frozen=True)
class TrainSettings:
    """How long and how to train. ``max_steps`` and ``epochs`` exclude each other; without
    either, one pass over the rows: ``steps = epochs * ceil(rows / (batch_size * processes))``
    (``batch_size`` is per process). ``max_length`` of ``None`` keeps the method's default."""

    max_steps: int | None = None
    epochs: int | None = None
    lora: bool = True
    learning_rate: float = 2e-4
    batch_size: int = 4
    max_length: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_steps is not None and self.epochs is not None:
            raise ValueError("max_steps and epochs exclude each other: give one")

    def steps(self, rows: int, processes: int = 1) -> int:
        """The optimiser steps for ``rows`` training rows over ``processes`` training processes."""
        if self.max_steps is not None:
            return self.max_steps
        return (self.epochs or 1) * math.ceil(rows / (self.batch_size * processes))


@dataclass(frozen=True)
class TrainPlan:
    """What a run is about to do, known once the rows are validated and the base is ready."""

    method: str
    data: Path
    rows: list[dict]
    steps: int
    base_model: str
    settings: TrainSettings


@dataclass
class TrainedRun:
    """A finished run: where the model is, and the trainer's metrics."""

    plan: TrainPlan
    output: Path
    metrics: dict[str, Any]


def _method(method: str) -> tuple[Callable[..., list[dict]], Callable[..., dict[str, Any]]]:
    if method == "sft":
        from .sft import load_chat_rows, train_sft

        return load_chat_rows, train_sft
    if method == "dpo":
        from .dpo import load_preference_rows, train_dpo

        return load_preference_rows, train_dpo
    if method == "grpo":
        from .grpo import load_prompt_rows, train_grpo

        return load_prompt_rows, train_grpo
    raise ValueError(f"unknown training method {method!r}; choose one of {', '.join(METHODS)}")


def load_rows(method: str, path: str | os.PathLike[str]) -> list[dict]:
    """Read and validate ``method``'s dataset; errors name the file and line.

    Raises:
        ValueError: an unknown method, or an unusable dataset (``SFTDataError``,
            ``DPODataError``, ``GRPODataError``).
    """
    return _method(method)[0](path)


def _base(base_model: BaseModel, rows: list[dict], echo: Echo | None) -> str:
    if base_model is None:
        from ._common import ensure_tiny_base
        from .tiny import tiny_base_cache

        base = str(ensure_tiny_base(tiny_base_cache()))
        if echo is not None:
            echo(f"base model: the tiny offline model in {base}")
        return base
    if callable(base_model):
        return str(base_model(rows))
    return str(base_model)


def train_model(
    method: str,
    data: str | os.PathLike[str],
    output: str | os.PathLike[str],
    settings: TrainSettings | None = None,
    *,
    base_model: BaseModel = None,
    announce: Callable[[TrainPlan], None] | None = None,
    echo: Echo | None = None,
    progress: Callable[[int], Progress] | None = None,
    on_step: StepCallback | None = None,
    **method_args: Any,
) -> TrainedRun:
    """Train ``base_model`` on ``data`` with ``method`` (``sft``, ``dpo`` or ``grpo``) and save
    the result to ``output`` (it loads as ``hf:<output>``).

    The rows are validated before any model loads. Then the base is settled (see
    :data:`BaseModel`; ``None`` builds the tiny offline base once, saying where through
    ``echo``), ``announce`` gets the :class:`TrainPlan`, and training runs with a
    :class:`~pytest_teach._progress.Progress` of the steps (``progress(steps)`` makes it; by
    default a bar or plain lines through ``echo``) and ``on_step(step, loss)`` after each step.

    Args:
        method: ``sft``, ``dpo`` or ``grpo``.
        data: the JSONL dataset.
        output: the model directory to write.
        settings: steps, learning rate, batch size, LoRA or full, seed.
        base_model: see :data:`BaseModel`.
        announce: called once, before training, with the plan.
        echo: where progress lines go (``None``: nowhere).
        progress: makes the progress display for a number of steps.
        on_step: called after each step with ``(step, loss)``.
        method_args: the method's own arguments (``beta``, ``num_generations``,
            ``reward_funcs``, ``lora_r``...).

    Raises:
        ValueError: an unusable dataset (file and line named), a bad argument, or a base model
            that can't be loaded.
    """
    settings = settings or TrainSettings()
    load, run = _method(method)
    rows = load(data)
    steps = settings.steps(len(rows), ranks().world_size)
    base = _base(base_model, rows, echo)
    plan = TrainPlan(method, Path(data), rows, steps, base, settings)
    if announce is not None:
        announce(plan)
    extra = dict(method_args)
    if settings.max_length is not None:
        extra["max_length"] = settings.max_length
    with contextlib.ExitStack() as stack:
        shown = stack.enter_context(
            progress(steps) if progress is not None else Progress(steps, echo=echo)
        )
        if shown.is_bar:  # the one bar on the terminal: transformers' own bars stay quiet
            stack.enter_context(no_progress_bars())

        def step(done: int, loss: float | None) -> None:
            shown.update(done, loss=loss)
            if on_step is not None:
                on_step(done, loss)

        metrics = run(
            str(data),
            base,
            output,
            max_steps=steps,
            lora=settings.lora,
            learning_rate=settings.learning_rate,
            batch_size=settings.batch_size,
            seed=settings.seed,
            on_step=step,
            **extra,
        )
    return TrainedRun(plan, Path(output), metrics)
