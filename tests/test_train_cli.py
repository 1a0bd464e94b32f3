"""`teach train sft|dpo|grpo`: real TRL steps on a tiny base, from a store filled by a real pytest
run of the bundled tool_selection suite, plus one-line errors for bad datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("datasets")

# imported at module level on purpose: pytester restores sys.modules after each test, and torch
# can't be imported twice in one process
import datasets  # noqa: E402,F401
import peft  # noqa: E402,F401
import transformers.trainer_utils  # noqa: E402,F401
import trl  # noqa: E402,F401
from peft import LoraConfig, PeftModel  # noqa: E402,F401
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback  # noqa: E402,F401
from transformers.trainer_callback import PrinterCallback  # noqa: E402,F401
from trl import (  # noqa: E402,F401
    DPOConfig,
    DPOTrainer,
    GRPOConfig,
    GRPOTrainer,
    SFTConfig,
    SFTTrainer,
)

from pytest_teach import open_store  # noqa: E402
from pytest_teach.cli import cli  # noqa: E402
from pytest_teach.envs import tool_selection as ts  # noqa: E402
from pytest_teach.pipeline import list_specialist_models  # noqa: E402
from pytest_teach.train.grpo import scenario_for, tool_selection_reward  # noqa: E402
from pytest_teach.train.sft import ensure_tiny_base  # noqa: E402

from .conftest import REPO  # noqa: E402

_DB_CACHE: dict[str, Path] = {}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("RANK", raising=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_base(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def db(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with noisy and oracle runs of the weather/email tool-selection scenarios (so the
    same prompts have good and bad actions: DPO pairs). Collected once, copied per test."""
    if "db" not in _DB_CACHE:
        path = pytester.path / "experience.db"
        for model in ("scripted:noisy-0.3", "scripted:oracle"):
            pytester.runpytest_subprocess(
                str(REPO / "scenarios" / "tool_selection"),
                "-k",
                "weather or email",
                "-p",
                "no:cacheprovider",
                "--collect-training-data",
                "--teach-db",
                str(path),
                "--model",
                model,
            )
        kept = tmp_path_factory.mktemp("store") / "experience.db"
        shutil.copy(path, kept)
        _DB_CACHE["db"] = kept
    copy = pytester.path / "store.db"
    shutil.copy(_DB_CACHE["db"], copy)
    return copy


def invoke(*args: str):
    return CliRunner().invoke(cli, ["train", *args], catch_exceptions=False)


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    name = "adapter_model.safetensors" if (path / "adapter_config.json").is_file() else None
    return load_file(str(path / (name or "model.safetensors")))


def _check_trained(method: str, out: Path, db: Path, base: Path, lora: bool) -> None:
    if lora:
        # LoRA's B matrices start at zero: any non-zero one means the adapter was trained
        adapter = _tensors(out)
        assert any(k for k in adapter if "lora_B" in k)
        assert any(t.abs().sum() > 0 for k, t in adapter.items() if "lora_B" in k)
    else:
        before, after = load_file(str(base / "model.safetensors")), _tensors(out)
        assert before.keys() == after.keys()
        assert any(not torch.equal(before[k], after[k]) for k in before)
    with open_store(db) as store:
        models = list_specialist_models(store)
    assert len(models) == 1
    model = models[0]
    assert Path(model.path) == out.resolve() and model.spec == f"hf:{out.resolve()}"
    assert model.metrics["method"] == method and model.metrics["steps"] == 2
    assert model.metrics["data"]["format"] == method and model.metrics["data"]["rows"] > 0


@pytest.mark.parametrize(
    ("method", "extra", "lora"),
    [
        ("sft", ["--full"], False),
        ("dpo", ["--batch-size", "2"], True),
        ("grpo", ["--batch-size", "1", "--num-generations", "4"], True),
    ],
)
def test_train_from_store(
    method: str, extra: list[str], lora: bool, db: Path, base: Path, tmp_path: Path
) -> None:
    out = tmp_path / f"out-{method}"
    result = invoke(
        method,
        "--db", str(db),
        "--scenario", "tool_selection*",
        "--base-model", str(base),
        "--max-steps", "2",
        "--output", str(out),
        *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("step ")] == ["1/2", "2/2"]
    metrics = json.loads(next(line for line in lines if line.startswith("metrics "))[8:])
    assert metrics["steps"] == 2
    assert any(line.startswith("registered ") for line in lines)
    _check_trained(method, out, db, base, lora)


def test_train_data_file_default_base(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--data trains on a file and registers nothing; the default base is the tiny one, built in
    the user cache directory (named in the output), not in whatever directory the command runs."""
    from pytest_teach.export import export

    with open_store(db) as store:
        data = export(store, "dpo", tmp_path / "pairs.jsonl").path
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = invoke("dpo", "--data", str(data), "--epochs", "1", "--batch-size", "8", "-o", "o")
    assert result.exit_code == 0, result.output
    tiny = tmp_path / "cache" / "pytest-teach" / "models" / "tiny-base"
    assert (tiny / "config.json").is_file()
    assert f"base model: the tiny offline model in {tiny}" in result.stdout
    assert sorted(p.name for p in elsewhere.iterdir()) == ["o"]  # no .teach/ in the cwd
    assert (elsewhere / "o" / "adapter_config.json").is_file()
    assert "registered" not in result.stdout
    with open_store(db) as store:
        assert list_specialist_models(store) == []


GOOD = {
    "sft": {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]},
    "dpo": {
        "prompt": [{"role": "user", "content": "hi"}],
        "chosen": [{"role": "assistant", "content": "a"}],
        "rejected": [{"role": "assistant", "content": "b"}],
    },
    "grpo": {"prompt": [{"role": "user", "content": "hi"}], "scenario": "x"},
}


@pytest.mark.parametrize("method", ["sft", "dpo", "grpo"])
@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], "has no rows"),
        (["GOOD", "{not json"], "line 2: not JSON"),
        (["GOOD", "", '{"other": 1}'], "line 3: "),
    ],
    ids=["empty", "malformed", "missing-fields"],
)
def test_bad_dataset_is_one_line(
    method: str, lines: list[str], expected: str, tmp_path: Path
) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(
        "".join((json.dumps(GOOD[method]) if line == "GOOD" else line) + "\n" for line in lines)
    )
    result = invoke(method, "--data", str(data), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stdout == ""
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"teach train {method}: error: {data}") and expected in err
    if expected == "line 3: ":
        assert "messages" in err if method == "sft" else "missing field" in err
    assert not (tmp_path / "out").exists()


def test_empty_store_selection_is_one_line(db: Path, tmp_path: Path) -> None:
    result = invoke("dpo", "--db", str(db), "--scenario", "nope*", "-o", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("match the filters; check with `teach stats`")
    result = invoke("sft", "--data", "x.jsonl", "--label", "success", "-o", str(tmp_path / "o"))
    assert result.exit_code == 2 and "--data excludes the store filters" in result.stderr


def test_tool_selection_reward_shapes_signal() -> None:
    case = next(s for s in ts.SCENARIOS if s.id == "weather-001")
    assert scenario_for("tool_selection[weather-001]") == case
    assert scenario_for("tool_selection[nope-999]") is None
    good = ts.format_plan(case.expected)
    completions = [
        [{"role": "assistant", "content": text}]
        for text in (good, '{"tools": ["calculator"]}', '{"tools": [', "zz?!", good)
    ]
    names = ["tool_selection[weather-001]"] * 4 + ["other[x]"]
    rewards = tool_selection_reward([None] * 5, completions, names)
    assert rewards[0] == 1.0 and rewards[4] is None
    assert rewards[0] > rewards[1] >= 0.5 > rewards[2] > rewards[3] >= 0.0


def test_train_from_store_is_one_call(
    db: Path, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library function behind `teach train`, `teach loop` and the student: export ->
    validate -> train -> register, a callable base built from the rows; a half-set launch
    environment is refused."""
    from pytest_teach.pipeline import NothingToTrain, train_from_store
    from pytest_teach.train import TrainSettings

    seen: list[int] = []

    def from_rows(rows: list[dict]) -> str:
        seen.append(len(rows))
        return str(base)

    lines: list[str] = []
    steps: list[int] = []
    trained = train_from_store(
        "sft",
        tmp_path / "m",
        TrainSettings(max_steps=2, lora=False),
        store=db,
        filters={"scenario": "tool_selection*", "label": "success"},
        base_model=from_rows,
        agent="planner",
        details={"data": {"note": "x"}, "why": "test"},
        echo=lines.append,
        on_step=lambda step, loss: steps.append(step),
    )
    assert seen == [len(trained.plan.rows)] and seen[0] > 0
    assert steps == [1, 2] and trained.metrics["steps"] == 2
    assert any(line.startswith("step 2/2") for line in lines)
    model = trained.registered
    assert model is not None and model.agent == "planner"
    assert model.spec == trained.spec == f"hf:{(tmp_path / 'm').resolve()}"
    assert model.metrics["data"]["filters"] == {"scenario": "tool_selection*", "label": "success"}
    assert model.metrics["data"]["rows"] == seen[0] and model.metrics["data"]["note"] == "x"
    assert model.metrics["why"] == "test" and model.metrics["method"] == "sft"

    with pytest.raises(NothingToTrain, match="no dpo rows in the store .* match the filters"):
        train_from_store("dpo", tmp_path / "n", store=db, filters={"scenario": "nope*"})
    assert not (tmp_path / "n").exists()

    # a rank without its world is refused before anything runs; real ranks (rank 0 alone echoes,
    # writes and registers) are in test_train_distributed.py
    from pytest_teach.train import LaunchError

    monkeypatch.setenv("RANK", "1")
    with pytest.raises(LaunchError, match="RANK is set but WORLD_SIZE is not"):
        train_from_store(
            "sft", tmp_path / "r1", TrainSettings(max_steps=1), store=db, base_model=base
        )
    assert not (tmp_path / "r1").exists()
    with open_store(db) as store:
        assert [m.id for m in list_specialist_models(store)] == [model.id]
