"""Supervised fine-tuning with TRL's ``SFTTrainer`` (LoRA via PEFT by default), CPU-safe.

:func:`train_sft` is the one function the trainer service's ``sft`` backend and the ``teach
train sft`` command share. It reads chat rows (``{"messages": [...]}``, the ``openai``/``sft``
export format), validates every line (errors name the file and line), runs ``max_steps``
optimiser steps and saves a directory that loads as ``hf:<dir>``: a LoRA adapter (with its
tokenizer) or, with ``lora=False``, a full model.

``torch``, ``transformers``, ``trl``, ``peft`` and ``datasets`` are imported inside the functions.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "SFTDataError",
    "StepCallback",
    "TINY_BASE_NAME",
    "ensure_tiny_base",
    "load_chat_rows",
    "train_sft",
]

#: Called after each optimiser step with ``(step, loss or None)``.
StepCallback = Callable[[int, "float | None"], None]

#: The folder name of the cached tiny base model (``<cache>/tiny-base``).
TINY_BASE_NAME = "tiny-base"

_ROLES = ("system", "user", "assistant", "tool")
_GENERATION_MARKER = re.compile(r"{%-?\s*generation\s*-?%}")


class SFTDataError(ValueError):
    """The SFT dataset is unusable; the message names the file and line."""


def load_chat_rows(path: str | os.PathLike[str], *, limit: int | None = None) -> list[dict]:
    """Read and validate a chat JSONL file: one ``{"messages": [{"role", "content"}...]}`` per line.

    Every row needs at least one assistant turn (the text trained on). Blank lines are skipped.

    Raises:
        SFTDataError: the file is missing, empty, or a line is malformed (file and line named).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SFTDataError(f"{p}: no such dataset file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SFTDataError(f"{p}: cannot read the dataset ({exc})") from None
    rows: list[dict] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{p} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SFTDataError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
            raise SFTDataError(f'{where}: expected an object with a "messages" list')
        messages = row["messages"]
        if not messages:
            raise SFTDataError(f"{where}: messages is empty")
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise SFTDataError(f"{where}: messages[{i}] is not an object")
            if message.get("role") not in _ROLES:
                raise SFTDataError(
                    f"{where}: messages[{i}].role must be one of {', '.join(_ROLES)}, "
                    f"got {message.get('role')!r}"
                )
            if not isinstance(message.get("content"), str):
                raise SFTDataError(f"{where}: messages[{i}].content must be a string")
        if not any(m["role"] == "assistant" for m in messages):
            raise SFTDataError(f"{where}: no assistant turn to train on")
        rows.append({"messages": [{"role": m["role"], "content": m["content"]} for m in messages]})
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise SFTDataError(f"{p}: the dataset has no rows")
    return rows


def ensure_tiny_base(cache_dir: str | os.PathLike[str]) -> Path:
    """The tiny local base model under ``cache_dir/tiny-base``, built on first use (offline).

    It is built in a temporary folder beside it and renamed into place, so a crash never leaves a
    half-written model and concurrent callers agree on one.
    """
    cache = Path(cache_dir)
    target = cache / TINY_BASE_NAME
    if (target / "config.json").is_file():
        return target.resolve()
    from .tiny import build_tiny_model

    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{TINY_BASE_NAME}.", dir=cache))
    try:
        build_tiny_model(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target.resolve()


def _base_ref(base_model: str | os.PathLike[str]) -> str:
    """A local directory as an absolute path (adapters record it); a hub id as it is."""
    text = str(base_model)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"base model {path} is not a transformers model directory")
        return str(path.resolve())
    if text.startswith((".", "/", "~")):
        raise ValueError(f"base model directory {text} does not exist")
    return text


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
    for name, value in (("max_steps", max_steps), ("batch_size", batch_size), ("lora_r", lora_r)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate <= 1):
        raise ValueError(f"learning_rate must be in (0, 1], got {learning_rate!r}")
    rows = load_chat_rows(dataset_path)
    base = _base_ref(base_model)
    out = Path(output_dir)

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from ._config import trl_config

    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    except Exception as exc:  # transformers raises many kinds; one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot load base model {base}: {first}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    template = getattr(tokenizer, "chat_template", None) or ""
    if not template:
        raise ValueError(f"base model {base} has no chat template; SFT on chat rows needs one")
    assistant_only = bool(_GENERATION_MARKER.search(template))

    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=lora_r,
            lora_alpha=lora_alpha or 2 * lora_r,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )

    class _Steps(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if on_step is not None and logs and "loss" in logs:
                on_step(int(state.global_step), float(logs["loss"]))

    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".sft-work.", dir=out.parent))
    try:
        args = trl_config(
            SFTConfig,
            output_dir=str(work),
            max_steps=max_steps,
            per_device_train_batch_size=min(batch_size, len(rows)),
            gradient_accumulation_steps=1,
            learning_rate=float(learning_rate),
            lr_scheduler_type="constant",
            warmup_steps=0,
            logging_steps=1,
            max_length=max_length,
            assistant_only_loss=assistant_only,
            packing=False,
            dataset_num_proc=None,
            seed=seed,
            data_seed=seed,
            dataloader_pin_memory=False,
            save_only_model=True,
        )
        with warnings.catch_warnings():  # peft uses an API transformers 5 deprecated
            warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
            trainer = SFTTrainer(
                model=model,
                args=args,
                train_dataset=Dataset.from_list(rows),
                processing_class=tokenizer,
                peft_config=peft_config,
                callbacks=[_Steps()],
            )
        if len(trainer.train_dataset) == 0:
            raise ValueError(
                f"no row of {dataset_path} keeps an assistant token within max_length="
                f"{max_length} tokens; raise max_length"
            )
        trainer.remove_callback(PrinterCallback)  # metrics are returned, not printed
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        started = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - started
        trainer.save_model(str(out))
        tokenizer.save_pretrained(str(out))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    loss = losses[-1] if losses else float(result.training_loss)
    if not math.isfinite(loss):
        raise ValueError(f"training diverged: loss is {loss}")
    return {
        "loss": loss,
        "train_loss": float(result.training_loss),
        "steps": int(result.global_step),
        "seconds": round(seconds, 3),
        "rows": len(rows),
        "lora": bool(lora),
        "trainable_params": int(trainable),
        "base_model": base,
        "assistant_only_loss": assistant_only,
    }
