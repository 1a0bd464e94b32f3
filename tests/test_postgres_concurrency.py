"""Many writers into one PostgreSQL store, nothing lost: concurrent xdist sessions, a killed
worker, a killed run replayed by the next one, and a shard merge next to a recording session.

The SQLite versions are in ``test_concurrency.py``; these run the same kind of generated suites
in real pytest subprocesses against a real, throwaway PostgreSQL server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pytest_teach import Store, open_store

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
    the journals of a PostgreSQL store are never shared between tests."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


def _journals(cache: Path) -> list[Path]:
    """The journal files of every PostgreSQL store under ``cache``."""
    return sorted((cache / "pytest-teach" / "journals").glob("*/*.journal"))


def _record_args(url: str, *args: str) -> list[str]:
    return ["--collect-training-data", "--teach-db", url, "-p", "no:cacheprovider", *args]


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
    assert len(recorded) == len(set(recorded)), "duplicated episodes"
    assert sorted(recorded) == [i for i in range(40) if i != 17], "only the killed test is missing"
    # the killed worker's journal was replayed by the controller and removed
    assert _journals(cache_home) == []
    assert len(store.sessions()) == 1
    store.close()


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
