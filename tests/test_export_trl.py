"""Acceptance: the openai export of a real pytest run loads with `datasets` and trains with TRL."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pytest_teach import open_store
from pytest_teach.export import export

from .conftest import REPO

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("datasets")

# imported at module level on purpose: pytester unloads modules a test imports in its body,
# and torch can't be imported twice in one process
from datasets import load_dataset  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from pytest_teach.train._config import trl_config  # noqa: E402
from pytest_teach.train.tiny import build_tiny_model  # noqa: E402


def test_openai_export_trains_with_sft_trainer(pytester: pytest.Pytester, tmp_path: Path) -> None:
    db = tmp_path / "experience.db"
    result = pytester.runpytest_subprocess(
        str(REPO / "scenarios" / "tool_selection"),
        "-k", "weather or flights or cart",
        "--collect-training-data", "--teach-db", str(db),
        "--model", "scripted:noisy-0.3", "-p", "no:cacheprovider",
    )  # fmt: skip
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) > 0 and outcomes.get("failed", 0) > 0
    store = open_store(db)
    out = tmp_path / "train.jsonl"
    written = export(store, "openai", out)
    assert written.rows == outcomes["passed"]

    dataset = load_dataset(
        "json", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert dataset.column_names == ["messages"]
    assert dataset[0]["messages"][0]["role"] == "system"
    assert dataset[0]["messages"][-1]["role"] == "assistant"

    corpus = [m["content"] for row in dataset for m in row["messages"]]
    model_dir = build_tiny_model(tmp_path / "tiny", corpus)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = trl_config(
        SFTConfig,
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        logging_steps=1,
        max_length=2048,
        assistant_only_loss=True,
        dataset_num_proc=None,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    assert trainer.state.global_step == 2
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert losses and all(math.isfinite(x) for x in losses)
    assert any(
        not torch.equal(p.detach(), before[n]) for n, p in trainer.model.named_parameters()
    ), "weights did not change"
    json.dumps(trainer.state.log_history)  # metrics are plain JSON
