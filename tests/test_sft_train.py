"""`train_sft` (a real TRL SFT step, LoRA or full), the `sft` backend's tiny base model cache, and
`teach model init-tiny`."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl")
pytest.importorskip("peft")

# imported at module level on purpose: pytester restores sys.modules after each test, and torch
# can't be imported twice in one process
import peft  # noqa: E402,F401
import trl  # noqa: E402,F401
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from pytest_teach import open_store  # noqa: E402
from pytest_teach.agents._hf import HFChat  # noqa: E402
from pytest_teach.cli import cli  # noqa: E402
from pytest_teach.recorder import EpisodeRecorder  # noqa: E402
from pytest_teach.store import new_id  # noqa: E402
from pytest_teach.train.sft import SFTDataError, ensure_tiny_base, train_sft  # noqa: E402

ROWS = [
    {
        "messages": [
            {"role": "system", "content": "Pick the tools."},
            {"role": "user", "content": "weather in Oslo?"},
            {"role": "assistant", "content": '{"tools": ["weather_forecast"]}'},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "2 + 2"},
            {"role": "assistant", "content": '{"tools": ["calculator"]}'},
        ]
    },
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_base(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_tiny_base_is_built_once(base: Path) -> None:
    assert (base / "config.json").is_file() and base.name == "tiny-base"
    stamp = (base / "config.json").stat().st_mtime_ns
    assert ensure_tiny_base(base.parent) == base
    assert (base / "config.json").stat().st_mtime_ns == stamp
    assert not [p for p in base.parent.iterdir() if p.name.startswith(".")]


def test_lora_step_writes_a_loadable_adapter(base: Path, dataset: Path, tmp_path: Path) -> None:
    steps: list[tuple[int, float | None]] = []
    out = tmp_path / "adapter"
    metrics = train_sft(
        dataset,
        base,
        out,
        max_steps=2,
        learning_rate=1e-2,
        on_step=lambda s, loss: steps.append((s, loss)),
    )
    assert metrics["steps"] == 2 and [s for s, _ in steps] == [1, 2]
    assert math.isfinite(metrics["loss"]) and metrics["rows"] == 2 and metrics["lora"] is True
    assert metrics["assistant_only_loss"] is True and metrics["base_model"] == str(base)
    assert (
        0
        < metrics["trainable_params"]
        < sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(base).parameters())
    )
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base)
    assert (out / "adapter_model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sft-work")]
    chat = HFChat(str(out)).load()
    reply = chat.generate([{"role": "user", "content": "weather in Oslo?"}], max_tokens=4)
    assert reply.completion_tokens >= 1
    json.dumps(metrics)


def test_full_fine_tune_writes_a_model(base: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "full"
    before = AutoModelForCausalLM.from_pretrained(base)
    metrics = train_sft(dataset, base, out, max_steps=1, lora=False, learning_rate=1e-2)
    assert metrics["lora"] is False and metrics["steps"] == 1
    after = AutoModelForCausalLM.from_pretrained(out)
    changed = [
        n
        for (n, a), (_, b) in zip(before.named_parameters(), after.named_parameters(), strict=True)
        if not torch.equal(a, b)
    ]
    assert changed, "no weight changed"
    assert AutoTokenizer.from_pretrained(out).chat_template


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the dataset has no rows"),
        ('{"messages": [{"role": "user", "content": "hi"}]}\n', "line 1: no assistant turn"),
        ('{"messages": []}\n', "line 1: messages is empty"),
        ('{"prompt": "x"}\n', 'line 1: expected an object with a "messages" list'),
        (json.dumps(ROWS[0]) + "\n\n{oops\n", "line 3: not JSON"),
        ('{"messages": [{"role": "robot", "content": "x"}]}\n', "messages[0].role must be one of"),
        ('{"messages": [{"role": "user", "content": 5}]}\n', "messages[0].content must be a str"),
    ],
)
def test_bad_dataset_names_file_and_line(
    base: Path, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(SFTDataError, match=re.escape(message)) as info:
        train_sft(path, base, tmp_path / "out")
    assert str(path) in str(info.value)
    assert not (tmp_path / "out").exists()


def test_bad_arguments(base: Path, dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_steps must be an integer >= 1"):
        train_sft(dataset, base, tmp_path / "o", max_steps=0)
    with pytest.raises(ValueError, match="base model directory ./nope does not exist"):
        train_sft(dataset, "./nope", tmp_path / "o")
    with pytest.raises(ValueError, match="keeps an assistant token within max_length=8"):
        train_sft(dataset, base, tmp_path / "o", max_length=8)


# -- teach model init-tiny ---------------------------------------------------------------------


def invoke(*args: str):
    return CliRunner().invoke(cli, ["model", *args], catch_exceptions=False)


def test_init_tiny_default_corpus_loads(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    result = invoke("init-tiny", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"use it as --model hf:{out}" in result.stdout
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == "qwen2" and len(tokenizer) == model.config.vocab_size
    assert "generation" in tokenizer.chat_template
    # an existing, non-empty directory is kept unless --force
    result = invoke("init-tiny", "--out", str(out))
    assert result.exit_code == 2 and "pass --force" in result.output
    assert invoke("init-tiny", "--out", str(out), "--force", "--seed", "1").exit_code == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_init_tiny_from_store_and_corpus(tmp_path: Path) -> None:
    db = tmp_path / "experience.db"
    store = open_store(db, create=True)
    rec = EpisodeRecorder(enabled=True)
    rec.step("zyzzyva quokka " * 20, {"tools": ["zyzzyva_lookup"]})
    store.write_episode(
        rec.build(episode_id=new_id(), nodeid="t::a", scenario="a", outcome="success", reason=None)
    )
    store.close()
    out = tmp_path / "from-store"
    result = invoke("init-tiny", "--out", str(out), "--from-store", "--db", str(db))
    assert result.exit_code == 0 and "texts from the store" in result.stdout, result.output
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer.tokenize(" zyzzyva")) <= 2  # learned from the store's texts

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps(ROWS[0]) + "\n")
    result = invoke("init-tiny", "--out", str(tmp_path / "c"), "--corpus", str(corpus))
    assert result.exit_code == 0 and "texts from" in result.stdout, result.output

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{nope\n")
    result = invoke("init-tiny", "--out", str(tmp_path / "d"), "--corpus", str(bad))
    assert result.exit_code == 2 and "line 1: not JSON" in result.output
    result = invoke(
        "init-tiny", "--out", str(tmp_path / "e"), "--corpus", str(corpus), "--from-store"
    )
    assert result.exit_code == 2 and "exclude each other" in result.output
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()


def test_corpus_readers_are_library_functions(tmp_path: Path) -> None:
    """`teach model init-tiny --corpus` reads through pytest_teach.train.corpus_from_file."""
    from pytest_teach.train import MAX_TEXTS, corpus_from_file, write_tiny_model

    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"a": ["x", {"b": "y"}], "n": 1}\n\n"z"\n')
    assert corpus_from_file(corpus) == ["x", "y", "z"]
    corpus.write_text("{oops\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(corpus))} line 1: not JSON"):
        corpus_from_file(corpus)
    plain = tmp_path / "c.txt"
    plain.write_text("w\n" * (MAX_TEXTS + 5))
    assert len(corpus_from_file(plain)) == MAX_TEXTS
    out = write_tiny_model(tmp_path / "m", ["hello"], hidden_size=8, num_layers=1, num_heads=2)
    assert (out / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".m")] == []
