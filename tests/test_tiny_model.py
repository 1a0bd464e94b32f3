"""Tests for the offline tiny causal LM builder (``pytest_teach.train.tiny``)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
datasets = pytest.importorskip("datasets")
trl = pytest.importorskip("trl")

from pytest_teach.train.tiny import build_tiny_model  # noqa: E402

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Belt and braces against Hub access (everything here is loaded from local paths)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("WANDB_DISABLED", "true")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build one tiny model per module; tests must not mutate it on disk."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_build_loads_and_chat_template(tiny_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert (tiny_dir / "model.safetensors").is_file()
    assert (tiny_dir / "generation_config.json").is_file()

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.tie_word_embeddings
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.padding_side == "right"

    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    assert "<|im_start|>assistant" in text
    assert text.endswith("<|im_end|>\n")
    prompt = tokenizer.apply_chat_template(MESSAGES[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")

    out = tokenizer.apply_chat_template(
        MESSAGES, return_assistant_tokens_mask=True, return_dict=True
    )
    mask = out["assistant_masks"]
    assert len(mask) == len(out["input_ids"])
    assert sum(mask) > 0
    masked = [tok for tok, m in zip(out["input_ids"], mask, strict=True) if m]
    assert tokenizer.eos_token_id in masked  # the model is trained to stop
    assert tokenizer.decode(masked).startswith("2 + 2 = 4.")

    with torch.no_grad():
        logits = model(**tokenizer(prompt, return_tensors="pt")).logits
    assert logits.shape[-1] == len(tokenizer)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vocab_size": 100},
        {"hidden_size": 30, "num_heads": 4},
        {"hidden_size": 12, "num_heads": 4},  # odd head dim
        {"num_layers": 0},
        {"arch": "gpt2"},
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        build_tiny_model(tmp_path / "bad", **kwargs)


def test_llama_arch(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = build_tiny_model(tmp_path / "llama", ["hello world", "def f(): pass"], arch="llama")
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == "llama"
    assert "<|im_start|>assistant" in tokenizer.apply_chat_template(MESSAGES, tokenize=False)


def test_sft_two_steps(tiny_dir: Path, tmp_path: Path) -> None:
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    data_file = tmp_path / "train.jsonl"
    with data_file.open("w", encoding="utf-8") as fh:
        for i in range(16):
            row = {
                "messages": [
                    {"role": "system", "content": "You are a careful calculator."},
                    {"role": "user", "content": f"What is {i} + {i}?"},
                    {"role": "assistant", "content": f"{i} + {i} = {2 * i}."},
                ]
            }
            fh.write(json.dumps(row) + "\n")
    dataset = load_dataset(
        "json", data_files=str(data_file), split="train", cache_dir=str(tmp_path / "hf_cache")
    )

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}

    # TRL turns activation checkpointing on by default; recent transformers renamed
    # ``gradient_checkpointing`` to ``activation_checkpointing`` (old name warns).
    field_names = {f.name for f in dataclasses.fields(SFTConfig)}
    ckpt_field = (
        "activation_checkpointing"
        if "activation_checkpointing" in field_names
        else "gradient_checkpointing"
    )
    args = SFTConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        use_cpu=True,
        bf16=False,
        fp16=False,
        **{ckpt_field: False},
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        max_length=128,
        assistant_only_loss=True,
        dataloader_num_workers=0,
        dataset_num_proc=None,
        push_to_hub=False,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    # TRL folds ``assistant_masks`` into a ``labels`` column (-100 outside assistant turns).
    first = trainer.train_dataset[0]
    trained = [tok for tok in first["labels"] if tok != -100]
    assert 0 < len(trained) < len(first["input_ids"])
    assert trained[-2] == tokenizer.eos_token_id  # "...<|im_end|>" then "\n"

    trainer.train()

    assert trainer.state.global_step == 2
    changed = [
        name
        for name, p in trainer.model.named_parameters()
        if not torch.equal(p.detach().cpu(), before[name])
    ]
    assert changed, "no parameter changed after two optimizer steps"
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses, trainer.state.log_history
    assert all(math.isfinite(loss) for loss in losses)
