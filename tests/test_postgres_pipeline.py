"""What trains and measures from the store works on a PostgreSQL store: `teach train sft|dpo`
registering its model, `teach models list`, the intervention predictor trained and evaluated
with its screenshots read from the database, and `teach loop` end to end. Each at its cheapest
(a tiny model, a step or an epoch); the URL's password reaches no output, file or model record.

The improvement pipeline's own tests (tests/test_pipeline.py) follow ``TEACH_TEST_STORE`` and run
on PostgreSQL in `make test`'s second pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("psycopg", reason="psycopg is not installed")

from pytest_teach import open_store  # noqa: E402
from pytest_teach.cli import cli  # noqa: E402
from pytest_teach.loop import read_ids  # noqa: E402
from pytest_teach.pipeline import list_specialist_models  # noqa: E402
from pytest_teach.train.sft import ensure_tiny_base  # noqa: E402

from ._postgres import PASSWORD, PgServer  # noqa: E402
from .conftest import REPO  # noqa: E402

# the helpers of the SQLite tests, reused as they are (their modules skip without the extras);
# _offline is their autouse fixture: Hugging Face offline, no RANK or TEACH_DB from outside
from .test_loop import _offline, _suite  # noqa: E402,F401
from .test_predictor import _fill, _train_args  # noqa: E402
from .test_train_cli import invoke  # noqa: E402


def _no_password_under(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny offline base model."""
    return ensure_tiny_base(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def recorded(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL store that one real pytest run filled: the weather tool-selection scenarios
    under a noisy and the oracle model side by side (good and bad actions on the same prompts)."""
    cwd = tmp_path_factory.mktemp("record")
    with pg_server.database() as url:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "pytest", str(REPO / "scenarios" / "tool_selection")),
                *("-k", "weather", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"),
                *("--collect-training-data", "--teach-db", url),
                *("--ab", "scripted:noisy-0.3,scripted:oracle"),
            ],
            cwd=cwd,
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "TEACH_DB"},
        )
        assert done.returncode in (0, 1), done.stdout + done.stderr
        assert not (cwd / ".teach").exists()  # recorded into the database, no file beside it
        yield url


def test_teach_train_sft_and_dpo_register_their_models_in_a_postgresql_store(
    recorded: str, base: Path, tmp_path: Path
) -> None:
    with open_store(recorded) as store:
        location = store.location
    trained = {}
    for method, extra in (("sft", ["--full"]), ("dpo", ["--batch-size", "2"])):
        out = tmp_path / method
        result = invoke(
            method, "--db", recorded, "--scenario", "tool_selection*",
            "--base-model", str(base), "--max-steps", "1", "--output", str(out),
            "--name", f"pg-{method}", *extra,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert PASSWORD not in result.output
        assert (out / ("model.safetensors" if method == "sft" else "adapter_config.json")).is_file()
        trained[f"pg-{method}"] = (method, out.resolve())

    listed = CliRunner().invoke(cli, ["models", "list", "--db", recorded, "--json"])
    assert listed.exit_code == 0, listed.output
    models = {m["name"]: m for m in json.loads(listed.stdout)}
    assert set(models) == set(trained)
    for name, (method, out) in trained.items():
        model = models[name]
        assert model["path"] == str(out) and model["spec"] == f"hf:{out}"
        assert model["metrics"]["method"] == method and model["metrics"]["steps"] == 1
        data = model["metrics"]["data"]
        assert data["format"] == method and data["rows"] > 0 and data["db"] == location
    assert PASSWORD not in listed.output
    text = CliRunner().invoke(cli, ["models", "list", "--db", recorded])
    assert text.exit_code == 0 and {"pg-sft", "pg-dpo"} <= set(text.stdout.split())
    with open_store(recorded) as store:
        assert sorted(m.name for m in list_specialist_models(store)) == ["pg-dpo", "pg-sft"]


def test_the_predictor_trains_and_evaluates_on_a_postgresql_store_reading_its_screenshots(
    pg_url: str, tmp_path: Path
) -> None:
    pytest.importorskip("open_clip")
    _fill(pg_url)
    with open_store(pg_url) as store:
        assert store.path is None and store.backend == "postgresql"
        location = store.location
    model, evaluated = tmp_path / "model", tmp_path / "evaluated"
    runner = CliRunner()
    args = _train_args(pg_url, model, "--epochs-contrastive", "1", "--epochs-predictor", "3")
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    config = json.loads((model / "intervention_predictor.json").read_text())
    # the five rooms' screenshots were read back from the database and embedded
    assert config["metrics"]["screenshots"] == 5
    assert config["db"] == location
    with open_store(pg_url) as store:
        [registered] = list_specialist_models(store, agent="intervention-predictor")
        labels = {e.id: e.label for e in store.episodes()}
    assert registered.path == str(model.resolve())
    assert {labels[i] for i in config["split"]["test"]} == {0, 1}

    result = runner.invoke(cli, ["evaluate", "--db", pg_url, "--model", str(model), "-o", str(evaluated)])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((evaluated / "evaluation_metrics.json").read_text())
    assert metrics["test_episodes"] == len(config["split"]["test"])
    cm = metrics["confusion_matrix"]
    assert cm["tn"] + cm["fp"] + cm["fn"] + cm["tp"] == metrics["test_steps"] > 0
    assert (evaluated / "roc_curve.png").read_bytes().startswith(b"\x89PNG")
    assert PASSWORD not in result.output
    _no_password_under(model)
    _no_password_under(evaluated)


def test_teach_loop_collects_trains_and_compares_in_a_postgresql_store(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    suite, out = _suite(tmp_path), tmp_path / "run"
    args = ["loop", "--suite", str(suite), "--output", str(out), "--db", pg_url]
    # the cheapest loop: one epoch, and two of the suite's scenarios held out for the A/B
    result = CliRunner().invoke(
        cli, [*args, "--epochs", "1", "--batch-size", "8", "--held-out-fraction", "0.1", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    train_ids, held_ids = read_ids(out / "train-ids.txt"), read_ids(out / "held-out-ids.txt")
    with open_store(pg_url) as store:
        location = store.location
        collected = list(store.episodes(session=summary["collect_session"]))
        assert sorted(e.nodeid for e in collected) == sorted(train_ids)
        assert {e.model for e in collected} == {"scripted:oracle"}
        [registered] = list_specialist_models(store, agent="tool_selection")
        ab = list(store.episodes(session=summary["ab_session"]))
    assert registered.id == summary["registered"]
    assert registered.metrics["data"]["session"] == summary["collect_session"]
    assert registered.metrics["data"]["db"] == location
    assert PASSWORD not in json.dumps(registered.metrics)
    assert sorted(e.arm for e in ab) == ["A"] * len(held_ids) + ["B"] * len(held_ids)
    for key in ("before", "after"):
        assert summary[key]["total"] == len(held_ids)
    assert f"session {summary['collect_session']} in {location}" in result.output
    assert PASSWORD not in result.output
    # nothing went to a SQLite file: not the default one, not one named after the URL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "suite"]
    _no_password_under(out)


def test_teachable_rollouts_and_mine_on_a_postgresql_store(pg_url: str, tmp_path: Path) -> None:
    log, snapshots = tmp_path / "rollouts.log", tmp_path / "snapshots.jsonl"
    rollouts = CliRunner().invoke(
        cli,
        [
            *("teachable", "rollouts", "--student", "scripted:noisy-0.5", "--db", pg_url),
            *("--mock-env", "--n-tasks", "3", "--max-steps", "12", "--log", str(log)),
        ],
    )
    assert rollouts.exit_code == 0, rollouts.output
    assert PASSWORD not in rollouts.output and "[REDACTED]" in rollouts.output
    with open_store(pg_url) as store:
        (session,) = store.sessions()
        assert store.count(session=session["id"]) == 6
    mined = CliRunner().invoke(
        cli, ["teachable", "mine", "--db", pg_url, "--session", session["id"], "-o", str(snapshots)]
    )
    assert mined.exit_code == 0, mined.output
    assert snapshots.read_text().count("\n") >= 1
    _no_password_under(tmp_path)
