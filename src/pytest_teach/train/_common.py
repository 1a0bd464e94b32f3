"""What the SFT, DPO and GRPO layers share: reading JSONL datasets with file/line errors, loading
the base model, the LoRA config, the step callback, and running a TRL trainer to a saved model
(:func:`fit_trl`: the config every trainer gets, the scratch folder, training and saving).

Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_ROLES = ("system", "user", "assistant", "tool")

#: Called after each optimiser step with ``(step, loss or None)``.
StepCallback = Callable[[int, "float | None"], None]

#: The folder name of the cached tiny base model (``<cache>/tiny-base``).
TINY_BASE_NAME = "tiny-base"


def ensure_tiny_base(cache_dir: str | os.PathLike[str]) -> Path:
    """The tiny local base model under ``cache_dir/tiny-base``, built on first use (offline).

    It is built in a temporary folder beside it and renamed into place, so a crash never leaves a
    half-written model and concurrent callers agree on one.
    """
    target = Path(cache_dir) / TINY_BASE_NAME
    if (target / "config.json").is_file():
        return target.resolve()
    from .tiny import write_tiny_model

    write_tiny_model(target, replace=False)
    return target.resolve()


def base_ref(base_model: str | os.PathLike[str]) -> str:
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
    logged value of each of ``keys`` (renamed ``a/b`` -> ``a_b``); a key ending in ``/`` takes
    every logged key under that prefix.

    Under several processes every rank trains on its shard of each batch (accelerate's
    distributed sampler), the logged loss is the mean over the ranks, and only rank 0 writes the
    model; each rank writes its log (:class:`~pytest_teach.train._dist.RankLog`) to
    ``out/ranks/rank-K.json``, also when training fails."""
    from transformers.trainer_callback import PrinterCallback

    from ._dist import RankLog, ranks

    trainer.remove_callback(PrinterCallback)  # metrics are returned, not printed
    here = ranks()
    log = RankLog(here)
    log.trace(trainer)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():  # peft uses an API transformers 5 deprecated
            warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
            result = trainer.train()
    except BaseException as exc:
        with contextlib.suppress(OSError):
            log.write(out, error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        raise
    seconds = time.perf_counter() - started
    trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(out))
    log.write(out)
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
    logged = {k for e in history for k in e}
    wanted = [k for k in keys if not k.endswith("/")]
    wanted += sorted(k for k in logged for p in keys if p.endswith("/") and k.startswith(p))
    for key in wanted:
        values = [float(e[key]) for e in history if key in e]
        if values and math.isfinite(values[-1]):
            metrics[key.replace("/", "_")] = values[-1]
    return metrics


def fit_trl(
    name: str,
    config_cls: type,
    trainer_cls: type,
    model: Any,
    tokenizer: Any,
    rows: list[dict],
    out: Path,
    *,
    max_steps: int,
    learning_rate: float,
    seed: int,
    peft_config: Any,
    on_step: StepCallback | None,
    config: dict[str, Any],
    trainer_args: dict[str, Any] | None = None,
    keys: tuple[str, ...] = (),
    check: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` on ``rows`` with a TRL trainer and save the result to ``out``.

    ``config_cls`` (``SFTConfig``, ``DPOConfig``, ``GRPOConfig``) gets the settings every run
    shares (constant learning rate, no warm-up, a log line per step, ``seed`` for model and data,
    only the model saved) plus ``config``; its checkpoints go to a scratch folder beside ``out``
    (``.<name>-work.*``), removed afterwards. ``trainer_cls`` gets the rows as a dataset, the
    tokenizer, ``peft_config``, a step callback and ``trainer_args``; ``check(trainer)`` runs
    before training. Returns :func:`run_trainer`'s metrics (with ``keys``).
    """
    from datasets import Dataset

    from ._config import trl_config
    from ._dist import join_process_group, ranks

    if ranks().distributed:  # before TRL does, so the collectives wait TEACH_DIST_TIMEOUT at most
        join_process_group()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-work.", dir=out.parent))
    try:
        args = trl_config(
            config_cls,
            output_dir=str(work),
            max_steps=max_steps,
            gradient_accumulation_steps=1,
            learning_rate=float(learning_rate),
            lr_scheduler_type="constant",
            warmup_steps=0,
            logging_steps=1,
            seed=seed,
            data_seed=seed,
            dataloader_pin_memory=False,
            save_only_model=True,
            **config,
        )
        with warnings.catch_warnings():  # peft uses an API transformers 5 deprecated
            warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
            trainer = trainer_cls(
                model=model,
                args=args,
                train_dataset=Dataset.from_list(rows),
                processing_class=tokenizer,
                peft_config=peft_config,
                callbacks=[step_callback(on_step)],
                **(trainer_args or {}),
            )
        if check is not None:
            check(trainer)
        return run_trainer(trainer, tokenizer, out, keys=keys)
    finally:
        shutil.rmtree(work, ignore_errors=True)
