"""`teach train grpo --suite scenarios/stories/...`: GRPO whose reward is the story test itself.

A tiny model is built offline and taught, by a short `teach train sft`, the two baseline answers
to the `button` story (scripted:accessible's and scripted:div-soup's HTML), so the completions it
samples differ: some accessible, some div soup, some broken halfway. GRPO then scores every
completion by running the bundled story test in a persistent reward worker (Chromium, axe-core,
the keyboard), and the run must show rewards that vary within the group, log the check's
components, change the weights and register the result.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("playwright.sync_api")

# imported at module level on purpose: torch can't be imported twice in one process
from safetensors.torch import load_file  # noqa: E402

from pytest_teach import open_store  # noqa: E402
from pytest_teach.cli import cli  # noqa: E402
from pytest_teach.envs import stories  # noqa: E402
from pytest_teach.pipeline import list_specialist_models  # noqa: E402
from pytest_teach.train.tiny import build_tiny_model  # noqa: E402

from .conftest import REPO, needs_chromium  # noqa: E402

pytestmark = [pytest.mark.slow, needs_chromium]

NODEID = str(REPO / "scenarios" / "stories" / "test_stories.py") + "::test_story[button]"


def _metrics(output: str) -> dict:
    line = next(line for line in output.splitlines() if line.startswith("metrics "))
    return json.loads(line[len("metrics ") :])


def test_grpo_on_story_checks_has_reward_variance_and_logs_components(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.chdir(REPO)

    intent = stories.INTENTS_BY_ID["button"]
    prompt = stories.story_messages(intent)
    replies = [stories.scripted_generator(n).generate(intent).text for n in stories.SCRIPTED_NAMES]
    assert len(set(replies)) == 2
    rows = tmp_path / "baselines.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"messages": [*prompt, {"role": "assistant", "content": r}]}) + "\n"
            for r in replies
        )
    )
    base = build_tiny_model(
        tmp_path / "base", [m["content"] for m in prompt] + replies, vocab_size=1024
    )
    runner = CliRunner()
    warm = tmp_path / "warm"
    result = runner.invoke(
        cli,
        ["train", "sft", "--data", str(rows), "--base-model", str(base), "--full", "--max-steps", "80",
         "--lr", "5e-3", "--batch-size", "2", "-o", str(warm)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output

    db, out = tmp_path / "experience.db", tmp_path / "grpo"
    result = runner.invoke(
        cli,
        ["train", "grpo", "--suite", NODEID, "--reward-workers", "1", "--base-model", str(warm), "--full",
         "--max-steps", "2", "--batch-size", "1", "--num-generations", "4",
         "--max-completion-length", "128", "--lr", "1e-4", "--db", str(db), "-o", str(out)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 prompts captured" in result.output
    metrics = _metrics(result.output)

    # the story test scored every completion; the rewards varied within a group
    checks = metrics["checks"]
    assert checks["scored"] == 8 and checks["none"] == 0, result.output
    assert checks["groups"] == 2
    assert checks["zero_variance_groups"] < checks["groups"], result.output
    # every component of the story check is logged, each a mean in [0, 1]
    for component in stories.COMPONENTS:
        value = metrics[f"checks_{component}"]  # logged by TRL as checks/<component>
        assert 0.0 <= value <= 1.0, (component, value)
    assert 0.0 < metrics["reward"] <= 1.0

    before, after = (
        load_file(str(warm / "model.safetensors")),
        load_file(str(out / "model.safetensors")),
    )
    assert any(not torch.equal(before[k], after[k]) for k in before)
    with open_store(db) as store:
        (model,) = list_specialist_models(store)
    assert model.metrics["method"] == "grpo"
    assert model.metrics["data"]["suite"] == [NODEID]
