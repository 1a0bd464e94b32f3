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
    SUMMARY_HEADER,
    Thresholds,
    bootstrap_mean_diff_ci,
    compare,
    compare_in_store,
    history,
    mcnemar_exact,
    percentile,
    render_comparison,
    render_history,
    resolve_side,
    summarize,
    summary_cells,
)
from pytest_teach.store import Episode, StoreError, new_id


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
        ({"cost_usd": 0.0125}, "cost $0.0125 per episode is 125%"),
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


def _latency_arms(a_ms: list[float], b_ms: list[float], *, a_fails: int = 1):
    """Both arms on the same scenarios; A fails the first ``a_fails`` (so B improves on it)."""
    a = [ep(f"s{i}", i >= a_fails, latency_ms=x) for i, x in enumerate(a_ms)]
    b = [ep(f"s{i}", True, latency_ms=x) for i, x in enumerate(b_ms)]
    return a, b


def test_sub_millisecond_latency_is_under_the_floor() -> None:
    a_ms = [0.15 + 0.003 * i for i in range(30)]
    a, b = _latency_arms(a_ms, [1.21 * x for x in a_ms])  # B consistently 21% slower
    c = compare(a, b)
    assert c.verdict == "APPROVE", c.reasons
    assert not any("latency" in r for r in c.reasons)
    assert c.latency.direction is None and "5 ms floor" in c.latency.note
    assert c.latency.higher == 30 and c.latency.p_value < 1e-6  # consistent, yet sub-ms
    # the floor is what keeps it out: with none, the same consistent slowdown rejects
    strict = compare(a, b, thresholds=Thresholds(latency_floor_ms=0))
    assert strict.verdict == "REJECT"
    assert any(r.startswith("latency p50 0.234 ms is 121%") for r in strict.reasons), strict.reasons
    # and sub-ms speed is no improvement either
    same_outcomes = compare(*_latency_arms([1.21 * x for x in a_ms], a_ms, a_fails=0))
    assert "latency" not in same_outcomes.improvements
    assert same_outcomes.verdict == "REJECT"
    assert same_outcomes.reasons == ["the candidate improves no key metric"]


def test_consistent_latency_slowdown_is_rejected() -> None:
    a_ms = [50 + (i % 5 - 2) * 0.5 for i in range(20)]
    b_ms = [80 + ((3 * i) % 5 - 2) * 0.5 for i in range(20)]
    c = compare(*_latency_arms(a_ms, b_ms))
    assert c.verdict == "REJECT"
    (reason,) = [r for r in c.reasons if r.startswith("latency")]
    assert reason.startswith("latency p50 80.0 ms is 160% of the baseline's 50.0 ms")
    assert "slower in 20 of 20 paired scenarios" in reason
    assert c.latency.direction == "higher" and c.latency.p_value == pytest.approx(2 * 0.5**20)
    # the mirror image is a counted improvement
    faster = compare(*_latency_arms(b_ms, a_ms, a_fails=0))
    assert faster.improvements == ["latency"] and faster.verdict == "APPROVE", faster.reasons


def test_latency_within_run_to_run_noise_is_not_counted() -> None:
    # B's p50 is 100 ms against A's 70 ms (143%, 30 ms apart), but per scenario B is slower in 10
    # pairs and faster in 9: the p50s moved, the scenarios did not
    a_ms = [40.0] * 10 + [100.0] * 10
    b_ms = [100.0] * 11 + [40.0] * 9
    c = compare(*_latency_arms(a_ms, b_ms))
    assert (c.latency.baseline, c.latency.candidate) == (70.0, 100.0)
    assert (c.latency.higher, c.latency.lower) == (10, 9) and c.latency.p_value == 1.0
    assert c.latency.direction is None and "noise" in c.latency.note
    assert c.verdict == "APPROVE", c.reasons


def _cost_arms(layout: str) -> tuple[list[Episode], list[Episode]]:
    if layout == "repeats":  # A ran the same 3 scenarios 10 times in all
        a_names = ["s0"] * 4 + ["s1"] * 3 + ["s2"] * 3
    else:  # A ran 10 scenarios, B only 3 of them
        a_names = [f"s{i}" for i in range(10)]
    a = [ep(name, True, cost_usd=0.01) for name in a_names]
    b = [ep(f"s{i}", True, cost_usd=0.012) for i in range(3)]
    return a, b


@pytest.mark.parametrize("layout", ["repeats", "more-scenarios"])
def test_cost_is_a_paired_per_episode_mean_not_a_sum(layout: str) -> None:
    a, b = _cost_arms(layout)
    c = compare(a, b)
    assert "cost" not in c.improvements  # 3 x $0.012 < 10 x $0.01, but each episode costs more
    assert c.cost.pairs == 3 and c.cost.direction == "higher"
    assert c.cost.baseline == pytest.approx(0.01) and c.cost.candidate == pytest.approx(0.012)
    assert c.baseline.mean_cost == pytest.approx(0.01)
    assert c.candidate.mean_cost == pytest.approx(0.012)
    # the other way round, the arm with more episodes is credited when it is cheaper per episode
    cheaper = compare(b, [ep(e.scenario, True, cost_usd=0.008) for e in a])
    assert cheaper.improvements == ["cost"] and cheaper.verdict == "APPROVE", cheaper.reasons


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


def test_cli_compare_pairs_per_episode_cost_and_takes_a_latency_floor(tmp_path: Path) -> None:
    store = open_store(tmp_path / "f.db", create=True)
    store.start_session("bbbb000000000001", argv=[], version="t", git_commit=None, rootdir=None)
    a_ms = [0.2 + 0.01 * i for i in range(8)]
    sid = "bbbb000000000001"
    for _ in range(2):  # A ran every scenario twice
        store.write_episodes(
            [
                ep(f"s{i}", i > 0, model="m:a", session=sid, cost_usd=0.01, latency_ms=x)
                for i, x in enumerate(a_ms)
            ]
        )
    store.write_episodes(
        [
            ep(f"s{i}", True, model="m:b", session=sid, cost_usd=0.0115, latency_ms=1.21 * x)
            for i, x in enumerate(a_ms)
        ]
    )
    args = ["compare", "--db", str(store.path), "--baseline", "m:a", "--candidate", "m:b"]
    runner = CliRunner()
    data = json.loads(runner.invoke(cli, [*args, "--json"]).stdout)
    assert data["verdict"] == "APPROVE", data["reasons"]
    assert "cost" not in data["improvements"] and "latency" not in data["improvements"]
    assert data["cost"]["baseline"] == pytest.approx(0.01)
    assert data["cost"]["candidate"] == pytest.approx(0.0115)
    assert data["baseline"]["mean_cost"] == pytest.approx(0.01)
    text = runner.invoke(cli, args).stdout
    assert "cost per episode, paired on 8 scenarios: A $0.0100, B $0.0115 (+$0.0015, 115%" in text
    assert "not counted: under the 5 ms floor" in text
    r = runner.invoke(cli, [*args, "--latency-floor-ms", "0", "--gate"])
    assert r.exit_code == 1 and "latency p50 0.284 ms is 121%" in r.stdout, r.output
    r = runner.invoke(cli, [*args, "--latency-floor-ms", "-1"])
    assert r.exit_code == 2 and "--latency-floor-ms" in r.stderr


def test_compare_in_store_resolves_sessions_and_models(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db", create=True)
    for sid, model, passed in (("cccc000000000001", "m:a", 5), ("dddd000000000001", "m:b", 9)):
        store.start_session(sid, argv=[], version="t", git_commit=None, rootdir=None)
        store.write_episodes([ep(f"s{i}", i < passed, model=model, session=sid) for i in range(10)])
    name, episodes = resolve_side(store, "cccc", "--baseline")
    assert name == "m:a @ cccc000000000001" and len(episodes) == 10
    assert resolve_side(store, "m:b")[0] == "m:b"
    c = compare_in_store(store, "cccc", "m:b")
    assert (c.baseline.model, c.candidate.model) == ("m:a @ cccc000000000001", "m:b")
    assert (c.wins, c.losses, c.ties) == (4, 0, 6)
    with pytest.raises(StoreError, match=r"^-A 'm:zzz' is neither a session id nor a model"):
        compare_in_store(store, "m:zzz", "m:b", options=("-A", "-B"))


def test_history_render_and_dict(tmp_path: Path) -> None:
    store = open_store(tmp_path / "h.db", create=True)
    for i, rate in enumerate([1.0, 0.5]):
        sid = f"{i:016x}"
        store.start_session(sid, argv=[], version="t", git_commit=None, rootdir=None)
        store.write_episodes(
            [ep(f"s{j}", j < rate * 4, model="m:x", session=sid) for j in range(4)]
        )
        time.sleep(0.01)
    result = history(store, "success_rate")
    text = render_history(result)
    lines = text.splitlines()
    assert lines[0] == "m:x  (success_rate, trend -0.5000 per run)"
    assert lines[1].endswith(f"  {0:016x}  n=4     1.0000") and len(lines) == 4
    assert (
        lines[3] == f"DROP: m:x success_rate 0.5000 vs 1.0000 before (-50.0%) in session {1:016x}"
    )
    data = result.to_dict()
    assert data["metric"] == "success_rate" and data["higher_is_better"] is True
    assert [p["value"] for p in data["series"]["m:x"]] == [1.0, 0.5]
    assert json.loads(json.dumps(data)) == data
    assert render_history(history(store, "cost")) == "no cost recorded yet"
    with pytest.raises(StoreError, match="no episodes for model 'm:none'.*models: m:x"):
        history(store, "success_rate", model="m:none")


def test_summary_cells_are_the_terminal_table_rows() -> None:
    s = summarize("m:a", [ep("s0", True, latency_ms=12.34), ep("s1", False, latency_ms=20)])
    cells = summary_cells(s)
    assert len(cells) == len(SUMMARY_HEADER)
    assert cells[:2] == ["2", "50.0"] and cells[-1] == "-" and cells[3] == "-"
    assert summary_cells(s, missing="")[-1] == ""
    c = compare([ep("s0", True)], [ep("s0", True, model="m:b")], baseline_name="m:a")
    first = render_comparison(c).splitlines()[1].split()
    assert first == ["A", "m:a", *summary_cells(c.baseline)]
