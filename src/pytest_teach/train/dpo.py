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

import json
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .sft import StepCallback, _base_ref

__all__ = ["DPODataError", "load_preference_rows", "train_dpo"]

_ROLES = ("system", "user", "assistant", "tool")
_FIELDS = ("prompt", "chosen", "rejected")


class DPODataError(ValueError):
    """The DPO dataset is unusable; the message names the file and line."""


def read_jsonl(
    path: str | os.PathLike[str], error: type[ValueError]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(where, row)`` for each non-blank line of a JSONL file (``where`` is
    ``"<file> line N"``); raise ``error`` for a missing/unreadable file, a line that isn't JSON
    or isn't an object, and a file without rows."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{p}: no such dataset file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{p}: cannot read the dataset ({exc})") from None
    seen = False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{p} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise error(f"{where}: expected a JSON object, got {type(row).__name__}")
        seen = True
        yield where, row
    if not seen:
        raise error(f"{p}: the dataset has no rows")


def check_messages(value: Any, field: str, where: str, error: type[ValueError]) -> list[dict]:
    """``value`` as a non-empty list of ``{"role", "content"}`` messages, else ``error``."""
    if not isinstance(value, list) or not value:
        raise error(f"{where}: {field} must be a non-empty list of chat messages")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise error(f"{where}: {field}[{i}] is not an object")
        if message.get("role") not in _ROLES:
            raise error(
                f"{where}: {field}[{i}].role must be one of {', '.join(_ROLES)}, "
                f"got {message.get('role')!r}"
            )
        if not isinstance(message.get("content"), str):
            raise error(f"{where}: {field}[{i}].content must be a string")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


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


def check_args(max_steps: int, batch_size: int, lora_r: int, learning_rate: float) -> None:
    """Raise ``ValueError`` for an out-of-range training argument."""
    for name, value in (("max_steps", max_steps), ("batch_size", batch_size), ("lora_r", lora_r)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate <= 1):
        raise ValueError(f"learning_rate must be in (0, 1], got {learning_rate!r}")


def load_base(base: str) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of a base model in float32, with a pad token; one-line errors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    except Exception as exc:  # transformers raises many kinds; one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot load base model {base}: {first}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"base model {base} has no chat template; chat rows need one")
    return model, tokenizer


def lora_config(lora: bool, lora_r: int, lora_alpha: int | None) -> Any:
    """A PEFT ``LoraConfig`` over all linear layers, or ``None`` for full fine-tuning."""
    if not lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=lora_r,
        lora_alpha=lora_alpha or 2 * lora_r,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def step_callback(on_step: StepCallback | None) -> Any:
    """A ``TrainerCallback`` that calls ``on_step(step, loss)`` for each logged step."""
    from transformers import TrainerCallback

    class _Steps(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if on_step is not None and logs and "loss" in logs:
                on_step(int(state.global_step), float(logs["loss"]))

    return _Steps()


def run_trainer(
    trainer: Any, tokenizer: Any, out: Path, keys: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Train, save the model and tokenizer to ``out``, return the common metrics plus the last
    logged value of each of ``keys`` (renamed ``a/b`` -> ``a_b``)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # metrics are returned, not printed
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    started = time.perf_counter()
    with warnings.catch_warnings():  # peft uses an API transformers 5 deprecated
        warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
        result = trainer.train()
    seconds = time.perf_counter() - started
    trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(out))
    history = trainer.state.log_history
    losses = [float(e["loss"]) for e in history if "loss" in e]
    loss = losses[-1] if losses else float(result.training_loss)
    if not math.isfinite(loss):
        raise ValueError(f"training diverged: loss is {loss}")
    metrics: dict[str, Any] = {
        "loss": loss,
        "train_loss": float(result.training_loss),
        "steps": int(result.global_step),
        "seconds": round(seconds, 3),
        "trainable_params": int(trainable),
    }
    for key in keys:
        values = [float(e[key]) for e in history if key in e]
        if values and math.isfinite(values[-1]):
            metrics[key.replace("/", "_")] = values[-1]
    return metrics


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
    base = _base_ref(base_model)
    out = Path(output_dir)

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from ._config import trl_config

    model, tokenizer = load_base(base)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".dpo-work.", dir=out.parent))
    try:
        args = trl_config(
            DPOConfig,
            output_dir=str(work),
            max_steps=max_steps,
            per_device_train_batch_size=min(batch_size, len(rows)),
            gradient_accumulation_steps=1,
            learning_rate=float(learning_rate),
            lr_scheduler_type="constant",
            warmup_steps=0,
            logging_steps=1,
            beta=float(beta),
            max_length=max_length,
            dataset_num_proc=None,
            seed=seed,
            data_seed=seed,
            dataloader_pin_memory=False,
            save_only_model=True,
        )
        with warnings.catch_warnings():  # peft uses an API transformers 5 deprecated
            warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
            trainer = DPOTrainer(
                model=model,
                args=args,
                train_dataset=Dataset.from_list(rows),
                processing_class=tokenizer,
                peft_config=lora_config(lora, lora_r, lora_alpha),
                callbacks=[step_callback(on_step)],
            )
        metrics = run_trainer(
            trainer, tokenizer, out, keys=("rewards/accuracies", "rewards/margins")
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**metrics, "rows": len(rows), "lora": bool(lora), "base_model": base, "beta": beta}
