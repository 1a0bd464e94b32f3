"""``hf:PATH[+ADAPTER]``: a local transformers causal LM, optionally with a LoRA adapter.

``PATH`` is a model directory (``config.json`` + weights + tokenizer), or a directory holding a
PEFT adapter (``adapter_config.json``) whose base is read from ``base_model_name_or_path``.
``hf:BASE+ADAPTER`` names both explicitly. A user with network access may give a hub id instead
of a directory. Weights load once per process and stay cached; ``torch`` and ``transformers``
are imported on first use only.
"""

from __future__ import annotations

import json
import re
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._chat import ChatModel, Completion, ModelCallError
from ._spec import ModelSpec

__all__ = ["HFChat", "resolve_hf_model"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    device: str
    eos_ids: list[int]
    pad_id: int
    lock: threading.Lock = field(default_factory=threading.Lock)


#: Loaded models by ``(base, adapter)``: each is loaded once per process.
_MODELS: dict[tuple[str, str | None], _Loaded] = {}
_LOAD_LOCK = threading.Lock()


def _adapter_base(adapter_dir: Path) -> str:
    config_path = adapter_dir / "adapter_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read adapter config {config_path}: {exc}") from None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not isinstance(base, str) or not base:
        raise ValueError(f"{config_path} has no base_model_name_or_path; use hf:BASE+{adapter_dir}")
    return base


def _check_base(base: str, spec: str) -> str:
    path = Path(base).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(
                f"{spec}: {path} is not a transformers model directory (no config.json)"
            )
        return str(path.resolve())
    if path.exists():
        raise ValueError(f"{spec}: {path} is a file, not a model directory")
    if base.startswith((".", "/", "~")) or not _HUB_ID.match(base):
        raise ValueError(f"{spec}: model directory {base} does not exist")
    return base  # a hub id: only loads with network access or a warm cache


def resolve_hf_model(name: str) -> tuple[str, str | None]:
    """``(base, adapter)`` for the part of an ``hf:`` spec after the colon.

    Raises:
        ValueError: a directory that doesn't exist, isn't a model or adapter, or an adapter
            config without a base model.
    """
    spec = f"hf:{name}"
    raw = name.strip()
    if not raw:
        raise ValueError("hf: spec needs a model directory, e.g. hf:./models/tiny")
    adapter: str | None = None
    base = raw
    if "+" in raw and not Path(raw).expanduser().exists():
        base, _, adapter = raw.rpartition("+")
        if not base or not adapter:
            raise ValueError(f"{spec}: expected hf:BASE+ADAPTER_DIR")
    if adapter is None:
        path = Path(base).expanduser()
        if (path / "adapter_config.json").is_file():
            adapter = str(path.resolve())
            base = _adapter_base(path)
    else:
        adapter_path = Path(adapter).expanduser()
        if not (adapter_path / "adapter_config.json").is_file():
            raise ValueError(
                f"{spec}: adapter directory {adapter} has no adapter_config.json"
                if adapter_path.is_dir()
                else f"{spec}: adapter directory {adapter} does not exist"
            )
        adapter = str(adapter_path.resolve())
    return _check_base(base, spec), adapter


def _load(base: str, adapter: str | None) -> _Loaded:
    key = (base, adapter)
    loaded = _MODELS.get(key)
    if loaded is not None:
        return loaded
    with _LOAD_LOCK:
        loaded = _MODELS.get(key)
        if loaded is not None:
            return loaded
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.float32
        if device == "cuda" and torch.cuda.is_bf16_supported():
            dtype = torch.bfloat16
        tokenizer_dir = base
        if adapter is not None and (Path(adapter) / "tokenizer_config.json").is_file():
            tokenizer_dir = adapter
        where = f"{base}+{adapter}" if adapter else base
        try:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
            model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
            if adapter is not None:
                from peft import PeftModel

                with warnings.catch_warnings():  # peft uses an API transformers 5 deprecated
                    warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
                    model = PeftModel.from_pretrained(model, adapter)
        except Exception as exc:  # transformers/peft raise many kinds; one clear line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"cannot load model {where}: {first}") from exc
        model.to(device)
        model.eval()
        eos = getattr(model.generation_config, "eos_token_id", None)
        eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos_ids:
            eos_ids.append(tokenizer.eos_token_id)
        pad_id = tokenizer.pad_token_id
        if pad_id is None:
            pad_id = eos_ids[0] if eos_ids else 0
        loaded = _Loaded(model, tokenizer, device, eos_ids, pad_id)
        _MODELS[key] = loaded
        return loaded


@dataclass
class Generation:
    """A raw generation: the reply, its token counts and why it stopped."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end of turn) or "length" (max_tokens reached)


class HFChat(ChatModel):
    """A local transformers chat model (CPU, or CUDA when available).

    Replies are greedy at ``temperature=0`` (sampled otherwise) from the tokenizer's chat
    template. With ``valid_actions``, :meth:`complete` also scores each action as the whole
    assistant reply (teacher-forced log-likelihood, end-of-turn token included, one batched
    forward pass) and softmaxes the scores into ``action_probs``.
    """

    def __init__(self, path: str, adapter: str | None = None) -> None:
        name = path if adapter is None else f"{path}+{adapter}"
        self.spec = f"hf:{name}"
        self.base, self.adapter = resolve_hf_model(name)

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> HFChat:
        """Build from ``hf:PATH`` or ``hf:PATH+ADAPTER_DIR``."""
        return cls(spec.name)

    def load(self) -> HFChat:
        """Load the weights now (they load on the first call otherwise); returns ``self``.

        Raises:
            ValueError: the model or adapter can't be loaded (one line naming it).
        """
        _load(self.base, self.adapter)
        return self

    def release(self) -> None:
        """Drop the loaded weights from this process's cache (the next call loads them again):
        for a caller that loads many short-lived models, such as micro-trained students."""
        with _LOAD_LOCK:
            _MODELS.pop((self.base, self.adapter), None)

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (loads the model)."""
        return _load(self.base, self.adapter).tokenizer

    # -- prompt ----------------------------------------------------------------------------

    @staticmethod
    def _prompt_ids(loaded: _Loaded, messages: list[dict[str, str]]) -> list[int]:
        tokenizer = loaded.tokenizer
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_length(self, messages: list[dict[str, str]]) -> int:
        """How many tokens ``messages`` take as a prompt (generation prompt included)."""
        return len(self._prompt_ids(self._loaded(), messages))

    @property
    def context_length(self) -> int | None:
        """The longest sequence (prompt plus reply) the model takes, in tokens, or ``None``
        when its config doesn't say."""
        config = self._loaded().model.config
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def _loaded(self) -> _Loaded:
        try:
            return _load(self.base, self.adapter)
        except ValueError as exc:
            raise ModelCallError("bad_request", str(exc)) from exc

    # -- generation ------------------------------------------------------------------------

    def generate(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Callable[[], bool] | None = None,
    ) -> Generation:
        """Generate one reply (greedy at ``temperature <= 0``). ``stop`` is asked after every
        token; when it returns true, generation ends there (a server's client has gone)."""
        import torch
        from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), bool(stop and stop()), dtype=torch.bool)

        if max_tokens < 1:
            raise ModelCallError("bad_request", f"max_tokens must be >= 1, got {max_tokens}")
        loaded = self._loaded()
        prompt_ids = self._prompt_ids(loaded, messages)
        sample = temperature > 0
        config = GenerationConfig(
            max_new_tokens=int(max_tokens),
            do_sample=sample,
            temperature=float(temperature) if sample else 1.0,
            top_k=0 if sample else None,
            top_p=1.0,
            eos_token_id=loaded.eos_ids or None,
            pad_token_id=loaded.pad_id,
        )
        with loaded.lock, torch.inference_mode():
            input_ids = torch.tensor([prompt_ids], device=loaded.device)
            output = loaded.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=config,
                stopping_criteria=StoppingCriteriaList([_Stop()]) if stop else None,
            )
        new = output[0, len(prompt_ids) :].tolist()
        finish = "length"
        for i, token in enumerate(new):
            if token in loaded.eos_ids:
                new = new[: i + 1]
                finish = "stop"
                break
        content = [t for t in new if t not in loaded.eos_ids]
        text = loaded.tokenizer.decode(content, skip_special_tokens=True)
        return Generation(text, len(prompt_ids), len(new), finish)

    def action_probs(
        self, messages: list[dict[str, str]], valid_actions: Sequence[str]
    ) -> dict[str, float]:
        """P(reply == action) for each action, normalised over ``valid_actions``.

        Each action's score is the summed log-probability of its tokens plus the end-of-turn
        token after the generation prompt; a softmax over the scores gives the distribution.
        """
        import torch

        actions = list(dict.fromkeys(str(a) for a in valid_actions))
        if not actions:
            return {}
        loaded = self._loaded()
        prompt_ids = self._prompt_ids(loaded, messages)
        end = loaded.eos_ids[:1]
        replies = [
            list(loaded.tokenizer(a, add_special_tokens=False)["input_ids"]) + end for a in actions
        ]
        width = max(len(r) for r in replies)
        start = len(prompt_ids)
        rows = [prompt_ids + r + [loaded.pad_id] * (width - len(r)) for r in replies]
        masks = [[1] * (start + len(r)) + [0] * (width - len(r)) for r in replies]
        targets = [r + [0] * (width - len(r)) for r in replies]
        keep = [[1.0] * len(r) + [0.0] * (width - len(r)) for r in replies]
        with loaded.lock, torch.inference_mode():
            device = loaded.device
            input_ids = torch.tensor(rows, device=device)
            attention = torch.tensor(masks, device=device)
            try:  # only the logits that predict the replies (positions start-1 .. end-2)
                out = loaded.model(
                    input_ids=input_ids, attention_mask=attention, logits_to_keep=width + 1
                )
                logits = out.logits[:, :width, :]
            except TypeError:
                out = loaded.model(input_ids=input_ids, attention_mask=attention)
                logits = out.logits[:, start - 1 : start - 1 + width, :]
            logp = torch.log_softmax(logits.float(), dim=-1)
            target = torch.tensor(targets, device=device).unsqueeze(-1)
            token_lp = logp.gather(-1, target).squeeze(-1) * torch.tensor(keep, device=device)
            probs = torch.softmax(token_lp.sum(-1), dim=-1).tolist()
        return dict(zip(actions, probs, strict=True))

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        valid_actions: Sequence[str] | None = None,
    ) -> Completion:
        """Generate a reply; score ``valid_actions`` into ``action_probs`` when given.

        ``latency_ms`` covers generation and scoring, not the one-time model load.
        """
        self._loaded()
        start = time.perf_counter()
        generation = self.generate(messages, max_tokens=max_tokens, temperature=temperature)
        probs = None
        if valid_actions:
            probs = self.action_probs(messages, valid_actions)
        return Completion(
            text=generation.text,
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            latency_ms=(time.perf_counter() - start) * 1000.0,
            cost_usd=0.0,
            action_probs=probs,
        )
