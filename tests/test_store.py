"""The store's schema versioning, migrations, and read API."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pytest_teach import StoreError, open_store
from pytest_teach.recorder import EpisodeRecorder
from pytest_teach.store import _schema, _store, new_id


def _write(store, scenario: str, outcome: str, **fields) -> str:
    rec = EpisodeRecorder(enabled=True)
    rec.step("obs", "act")
    ep = rec.build(
        episode_id=new_id(), nodeid=f"t::{scenario}", scenario=scenario, outcome=outcome,
        reason=None, **fields,
    )  # fmt: skip
    store.write_episode(ep)
    return ep.id


def test_new_store_is_wal_with_schema_version(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a" / "b.db", create=True)
    assert store.schema_version == _schema.SCHEMA_VERSION
    conn = sqlite3.connect(tmp_path / "a" / "b.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT value FROM meta WHERE key='application'").fetchone()[0] == (
        "pytest-teach"
    )


def test_old_store_is_migrated_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    store = open_store(path, create=True)
    kept = _write(store, "kept", "success")
    store.close()
    nxt = _schema.SCHEMA_VERSION + 1
    upgraded = {
        **_schema.MIGRATIONS,
        nxt: ("ALTER TABLE steps ADD COLUMN intervention_prob REAL",),
    }
    monkeypatch.setattr(_store, "MIGRATIONS", upgraded)
    monkeypatch.setattr(_store, "SCHEMA_VERSION", nxt)
    store = open_store(path)
    assert store.schema_version == nxt
    assert [e.id for e in store.episodes()] == [kept], "history survives the migration"
    cols = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(steps)")]
    assert "intervention_prob" in cols


def test_failed_migration_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    store = open_store(path, create=True)
    _write(store, "kept", "success")
    store.close()
    nxt = _schema.SCHEMA_VERSION + 1
    broken = {**_schema.MIGRATIONS, nxt: ("ALTER TABLE steps ADD COLUMN x REAL", "NOT SQL")}
    monkeypatch.setattr(_store, "MIGRATIONS", broken)
    monkeypatch.setattr(_store, "SCHEMA_VERSION", nxt)
    with pytest.raises(StoreError, match="could not migrate .* left unchanged"):
        open_store(path)
    monkeypatch.undo()
    store = open_store(path)
    assert store.schema_version == _schema.SCHEMA_VERSION and store.count() == 1
    cols = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(steps)")]
    assert "x" not in cols


def test_newer_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    open_store(path, create=True).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    with pytest.raises(StoreError, match="schema 99, newer than this pytest-teach supports"):
        open_store(path)


def test_episode_filters(store_target: Path | str) -> None:
    store = open_store(store_target, create=True)
    _write(store, "weather-1", "success", model="m:a", category="info")
    _write(store, "weather-2", "intervention", model="m:b", category="info")
    _write(store, "email-1", "error", model="m:a")
    assert store.count() == 3
    assert store.count(include_errors=False) == 2
    assert [e.scenario for e in store.episodes(scenario="weather-*")] == ["weather-1", "weather-2"]
    assert [e.scenario for e in store.episodes(label="intervention")] == ["weather-2"]
    assert [e.scenario for e in store.episodes(label=0)] == ["weather-1"]
    assert store.count(model=["m:a"]) == 2 and store.count(category="info") == 2
    assert store.count(since="1d") == 3 and store.count(since="2999-01-01") == 0
    assert store.count(min_reward=0.5) == 1
    with pytest.raises(StoreError, match="not a date"):
        store.count(since="yesterday-ish")
    with pytest.raises(StoreError, match="label 'maybe'"):
        store.count(label="maybe")


def test_one_episode_filter_behind_episodes_count_and_stats(store_target: Path | str) -> None:
    from pytest_teach.store import EpisodeFilter

    store = open_store(store_target, create=True)
    _write(store, "weather-1", "success", model="m:a", category="info")
    _write(store, "weather-2", "intervention", model="m:b", category="info")
    _write(store, "email-1", "error", model="m:a")
    chosen = {"model": "m:a", "include_errors": False}
    assert [e.scenario for e in store.episodes(**chosen)] == ["weather-1"]
    assert store.count(**chosen) == 1
    assert store.stats(**chosen)["episodes"] == 1
    assert EpisodeFilter(**chosen).where_clause() == (
        "WHERE model IN (?) AND outcome != 'error'",
        ["m:a"],
    )
    assert EpisodeFilter().where_clause() == ("", [])
    for method in (store.episodes, store.count, store.stats):
        with pytest.raises(TypeError, match="'colour'"):
            method(colour="red")  # at the call, before any row is read
    with pytest.raises(StoreError, match="not a date"):
        store.episodes(since="yesterday-ish")


def _job_row(job_id: str, agent: str, created_at: float) -> dict:
    return {
        "id": job_id,
        "agent": agent,
        "scope": "{}",
        "strategy": "from_feedback",
        "status": "created",
        "created_at": created_at,
        "updated_at": created_at,
    }


def test_record_tables_are_read_and_written_through_store_methods(store_target: Path | str) -> None:
    store = open_store(store_target, create=True)
    store.insert_record("improvement_jobs", _job_row("abcd0001", "planner", 1.0))
    store.insert_record("improvement_jobs", _job_row("abcd0002", "planner", 2.0))
    store.insert_record("improvement_jobs", _job_row("ffff0001", "browser", 3.0))
    assert store.get_record("improvement_jobs", "abcd0001")["agent"] == "planner"
    assert store.get_record("improvement_jobs", "nope") is None
    assert [r["id"] for r in store.list_records("improvement_jobs")] == [
        "ffff0001",
        "abcd0002",
        "abcd0001",
    ]
    assert [r["id"] for r in store.list_records("improvement_jobs", agent="planner")] == [
        "abcd0002",
        "abcd0001",
    ]
    assert store.match_record_ids("improvement_jobs", "abcd0001") == ["abcd0001"]
    assert store.match_record_ids("improvement_jobs", "abcd") == ["abcd0001", "abcd0002"]
    assert store.match_record_ids("improvement_jobs", "ffff") == ["ffff0001"]
    assert store.match_record_ids("improvement_jobs", "0000") == []
    store.update_record("improvement_jobs", "abcd0001", {"status": "failed", "error": "boom"})
    row = store.get_record("improvement_jobs", "abcd0001")
    assert (row["status"], row["error"]) == ("failed", "boom")
    with pytest.raises(StoreError, match="not a record table"):
        store.list_records("episodes")
    with pytest.raises(StoreError, match="no column 'agent; DROP'"):
        store.update_record("improvement_jobs", "abcd0001", {"agent; DROP": "x"})
    with pytest.raises(StoreError, match="no column 'colour'"):
        store.list_records("improvement_jobs", colour="red")


def test_record_writes_refuse_a_read_only_store(tmp_path: Path) -> None:
    from .conftest import read_only

    path = tmp_path / "s.db"
    open_store(path, create=True).close()
    with read_only(path):
        store = _store.Store(path, _store._connect_for_reading(path))
        with pytest.raises(StoreError, match="read-only"):
            store.insert_record("improvement_jobs", _job_row("abcd0001", "planner", 1.0))
        store.close()


def test_scenario_glob_treats_brackets_literally(store_target: Path | str) -> None:
    store = open_store(store_target, create=True)
    _write(store, "tool_selection[weather-001]", "success")
    _write(store, "tool_selection[email-001]", "success")
    _write(store, "tool_selectionw", "success")
    assert [e.scenario for e in store.episodes(scenario="tool_selection[weather-*")] == [
        "tool_selection[weather-001]"
    ]
    assert store.count(scenario="tool_selection[*]") == 2
    assert store.count(scenario="tool_selection?") == 1


def test_a_damaged_header_is_told_from_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.db"
    store = open_store(damaged, create=True)
    _write(store, "kept", "success")
    store.close()
    data = bytearray(damaged.read_bytes())
    data[16:24] = b"\xff" * 8  # the page size and format bytes of the SQLite header
    damaged.write_bytes(bytes(data))
    text = tmp_path / "notes.db"
    text.write_text("not sqlite at all\n" * 100)
    for create in (False, True):
        with pytest.raises(StoreError) as refused:
            open_store(damaged, create=create)
        assert str(refused.value).startswith(f"{damaged} is damaged (file is not a database)")
        assert f"teach store recover --db {damaged} -o NEW.db" in str(refused.value)
        with pytest.raises(StoreError) as refused:
            open_store(text, create=create)
        assert str(refused.value) == f"{text} is not a pytest-teach store (file is not a database)"
    assert bytes(data) == damaged.read_bytes()


def test_a_limit_reads_only_the_episodes_asked_for(store_target: Path | str) -> None:
    from pytest_teach.store import Episode

    store = open_store(store_target, create=True)
    store.write_episodes(
        [
            Episode(id=f"{i:016x}", nodeid="t", scenario=f"fam[c-{i % 3}]", outcome="success")
            for i in range(1200)
        ]
    )
    page = list(store.episodes(limit=50, scenario="fam[c-1]"))
    assert [e.id for e in page] == [f"{i:016x}" for i in range(1, 150, 3)]  # recording order
    assert len(list(store.episodes(limit=700))) == 700  # across two internal pages
    assert len(list(store.episodes(scenario="fam[c-1]"))) == 400
    assert len(list(store.episodes(scenario="c-1"))) == 400  # the case id still matches
    assert list(store.episodes(limit=0)) == []
    store.close()
