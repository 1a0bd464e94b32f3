"""Supervised fine-tuning with TRL's ``SFTTrainer`` (LoRA via PEFT by default), CPU-safe.

:func:`train_sft` is the one function the trainer service's ``sft`` backend and the ``teach
train sft`` command share. It reads chat rows (``{"messages": [...]}``, the ``openai``/``sft``
export format), validates every line (errors name the file and line), runs ``max_steps``
optimiser steps and saves a directory that loads as ``hf:<dir>``: a LoRA adapter (with its
tokenizer) or, with ``lora=False``, a full model.

``torch``, ``transformers``, ``trl``, ``peft`` and ``datasets`` are imported inside the functions.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ._common import (
    TINY_BASE_NAME,
    StepCallback,
    base_ref,
    check_args,
    check_messages,
    ensure_tiny_base,
    fit_trl,
    load_base,
    lora_config,
    read_jsonl,
)

__all__ = [
    "SFTDataError",
    "StepCallback",
    "TINY_BASE_NAME",
    "ensure_tiny_base",
    "load_chat_rows",
    "train_sft",
]

_GENERATION_MARKER = re.compile(r"{%-?\s*generation\s*-?%}")


class SFTDataError(ValueError):
    """The SFT dataset is unusable; the message names the file and line."""


def load_chat_rows(path: str | os.PathLike[str], *, limit: int | None = None) -> list[dict]:
    """Read and validate a chat JSONL file: one ``{"messages": [{"role", "content"}...]}`` per line.

    Every row needs at least one assistant turn (the text trained on). Blank lines are skipped.

    Raises:
        SFTDataError: the file is missing, empty, or a line is malformed (file and line named).
    """
    rows: list[dict] = []
    for where, row in read_jsonl(path, SFTDataError):
        if not isinstance(row.get("messages"), list):
            raise SFTDataError(f'{where}: expected an object with a "messages" list')
        if not row["messages"]:
            raise SFTDataError(f"{where}: messages is empty")
        messages = check_messages(row["messages"], "messages", where, SFTDataError)
        if not any(m["role"] == "assistant" for m in messages):
            raise SFTDataError(f"{where}: no assistant turn to train on")
        rows.append({"messages": messages})
        if limit is not None and len(rows) >= limit:
            break
    return rows


def train_sft(
    dataset_path: str | os.PathLike[str],
    base_model: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    max_steps: int = 1,
    lora: bool = True,
    learning_rate: float = 2e-4,
    batch_size: int = 4,
    max_length: int = 2048,
    lora_r: int = 8,
    lora_alpha: int | None = None,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> dict[str, Any]:
    """Fine-tune ``base_model`` on the chat rows in ``dataset_path`` for ``max_steps`` steps.

    Args:
        dataset_path: JSONL of ``{"messages": [...]}`` rows (see :func:`load_chat_rows`).
        base_model: a local model directory or a hub id (hub ids need network access or a cache).
        output_dir: where the result is saved; it loads as ``hf:<output_dir>``.
        max_steps: optimiser steps.
        lora: train a LoRA adapter (``peft``, all linear layers) instead of every weight.
        learning_rate: AdamW learning rate.
        batch_size: rows per step.
        max_length: longest tokenized row; longer rows are truncated.
        lora_r: LoRA rank; ``lora_alpha`` defaults to ``2 * lora_r``.
        seed: the training seed.
        on_step: called after each step with ``(step, loss)``.

    Returns:
        JSON-ready metrics: ``loss`` (the last logged loss), ``train_loss`` (the mean),
        ``steps``, ``seconds`` (training time), ``rows``, ``lora``, ``trainable_params``,
        ``base_model`` and ``assistant_only_loss``.

    Raises:
        SFTDataError: the dataset is malformed (file and line named).
        ValueError: an argument is out of range or the base model can't be found.
    """
    check_args(max_steps, batch_size, lora_r, learning_rate)
    rows = load_chat_rows(dataset_path)
    base = base_ref(base_model)
    out = Path(output_dir)

    from trl import SFTConfig, SFTTrainer

    model, tokenizer = load_base(base)
    assistant_only = bool(_GENERATION_MARKER.search(tokenizer.chat_template))

    def keeps_rows(trainer: Any) -> None:
        if len(trainer.train_dataset) == 0:
            raise ValueError(
                f"no row of {dataset_path} keeps an assistant token within max_length="
                f"{max_length} tokens; raise max_length"
            )

    metrics = fit_trl(
        "sft",
        SFTConfig,
        SFTTrainer,
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
            "max_length": max_length,
            "assistant_only_loss": assistant_only,
            "packing": False,
            "dataset_num_proc": None,
        },
        check=keeps_rows,
    )
    return {
        **metrics,
        "rows": len(rows),
        "lora": bool(lora),
        "base_model": base,
        "assistant_only_loss": assistant_only,
    }
