"""The improvement pipeline: schema 2, training data from feedback and from runs, jobs, runs on a
real (stub) trainer, the model registry, and the `teach pipeline`/`teach models` commands."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pytest_teach import open_store
from pytest_teach import pipeline as p
from pytest_teach.cli import cli
from pytest_teach.recorder import EpisodeRecorder
from pytest_teach.store import Store, _schema, new_id
from pytest_teach.trainer.fixtures import LocalTrainer

SYSTEM = {"role": "system", "content": "Pick the tools."}


def episode(
    store: Store,
    scenario: str,
    outcome: str,
    steps: list[dict[str, Any]],
    *,
    model: str = "scripted:noisy-0.3",
    meta: dict[str, Any] | None = None,
) -> str:
    """Record an episode whose steps carry their own chat messages (like tool_selection)."""
    rec = EpisodeRecorder(enabled=True)
    for s in steps:
        obs = s["obs"]
        rec.step(
            obs,
            s["action"],
            messages=[SYSTEM, {"role": "user", "content": obs}]
            + [{"role": "assistant", "content": json.dumps(s["action"])}],
            label=s.get("label"),
        )
    ep = rec.build(
        episode_id=new_id(),
        nodeid=f"t.py::{scenario}",
        scenario=scenario,
        outcome=outcome,
        reason="wrong tool" if outcome == "intervention" else None,
        model=model,
        meta=meta or {},
    )
    store.write_episode(ep)
    return ep.id


@pytest.fixture
def store(store_target: Path | str) -> Iterator[Store]:
    s = open_store(store_target, create=True)
    yield s
    s.close()


@pytest.fixture
def judged(store: Store) -> dict[str, str]:
    """Five episodes: rated good, rated bad, step-labeled, corrected, and one nobody judged."""
    ids = {
        "rated_good": episode(
            store, "ts[weather-1]", "success", [{"obs": "weather in Oslo?", "action": ["weather"]}]
        ),
        "rated_bad": episode(
            store, "ts[weather-2]", "intervention", [{"obs": "rain?", "action": ["search"]}]
        ),
        "labeled": episode(
            store,
            "ts[trip-1]",
            "intervention",
            [
                {"obs": "flights to Rome", "action": ["flights"], "label": "good"},
                {"obs": "and a hotel", "action": ["maps"], "label": "bad"},
            ],
            meta={"goal": "plan a trip to Rome"},
        ),
        "corrected": episode(
            store,
            "ts[mail-1]",
            "intervention",
            [
                {"obs": "mail Ann", "action": ["email"]},
                {"obs": "and Bob", "action": ["calendar"]},
            ],
        ),
        "unjudged": episode(
            store, "ts[calc-1]", "success", [{"obs": "2 + 2", "action": ["calculator"]}]
        ),
    }
    store.add_feedback(ids["rated_good"], rating=5)
    store.add_feedback(ids["rated_bad"], rating=1)
    store.add_feedback(ids["corrected"], step=1, correct_action=["email"])
    return ids


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- schema 2 ----------------------------------------------------------------------------------


def test_a_schema_1_store_migrates_keeping_history(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statement in _schema.MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute(
        "INSERT INTO episodes(id, nodeid, scenario, outcome, label, created_at) "
        "VALUES ('ab12cd34ef56ab78', 'n', 'ts[a]', 'success', 0, 1.0)"
    )
    conn.commit()
    conn.close()
    store = open_store(path)
    assert store.schema_version == _schema.SCHEMA_VERSION
    assert [e.id for e in store.episodes()] == ["ab12cd34ef56ab78"]
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert {"improvement_jobs", "training_runs", "registered_models"} <= tables
    job = p.create_improvement_job(store, "planner")
    assert p.get_improvement_job(store, job.id[:6]).id == job.id


# -- training data ---------------------------------------------------------------------------


def test_from_feedback_rows(store: Store, judged: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "data" / "train.jsonl"
    data = p.generate_training_data(store, {"scenario": "ts[*"}, "from_feedback", out)
    labeled = lines(data.labeled_path)
    assert data.labeled_path == out.with_name("train.labeled.jsonl")
    by = {(r["episode_id"], r["step"], r["source"], r["label"]) for r in labeled}
    assert by == {
        (judged["rated_good"], 0, "rating:5", "good"),
        (judged["rated_bad"], 0, "rating:1", "bad"),
        (judged["labeled"], 0, "step_label", "good"),
        (judged["labeled"], 1, "step_label", "bad"),
        (judged["corrected"], 1, "correction", "bad"),
        (judged["corrected"], 1, "correction", "good"),
    }
    assert (data.good, data.bad, data.rows, data.episodes) == (3, 3, 3, 4)
    trip = next(r for r in labeled if r["episode_id"] == judged["labeled"] and r["step"] == 1)
    assert trip["input"]["task"] == "plan a trip to Rome"
    assert trip["input"]["observation"] == "and a hotel" and trip["output"] == ["maps"]
    assert trip["input"]["messages"] == [SYSTEM, {"role": "user", "content": "and a hotel"}]
    fix = next(r for r in labeled if r["source"] == "correction" and r["label"] == "good")
    assert fix["output"] == ["email"] and fix["reply"] == '["email"]'
    sft = lines(out)
    assert [r["messages"][-1]["content"] for r in sft] == [
        '["weather"]',
        '["flights"]',
        '["email"]',
    ]
    assert all(r["messages"][0] == SYSTEM for r in sft)
    job = p.get_improvement_job(store, data.job_id)
    assert job.status == "data_ready" and job.dataset_path == str(out.resolve())
    assert job.agent == "agent" and job.stats["sft_rows"] == 3 and job.scope == {"scenario": "ts[*"}


def test_from_runs_trajectories_and_slices(store: Store, judged: dict[str, str], tmp_path: Path):
    job = p.create_improvement_job(store, "planner", None, "from_runs")
    data = p.generate_training_data(store, job=job, out=tmp_path / "runs.jsonl")
    labeled = {r["episode_id"]: r for r in lines(data.labeled_path)}
    assert {k: (r["kind"], r["label"], r["source"]) for k, r in labeled.items()} == {
        judged["rated_good"]: ("trajectory", "good", "rating:5"),
        judged["rated_bad"]: ("trajectory", "bad", "rating:1"),
        judged["labeled"]: ("trajectory", "bad", "outcome"),
        judged["corrected"]: ("trajectory", "bad", "outcome"),
        judged["unjudged"]: ("trajectory", "good", "outcome"),
    }
    assert [s["label"] for s in labeled[judged["labeled"]]["steps"]] == ["good", "bad"]
    assert data.rows == 3  # the good episodes' steps, plus the correction
    sliced = p.generate_training_data(
        store, job=job, out=tmp_path / "sliced.jsonl", slice_decisions=True
    )
    rows = lines(sliced.labeled_path)
    assert all(r["kind"] == "decision" for r in rows)
    assert (sliced.good, sliced.bad, sliced.rows) == (4, 3, 4)
    assert p.get_improvement_job(store, job.id).stats["sliced"] is True


def test_nothing_good_to_train_on(store: Store, tmp_path: Path) -> None:
    episode(store, "ts[x]", "intervention", [{"obs": "o", "action": "a"}])
    with pytest.raises(p.PipelineError, match="no good decisions to train on: 1 episode"):
        p.generate_training_data(store, None, "from_feedback", tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()
    (job,) = p.list_improvement_jobs(store)
    assert job.status == "created" and job.error == "no good decisions in scope"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: p.create_improvement_job(s, " "), "agent must be a non-empty name"),
        (lambda s: p.create_improvement_job(s, "a", {"modle": "x"}), "unknown filter 'modle'"),
        (lambda s: p.create_improvement_job(s, "a", None, "from_vibes"), "strategy 'from_vibes'"),
        (lambda s: p.get_improvement_job(s, "abcdef"), "unknown improvement job 'abcdef'"),
        (lambda s: p.get_training_run(s, "nope"), "unknown training run 'nope'"),
        (
            lambda s: p.update_improvement_job(s, p.create_improvement_job(s, "a").id, status="x"),
            "status 'x' is not one of",
        ),
        (lambda s: p.register_trained_model(s, "/no/such/dir", agent="a"), "does not exist"),
        (lambda s: p.register_trained_model(s, None, agent="a"), "needs output_model_ref"),
    ],
)
def test_pipeline_errors_are_clear(store: Store, call, message: str) -> None:
    with pytest.raises(p.PipelineError, match=message):
        call(store)


# -- with a trainer ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub_trainer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTrainer]:
    pytest.importorskip("fastapi")
    root = tmp_path_factory.mktemp("stub-trainer")
    local = LocalTrainer(
        root / "data", "stub", token="t0k3n", env={"TEACH_TRAINER_FAULTS": "1"}
    ).start()
    yield local
    local.stop()


def test_trigger_status_register_list(
    store: Store, judged: dict[str, str], stub_trainer: LocalTrainer, tmp_path: Path
) -> None:
    job = p.create_improvement_job(store, "planner", {"scenario": "ts[*"})
    # written outside the trainer's data dir: trigger_training copies it in
    p.generate_training_data(store, job=job, out=tmp_path / "elsewhere.jsonl")
    with pytest.raises(p.PipelineError, match="runs backend 'stub', not 'sft'"):
        p.trigger_training(store, job, trainer_url=stub_trainer.url, backend="sft")
    with pytest.raises(p.PipelineError, match="missing bearer token"):
        p.trigger_training(store, job, trainer_url=stub_trainer.url, token="")
    run = p.trigger_training(
        store, job, trainer_url=stub_trainer.url, token="t0k3n", params={"max_steps": 2}
    )
    assert run.dataset_ref.startswith("datasets/") and run.status in ("pending", "running")
    assert (stub_trainer.data_dir / run.dataset_ref).read_text() == (
        tmp_path / "elsewhere.jsonl"
    ).read_text()
    done = p.wait_for_training(store, run.run_id, timeout=30)
    assert done.status == "completed" and done.metrics["steps"] == 2
    assert p.get_improvement_job(store, job.id).status == "trained"
    assert [r.run_id for r in p.list_training_runs(store, job.id)] == [run.run_id]

    model = p.register_trained_model(store, run_id=run.run_id, name="planner-v1")
    assert model.kind == "artifact" and model.spec is None  # the stub's output isn't a model
    assert model.path == done.output_model_ref and model.agent == "planner"
    assert model.metrics == done.metrics and model.job_id == job.id
    other = p.register_trained_model(store, done.output_model_ref, agent="mailer")
    assert [m.name for m in p.list_specialist_models(store, agent="planner")] == ["planner-v1"]
    assert [m.id for m in p.list_specialist_models(store)] == [other.id, model.id]
    assert p.get_improvement_job(store, job.id).status == "registered"


def test_failed_run_fails_the_job_and_cannot_be_registered(
    store: Store, judged: dict[str, str], stub_trainer: LocalTrainer
) -> None:
    job = p.create_improvement_job(store, "planner")
    p.generate_training_data(store, job=job, trainer_url=stub_trainer.url)
    assert Path(p.get_improvement_job(store, job.id).dataset_path).is_relative_to(
        stub_trainer.data_dir.resolve()
    )
    run = p.trigger_training(
        store, job, trainer_url=stub_trainer.url, token="t0k3n", params={"crash": "raise"}
    )
    assert p.wait_for_training(store, run.run_id, timeout=30).status == "failed"
    current = p.get_improvement_job(store, job.id)
    assert current.status == "failed" and "injected crash" in (current.error or "")
    with pytest.raises(p.PipelineError, match="is failed, not completed: RuntimeError"):
        p.register_trained_model(store, run_id=run.run_id)


def test_pipeline_cli(
    judged: dict[str, str],
    store: Store,
    store_target: Path | str,
    stub_trainer: LocalTrainer,
    tmp_path: Path,
) -> None:
    db = str(store_target)
    runner = CliRunner(env={"TEACH_TRAINER_TOKEN": "t0k3n", "TEACH_TRAINER_URL": None})

    def teach(group: str, *args: str) -> Any:
        return runner.invoke(cli, [group, *args], catch_exceptions=False)

    r = teach("pipeline", "create", "--db", db, "--agent", "planner", "--scenario", "ts[*")
    assert r.exit_code == 0, r.output
    job_id = r.stdout.strip()
    r = teach("pipeline", "data", "--db", db, "--job", job_id, "--trainer-url", stub_trainer.url)
    assert r.exit_code == 0 and "3 SFT rows" in r.stdout, r.output
    r = teach("pipeline", "train", "--db", db, "--job", job_id)
    assert r.exit_code == 2 and "--trainer-url is required" in r.output
    r = teach(
        "pipeline", "train", "--db", db, "--job", job_id, "--trainer-url", stub_trainer.url,
        "--max-steps", "2", "--param", "seed=3", "--wait", "30",
    )  # fmt: skip
    assert r.exit_code == 0 and ": completed (" in r.stdout and "steps=2" in r.stdout, r.output
    run_id = r.stdout.split()[1].rstrip(":")
    r = teach("pipeline", "status", "--db", db, run_id, "--json")
    assert json.loads(r.stdout)["params"]["seed"] == 3
    r = teach("pipeline", "register", "--db", db, "--run", run_id, "--name", "p1")
    assert r.exit_code == 0 and "registered p1 for agent planner" in r.stdout, r.output
    r = teach("models", "list", "--db", db, "--agent", "planner", "--json")
    assert [m["name"] for m in json.loads(r.stdout)] == ["p1"]
    r = teach("pipeline", "jobs", "--db", db)
    assert job_id in r.stdout and "registered" in r.stdout and run_id in r.stdout
    r = teach(
        "pipeline", "run", "--db", db, "--agent", "planner", "--scenario", "ts[*",
        "--trainer-url", stub_trainer.url, "--backend", "stub", "--name", "p2",
    )  # fmt: skip
    assert r.exit_code == 0 and "registered p2" in r.stdout, r.output
    r = teach("models", "list", "--db", db)
    assert r.stdout.splitlines()[0].startswith("p2  planner")
    # errors are one line
    r = teach("pipeline", "status", "--db", db, "nope")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "unknown training run" in r.output
    r = teach("pipeline", "create", "--db", str(tmp_path / "missing.db"), "--agent", "a")
    assert r.exit_code == 2 and "no pytest-teach store" in r.output


def test_run_pipeline_is_one_call(
    judged: dict[str, str], store: Store, stub_trainer: LocalTrainer
) -> None:
    """The runner `teach pipeline run` calls: job, data, run, wait, register, in one function."""
    lines: list[str] = []
    done = p.run_pipeline(
        store,
        "planner",
        {"scenario": "ts[*"},
        trainer_url=stub_trainer.url,
        token="t0k3n",
        backend="stub",
        params={"max_steps": 2},
        name="p9",
        echo=lines.append,
    )
    assert done.run.status == "completed" and done.data.rows == 3
    assert (
        done.model is not None and done.model.name == "p9" and done.model.run_id == done.run.run_id
    )
    assert lines == [
        f"job {done.job.id}: 3 SFT rows ({done.data.good} good, {done.data.bad} bad)",
        p.describe_run(done.run),
    ]
    assert "steps=2" in lines[1]
    assert p.get_improvement_job(store, done.job.id).status == "registered"


def test_training_data_rows_stay_one_line_each(store: Store, tmp_path: Path) -> None:
    """Every line-break character JSON leaves raw (U+0085, U+2028, U+2029) is escaped, so a row
    is one line for str.splitlines and the trainer's reader."""
    text = "a\u0085b\u2028c\u2029d"
    episode(store, "ts[odd-1]", "success", [{"obs": text, "action": [text]}])
    data = p.generate_training_data(store, "ts[*", "from_runs", tmp_path / "d.jsonl")
    for path in (data.path, data.labeled_path):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert len(lines) == (data.rows if path == data.path else data.labeled)
        assert all(json.loads(line) for line in lines)
