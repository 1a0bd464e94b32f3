"""Many writers into one PostgreSQL store, nothing lost: two xdist sessions at once, a worker
killed from inside and from outside, a killed run replayed by the next one from its journal in
the cache folder, journals that come and go at once in that folder, and a merge of SQLite shards
next to a recording session.

The SQLite versions are in ``test_concurrency.py``; these run the same kind of generated suites
in real pytest subprocesses against a real, throwaway PostgreSQL server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree

import pytest

from pytest_teach import Store, StoreError, open_store
from pytest_teach.store import Journal

from ._postgres import PASSWORD

pytest.importorskip("xdist")
pytest.importorskip("psycopg", reason="psycopg is not installed")

#: Episodes each concurrent session records.
N = 2000
#: How long one pytest subprocess may run before the test gives up on it, in seconds.
RUN_TIMEOUT_S = 600


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test's own (``XDG_CACHE_HOME``, inherited by the subprocesses), so
    the journals of a PostgreSQL store are never shared between tests.

    The subprocesses load only pytest-teach's plugin and xdist (see :data:`PLUGINS`): the other
    installed plugins would cost each process seconds of start-up."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return cache


def _journals(cache: Path) -> list[Path]:
    """The journal files of every PostgreSQL store under ``cache``."""
    return sorted((cache / "pytest-teach" / "journals").glob("*/*.journal"))


#: The plugins each pytest subprocess loads (plugin autoloading is off there).
PLUGINS = ("-p", "pytest_teach.plugin", "-p", "xdist.plugin", "-p", "no:cacheprovider")


def _record_args(url: str, *args: str) -> list[str]:
    return [*PLUGINS, "--collect-training-data", "--teach-db", url, *args]


def _case_numbers(store: Store, **filters: str) -> list[int]:
    """The parameter ``i`` of each recorded ``test_case[i]``, in store order."""
    return [int(e.nodeid.split("[")[1].rstrip("]")) for e in store.episodes(**filters)]


def _start(pytester: pytest.Pytester, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
    """Start ``pytest ARGS`` in pytester's folder; its output goes to ``<name>.out``."""
    out = pytester.path / f"{name}.out"
    with out.open("wb") as fh:
        proc = pytester.popen(
            [sys.executable, "-m", "pytest", *args], stdout=fh, stderr=subprocess.STDOUT
        )
    return proc, out


def _finish(proc: subprocess.Popen, out: Path) -> tuple[int, str]:
    """Wait for ``proc`` (killing it after :data:`RUN_TIMEOUT_S`); return (exit code, output)."""
    try:
        code = proc.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, out.read_text(errors="replace")


#: Threads that open and close journals at once in one folder, and journals each.
JOURNAL_THREADS = 4
JOURNALS_EACH = 400


def test_journals_come_and_go_at_once_in_the_store_s_cache_folder(
    pg_url: str, cache_home: Path
) -> None:
    """Every process on this machine that records into one PostgreSQL store keeps its journal in
    the same cache folder, and the process that closes the folder's last journal removes the
    folder: one that starts its journal at that moment still gets it (it used to fail, and
    the session or xdist worker with it)."""
    errors: list[str] = []
    folders: set[Path] = set()

    with Store.open(pg_url, create=True) as store:

        def churn(thread: int) -> None:
            for k in range(JOURNALS_EACH):
                try:
                    journal = Journal(store, f"session{thread}", f"gw{k}")
                    folders.add(journal.path.parent)
                    journal.close()
                except OSError as exc:
                    errors.append(repr(exc))

        threads = [threading.Thread(target=churn, args=(t,)) for t in range(JOURNAL_THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == [], f"{len(errors)} journals could not be opened: {errors[0]}"
    (folder,) = folders
    assert folder.parent == cache_home / "pytest-teach" / "journals"
    assert not folder.exists(), "the last journal closed removes the folder"


def test_two_xdist_sessions_at_once_record_every_episode_once(
    pytester: pytest.Pytester, pg_url: str, cache_home: Path
) -> None:
    for name in ("a", "b"):
        pytester.makepyfile(
            **{
                f"test_{name}": f"""
                import pytest

                @pytest.mark.parametrize("i", range({N}))
                def test_case(episode, i):
                    episode.step(f"{name}{{i}}", "act")
                """
            }
        )
    runs = [
        _start(pytester, name, f"test_{name}.py", "-n", "2", "-q", *_record_args(pg_url))
        for name in ("a", "b")
    ]
    try:
        results = [_finish(*run) for run in runs]
    finally:
        for proc, _ in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for code, output in results:
        assert code == 0, output[-3000:]
        assert f"pytest-teach: {N} episodes recorded" in output, output[-3000:]

    store = open_store(pg_url)
    assert store.backend == "postgresql"
    sessions = store.sessions()
    assert len(sessions) == 2
    assert all(s["exit_status"] == 0 and s["finished_at"] for s in sessions)
    episodes = list(store.episodes())
    assert len(episodes) == 2 * N == store.count(), "lost or duplicated episodes"
    assert len({e.id for e in episodes}) == 2 * N, "duplicated episode ids"
    by_session = Counter(e.session_id for e in episodes)
    assert by_session == {s["id"]: N for s in sessions}, "a session lost episodes"
    for session in sessions:
        mine = [e for e in episodes if e.session_id == session["id"]]
        files = {e.nodeid.split("::")[0] for e in mine}
        assert len(files) == 1, "one session's episodes come from its own suite only"
        assert sorted(int(e.nodeid.split("[")[1].rstrip("]")) for e in mine) == list(range(N))
        assert {e.worker for e in mine} == {"gw0", "gw1"}
        assert all(len(e.steps) == 1 for e in mine)
    # the two sessions really wrote at the same time: their recording spans overlap
    spans = [
        (min(e.created_at for e in episodes if e.session_id == s["id"]), s["finished_at"])
        for s in sessions
    ]
    assert spans[1][0] < spans[0][1] and spans[0][0] < spans[1][1], spans
    assert store.stats()["by_label"] == {"success": 2 * N}
    assert _journals(cache_home) == [], "every journal is removed after its commit"
    store.close()


def test_killed_worker_loses_only_the_test_in_flight(
    pytester: pytest.Pytester, pg_url: str, cache_home: Path
) -> None:
    pytester.makepyfile(
        """
        import os
        import signal
        import pytest

        @pytest.mark.parametrize("i", range(40))
        def test_case(episode, i):
            episode.step(f"obs {i}", "act")
            if i == 17:
                os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", *_record_args(pg_url))
    output = result.stdout.str()
    assert "worker 'gw" in output and "crashed" in output, output[-3000:]
    store = open_store(pg_url)
    recorded = _case_numbers(store)
    sessions = store.sessions()
    store.close()
    assert len(recorded) == len(set(recorded)), f"duplicated episodes: {sorted(recorded)}"
    missing = sorted(set(range(40)) - set(recorded))
    assert missing == [17], f"only the killed test is missing, not {missing}\n{output[-3000:]}"
    # the killed worker's journal was replayed by the controller and removed
    assert _journals(cache_home) == []
    assert len(sessions) == 1, sessions


#: Tests of the suite a worker is killed in from outside.
KILL_N = 1000
#: Episodes the store holds when a worker is killed (some batches are committed by then).
KILL_AFTER = 300


def _junit_outcomes(path: Path) -> dict[str, bool]:
    """``{test name: passed}`` from a JUnit XML report."""
    root = ElementTree.parse(path).getroot()
    return {
        case.get("name", ""): not any(
            child.tag in ("failure", "error", "skipped") for child in case
        )
        for case in root.iter("testcase")
    }


def test_worker_killed_from_outside_at_any_moment_loses_at_most_the_test_in_flight(
    pytester: pytest.Pytester, pg_url: str, cache_home: Path
) -> None:
    # the last tests wait until the worker is killed, so the session is still running then
    pytester.makepyfile(
        f"""
        import pathlib
        import time
        import pytest

        @pytest.mark.parametrize("i", range({KILL_N}))
        def test_case(episode, i):
            episode.step(f"obs {{i}}", "act")
            if i >= {KILL_N - 50}:
                deadline = time.monotonic() + 300
                while not pathlib.Path("killed").exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
        """
    )
    junit = pytester.path / "junit.xml"
    proc, out = _start(
        pytester, "run", "-n", "2", f"--junitxml={junit}", "-q", *_record_args(pg_url)
    )
    try:
        store = open_store(pg_url) if _wait_for_store(pg_url, proc) else None
        assert store is not None, out.read_text(errors="replace")[-3000:]
        while store.count() < KILL_AFTER and proc.poll() is None:
            time.sleep(0.02)
        store.close()
        victims = [p for p in _journals(cache_home) if "-gw0-" in p.name]
        assert len(victims) == 1, _journals(cache_home)
        os.kill(int(victims[0].stem.rpartition("-")[2]), signal.SIGKILL)
        (pytester.path / "killed").touch()
        code, output = _finish(proc, out)
    finally:
        (pytester.path / "killed").touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code != 0 and "crashed" in output, output[-3000:]
    outcomes = _junit_outcomes(junit)
    assert len(outcomes) == KILL_N, "every test has an outcome"
    crashed = [name for name, passed in outcomes.items() if not passed]
    assert len(crashed) == 1, crashed  # the test in flight
    store = open_store(pg_url)
    recorded = Counter(e.nodeid.split("::")[-1] for e in store.episodes())
    store.close()
    assert max(recorded.values()) == 1, "duplicated episodes"
    passed = {name for name, ok in outcomes.items() if ok}
    assert passed <= set(recorded), f"finished tests lost: {sorted(passed - set(recorded))[:10]}"
    assert set(recorded) <= set(outcomes)
    assert _journals(cache_home) == [], "the killed worker's journal was replayed and removed"


def _wait_for_store(url: str, proc: subprocess.Popen, timeout: float = 300) -> bool:
    """Wait until the session has created the store's tables; False if it ended first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with open_store(url):
                return True
        except StoreError:
            time.sleep(0.1)
    return False


def test_killed_run_is_replayed_by_the_next_from_the_cache_journal(
    pytester: pytest.Pytester, pg_url: str, cache_home: Path
) -> None:
    pytester.makepyfile(
        test_killed="""
        import os
        import signal
        import pytest

        @pytest.mark.parametrize("i", range(10))
        def test_case(episode, i):
            episode.step(f"obs {i}", "act")
            if i == 6:
                os.kill(os.getpid(), signal.SIGKILL)
        """,
        test_later="def test_after(episode): episode.step('later', 'act')",
    )
    first = pytester.runpytest_subprocess("test_killed.py", *_record_args(pg_url))
    assert first.ret != 0
    journals = _journals(cache_home)
    assert len(journals) == 1, "the killed run left its journal in the cache folder"
    assert PASSWORD not in str(journals[0]), "the journal's name holds no password"
    assert PASSWORD.encode() not in journals[0].read_bytes(), "the journal holds no password"
    journaled = [
        json.loads(line)["episode"]["nodeid"].split("::")[-1]
        for line in journals[0].read_text(encoding="utf-8").splitlines()
    ]
    store = open_store(pg_url)
    committed = [e.nodeid.split("::")[-1] for e in store.episodes()]
    store.close()
    # what the killed run had not committed yet (all of it, unless a slow machine let a
    # batch fall due) is in its journal, and only there
    assert sorted(committed + journaled) == [f"test_case[{i}]" for i in range(6)]

    second = pytester.runpytest_subprocess("test_later.py", *_record_args(pg_url))
    second.assert_outcomes(passed=1)
    store = open_store(pg_url)
    names = sorted(e.nodeid.split("::")[-1] for e in store.episodes())
    assert names == ["test_after"] + [f"test_case[{i}]" for i in range(6)]
    assert _journals(cache_home) == [], "replayed journals are removed"
    store.close()

    third = pytester.runpytest_subprocess("test_later.py", *_record_args(pg_url))
    third.assert_outcomes(passed=1)
    store = open_store(pg_url)
    assert store.count() == 8, "replay never duplicates"
    assert len({e.id for e in store.episodes()}) == 8
    assert len(store.sessions()) == 3
    store.close()


#: Shards of a CI matrix, the episodes each one recorded, and the episodes of the session that
#: writes into the team store while they are merged into it.
SHARDS = 4
SHARD_N = 250
LIVE_N = 1000
#: The live session's tests from this one on wait until the merge has started. A worker commits
#: its episodes in batches of 256 (or after 2 s, at its next episode), so by then at least one
#: batch is in the team store.
LIVE_GATE = 600

SHARD_SUITE = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_shard{k}(episode, i):
    episode.step({{"shard": {k}, "i": i}}, "act")
    episode.attach("shared", "notes every shard and the live session attach")
    episode.attach("case", f"notes of case {{i}}")
"""

LIVE_SUITE = """
import pathlib
import time
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_live(episode, i):
    if i >= {gate}:
        deadline = time.monotonic() + 300
        while not pathlib.Path("merging").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    episode.step({{"live": i}}, "act")
    episode.attach("shared", "notes every shard and the live session attach")
    episode.attach("case", f"notes of case {{i % {shard_n}}}")
"""


def test_merging_sqlite_shards_while_a_session_writes_loses_nothing(
    pytester: pytest.Pytester, pg_url: str, cache_home: Path
) -> None:
    # the CI shards: pytest runs that each recorded into a SQLite file of their own
    shards = []
    for k in range(SHARDS):
        pytester.makepyfile(**{f"test_shard{k}": SHARD_SUITE.format(n=SHARD_N, k=k)})
        shard = pytester.path / f"shard-{k}.db"
        result = pytester.runpytest_subprocess(
            f"test_shard{k}.py", *PLUGINS, "--collect-training-data", "--teach-db", str(shard)
        )
        result.assert_outcomes(passed=SHARD_N)
        shards.append(shard)
    shard_ids: set[str] = set()
    for shard in shards:
        with open_store(shard) as store:
            shard_ids |= {e.id for e in store.episodes()}
    assert len(shard_ids) == SHARDS * SHARD_N

    # a session writing into the team store, under xdist, with the same artifacts as the shards
    pytester.makepyfile(test_live=LIVE_SUITE.format(n=LIVE_N, gate=LIVE_GATE, shard_n=SHARD_N))
    live, live_out = _start(pytester, "live", "test_live.py", "-n", "2", *_record_args(pg_url))
    try:
        assert _wait_for_store(pg_url, live), live_out.read_text(errors="replace")[-3000:]
        with open_store(pg_url) as store:
            while not store.count() and live.poll() is None:
                time.sleep(0.05)
            (running,) = store.sessions()
        assert running["finished_at"] is None, "the session is still writing"
        (pytester.path / "merging").touch()
        merge = subprocess.run(
            [sys.executable, "-m", "pytest_teach.cli", "store", "merge"]
            + [str(s) for s in shards]
            + ["--into", pg_url],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            cwd=pytester.path,
        )
        code, output = _finish(live, live_out)
    finally:
        (pytester.path / "merging").touch()
        if live.poll() is None:
            live.kill()
            live.wait()
    assert merge.returncode == 0, merge.stdout + merge.stderr
    assert "no conflicts" in merge.stdout
    assert PASSWORD not in merge.stdout + merge.stderr
    assert code == 0, output[-3000:]

    with open_store(pg_url) as store:
        episodes = list(store.episodes())
        ids = Counter(e.id for e in episodes)
        assert len(episodes) == SHARDS * SHARD_N + LIVE_N == store.count()
        assert max(ids.values()) == 1, "duplicated episodes"
        assert shard_ids <= set(ids), "the merge lost shard episodes"
        sessions = store.sessions()
        assert len(sessions) == SHARDS + 1
        per_session = Counter(e.session_id for e in episodes)
        assert sorted(per_session.values()) == [SHARD_N] * SHARDS + [LIVE_N]
        assert per_session[running["id"]] == LIVE_N, "the live session lost episodes"
        live_cases = sorted(
            e.steps[0].observation["live"] for e in episodes if e.id not in shard_ids
        )
        assert live_cases == list(range(LIVE_N))
        # shared artifacts were written by both writers at once: each is there once, whole
        shas = {sha for e in episodes for sha in e.artifacts.values()}
        assert len(shas) == SHARD_N + 1
        assert sorted(ref.sha256 for ref in store.artifacts()) == sorted(shas)
        for e in episodes[:: len(episodes) // 50]:
            i = e.steps[0].observation.get("i", e.steps[0].observation.get("live"))
            assert (
                store.read_artifact(e.artifacts["case"]) == f"notes of case {i % SHARD_N}".encode()
            )
    assert _journals(cache_home) == []
