"""The comparison's statistics and gate, and `teach compare` / `teach history` from the store."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_teach import open_store
from pytest_teach.cli import cli
from pytest_teach.compare import (
    Thresholds,
    bootstrap_mean_diff_ci,
    compare,
    history,
    mcnemar_exact,
    percentile,
)
from pytest_teach.store import Episode, new_id


def ep(scenario: str, passed: bool, *, model="m", arm=None, session="s1", **metrics) -> Episode:
    quality = metrics.pop("quality", None)
    return Episode(
        id=new_id(),
        nodeid=f"t::{scenario}",
        scenario=scenario,
        outcome="success" if passed else "intervention",
        label=0 if passed else 1,
        reward=1.0 if passed else 0.0,
        model=model,
        arm=arm,
        session_id=session,
        quality=quality,
        metrics=metrics,
        created_at=time.time(),
    )


def test_mcnemar_exact_matches_the_binomial() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(3000, 2900) < 1.0 and math.isfinite(mcnemar_exact(3000, 2900))


def test_bootstrap_and_percentile() -> None:
    low, high = bootstrap_mean_diff_ci([0.1] * 50 + [0.3] * 50)
    assert low < 0.2 < high and low > 0.1 and high < 0.3
    assert bootstrap_mean_diff_ci([]) is None
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([5], 95) == 5


def test_gate_rejects_regressions_and_names_them() -> None:
    a = [ep(f"s{i}", True, latency_ms=100, cost_usd=0.01) for i in range(20)]
    b = [ep(f"s{i}", i >= 3, latency_ms=90, cost_usd=0.01) for i in range(20)]
    c = compare(a, b, baseline_name="base", candidate_name="cand")
    assert c.verdict == "REJECT" and c.regressions == ["s0", "s1", "s2"]
    assert (c.wins, c.losses, c.ties) == (0, 3, 17)
    assert c.only_baseline_passed == 3 and c.winner is None  # p = 0.25: not significant
    assert any("3 scenario(s) passed under the baseline" in r for r in c.reasons)


def test_gate_approves_a_better_candidate() -> None:
    a = [ep(f"s{i}", i % 3 != 0, latency_ms=100, cost_usd=0.01, quality=3) for i in range(30)]
    b = [ep(f"s{i}", True, latency_ms=105, cost_usd=0.011, quality=4) for i in range(30)]
    c = compare(a, b, baseline_name="a", candidate_name="b")
    assert c.verdict == "APPROVE", c.reasons
    assert c.winner == "b" and c.mcnemar_p < 0.01
    assert set(c.improvements) >= {"success rate", "mean reward", "quality"}


@pytest.mark.parametrize(
    ("b_metrics", "reason"),
    [
        ({"latency_ms": 111}, "latency p50 111.0 ms is 111%"),
        ({"cost_usd": 0.0125}, "cost $0.3750 is 125%"),
        ({"quality": 2.5}, "quality 2.500 is 83%"),
    ],
)
def test_each_threshold_rejects(b_metrics: dict, reason: str) -> None:
    base = {"latency_ms": 100, "cost_usd": 0.01, "quality": 3}
    a = [ep(f"s{i}", i != 0, **base) for i in range(30)]
    b = [ep(f"s{i}", True, **{**base, **b_metrics}) for i in range(30)]
    c = compare(a, b, thresholds=Thresholds())
    assert c.verdict == "REJECT"
    assert any(reason in r for r in c.reasons), c.reasons


def test_history_flags_a_drop(tmp_path: Path) -> None:
    store = open_store(tmp_path / "h.db", create=True)
    for i, rate in enumerate([0.9, 0.92, 0.91, 0.6]):
        sid = f"{i:016x}"
        store.start_session(sid, argv=[], version="t", git_commit=None, rootdir=None)
        store.write_episodes(
            [ep(f"s{j}", j < rate * 100, model="m:x", session=sid) for j in range(100)]
        )
        time.sleep(0.01)
    result = history(store, "success_rate")
    assert [p.value for p in result.series["m:x"]] == [0.9, 0.92, 0.91, 0.6]
    assert result.trends["m:x"] < 0
    (drop,) = result.drops
    assert drop["model"] == "m:x" and drop["latest"] == 0.6
    out = CliRunner().invoke(cli, ["history", "--db", str(store.path), "--json"])
    assert json.loads(out.stdout)["drops"][0]["session_id"] == f"{3:016x}"
    text = CliRunner().invoke(cli, ["history", "--db", str(store.path)]).stdout
    assert "DROP: m:x success_rate 0.6000" in text


def test_cli_compare_and_errors(tmp_path: Path) -> None:
    store = open_store(tmp_path / "c.db", create=True)
    store.start_session("aaaa000000000001", argv=[], version="t", git_commit=None, rootdir=None)
    store.write_episodes(
        [ep(f"s{i}", True, model="m:a", session="aaaa000000000001") for i in range(20)]
    )
    store.write_episodes(
        [ep(f"s{i}", i > 9, model="m:b", session="aaaa000000000001") for i in range(20)]
    )
    runner = CliRunner()
    db = str(store.path)
    r = runner.invoke(
        cli, ["compare", "--db", db, "--baseline", "m:a", "--candidate", "m:b", "--json"]
    )
    data = json.loads(r.stdout)
    assert data["verdict"] == "REJECT" and data["winner"] == "m:a"
    r = runner.invoke(
        cli, ["compare", "--db", db, "--baseline", "m:a", "--candidate", "m:b", "--gate"]
    )
    assert r.exit_code == 1 and "REJECT" in r.stdout
    for args, message in (
        (["--baseline", "m:zzz", "--candidate", "m:b"], "is neither a session id nor a model"),
        (["--baseline", "aaaa", "--candidate", "m:b"], "ran several models"),
    ):
        r = runner.invoke(cli, ["compare", "--db", db, *args])
        assert r.exit_code == 2 and message in r.stderr and len(r.stderr.splitlines()) == 1
    r = runner.invoke(cli, ["history", "--db", db, "--metric", "speed"])
    assert r.exit_code == 2 and "'speed' is not one of" in r.stderr
    r = runner.invoke(cli, ["history", "--db", db, "--model", "m:none"])
    assert r.exit_code == 2 and "no episodes for model 'm:none'" in r.stderr
