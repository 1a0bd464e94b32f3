"""Broken stores fail loudly, in one line, before anything is written.

Read-only files and folders are made read-only in a way that stops root too (these tests often
run as root, who ignores permission bits): the immutable flag (``chattr +i``) as root, permission
bits otherwise; a read-only file system is a read-only bind mount. A damaged store is a real one
with garbage written over its middle pages.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_teach import open_store
from pytest_teach.cli import cli
from pytest_teach.store import Episode, Label, Step, Store, StoreError, _store, new_id

from .conftest import read_only

SUITE = """
import pytest

@pytest.mark.parametrize("i", range(3))
def test_case(episode, i):
    episode.step({"q": i}, {"tool": "search"})
    assert i != 2
"""


def teach(*args: str):
    return CliRunner().invoke(cli, list(args))


def _fingerprint(path: Path) -> tuple[str, list[str]]:
    """The store file's bytes (hashed) and what its folder holds."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), sorted(os.listdir(path.parent))


def _empty_wal(path: Path) -> bool:
    """Reading read-only leaves SQLite's -wal/-shm files behind (only a writer removes them);
    the -wal must hold nothing."""
    wal = path.with_name(path.name + "-wal")
    return not wal.exists() or wal.stat().st_size == 0


@contextlib.contextmanager
def read_only_mount(folder: Path) -> Iterator[None]:
    """Bind-mount ``folder`` read-only over itself (root only)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only bind mount needs root and mount")
    bind = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if bind.returncode:
        pytest.skip(f"mount --bind fails here: {bind.stderr.decode().strip()}")
    ro = subprocess.run(
        ["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True, text=True
    )
    try:
        if ro.returncode:
            pytest.skip(f"remounting read-only fails here: {ro.stderr.strip()}")
        yield
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(folder)], check=True)


def _fill(path: Path, n: int = 600) -> Store:
    """A store with ``n`` episodes of three steps each: a few hundred pages."""
    rng = random.Random(7)
    store = open_store(path, create=True)
    episodes = []
    for i in range(n):
        ok = i % 3 != 0
        episodes.append(
            Episode(
                id=new_id(),
                nodeid=f"t.py::test_case[{i}]",
                scenario=f"tool_selection[case-{i:03d}]",
                outcome="success" if ok else "intervention",
                label=0 if ok else 1,
                model="scripted:noisy",
                steps=[
                    Step(index=j, observation={"q": rng.randbytes(150).hex()}, action="search")
                    for j in range(3)
                ],
                labels=[Label("success" if ok else "intervention")],
            )
        )
    store.write_episodes(episodes)
    return store


def _damage(path: Path) -> None:
    """Write garbage over the middle fifth of the pages, and check SQLite sees it."""
    conn = sqlite3.connect(path)
    pages, size = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size"))
    conn.close()
    rng = random.Random(1)
    with path.open("r+b") as fh:
        for page in range(int(pages * 0.4), int(pages * 0.6)):
            fh.seek(page * size + 8)
            fh.write(rng.randbytes(size - 16))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
    conn.close()


@pytest.fixture
def damaged(tmp_path: Path) -> Path:
    path = tmp_path / "store" / "experience.db"
    _fill(path).close()  # (its clean check is remembered: the damage must still be found)
    _damage(path)
    return path


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text and "INTERNALERROR" not in text
    return lines[0]


# -- read-only file ----------------------------------------------------------------------------


def test_pytest_refuses_a_read_only_store_file(pytester: pytest.Pytester, collect) -> None:
    pytester.makepyfile(SUITE)
    _, store = collect()
    db = store.path
    store.close()
    before = _fingerprint(db)
    with read_only(db):
        result = pytester.runpytest("--collect-training-data", "-p", "no:cacheprovider")
        after = _fingerprint(db)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = _one_line(result.stderr.str())
    assert line == f"ERROR: --teach-db: can't write {db}: read-only file"
    assert "INTERNALERROR" not in result.stdout.str()
    assert after == before, "nothing was written, not even SQLite's -wal/-shm files"
    assert open_store(db).count() == 3


def test_feedback_add_on_a_read_only_file_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "experience.db"
    store = _fill(db, n=3)
    episode = next(store.episodes()).id
    store.close()
    before = _fingerprint(db)[0]
    with read_only(db):
        r = teach("feedback", "add", "--example", episode, "--rating", "2", "--db", str(db))
        stats = teach("stats", "--json", "--db", str(db))
        after = _fingerprint(db)[0]
    assert r.exit_code == 2
    assert _one_line(r.stderr) == f"teach feedback add: error: can't write {db}: read-only file"
    assert after == before
    assert stats.exit_code == 0 and '"episodes": 3' in stats.stdout, "reading still works"


# -- read-only folder and file system ----------------------------------------------------------


def test_store_in_a_read_only_folder(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    folder = pytester.path / "shelf"
    db = folder / "experience.db"
    pytester.runpytest("--collect-training-data", "--teach-db", str(db)).assert_outcomes(
        passed=2, failed=1
    )
    store = open_store(db)
    episode = next(store.episodes()).id
    store.close()
    before = _fingerprint(db)
    with read_only(folder):
        result = pytester.runpytest("--collect-training-data", "--teach-db", str(db))
        feedback = teach("feedback", "add", "--example", episode, "--rating", "2", "--db", str(db))
        stats = teach("stats", "--json", "--db", str(db))
        after = _fingerprint(db)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = _one_line(result.stderr.str())
    assert line == f"ERROR: --teach-db: can't write {db}: the folder {folder} is read-only"
    assert "not a pytest-teach store" not in line
    assert feedback.exit_code == 2
    assert _one_line(feedback.stderr).endswith(f"the folder {folder} is read-only")
    assert stats.exit_code == 0 and '"episodes": 3' in stats.stdout, "reading still works"
    assert after == before


def test_store_on_a_read_only_file_system(tmp_path: Path) -> None:
    folder = tmp_path / "mnt"
    db = folder / "experience.db"
    _fill(db, n=3).close()
    before = _fingerprint(db)
    with read_only_mount(folder):
        with pytest.raises(StoreError) as refused:
            Store.open(db, create=True)
        stats = teach("stats", "--json", "--db", str(db))
        after = _fingerprint(db)
    assert str(refused.value) == f"can't write {db}: it is on a read-only file system ({folder})"
    assert stats.exit_code == 0 and '"episodes": 3' in stats.stdout
    assert after == before


# -- damaged pages -----------------------------------------------------------------------------


def test_pytest_refuses_a_damaged_store(pytester: pytest.Pytester, damaged: Path) -> None:
    pytester.makepyfile(SUITE)
    before = _fingerprint(damaged)
    result = pytester.runpytest("--collect-training-data", "--teach-db", str(damaged))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = _one_line(result.stderr.str())
    assert line.startswith(f"ERROR: --teach-db: {damaged} is damaged (")
    assert "nothing was written" in line
    assert f"teach store check --db {damaged}" in line
    assert f"teach store recover --db {damaged} -o NEW.db" in line
    assert _fingerprint(damaged) == before, "no episode was appended"


@pytest.mark.parametrize(
    "verb",
    [["stats"], ["export", "--format", "sft", "-o", "out.jsonl"], ["history"]],
    ids=["stats", "export", "history"],
)
def test_reading_verbs_on_a_damaged_store_are_one_line(
    damaged: Path, tmp_path: Path, verb: list[str]
) -> None:
    verb = [str(tmp_path / v) if v == "out.jsonl" else v for v in verb]
    r = teach(*verb, "--db", str(damaged))
    assert r.exit_code == 2, r.output
    line = _one_line(r.stderr)
    assert f"{damaged} is damaged (database disk image is malformed)" in line
    assert "teach store recover" in line
    assert not (tmp_path / "out.jsonl").exists()


def test_feedback_add_on_a_damaged_store_is_refused(damaged: Path) -> None:
    before = _fingerprint(damaged)
    conn = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
    episode = conn.execute("SELECT id FROM episodes ORDER BY rowid LIMIT 1").fetchone()[0]
    conn.close()
    r = teach("feedback", "add", "--example", episode, "--rating", "2", "--db", str(damaged))
    assert r.exit_code == 2
    assert "is damaged (" in _one_line(r.stderr) and "nothing was written" in r.stderr
    assert _fingerprint(damaged) == before


def test_store_check_reports_ok_or_the_problems(tmp_path: Path, damaged: Path) -> None:
    sound = tmp_path / "sound.db"
    _fill(sound, n=5).close()
    ok = teach("store", "check", "--db", str(sound))
    assert ok.exit_code == 0
    assert ok.stdout.startswith(f"ok: {sound} passed integrity_check (schema ")
    assert "5 episodes" in ok.stdout
    before = _fingerprint(damaged)
    bad = teach("store", "check", "--db", str(damaged))
    assert bad.exit_code == 1
    lines = bad.stdout.splitlines()
    assert lines[0].startswith(f"{damaged}: ") and "problem(s)" in lines[0]
    assert any("page" in line for line in lines[1:-1])
    assert lines[-1] == (
        f"copy what can be read into a new store: teach store recover --db {damaged} -o NEW.db"
    )
    assert _fingerprint(damaged)[0] == before[0], "check only reads"
    assert _empty_wal(damaged)


def test_recover_copies_what_can_be_read_and_says_what_was_lost(
    tmp_path: Path, damaged: Path
) -> None:
    dest = tmp_path / "new" / "recovered.db"
    before = _fingerprint(damaged)
    r = teach("store", "recover", "--db", str(damaged), "-o", str(dest))
    assert r.exit_code == 1, r.output  # rows were lost
    report = r.stdout.splitlines()
    assert report[0].startswith(f"recovered {dest} from {damaged} (")
    rows = {line.split()[0]: line for line in report[1:] if line.startswith("  ")}
    assert {"episodes", "steps", "labels", "sessions", "meta"} <= set(rows)
    assert "lost " in rows["episodes"] or "lost " in rows["steps"]
    assert "unreadable:" in r.stdout
    assert report[-1].endswith(f"counted rows lost in all; the new store opens with --db {dest}")
    assert _fingerprint(damaged)[0] == before[0], "the source is only read"
    assert _empty_wal(damaged)
    # the new store is sound and opens for reading and writing
    conn = sqlite3.connect(dest)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    store = open_store(dest)
    recovered = store.count()
    assert 0 < recovered < 600
    whole = [e for e in store.episodes() if len(e.steps) == 3 and e.labels]
    assert whole, "episodes on readable pages come back with their steps and labels"
    store.add_feedback(whole[0].id, rating=4)
    store.close()
    assert teach("stats", "--db", str(dest)).exit_code == 0


def test_recover_never_overwrites(tmp_path: Path, damaged: Path) -> None:
    dest = tmp_path / "taken.db"
    dest.write_text("keep me")
    r = teach("store", "recover", "--db", str(damaged), "-o", str(dest))
    assert r.exit_code == 2
    assert _one_line(r.stderr) == (
        f"teach store recover: error: {dest} exists; recover never overwrites: "
        "give a new path with -o"
    )
    assert dest.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store", "taken.db"], "no temp files"


def test_recover_of_a_sound_store_loses_nothing(tmp_path: Path) -> None:
    src = tmp_path / "a" / "experience.db"
    store = _fill(src, n=40)
    store.add_feedback(next(store.episodes()).id, rating=5, comment="good")
    original = [(e.id, e.steps, e.labels, e.feedback) for e in store.episodes()]
    store.close()
    dest = tmp_path / "b" / "experience.db"
    r = teach("store", "recover", "--db", str(src), "-o", str(dest))
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[-1] == "nothing was lost"
    with open_store(dest) as copy:
        assert [(e.id, e.steps, e.labels, e.feedback) for e in copy.episodes()] == original


# -- quick_check, once per change ---------------------------------------------------------------


def test_quick_check_runs_again_only_when_the_file_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    real = _store.quick_check_problems

    def counting(conn: sqlite3.Connection, limit: int = 20) -> list[str]:
        calls.append(Path(conn.execute("PRAGMA database_list").fetchone()[2]))
        return real(conn, limit)

    monkeypatch.setattr(_store, "quick_check_problems", counting)
    db = tmp_path / "experience.db"
    _fill(db, n=20).close()
    assert calls == [], "a new store has nothing to check"
    Store.open(db, create=True).close()
    assert calls == [], "our own writes were remembered as sound"
    mtime = db.stat().st_mtime_ns
    os.utime(db, ns=(mtime, mtime + 1_000_000))  # as if changed outside SQLite
    Store.open(db, create=True).close()
    assert calls == [db]
    Store.open(db, create=True).close()
    reader = open_store(db)
    reader.count()
    reader.close()
    assert calls == [db], "checked once per change; reading never checks"
