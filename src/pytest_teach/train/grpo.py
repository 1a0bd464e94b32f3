"""Group relative policy optimisation with TRL's ``GRPOTrainer`` + ``GRPOConfig``, CPU-safe.

:func:`train_grpo` reads the ``grpo`` export (one ``{"prompt": [messages], "scenario": ...}`` row
per line), validates every line, builds a :class:`trl.GRPOConfig` with
:func:`~pytest_teach.train._config.trl_config` (``per_device_train_batch_size`` a multiple of
``num_generations``, so every process holds whole groups) and runs ``GRPOTrainer`` with the given
reward functions. The tokenizer pads on the left, as batched generation needs.

:func:`tool_selection_reward` scores completions of the bundled tool-selection prompts; see its
docstring for the shaping that gives a tiny, untrained model a signal.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
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

__all__ = [
    "GRPODataError",
    "RewardFunc",
    "load_prompt_rows",
    "scenario_for",
    "tool_selection_reward",
    "train_grpo",
]

#: TRL's reward function protocol: ``f(prompts, completions, **columns) -> list[float | None]``.
RewardFunc = Callable[..., "list[float | None]"]

#: String columns of the ``grpo`` export kept for reward functions (``""`` when absent).
_COLUMNS = ("scenario", "nodeid", "category", "params", "meta")


class GRPODataError(ValueError):
    """The GRPO dataset is unusable; the message names the file and line."""


def load_prompt_rows(path: str | os.PathLike[str]) -> list[dict]:
    """Read and validate a prompt-only JSONL file (the ``grpo`` export).

    Each line needs ``"prompt"``: a list of chat messages (or a plain string). The string
    columns ``scenario``, ``nodeid``, ``category``, ``params`` and ``meta`` are kept (empty when
    absent) and reach reward functions as keyword arguments.

    Raises:
        GRPODataError: the file is missing or empty, or a line is malformed (file and line named).
    """
    rows = []
    kinds: set[str] = set()
    for where, row in read_jsonl(path, GRPODataError):
        if "prompt" not in row:
            raise GRPODataError(f'{where}: missing field prompt (expected {{"prompt", ...}})')
        prompt = row["prompt"]
        if isinstance(prompt, str):
            if not prompt:
                raise GRPODataError(f"{where}: prompt is empty")
            kinds.add("text")
        else:
            prompt = check_messages(prompt, "prompt", where, GRPODataError)
            kinds.add("chat")
        if len(kinds) > 1:
            raise GRPODataError(f"{where}: prompts mix plain strings and chat messages")
        clean: dict[str, Any] = {"prompt": prompt}
        for column in _COLUMNS:
            value = row.get(column, "")
            if value is None:
                value = ""
            if not isinstance(value, str):
                value = json.dumps(value, ensure_ascii=False, sort_keys=True)
            clean[column] = value
        rows.append(clean)
    return rows


_SCENARIO_ID = re.compile(r"\[([^\[\]]+)\]$")


def scenario_for(name: str | None) -> Any:
    """The tool-selection :class:`~pytest_teach.envs.tool_selection.Scenario` a row's
    ``scenario`` column names (``tool_selection[weather-001]`` or ``weather-001``), else
    ``None``."""
    from ..envs import tool_selection

    if not name:
        return None
    match = _SCENARIO_ID.search(name)
    key = match.group(1) if match else name
    return {s.id: s for s in tool_selection.SCENARIOS}.get(key)


_PLAN_CHARS = frozenset('{}[]":,_ abcdefghijklmnopqrstuvwxyz')


def tool_selection_reward(
    prompts: Sequence[Any], completions: Sequence[Any], scenario: Sequence[str], **_: Any
) -> list[float | None]:
    """Reward tool-selection plans: a GRPO reward function for the ``grpo`` export's rows.

    The row's ``scenario`` column (``tool_selection[weather-001]``) picks the scenario; an
    unknown one gets ``None`` (TRL ignores it). A completion that
    :func:`~pytest_teach.envs.tool_selection.parse_plan` accepts scores
    ``0.5 + 0.5 * check(scenario, tools).reward`` (0.5 to 1.0). Any other completion earns
    partial credit below 0.5, so the mostly unparseable output of a small, untrained model
    still varies within a group and GRPO gets a signal:

    - 0.05 * the share of its characters that can appear in a plan (``{}[]":,_``, space,
      lowercase letters);
    - 0.05 if it starts with ``{``; 0.1 if it is valid JSON; 0.1 if it contains ``{"tools":``;
    - 0.15 * the share of the scenario's expected tool names it mentions, minus 0.05 * the
      number of other known tool names it mentions (not below 0).
    """
    from ..envs import tool_selection as ts
    from ..rewards import completion_text

    rewards: list[float | None] = []
    for completion, name in zip(completions, scenario, strict=True):
        case = scenario_for(name)
        if case is None:
            rewards.append(None)
            continue
        text = completion_text(completion).strip()
        try:
            tools = ts.parse_plan(text)
        except ts.PlanParseError:
            pass
        else:
            rewards.append(0.5 + 0.5 * ts.check(case, tools).reward)
            continue
        score = 0.0
        if text:
            score += 0.05 * sum(c in _PLAN_CHARS for c in text) / len(text)
        if text.startswith("{"):
            score += 0.05
        try:
            json.loads(text)
            score += 0.1
        except json.JSONDecodeError:
            pass
        if re.search(r'\{\s*"tools"\s*:', text):
            score += 0.1
        mentioned = {tool.name for tool in ts.TOOLS if tool.name in text}
        expected = set(case.expected)
        if expected:
            score += 0.15 * len(mentioned & expected) / len(expected)
        score = max(0.0, score - 0.05 * len(mentioned - expected))
        rewards.append(round(min(score, 0.49), 6))
    return rewards


def _vllm_config(mode: str | None, server_url: str | None) -> dict[str, Any]:
    """``GRPOConfig``'s vLLM fields for ``mode``; one-line errors for a bad combination or a
    missing vLLM."""
    if mode is None:
        if server_url is not None:
            raise ValueError("vllm_server_url needs vllm_mode='server'")
        return {}
    if mode not in ("colocate", "server"):
        raise ValueError(f"vllm_mode must be 'colocate' or 'server', got {mode!r}")
    if server_url is not None and mode != "server":
        raise ValueError("vllm_server_url needs vllm_mode='server'")
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise ValueError(
            f"vllm_mode={mode!r} needs vLLM, which is not installed: pip install 'trl[vllm]' "
            "(CUDA GPUs only)"
        )
    config: dict[str, Any] = {"use_vllm": True, "vllm_mode": mode}
    if server_url is not None:
        config["vllm_server_base_url"] = server_url
    return config


def train_grpo(
    dataset_path: str | os.PathLike[str],
    base_model: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    reward_funcs: RewardFunc | Sequence[RewardFunc] = tool_selection_reward,
    max_steps: int = 1,
    num_generations: int = 4,
    max_completion_length: int = 32,
    lora: bool = True,
    learning_rate: float = 2e-4,
    batch_size: int = 1,
    beta: float = 0.0,
    temperature: float = 1.0,
    lora_r: int = 8,
    lora_alpha: int | None = None,
    seed: int = 0,
    on_step: StepCallback | None = None,
    vllm_mode: str | None = None,
    vllm_server_url: str | None = None,
) -> dict[str, Any]:
    """Train ``base_model`` with GRPO on the prompts in ``dataset_path``.

    Args:
        dataset_path: JSONL of prompt rows (the ``grpo`` export; see :func:`load_prompt_rows`).
        base_model: a local model directory or a hub id.
        output_dir: where the result is saved; it loads as ``hf:<output_dir>``.
        reward_funcs: TRL reward functions (``f(prompts, completions, **columns)``); the
            default scores tool-selection plans (:func:`tool_selection_reward`).
        max_steps: optimiser steps.
        num_generations: completions sampled per prompt (the group), at least 2.
        max_completion_length: longest completion in tokens.
        lora: train a LoRA adapter instead of every weight.
        learning_rate: AdamW learning rate.
        batch_size: prompts per step per process;
            ``per_device_train_batch_size = batch_size * num_generations``.
        beta: KL coefficient (``0.0``, TRL's default, needs no reference model).
        temperature: sampling temperature.
        lora_r: LoRA rank; ``lora_alpha`` defaults to ``2 * lora_r``.
        seed: the training seed.
        on_step: called after each logged step with ``(step, loss)``.
        vllm_mode: generate with vLLM (GPU only; ``GRPOConfig(use_vllm=True, vllm_mode=...)``):
            ``colocate`` runs it inside each training process, ``server`` asks a ``trl
            vllm-serve`` server; ``None`` generates with transformers.
        vllm_server_url: the server's base URL for ``vllm_mode="server"``
            (``GRPOConfig.vllm_server_base_url``; TRL's default: ``http://0.0.0.0:8000``).

    Returns:
        JSON-ready metrics: ``loss``, ``train_loss``, ``steps``, ``seconds``, ``rows``, ``lora``,
        ``trainable_params``, ``base_model``, ``num_generations`` and, when logged, ``reward``
        and ``reward_std`` (the last step's mean and spread).

    Raises:
        GRPODataError: the dataset is malformed (file and line named).
        ValueError: an argument is out of range or the base model can't be loaded.
    """
    check_args(max_steps, batch_size, lora_r, learning_rate)
    for name, value in (
        ("num_generations", num_generations),
        ("max_completion_length", max_completion_length),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if num_generations < 2:
        raise ValueError(
            f"num_generations must be >= 2 (GRPO compares a group), got {num_generations}"
        )
    vllm = _vllm_config(vllm_mode, vllm_server_url)
    funcs = [reward_funcs] if callable(reward_funcs) else list(reward_funcs)
    if not funcs or not all(callable(f) for f in funcs):
        raise ValueError("reward_funcs must be a callable or a non-empty list of callables")
    rows = load_prompt_rows(dataset_path)
    base = base_ref(base_model)
    out = Path(output_dir)

    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = load_base(base)
    tokenizer.padding_side = "left"
    metrics = fit_trl(
        "grpo",
        GRPOConfig,
        GRPOTrainer,
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
            "per_device_train_batch_size": batch_size * num_generations,
            "num_generations": num_generations,
            "max_completion_length": max_completion_length,
            "temperature": float(temperature),
            "beta": float(beta),
            **vllm,
        },
        trainer_args={"reward_funcs": funcs},
        keys=("reward", "reward_std", "frac_reward_zero_std", "checks/"),
    )
    return {
        **metrics,
        "rows": len(rows),
        "lora": bool(lora),
        "base_model": base,
        "num_generations": num_generations,
    }
