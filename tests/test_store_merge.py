"""teach store merge and copy: stores of any backend into one, keeping ids, never overwriting."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pytest_teach import open_store
from pytest_teach.cli import cli
from pytest_teach.store import (
    Episode,
    Label,
    Step,
    Store,
    StoreError,
    copy_store,
    merge_stores,
    new_id,
)

RECORDS = ("improvement_jobs", "training_runs", "registered_models")


def _fill(store: Store, tag: str, n: int, *, feedback: int = 2, t0: float = 1000.0) -> list[str]:
    """A session of ``n`` episodes with steps, labels, an artifact each, feedback on the first
    ``feedback`` ones, and one record of each pipeline table; return the episode ids."""
    session = new_id()
    store.start_session(session, argv=["pytest", tag], version="1", git_commit="abc", rootdir="/r")
    ids = []
    for i in range(n):
        shot = store.save_artifact_file(f"{tag}-shot-{i}".encode() * 50, "image/png")
        notes = store.save_artifact_file(b"shared notes", "text/plain")  # in every shard
        ep = Episode(
            id=new_id(),
            nodeid=f"tests/test_{tag}.py::test_{i}",
            scenario=f"{tag}[{i}]",
            outcome=("success", "intervention", "error")[i % 3],
            session_id=session,
            category="demo",
            model="m1",
            params={"i": i, "tag": tag},
            meta={"nested": {"x": [1, 2.5, None]}},
            label=(0, 1, None)[i % 3],
            label_reason="because" if i % 3 == 1 else None,
            reward=0.25 * (i % 4),
            reward_components={"a": 0.5},
            quality=3.0,
            metrics={"ms": 12.5},
            duration_s=0.125 + i,
            error="boom" if i % 3 == 2 else None,
            worker="gw0",
            created_at=t0 + i,
            steps=[
                Step(index=0, observation={"url": "u", "i": i}, action={"click": "e1"}),
                Step(
                    index=1,
                    observation="page 2",
                    action="fill",
                    valid_actions=["click", "fill"],
                    probs={"click": 0.75, "fill": 0.25},
                    entropy=0.5623351446188083,
                    label="bad",
                    correction="click",
                    intervention_p=0.3,
                ),
            ],
            labels=[Label("loop", "same action twice"), Label("slow")],
            artifacts={"shot": shot.sha256, "notes": notes.sha256},
        )
        store.write_episode(ep, [shot, notes])
        ids.append(ep.id)
    for episode_id in ids[:feedback]:
        store.add_feedback(episode_id, rating=4, comment=f"{tag} ok", aspects={"a11y": 5})
        store.add_feedback(episode_id, step=1, correct_action={"click": "e2"})
    store.finish_session(session, 0)
    job = f"job-{tag}"
    store.insert_record(
        "improvement_jobs",
        {
            "id": job,
            "agent": "a",
            "scope": json.dumps({"tag": tag}),
            "strategy": "from_runs",
            "status": "created",
            "created_at": t0,
            "updated_at": t0,
        },
    )
    store.insert_record(
        "training_runs",
        {
            "run_id": f"run-{tag}",
            "job_id": job,
            "trainer_url": "http://127.0.0.1:1",
            "dataset_ref": "d.jsonl",
            "status": "completed",
            "created_at": t0,
            "updated_at": t0,
        },
    )
    store.insert_record(
        "registered_models",
        {
            "id": f"model-{tag}",
            "name": f"n-{tag}",
            "agent": "a",
            "path": "/m",
            "kind": "hf",
            "job_id": job,
            "run_id": f"run-{tag}",
            "created_at": t0,
        },
    )
    return ids


def _snapshot(target: Path | str) -> dict[str, Any]:
    """Everything a store holds, comparable across backends (episodes by id, field by field)."""
    with open_store(target) as store:
        episodes = sorted((dataclasses.asdict(e) for e in store.episodes()), key=lambda e: e["id"])
        artifacts = {
            ref.sha256: (ref.size, ref.media_type, store.read_artifact(ref.sha256))
            for ref in store.artifacts()
        }
        return {
            "episodes": episodes,
            "sessions": sorted(store.sessions(), key=lambda s: s["id"]),
            "feedback": [dataclasses.asdict(f) for f in store.feedback()],
            "artifacts": artifacts,
            "records": {t: store.list_records(t) for t in RECORDS},
        }


def _counts(target: Path | str) -> dict[str, int]:
    with open_store(target) as store:
        return {
            table: store.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in (
                "sessions",
                "episodes",
                "steps",
                "labels",
                "feedback",
                "artifacts",
                "episode_artifacts",
                *RECORDS,
            )
        }


def _shard(path: Path | str, tag: str, n: int = 6, **kw: Any) -> list[str]:
    with Store.open(path, create=True) as store:
        return _fill(store, tag, n, **kw)


def test_sqlite_merge_keeps_everything_and_twice_adds_nothing(tmp_path: Path) -> None:
    a, b, team = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "out" / "team.db"
    ids_a, ids_b = _shard(a, "a"), _shard(b, "b", 4)
    report = merge_stores([a, b], team)
    assert report.ok, report.lines()
    t = report.tables
    assert (t["episodes"].added, t["sessions"].added, t["training_runs"].added) == (10, 2, 2)
    # b's "shared notes" artifact is the one a brought: content-addressed, kept once
    assert (t["artifacts"].added, t["artifacts"].present) == (11, 1)
    snap = _snapshot(team)
    assert [e["id"] for e in snap["episodes"]] == sorted(ids_a + ids_b)
    for source in (a, b):
        part = _snapshot(source)
        kept = {e["id"]: e for e in snap["episodes"]}
        for episode in part["episodes"]:
            mine = kept[episode["id"]]
            # feedback ids of b were renumbered (a took 1..4), the rest is the same field by field
            assert {**mine, "feedback": None} == {**episode, "feedback": None}
            assert [{**f, "id": 0} for f in mine["feedback"]] == [
                {**f, "id": 0} for f in episode["feedback"]
            ]
        for sha, data in part["artifacts"].items():
            assert snap["artifacts"][sha] == data
        for table in RECORDS:
            assert all(r in snap["records"][table] for r in part["records"][table])
        assert all(s in snap["sessions"] for s in part["sessions"])
    before = _counts(team)
    again = merge_stores([a, b], team)
    assert again.ok and _counts(team) == before
    assert sum(tm.added for tm in again.tables.values()) == 0
    assert again.tables["episodes"].present == 10 and again.tables["feedback"].present == 8
    assert again.tables["sessions"].present == 2 and again.tables["artifacts"].present == 12


def test_round_trip_sqlite_postgres_sqlite_keeps_everything(tmp_path: Path, pg_url: str) -> None:
    src, back = tmp_path / "src.db", tmp_path / "back.db"
    _shard(src, "a", 7)
    original = _snapshot(src)
    assert copy_store(src, pg_url).ok
    assert _snapshot(pg_url) == original
    assert copy_store(pg_url, back).ok
    assert _snapshot(back) == original
    assert _counts(back) == _counts(src)
    # the feedback ids came over as they were: the sequence is past them for new feedback
    with open_store(pg_url) as store:
        episode = original["episodes"][0]["id"]
        added = store.add_feedback(episode, rating=1)
        assert added.id == max(f["id"] for f in original["feedback"]) + 1


def test_merging_twice_into_postgres_adds_nothing(tmp_path: Path, pg_url: str) -> None:
    _shard(tmp_path / "a.db", "a")
    _shard(tmp_path / "b.db", "b")
    shards = [tmp_path / "a.db", tmp_path / "b.db"]
    assert merge_stores(shards, pg_url).ok
    before = _counts(pg_url)
    assert before["episodes"] == 12 and before["feedback"] == 8
    again = merge_stores(shards, pg_url)
    assert again.ok and _counts(pg_url) == before
    assert sum(t.added for t in again.tables.values()) == 0


def _change_episode(path: Path, episode_id: str) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "UPDATE episodes SET outcome = 'error', label = NULL WHERE id = ?", (episode_id,)
        )
        conn.execute(
            "UPDATE steps SET action = '\"other\"' WHERE episode_id = ? AND idx = 0", (episode_id,)
        )
    conn.close()


def test_a_conflicting_episode_is_reported_by_id_and_dest_keeps_its_row(tmp_path: Path) -> None:
    src, team = tmp_path / "a.db", tmp_path / "team.db"
    ids = _shard(src, "a", 3, feedback=0)
    assert copy_store(src, team).ok
    kept = _snapshot(team)
    _change_episode(src, ids[0])
    with open_store(src) as store:  # a new episode beside the conflicting one is still merged
        extra = _fill(store, "late", 1, feedback=0, t0=5000.0)
    report = merge_stores([src], team)
    assert not report.ok
    assert report.tables["episodes"].conflicts == 1 and report.tables["episodes"].added == 1
    (conflict,) = report.conflicts
    assert (conflict.table, conflict.key) == ("episodes", ids[0])
    assert set(conflict.fields) == {"outcome", "label", "steps"}
    assert any(ids[0] in line and "outcome" in line for line in report.lines())
    after = _snapshot(team)
    dest_episode = next(e for e in after["episodes"] if e["id"] == ids[0])
    assert dest_episode == next(e for e in kept["episodes"] if e["id"] == ids[0])
    assert extra[0] in {e["id"] for e in after["episodes"]}
    # a record that went on in the source (a NULL there now set) conflicts too; DEST keeps it
    conn = sqlite3.connect(src)
    with conn:
        conn.execute("UPDATE training_runs SET output_model_ref = 'out/m' WHERE run_id = 'run-a'")
    conn.close()
    report = merge_stores([src], team)
    assert [(c.table, c.key, c.fields) for c in report.conflicts] == [
        ("episodes", ids[0], conflict.fields),
        ("training_runs", "run-a", ("output_model_ref",)),
    ]
    with open_store(team) as store:
        assert store.get_record("training_runs", "run-a")["output_model_ref"] is None


def test_a_session_finished_later_is_completed_not_a_conflict(tmp_path: Path) -> None:
    src, team = tmp_path / "a.db", tmp_path / "team.db"
    with Store.open(src, create=True) as store:
        store.start_session("s1", argv=["pytest"], version="1", git_commit=None, rootdir=None)
    assert copy_store(src, team).ok
    with open_store(src) as store:
        store.finish_session("s1", 1)
        finished = store.sessions()[0]
    report = merge_stores([src], team)
    assert report.ok and report.tables["sessions"].filled == 1
    with open_store(team) as store:
        assert store.sessions() == [finished]
    # a session that differs in a column both stores hold is a conflict
    conn = sqlite3.connect(src)
    with conn:
        conn.execute("UPDATE sessions SET exit_status = 2")
    conn.close()
    report = merge_stores([src], team)
    assert report.tables["sessions"].conflicts == 1
    assert report.conflicts[0].fields == ("exit_status",)
    with open_store(team) as store:
        assert store.sessions()[0]["exit_status"] == 1


def test_feedback_of_two_shards_is_renumbered_not_lost(tmp_path: Path) -> None:
    a, b, team = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "team.db"
    _shard(a, "a", 3, feedback=1)  # feedback ids 1, 2
    _shard(b, "b", 3, feedback=2)  # feedback ids 1..4: 1 and 2 are a's in the team store
    for shard in (a, b):
        with open_store(shard) as store:
            assert [f.id for f in store.feedback()][:2] == [1, 2]
    report = merge_stores([a, b], team)
    fb = report.tables["feedback"]
    assert (fb.added, fb.renumbered, fb.present) == (6, 2, 0)
    with open_store(team) as store:
        rows = store.feedback()
        assert sorted(f.id for f in rows) == [1, 2, 3, 4, 5, 6]
        assert sorted(f.comment or "" for f in rows) == ["", "", "", "a ok", "b ok", "b ok"]
        later = store.add_feedback(rows[0].episode_id, rating=2)
        assert later.id == 7
    assert merge_stores([b, a], team).tables["feedback"].present == 6
    assert _counts(team)["feedback"] == 7


def test_feedback_renumbering_into_postgres(tmp_path: Path, pg_url: str) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    _shard(a, "a", 2, feedback=2)
    _shard(b, "b", 2, feedback=2)
    report = merge_stores([a, b], pg_url)
    assert (report.tables["feedback"].added, report.tables["feedback"].renumbered) == (8, 4)
    with open_store(pg_url) as store:
        assert sorted(f.id for f in store.feedback()) == list(range(1, 9))
        assert store.add_feedback(store.feedback()[0].episode_id, rating=5).id == 9


def test_copy_refuses_a_dest_that_holds_a_store(tmp_path: Path, pg_url: str) -> None:
    src, taken = tmp_path / "a.db", tmp_path / "taken.db"
    _shard(src, "a", 2)
    _shard(taken, "t", 1, feedback=0)
    before = _counts(taken)
    with pytest.raises(StoreError, match=r"taken\.db already holds .*episodes"):
        copy_store(src, taken)
    assert _counts(taken) == before
    assert copy_store(src, pg_url).ok
    with pytest.raises(StoreError, match="already holds"):
        copy_store(src, pg_url)
    with pytest.raises(StoreError, match="both a source and DEST"):
        merge_stores([src], tmp_path / "." / "a.db")


def test_copy_into_a_database_of_another_application_is_refused(pg_url: str, tmp_path) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int)")
    _shard(tmp_path / "a.db", "a", 1)
    with pytest.raises(StoreError, match="orders.*not a pytest-teach store"):
        copy_store(tmp_path / "a.db", pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        assert [r[0] for r in tables] == ["orders"]


def test_an_interrupted_merge_leaves_whole_episodes_and_a_rerun_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_teach.store import _merge

    src, team = tmp_path / "a.db", tmp_path / "team.db"
    _shard(src, "a", 25, feedback=25)
    monkeypatch.setattr(_merge, "BATCH", 10)
    real = _merge._Merger._episode_batch
    calls = []

    def dies_on_the_third(self, batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(_merge._Merger, "_episode_batch", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        merge_stores([src], team)
    half = _counts(team)
    assert half["episodes"] == 20 and half["steps"] == 40 and half["feedback"] == 40
    monkeypatch.setattr(_merge._Merger, "_episode_batch", real)
    report = merge_stores([src], team)
    assert report.ok and report.tables["episodes"].added == 5
    assert _snapshot(team) == _snapshot(src)


def test_a_missing_artifact_file_skips_its_episodes_and_says_so(tmp_path: Path) -> None:
    src, team = tmp_path / "a.db", tmp_path / "team.db"
    ids = _shard(src, "a", 2, feedback=0)
    with open_store(src) as store:
        ep = store.get_episode(ids[0])
        store.artifact_path(ep.artifacts["shot"]).unlink()
    report = merge_stores([src], team)
    assert not report.ok and report.tables["episodes"].skipped == 1
    assert any("could not be read" in note for note in report.notes)
    with open_store(team) as store:
        assert [e.id for e in store.episodes()] == [ids[1]]


SUITE = """
import pytest

@pytest.mark.parametrize("case", [f"c{i}" for i in range(12)])
def test_case(episode, case):
    episode.step({"case": case}, "act")
    episode.attach("notes", f"notes of {case}")
    assert int(case[1:]) % 4 != 3, "every fourth case needs help"
"""


def test_four_ci_shards_merge_into_their_union(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # only pytest-teach's plugin: the other installed plugins would be loaded again per run
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_suite=SUITE)
    shards = []
    for k in range(4):
        db = pytester.path / f"shard-{k}.db"
        cases = [f"test_case[c{i}]" for i in range(3 * k, 3 * k + 3)]  # as pytest-split groups
        args = [f"test_suite.py::{c}" for c in cases]
        result = pytester.runpytest(
            "-p",
            "pytest_teach.plugin",
            "--collect-training-data",
            "-p",
            "no:cacheprovider",
            "--teach-db",
            str(db),
            *args,
        )
        outcomes = result.parseoutcomes()
        assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 3
        shards.append(db)
    team = tmp_path / "team.db"
    result = CliRunner().invoke(
        cli, ["store", "merge", *map(str, shards), "--into", str(team)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "no conflicts" in result.output
    with open_store(team) as store:
        episodes = list(store.episodes())
        assert sorted(e.nodeid.split("::")[-1] for e in episodes) == sorted(
            f"test_case[c{i}]" for i in range(12)
        )
        assert len({e.id for e in episodes}) == 12 and len(store.sessions()) == 4
        assert sum(e.outcome == "intervention" for e in episodes) == 3
        for e in episodes:
            case = e.steps[0].observation["case"]
            assert store.read_artifact(e.artifacts["notes"]) == f"notes of {case}".encode()
    again = CliRunner().invoke(cli, ["store", "merge", *map(str, shards), "--into", str(team)])
    assert again.exit_code == 0 and _counts(team)["episodes"] == 12
    # beside the shards, the team store shares their artifacts/ folder: its rows are still new
    beside = merge_stores(shards, pytester.path / "team.db")
    assert (beside.tables["artifacts"].added, beside.tables["artifacts"].present) == (12, 0)
    assert _counts(pytester.path / "team.db") == _counts(team)


LIVE_SUITE = """
import pathlib, time
import pytest

@pytest.mark.parametrize("i", range(600))
def test_live(episode, i):
    episode.step(i, "act")
    if i == 50:  # the merge starts while this session is running
        deadline = time.monotonic() + 120
        while not pathlib.Path("go").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    time.sleep(0.005)
"""


def test_merge_into_postgres_while_pytest_writes_loses_nothing(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_teach.store import _merge

    monkeypatch.setattr(_merge, "BATCH", 25)  # many small transactions among the session's
    shards = []
    ids: list[str] = []
    for k in range(4):
        shards.append(tmp_path / f"shard-{k}.db")
        ids += _shard(shards[-1], f"s{k}", 150, feedback=5)
    (tmp_path / "test_live.py").write_text(LIVE_SUITE)
    with Store.open(pg_url, create=True):
        pass  # the schema exists before both writers start
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    live = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "pytest_teach.plugin", "-p",
         "no:cacheprovider", "test_live.py", "--collect-training-data", "--teach-db", pg_url],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        with open_store(pg_url) as store:
            deadline = time.monotonic() + 120
            while not store.sessions() and live.poll() is None:
                assert time.monotonic() < deadline, "the live session did not start"
                time.sleep(0.05)
            (running,) = store.sessions()
            assert running["finished_at"] is None  # the session is still writing
        (tmp_path / "go").touch()
        report = merge_stores(shards, pg_url)
        out, _ = live.communicate(timeout=300)
    finally:
        (tmp_path / "go").touch()
        if live.poll() is None:
            live.kill()
            live.wait()
    assert live.returncode == 0, out
    assert report.ok, report.lines()
    assert report.tables["episodes"].added == 600
    with open_store(pg_url) as store:
        stored = [e.id for e in store.episodes()]
        assert len(stored) == len(set(stored)) == 600 + 600
        assert set(ids) <= set(stored)
        assert store.count(scenario="test_live") == 600
        assert len(store.feedback()) == 40 and len(store.sessions()) == 5


def test_cli_merge_and_copy(tmp_path: Path, pg_url: str) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    ids = _shard(a, "a", 2)
    _shard(b, "b", 2)
    runner = CliRunner()
    copied = runner.invoke(cli, ["store", "copy", str(a), pg_url])
    assert copied.exit_code == 0, copied.output
    assert "copied" in copied.output and "no conflicts" in copied.output
    password = pg_url.split(":")[2].split("@")[0]
    assert password not in copied.output and "[REDACTED]" in copied.output
    refused = runner.invoke(cli, ["store", "copy", str(a), pg_url])
    assert refused.exit_code == 2 and "already holds" in refused.output
    assert password not in refused.output
    _change_episode(a, ids[1])
    merged = runner.invoke(cli, ["store", "merge", str(a), str(b), "--into", pg_url])
    assert merged.exit_code == 1, merged.output
    assert f"episodes {ids[1]}" in merged.output and password not in merged.output
    missing = runner.invoke(cli, ["store", "merge", str(tmp_path / "nope.db"), "--into", str(b)])
    assert missing.exit_code == 2
    assert missing.output.count("\n") == 1 and "nope.db" in missing.output
    assert not (tmp_path / "fresh.db").exists()
    missing = runner.invoke(
        cli,
        ["store", "merge", str(a), str(tmp_path / "nope.db"), "--into", str(tmp_path / "fresh.db")],
    )
    assert missing.exit_code == 2 and not (tmp_path / "fresh.db").exists()
    unreachable = runner.invoke(
        cli, ["store", "merge", str(a), "--into", "postgresql://u:s3cr3t@127.0.0.1:9/x"]
    )
    assert unreachable.exit_code == 2 and "127.0.0.1:9" in unreachable.output
    assert "s3cr3t" not in unreachable.output and unreachable.output.count("\n") == 1
    assert "teach store merge" in runner.invoke(cli, ["store", "merge", "--help"]).output
