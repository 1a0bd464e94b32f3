"""The tool-calling student: a tiny model whose chat template TRL parses tool calls from, oracle
demonstrations written as tool calls, and the SFT warm start on them.

The template is TRL's own copy of Qwen2.5's (``<tool_call>{"name": ..., "arguments": ...}
</tool_call>``), so ``GRPOTrainer`` recognises it and parses the student's calls with its Qwen
response parser. ``<tool_call>``, ``</tool_call>``, ``<tool_response>`` and ``</tool_response>``
are single tokens, which a model this small learns to emit far sooner than their characters.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ._env import RolloutContext, ScenarioEnv

__all__ = [
    "TOOL_TOKENS",
    "oracle_demonstrations",
    "tool_schemas",
    "warm_start",
    "write_demonstrations",
    "write_tool_model",
]

TOOL_TOKENS: tuple[str, ...] = (
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
)

#: What a demonstration's last assistant turn says once the task is over.
FINISHED = "Done."


def _chat_templates() -> tuple[str, str]:
    """TRL's Qwen2.5 chat template and its training variant (with generation markers)."""
    from trl.chat_template_utils import qwen2_5_chat_template, qwen2_5_training_chat_template

    return qwen2_5_chat_template, qwen2_5_training_chat_template


def write_tool_model(
    out_dir: str | os.PathLike[str], corpus: Iterable[str] | None = None, **shape: Any
) -> Path:
    """A tiny random model (:func:`~pytest_teach.train.build_tiny_model`) whose chat template
    supports tools in the format TRL parses, written to ``out_dir`` atomically.

    ``shape`` takes ``build_tiny_model``'s keyword arguments (``hidden_size``, ``seed``...).

    Raises:
        ValueError: a bad shape argument.
    """
    from ..train import build_tiny_model

    template, _ = _chat_templates()
    target = Path(out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    from ..train import DEFAULT_CORPUS

    texts = list(DEFAULT_CORPUS if corpus is None else corpus)
    texts += [
        '<tool_call>\n{"name": "act", "arguments": {"action": "forward"}}\n</tool_call>',
        '<tool_call>\n{"name": "click", "arguments": {"ref": "e12"}}\n</tool_call>',
        "<tool_response>\nMission: go to the red ball\nYou see:\n</tool_response>",
    ]
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build_tiny_model(tmp, texts, **shape)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tmp)
        model = AutoModelForCausalLM.from_pretrained(tmp)
        tokenizer.add_tokens(list(TOOL_TOKENS))
        model.resize_token_embeddings(len(tokenizer))
        model.config.vocab_size = len(tokenizer)
        tokenizer.chat_template = template
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _tool_methods(env: ScenarioEnv) -> list[Any]:
    """The environment's tools, as TRL finds them (public methods but reset and get_reward)."""
    return [
        getattr(env, name)
        for name, _ in inspect.getmembers(type(env), predicate=inspect.isfunction)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    ]


def tool_schemas(env_class: type[ScenarioEnv]) -> list[dict[str, Any]]:
    """The JSON schemas of ``env_class``'s tools, as TRL renders them into the prompt."""
    from transformers.utils import get_json_schema

    env = env_class(RolloutContext(None, {}))
    return [get_json_schema(method) for method in _tool_methods(env)]


def oracle_demonstrations(
    env_class: type[ScenarioEnv],
    tasks: Sequence[str],
    *,
    options: dict[str, Any] | None = None,
    successful_only: bool = True,
) -> list[dict[str, Any]]:
    """The family's oracle on each task, as tool-calling SFT rows: ``{"messages", "tools"}``
    (``tools`` a JSON string, as TRL's ``SFTTrainer`` reads it).

    Each row is the conversation the policy would have in GRPO: the instructions, the first
    observation, then one assistant tool call and its observation per step, and a last
    assistant turn (``"Done."``) once the task is over. The oracle is the family's
    ``_oracle()`` (the gridworld's BabyAI bot); tasks it doesn't finish are left out with
    ``successful_only``.

    Raises:
        ValueError: the family has no oracle.
    """
    if getattr(env_class, "_oracle", None) is None:
        raise ValueError(f"{env_class.__name__} has no oracle (_oracle) to demonstrate with")
    context = RolloutContext(
        None, {t: t for t in tasks}, options={**(options or {}), "oracle": True}
    )
    env = env_class(context)
    tools = json.dumps(tool_schemas(env_class))
    rows = []
    try:
        for task in tasks:
            observation = env.reset(task=task)
            messages: list[dict[str, Any]] = [
                {"role": "system", "content": env_class.instructions},
                {"role": "user", "content": observation},
            ]
            success = False
            while not env._finished():
                call = env._oracle()
                if call is None:
                    break
                name, arguments = call
                result = getattr(env, name)(**arguments)
                messages.append(
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [
                            {"type": "function", "function": {"name": name, "arguments": arguments}}
                        ],
                    }
                )
                messages.append({"role": "tool", "name": name, "content": result})
            success = env._succeeded()
            if successful_only and not success:
                continue
            messages.append({"role": "assistant", "content": FINISHED})
            rows.append({"messages": messages, "tools": tools, "task": task})
    finally:
        env._close()
    return rows


def write_demonstrations(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write demonstration rows as JSONL, atomically (the ``teach train sft`` row shape plus a
    ``tools`` column)."""
    from .._util import json_line

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(json_line(row) for row in rows)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _json_arguments(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with each tool call's arguments as their JSON text."""

    def as_text(call: dict[str, Any]) -> dict[str, Any]:
        arguments = call["function"]["arguments"]
        if isinstance(arguments, str):
            return call
        text = json.dumps(arguments, ensure_ascii=False)
        return {**call, "function": {**call["function"], "arguments": text}}

    return [
        {**m, "tool_calls": [as_text(c) for c in m["tool_calls"]]} if m.get("tool_calls") else m
        for m in messages
    ]


def warm_start(
    rows: Sequence[dict[str, Any]],
    base_model: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    max_steps: int = 30,
    learning_rate: float = 3e-3,
    batch_size: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """SFT ``base_model`` (a tool-calling model, :func:`write_tool_model`) on demonstration rows
    with TRL's ``SFTTrainer``, every weight trained and the loss on the assistant's turns only;
    the result, saved to ``output_dir``, keeps the tool-calling chat template GRPO parses.

    Returns:
        :func:`~pytest_teach.train.train_model`-style metrics (``loss``, ``steps``, ``seconds``,
        ``rows``).

    Raises:
        ValueError: no rows, or a base model without the tool-calling template.
    """
    if not rows:
        raise ValueError("no demonstrations to warm-start on")
    from trl import SFTConfig, SFTTrainer

    from ..train import fit_trl, load_base

    template, training_template = _chat_templates()
    model, tokenizer = load_base(str(base_model))
    if tokenizer.chat_template != template:
        raise ValueError(
            f"{base_model} doesn't have the tool-calling chat template; build one with "
            "`teach model init-tiny --tools`"
        )
    # A dataset merges the argument objects of different tools into one struct, filling the
    # keys a call lacks with null (a click would learn ``"answer": null``): the arguments travel
    # as their JSON text, which the training template writes as it is (what ``tojson`` writes).
    rendered = "{{- tool_call.arguments | tojson }}"
    if rendered not in training_template:
        raise ValueError("TRL's Qwen2.5 training template no longer renders tool-call arguments")
    tokenizer.chat_template = training_template.replace(
        rendered,
        "{%- if tool_call.arguments is string %}{{- tool_call.arguments }}"
        "{%- else %}{{- tool_call.arguments | tojson }}{%- endif %}",
    )
    out = Path(output_dir)
    data = [{"messages": _json_arguments(r["messages"]), "tools": r["tools"]} for r in rows]
    metrics = fit_trl(
        "sft",
        SFTConfig,
        SFTTrainer,
        model,
        tokenizer,
        data,
        out,
        max_steps=max_steps,
        learning_rate=learning_rate,
        seed=seed,
        peft_config=None,
        on_step=None,
        config={
            "per_device_train_batch_size": min(batch_size, len(data)),
            "max_length": 2048,
            "assistant_only_loss": True,
            "packing": False,
            "dataset_num_proc": None,
            "use_cpu": True,
            "bf16": False,
        },
    )
    tokenizer.chat_template = template
    tokenizer.save_pretrained(str(out))
    return {**metrics, "rows": len(data)}
