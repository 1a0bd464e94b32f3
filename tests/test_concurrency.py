"""Concurrent xdist writers and a killed worker leave the store exact and intact."""

from __future__ import annotations

from collections import Counter

import pytest

from pytest_teach.store import journal_dir

pytest.importorskip("xdist")

N = 2000


def test_2000_episodes_under_four_workers(pytester: pytest.Pytester, collect) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.parametrize("i", range({N}))
        def test_case(episode, i):
            episode.step({{"query": f"q{{i}}", "ü": "✓"}}, {{"tools": ["search"]}})
            episode.metric(latency_ms=float(i))
            assert i % 10 != 0, "every tenth case fails"
        """
    )
    result, store = collect("-n", "4", subprocess=True)
    result.assert_outcomes(passed=N - N // 10, failed=N // 10)
    result.stdout.fnmatch_lines(
        [f"*pytest-teach: {N} episodes recorded ({N - N // 10} success, {N // 10} intervention*"]
    )
    episodes = list(store.episodes())
    nodeids = Counter(e.nodeid for e in episodes)
    assert len(episodes) == N, "lost episodes"
    assert len(nodeids) == N and max(nodeids.values()) == 1, "duplicated episodes"
    assert len({e.id for e in episodes}) == N
    assert {e.worker for e in episodes} == {"gw0", "gw1", "gw2", "gw3"}
    assert len({e.session_id for e in episodes}) == 1
    assert [s["id"] for s in store.sessions()] == [episodes[0].session_id]
    assert sum(len(e.steps) for e in episodes) == N
    assert store.stats()["by_label"] == {"success": N - N // 10, "intervention": N // 10}
    assert store.integrity_check() == "ok"


def test_killed_worker_loses_only_the_test_in_flight(pytester: pytest.Pytester, collect) -> None:
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
    result, store = collect("-n", "2", subprocess=True)
    assert "worker 'gw" in result.stdout.str() and "crashed" in result.stdout.str()
    recorded = sorted(int(e.nodeid.split("[")[1].rstrip("]")) for e in store.episodes())
    assert 17 not in recorded
    assert recorded == [i for i in range(40) if i != 17], "only the killed test is missing"
    assert len(recorded) == len(set(recorded))
    assert store.integrity_check() == "ok"


def test_killed_run_is_replayed_by_the_next(pytester: pytest.Pytester, collect) -> None:
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
    first, store = collect("test_killed.py", subprocess=True)
    assert first.ret != 0
    journals = list(journal_dir(store).glob("*.journal"))
    assert len(journals) == 1, "the killed run left its journal"
    second, store = collect("test_later.py")
    second.assert_outcomes(passed=1)
    names = sorted(e.nodeid.split("::")[-1] for e in store.episodes())
    assert names == ["test_after"] + [f"test_case[{i}]" for i in range(6)]
    assert not list(journals[0].parent.glob("*.journal")), "replayed journals are removed"
    third, store = collect("test_later.py")
    assert store.count() == 8, "replay never duplicates"
