"""Build a tiny, random causal language model fully offline.

The model produced here is meant for tests and smoke runs of the training pipeline
(SFT, GRPO, ...): it has the same shape of artifacts as a real Hugging Face checkpoint
(config, safetensors weights, a byte-level BPE tokenizer with a ChatML chat template and a
generation config) but is only a few hundred kilobytes and builds in well under a second.

Nothing is downloaded: the tokenizer is trained on a small in-memory corpus with the
``tokenizers`` library and the weights are randomly initialised.

Heavy dependencies (``torch``, ``transformers``, ``tokenizers``) are imported lazily inside
:func:`build_tiny_model` so importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "CHAT_TEMPLATE",
    "DEFAULT_CORPUS",
    "ENDOFTEXT",
    "EOS_TOKEN",
    "IM_END",
    "IM_START",
    "MAX_TEXTS",
    "MIN_VOCAB_SIZE",
    "PAD_TOKEN",
    "SPECIAL_TOKENS",
    "SUPPORTED_ARCHS",
    "build_tiny_model",
    "corpus_from_file",
    "corpus_from_store",
    "tiny_base_cache",
    "write_tiny_model",
]

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ENDOFTEXT = "<|endoftext|>"
SPECIAL_TOKENS: tuple[str, ...] = (IM_START, IM_END, ENDOFTEXT)
EOS_TOKEN = IM_END
PAD_TOKEN = ENDOFTEXT

SUPPORTED_ARCHS: tuple[str, ...] = ("qwen2", "llama")

#: Number of byte symbols in the byte-level alphabet; every byte-level BPE vocab has them.
_BYTE_ALPHABET_SIZE = 256
#: Smallest accepted ``vocab_size``: the byte alphabet plus the special tokens.
MIN_VOCAB_SIZE = _BYTE_ALPHABET_SIZE + len(SPECIAL_TOKENS)

#: Qwen2 pre-tokenization regex (same as ``transformers``' ``Qwen2Tokenizer``).
_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

#: ChatML template. Assistant turns (content *and* the closing ``<|im_end|>``) are wrapped in
#: ``{% generation %}`` markers so ``return_assistant_tokens_mask=True`` and TRL's
#: ``assistant_only_loss=True`` train the model to emit the end-of-turn token.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}"
    "{{- message['content'] + '<|im_end|>\\n' }}"
    "{%- endgeneration %}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)

#: Fallback tokenizer-training corpus: a little English, JSON, code and ChatML.
DEFAULT_CORPUS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "A test passes when the agent reaches the goal and fails otherwise.",
    "You are a helpful assistant. Answer the question briefly and precisely.",
    "The user asked for the weather in Paris; the assistant called a tool.",
    "Scenarios become labeled experience: each trajectory has a reward.",
    "Click the button, type the text, then press enter to submit the form.",
    "Move left, move right, turn around, pick up the key and open the door.",
    '{"role": "user", "content": "What is 2 + 2?"}',
    '{"role": "assistant", "content": "4"}',
    '{"action": "click", "selector": "#submit", "reward": 1.0, "done": true}',
    '{"name": "search", "arguments": {"query": "pytest fixtures", "limit": 10}}',
    '[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], {"ok": false, "error": null}',
    "def add(a: int, b: int) -> int:\n    return a + b\n",
    "import pytest\n\n\ndef test_add():\n    assert add(2, 2) == 4\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i)\n",
    "class Agent:\n    def act(self, observation):\n        return self.policy(observation)\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
    "<|im_start|>user\nHello! How are you?<|im_end|>\n",
    "<|im_start|>assistant\nI am fine, thank you.<|im_end|>\n",
    "0123456789 +-*/=<>()[]{}:;,.!?'\"`~@#$%^&_|\\",
)


def _validate(
    vocab_size: int, hidden_size: int, num_layers: int, num_heads: int, arch: str
) -> None:
    """Raise ``ValueError`` if the requested model shape is unusable."""
    for name, value in (
        ("vocab_size", vocab_size),
        ("hidden_size", hidden_size),
        ("num_layers", num_layers),
        ("num_heads", num_heads),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size must be >= {MIN_VOCAB_SIZE} (256 byte symbols + "
            f"{len(SPECIAL_TOKENS)} special tokens), got {vocab_size}"
        )
    if hidden_size % num_heads != 0:
        raise ValueError(
            f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})"
        )
    if (hidden_size // num_heads) % 2 != 0:
        raise ValueError(
            f"head dimension hidden_size // num_heads = {hidden_size // num_heads} must be even "
            "(rotary embeddings rotate pairs of channels)"
        )
    if arch not in SUPPORTED_ARCHS:
        raise ValueError(f"arch must be one of {SUPPORTED_ARCHS}, got {arch!r}")


def _corpus_lines(corpus: Iterable[str] | None) -> list[str]:
    """Materialise ``corpus`` as a list of non-empty strings, falling back to the default."""
    if corpus is None:
        return list(DEFAULT_CORPUS)
    if isinstance(corpus, (str, bytes)):
        raise ValueError("corpus must be an iterable of strings, not a single string")
    lines: list[str] = []
    for item in corpus:
        if not isinstance(item, str):
            raise ValueError(f"corpus items must be str, got {type(item).__name__}")
        if item:
            lines.append(item)
    return lines or list(DEFAULT_CORPUS)


def tiny_base_cache() -> Path:
    """Where ``teach train`` keeps the tiny base model it builds when no base model is given.

    The user's cache directory (``platformdirs``: ``~/.cache/pytest-teach/models`` on Linux,
    ``$XDG_CACHE_HOME`` when set; ``~/Library/Caches`` on macOS; ``%LOCALAPPDATA%`` on Windows),
    so every project and working directory shares one model instead of building one wherever
    the command runs.
    """
    import platformdirs

    return platformdirs.user_cache_path("pytest-teach", appauthor=False) / "models"


def build_tiny_model(
    out_dir: str | Path,
    corpus: Iterable[str] | None = None,
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    arch: str = "qwen2",
    seed: int = 0,
    sliding_window: int | None = None,
) -> Path:
    """Build a tiny random causal LM + byte-level BPE tokenizer fully offline and save it to out_dir.

    A byte-level BPE tokenizer is trained on ``corpus`` (or a small built-in corpus when
    ``corpus`` is ``None`` or empty) with the special tokens ``<|im_start|>``, ``<|im_end|>``
    and ``<|endoftext|>`` (``pad_token = <|endoftext|>``, ``eos_token = <|im_end|>``) and a
    ChatML chat template whose assistant turns are wrapped in ``{% generation %}`` markers.
    Padding is on the right; callers that generate in batches (GRPO) should set
    ``tokenizer.padding_side = "left"`` themselves.

    A randomly initialised ``Qwen2ForCausalLM`` (``arch="qwen2"``) or ``LlamaForCausalLM``
    (``arch="llama"``) with tied embeddings and ``vocab_size == len(tokenizer)`` is then
    saved next to the tokenizer as safetensors, together with a ``generation_config.json``.
    The result loads with ``AutoModelForCausalLM.from_pretrained(out_dir)`` and
    ``AutoTokenizer.from_pretrained(out_dir)``.

    Args:
        out_dir: Directory to write the checkpoint into (created if missing).
        corpus: Texts to train the tokenizer on.
        vocab_size: Target tokenizer vocabulary size, special tokens included. The actual
            vocabulary may be smaller if the corpus does not yield enough merges.
        hidden_size: Model width.
        num_layers: Number of decoder layers.
        num_heads: Number of attention heads (also used as number of key/value heads).
        arch: ``"qwen2"`` or ``"llama"``.
        seed: Seed for ``torch.manual_seed`` before the weights are initialised.
        sliding_window: When set (``arch="qwen2"`` only), every layer attends to the last
            ``sliding_window`` tokens only (Qwen2's sliding-window attention). A model this
            small learns a short-range mapping far faster when a long fixed prompt (a tool
            registry, say) cannot dilute its attention; ``None`` (the default) is full
            attention.

    Returns:
        The output directory as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If an argument is out of range or inconsistent.
    """
    _validate(vocab_size, hidden_size, num_layers, num_heads, arch)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if sliding_window is not None:
        if isinstance(sliding_window, bool) or not isinstance(sliding_window, int):
            raise ValueError(f"sliding_window must be an int or None, got {sliding_window!r}")
        if sliding_window < 1:
            raise ValueError(f"sliding_window must be >= 1, got {sliding_window}")
        if arch != "qwen2":
            raise ValueError(f"sliding_window needs arch='qwen2', got {arch!r}")
    lines = _corpus_lines(corpus)
    out = Path(out_dir)

    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast

    # --- tokenizer -------------------------------------------------------------------------
    # Mirror the Qwen2 pipeline exactly: ``AutoTokenizer`` rebuilds a ``Qwen2Tokenizer`` for
    # ``model_type == "qwen2"`` with this normalizer/pre-tokenizer/decoder, so the trained merges
    # must be learned under the same pre-tokenization to tokenize identically after reloading.
    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(lines, trainer=trainer, length=len(lines))

    max_positions = 2048
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START],
        padding_side="right",
        model_max_length=max_positions,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    actual_vocab = len(tokenizer)
    pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)

    # --- model -----------------------------------------------------------------------------
    config_kwargs = {
        "vocab_size": actual_vocab,
        "hidden_size": hidden_size,
        "intermediate_size": hidden_size * 2,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_heads,
        "max_position_embeddings": max_positions,
        "tie_word_embeddings": True,
        "bos_token_id": pad_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "use_cache": True,
    }
    if arch == "qwen2":
        from transformers import Qwen2Config, Qwen2ForCausalLM

        if sliding_window is not None:
            config_kwargs.update(
                use_sliding_window=True, sliding_window=sliding_window, max_window_layers=0
            )
        config = Qwen2Config(**config_kwargs)
        model_cls = Qwen2ForCausalLM
    else:
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(**config_kwargs)
        model_cls = LlamaForCausalLM

    torch.manual_seed(seed)
    model = model_cls(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        max_new_tokens=32,
    )

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


#: At most this many texts train a tokenizer read from a corpus file or a store.
MAX_TEXTS = 50_000


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if value:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def corpus_from_file(path: str | os.PathLike[str]) -> list[str]:
    """Texts from a corpus file: every string of every line of a ``.jsonl`` file, else every
    non-empty line (at most :data:`MAX_TEXTS`).

    Raises:
        ValueError: the file can't be read, a ``.jsonl`` line isn't JSON, or there is no text
            (the message starts with the file's name).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: cannot read it ({exc})") from None
    texts: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if p.suffix == ".jsonl":
            try:
                texts.extend(_strings(json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{p} line {number}: not JSON ({exc.msg})") from None
        else:
            texts.append(line)
        if len(texts) >= MAX_TEXTS:
            break
    if not texts:
        raise ValueError(f"{p} has no text")
    return texts[:MAX_TEXTS]


def corpus_from_store(store: Any) -> list[str]:
    """Texts of an experience store: observations, actions and chat turns of every step, and
    failure reasons (at most :data:`MAX_TEXTS`)."""
    from ..export import text_of

    texts: list[str] = []
    for episode in store.episodes():
        for step in episode.steps:
            for value in (step.observation, step.action):
                if value is not None:
                    texts.append(text_of(value))
            for message in step.messages or []:
                content = message.get("content")
                if isinstance(content, str) and content:
                    texts.append(content)
        if episode.label_reason:
            texts.append(episode.label_reason)
        if len(texts) >= MAX_TEXTS:
            break
    return [t for t in texts if t][:MAX_TEXTS]


def write_tiny_model(
    out_dir: str | Path, corpus: Iterable[str] | None = None, *, replace: bool = True, **shape: Any
) -> Path:
    """:func:`build_tiny_model` into a temporary directory beside ``out_dir``, then renamed into
    place, so a crash never leaves a half-written model.

    With ``replace`` an existing ``out_dir`` is swapped out only once the new model is complete;
    without it an existing model is kept (concurrent builders agree on one) and returned.
    ``shape`` takes :func:`build_tiny_model`'s keyword arguments.
    """
    target = Path(out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build_tiny_model(tmp, corpus, **shape)
        if target.exists() and replace:
            old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.replace(tmp, target)
            except OSError:
                if not (target / "config.json").is_file():
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
