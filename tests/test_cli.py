"""The `teach` CLI: stats, export, feedback, and one clear error for every bad input."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_teach import open_store
from pytest_teach.cli import cli
from pytest_teach.recorder import EpisodeRecorder
from pytest_teach.store import new_id

from .conftest import store_dump


def _episode(store, scenario: str, obs: str, action: str, outcome: str, model: str) -> str:
    rec = EpisodeRecorder(enabled=True)
    rec.step(
        obs,
        action,
        messages=[{"role": "system", "content": "plan"}, {"role": "user", "content": obs}],
    )
    ep = rec.build(
        episode_id=new_id(),
        nodeid=f"t.py::{scenario}",
        scenario=scenario,
        outcome=outcome,
        reason="wrong tool" if outcome == "intervention" else None,
        model=model,
        category="research",
    )
    store.write_episode(ep)
    return ep.id


@pytest.fixture
def db(tmp_path: Path) -> dict:
    path = tmp_path / "store" / "experience.db"
    store = open_store(path, create=True)
    ids = {
        "good": _episode(
            store,
            "weather-001",
            "weather in Oslo?",
            '{"tools":["weather"]}',
            "success",
            "scripted:oracle",
        ),
        "bad": _episode(
            store,
            "weather-001",
            "weather in Oslo?",
            '{"tools":["search"]}',
            "intervention",
            "scripted:noisy-0.3",
        ),
        "other": _episode(
            store,
            "email-002",
            "mail Ann",
            '{"tools":["email_send"]}',
            "success",
            "scripted:noisy-0.3",
        ),
    }
    store.close()
    return {"path": path, "ids": ids}


def teach(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_stats_json(db) -> None:
    result = teach("stats", "--db", str(db["path"]), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["episodes"] == 3
    assert data["by_outcome"] == {"intervention": 1, "success": 2}
    assert data["by_label"] == {"success": 2, "intervention": 1}
    assert data["by_model"] == {"scripted:noisy-0.3": 2, "scripted:oracle": 1}
    assert data["by_scenario"] == {"email-002": 1, "weather-001": 2}
    text = teach("stats", "--db", str(db["path"]))
    assert "interventions 33.3% of labeled episodes" in text.stdout


def test_stats_reads_teach_db_env(db, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEACH_DB", str(db["path"]))
    assert json.loads(teach("stats", "--json").stdout)["episodes"] == 3


def test_export_filters_and_formats(db, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = teach("export", "--db", str(db["path"]), "--format", "openai", "-o", str(out / "a.jsonl"))
    assert r.exit_code == 0 and "wrote 2 rows" in r.stdout
    rows = [json.loads(x) for x in (out / "a.jsonl").read_text().splitlines()]
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": '{"tools":["weather"]}'}
    r = teach(
        "export", "--db", str(db["path"]), "--format", "sft", "-o", str(out / "b.jsonl"),
        "--model", "scripted:noisy-0.3", "--scenario", "email-*",
    )  # fmt: skip
    assert "wrote 1 rows" in r.stdout
    r = teach("export", "--db", str(db["path"]), "--format", "dpo", "-o", str(out / "d.jsonl"))
    (pair,) = [json.loads(x) for x in (out / "d.jsonl").read_text().splitlines()]
    assert pair["chosen"][0]["content"] == '{"tools":["weather"]}'
    assert pair["rejected"][0]["content"] == '{"tools":["search"]}'
    assert pair["prompt"][-1] == {"role": "user", "content": "weather in Oslo?"}
    r = teach("export", "--db", str(db["path"]), "--format", "interventions", "-o", str(out / "iv"))
    manifest = json.loads((out / "iv" / "manifest.json").read_text())
    assert manifest["counts"] == {"interventions": 1, "successes": 2, "total": 3}
    assert manifest["balance"]["intervention_ratio"] == pytest.approx(1 / 3)
    assert manifest["sources"]["db"] == str(db["path"])
    r = teach(
        "export",
        "--db",
        str(db["path"]),
        "--format",
        "grpo",
        "-o",
        str(out / "g.jsonl"),
        "--label",
        "intervention",
    )
    (row,) = [json.loads(x) for x in (out / "g.jsonl").read_text().splitlines()]
    assert row["scenario"] == "weather-001" and row["prompt"][0]["role"] == "system"


def test_feedback_correction_becomes_dpo_pair_and_sft_row(db, tmp_path: Path) -> None:
    bad = db["ids"]["bad"]
    r = teach(
        "feedback", "add", "--db", str(db["path"]), "--example", bad[:6], "--rating", "1",
        "--aspect", "accuracy=1", "--comment", "wrong tool", "--step", "0",
        "--correct-action", '"{\\"tools\\":[\\"weather_forecast\\"]}"',
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    listed = json.loads(teach("feedback", "list", "--db", str(db["path"]), "--json").stdout)
    assert listed[0]["episode_id"] == bad and listed[0]["aspects"] == {"accuracy": 1}
    teach("export", "--db", str(db["path"]), "--format", "dpo", "-o", str(tmp_path / "d.jsonl"))
    pairs = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    chosen = {p["chosen"][0]["content"] for p in pairs}
    assert '{"tools":["weather_forecast"]}' in chosen
    teach("export", "--db", str(db["path"]), "--format", "sft", "-o", str(tmp_path / "s.jsonl"))
    replies = [
        json.loads(x)["messages"][-1]["content"]
        for x in (tmp_path / "s.jsonl").read_text().splitlines()
    ]
    assert '{"tools":["weather_forecast"]}' in replies


BAD_FEEDBACK = [
    (["--example", "ffffffff", "--rating", "3"], "unknown example id 'ffffffff'"),
    (["--example", "not-an-id", "--rating", "3"], "is not an episode id"),
    (["--example", "{bad}", "--rating", "0"], "0 is not in the range 1<=x<=5"),
    (["--example", "{bad}", "--rating", "6"], "6 is not in the range 1<=x<=5"),
    (["--example", "{bad}", "--suggested-action", "{oops"], "malformed JSON"),
    (["--example", "{bad}", "--step", "0", "--correct-action", "[1,"], "malformed JSON"),
    (["--example", "{bad}", "--step", "5", "--correct-action", "1"], "--step 5 is out of range"),
    (["--example", "{bad}", "--step", "0"], "--step and --correct-action go together"),
    (["--example", "{bad}", "--aspect", "speed=9"], "is not NAME=1..5"),
    (["--example", "{bad}"], "feedback needs at least one of"),
]


@pytest.mark.parametrize(("args", "message"), BAD_FEEDBACK)
def test_bad_feedback_is_one_line_and_changes_nothing(db, args, message) -> None:
    before = store_dump(db["path"])
    args = [a.replace("{bad}", db["ids"]["bad"]) for a in args]
    r = teach("feedback", "add", "--db", str(db["path"]), *args)
    assert r.exit_code != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("teach feedback add: error:") and message in lines[0], lines[0]
    assert store_dump(db["path"]) == before


def _foreign(tmp_path: Path) -> Path:
    path = tmp_path / "foreign.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.db", "no pytest-teach store at"),
        (
            lambda tmp: (
                (tmp / "garbage.db").write_text("not sqlite at all" * 100) and tmp / "garbage.db"
            ),
            "is not a pytest-teach store",
        ),
        (lambda tmp: tmp, "is a directory, not a pytest-teach store"),
        (_foreign, "is a SQLite file but not a pytest-teach store"),
    ],
    ids=["missing", "garbage", "directory", "foreign"],
)
@pytest.mark.parametrize(
    "verb", [["stats"], ["export", "--format", "sft", "-o", "x.jsonl"], ["feedback", "list"]]
)
def test_unreadable_or_foreign_store(tmp_path: Path, make, message, verb) -> None:
    path = make(tmp_path)
    before = path.read_bytes() if path.is_file() else None
    verb = [str(tmp_path / v) if v == "x.jsonl" else v for v in verb]
    r = teach(*verb, "--db", str(path))
    assert not (tmp_path / "x.jsonl").exists()
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    if before is not None:
        assert path.read_bytes() == before


def test_unwritable_output_leaves_nothing(db, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = teach("export", "--db", str(db["path"]), "--format", "sft", "-o", str(blocker / "x.jsonl"))
    assert r.exit_code == 2 and "cannot write" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    existing = tmp_path / "keep.jsonl"
    existing.write_text("old contents\n")
    r = teach("export", "--db", str(db["path"]), "--format", "sft", "-o", str(tmp_path))
    assert r.exit_code == 2 and "is a directory" in r.stderr
    r = teach(
        "export", "--db", str(db["path"]), "--format", "sft", "-o", str(existing), "--since", "soon"
    )
    assert r.exit_code == 2 and "--since 'soon' is not a date" in r.stderr
    assert existing.read_text() == "old contents\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp files left behind"


def test_help_for_every_verb() -> None:
    for verb in (["stats"], ["export"], ["feedback"], ["feedback", "add"], ["feedback", "list"]):
        r = teach(*verb, "--help")
        assert r.exit_code == 0 and "--help" in r.stdout
