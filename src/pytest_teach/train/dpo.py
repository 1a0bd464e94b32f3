"""Direct preference optimisation with TRL's ``DPOTrainer`` + ``DPOConfig`` (LoRA by default).

:func:`train_dpo` reads the ``dpo`` export (one ``{"prompt", "chosen", "rejected"}`` row per
line, each a list of chat messages: TRL's conversational preference format), validates every
line (errors name the file and line), builds a CPU-safe :class:`trl.DPOConfig` with
:func:`~pytest_teach.train._config.trl_config` and runs ``DPOTrainer`` for ``max_steps`` steps.
The saved directory loads as ``hf:<dir>``: a LoRA adapter (with its tokenizer) or a full model.

The model-loading, LoRA and step-callback helpers here are shared with
:mod:`pytest_teach.train.grpo`. ``torch``, ``transformers``, ``trl``, ``peft`` and ``datasets``
are imported inside the functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._common import (
    StepCallback,
    base_ref,
    check_args,
    check_messages,
    fit_trl,
    load_base,
    lora_config,
    read_jsonl,
)

__all__ = ["DPODataError", "load_preference_rows", "train_dpo"]

_ROLES = ("system", "user", "assistant", "tool")
_FIELDS = ("prompt", "chosen", "rejected")


class DPODataError(ValueError):
    """The DPO dataset is unusable; the message names the file and line."""


def load_preference_rows(path: str | os.PathLike[str]) -> list[dict]:
    """Read and validate a conversational preference JSONL file (the ``dpo`` export).

    Each line is ``{"prompt": [messages], "chosen": [messages], "rejected": [messages]}``;
    ``chosen`` and ``rejected`` hold the assistant reply. Blank lines are skipped.

    Raises:
        DPODataError: the file is missing or empty, or a line is malformed (file and line named).
    """
    rows = []
    for where, row in read_jsonl(path, DPODataError):
        missing = [k for k in ("prompt", "chosen", "rejected") if k not in row]
        if missing:
            raise DPODataError(
                f"{where}: missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                '(expected {"prompt", "chosen", "rejected"})'
            )
        clean = {k: check_messages(row[k], k, where, DPODataError) for k in row if k in _FIELDS}
        for key in ("chosen", "rejected"):
            if not any(m["role"] == "assistant" for m in clean[key]):
                raise DPODataError(f"{where}: {key} has no assistant message")
        rows.append(clean)
    return rows


def train_dpo(
    dataset_path: str | os.PathLike[str],
    base_model: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    max_steps: int = 1,
    lora: bool = True,
    learning_rate: float = 2e-4,
    batch_size: int = 4,
    beta: float = 0.1,
    max_length: int = 2048,
    lora_r: int = 8,
    lora_alpha: int | None = None,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> dict[str, Any]:
    """Train ``base_model`` with DPO on the preference pairs in ``dataset_path``.

    Args:
        dataset_path: JSONL of ``{"prompt", "chosen", "rejected"}`` conversational rows (the
            ``dpo`` export; see :func:`load_preference_rows`).
        base_model: a local model directory or a hub id.
        output_dir: where the result is saved; it loads as ``hf:<output_dir>``.
        max_steps: optimiser steps.
        lora: train a LoRA adapter (the reference model is the base with the adapter disabled)
            instead of every weight (then TRL keeps a frozen copy as the reference).
        learning_rate: AdamW learning rate.
        batch_size: pairs per step (per process).
        beta: DPO's KL coefficient (``DPOConfig.beta``).
        max_length: longest tokenized prompt + completion; longer ones are truncated.
        lora_r: LoRA rank; ``lora_alpha`` defaults to ``2 * lora_r``.
        seed: the training seed.
        on_step: called after each logged step with ``(step, loss)``.

    Returns:
        JSON-ready metrics: ``loss``, ``train_loss``, ``steps``, ``seconds``, ``rows``, ``lora``,
        ``trainable_params``, ``base_model``, ``beta`` and, when logged,
        ``rewards_accuracies`` and ``rewards_margins``.

    Raises:
        DPODataError: the dataset is malformed (file and line named).
        ValueError: an argument is out of range or the base model can't be loaded.
    """
    check_args(max_steps, batch_size, lora_r, learning_rate)
    if not (isinstance(beta, (int, float)) and beta > 0):
        raise ValueError(f"beta must be > 0, got {beta!r}")
    rows = load_preference_rows(dataset_path)
    base = base_ref(base_model)
    out = Path(output_dir)

    from trl import DPOConfig, DPOTrainer

    model, tokenizer = load_base(base)
    metrics = fit_trl(
        "dpo",
        DPOConfig,
        DPOTrainer,
        model,
        tokenizer,
        rows,
        out,
        max_steps=max_steps,
        learning_rate=learning_rate,
        seed=seed,
        peft_config=lora_config(lora, lora_r, lora_alpha),
        on_step=on_step,
        config={
            "per_device_train_batch_size": min(batch_size, len(rows)),
            "beta": float(beta),
            "max_length": max_length,
            "dataset_num_proc": None,
        },
        keys=("rewards/accuracies", "rewards/margins"),
    )
    return {**metrics, "rows": len(rows), "lora": bool(lora), "base_model": base, "beta": beta}
