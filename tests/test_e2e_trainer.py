"""End to end against a real trainer (`pytest -m e2e_trainer --trainer-url auto`):
scenarios → feedback → generate_training_data → trigger_training → status → a real SFT step
(LoRA on the tiny local model) → register_trained_model → list_specialist_models → the registered
model runs a scenario as `--model hf:<path>`.

Without a trainer (no --trainer-url, or nothing answers /health) the test is skipped with the
reason.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from pytest_teach import open_store
from pytest_teach.envs.tool_selection import format_plan
from pytest_teach.pipeline import (
    create_improvement_job,
    generate_training_data,
    get_improvement_job,
    get_training_status,
    list_specialist_models,
    register_trained_model,
    trigger_training,
    wait_for_training,
)
from pytest_teach.trainer import TrainerClient

from .conftest import REPO

pytestmark = pytest.mark.e2e_trainer

SCENARIOS = REPO / "scenarios" / "tool_selection"
AGENT = "tool-planner"


def test_feedback_to_registered_specialist(
    trainer: TrainerClient, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    started = time.monotonic()
    health = trainer.health()
    assert health["status"] == "ok" and health["backend"] == "sft", health

    # 1. the agent runs scenarios; the seeded-noisy planner passes some and fails others
    db = tmp_path / "experience.db"
    result = pytester.runpytest_subprocess(
        str(SCENARIOS), "-k", "weather or flights",
        "--collect-training-data", "--teach-db", str(db),
        "--model", "scripted:noisy-0.3", "-p", "no:cacheprovider", "-q",
    )  # fmt: skip
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 3 and outcomes.get("failed", 0) >= 2, outcomes
    store = open_store(db)
    episodes = list(store.episodes())
    good = [e for e in episodes if e.label == 0][:3]
    bad = [e for e in episodes if e.label == 1][:2]

    # 2. people judge some of them: good and bad ratings, and one step correction
    for episode in good:
        store.add_feedback(episode.id, rating=5, comment="right tools")
    for episode in bad:
        store.add_feedback(episode.id, rating=1, comment="wrong tools")
    expected = bad[0].meta["expected"]
    store.add_feedback(bad[0].id, step=0, correct_action=format_plan(expected))

    # 3. training data from that feedback, written into the trainer's data dir
    job = create_improvement_job(
        store, AGENT, {"scenario": "tool_selection[*", "model": "scripted:noisy-0.3"}
    )
    data = generate_training_data(store, job=job, trainer_url=trainer.url)
    assert data.strategy == "from_feedback" and data.episodes == 5
    assert (data.good, data.bad, data.rows) == (4, 2, 4)  # 3 rated good + 1 correction
    assert data.path.is_relative_to(Path(health["dataDir"]))
    labeled = [json.loads(line) for line in data.labeled_path.read_text().splitlines()]
    assert {r["label"] for r in labeled} == {"good", "bad"}
    for row in labeled:
        assert row["input"]["observation"] and row["input"]["task"]
        assert row["input"]["messages"][-1]["role"] == "user" and row["output"] is not None
    corrected = [r for r in labeled if r["source"] == "correction" and r["label"] == "good"]
    assert [r["reply"] for r in corrected] == [format_plan(expected)]
    for line in data.path.read_text().splitlines():
        messages = json.loads(line)["messages"]
        assert messages[0]["role"] == "system" and messages[-1]["role"] == "assistant"

    # 4. a real fine-tune step on the trainer
    run = trigger_training(
        store, job, trainer_url=trainer.url, token=trainer.token, backend="sft",
        params={"max_steps": 1},
    )  # fmt: skip
    assert run.status in ("pending", "running") and get_improvement_job(store, job.id).status == (
        "training"
    )
    run = wait_for_training(store, run.run_id, timeout=120)
    assert run.status == "completed", run.error
    assert run.metrics["steps"] == 1 and math.isfinite(run.metrics["loss"])
    assert run.metrics["seconds"] > 0 and run.metrics["rows"] == 4 and run.metrics["lora"]
    assert get_training_status(store, run.run_id).status == "completed"
    assert get_improvement_job(store, job.id).status == "trained"

    # 5. register it; it is the agent's specialist
    model = register_trained_model(store, run_id=run.run_id)
    assert model.kind == "hf-adapter" and model.spec == f"hf:{run.output_model_ref}"
    assert model.agent == AGENT and model.job_id == job.id and model.metrics == run.metrics
    assert [m.id for m in list_specialist_models(store, agent=AGENT)] == [model.id]
    assert list_specialist_models(store, agent="someone-else") == []
    assert get_improvement_job(store, job.id).status == "registered"

    # 6. the registered model runs a scenario straight away (its output won't parse: that's fine)
    db2 = tmp_path / "specialist.db"
    result = pytester.runpytest_subprocess(
        str(SCENARIOS), "-k", "weather-001",
        "--collect-training-data", "--teach-db", str(db2),
        "--model", model.spec, "-p", "no:cacheprovider", "-q",
    )  # fmt: skip
    assert result.ret in (0, 1), result.stdout.str()
    (episode,) = open_store(db2).episodes()
    assert episode.model == model.spec and episode.outcome in ("success", "intervention")
    assert episode.steps[0].messages[-1]["role"] == "assistant"
    elapsed = time.monotonic() - started
    print(f"e2e_trainer: feedback -> registered specialist -> scenario in {elapsed:.1f}s")
