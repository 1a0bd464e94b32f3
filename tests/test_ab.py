"""`--ab`: both models on the same scenarios, the paired comparison, and the gate's exit status."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape as html_escape

from pytest_teach import open_store

from .conftest import REPO

SUITE = str(REPO / "scenarios" / "tool_selection")


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(SUITE, "-p", "no:cacheprovider", "-q", "--tb=no", *args)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_noisy_candidate_is_rejected(pytester: pytest.Pytester, workers: list[str]) -> None:
    db = pytester.path / "ab.db"
    result = _run(
        pytester,
        "--ab", "scripted:oracle,scripted:noisy-0.3", "--ab-gate",
        "--collect-training-data", "--teach-db", str(db), *workers,
    )  # fmt: skip
    out = result.stdout.str()
    assert result.ret == 1
    assert "verdict for B (scripted:noisy-0.3): REJECT" in out
    assert "winner: scripted:oracle" in out
    assert "--ab-gate: exit status 1" in out
    assert re.search(r"\d+ scenario\(s\) passed under the baseline but fail: tool_selection\[", out)
    pairs = int(re.search(r"paired on (\d+) scenarios", out).group(1))
    p_value = float(re.search(r"McNemar exact p = ([0-9.e-]+)", out).group(1))
    assert pairs >= 200 and p_value < 1e-6
    store = open_store(db)
    assert [s["exit_status"] for s in store.sessions()] == [1], "the gate's exit status is kept"
    arms = {(e.arm, e.model) for e in store.episodes()}
    assert arms == {("A", "scripted:oracle"), ("B", "scripted:noisy-0.3")}
    by_arm = {arm: store.count(arm=arm) for arm in ("A", "B")}
    assert by_arm["A"] == by_arm["B"] == pairs
    assert store.count(arm="A", label="intervention") == 0
    # both arms share a scenario name; the model spec lives in the test id only
    names = {e.scenario for e in store.episodes(arm="B")}
    assert names == {e.scenario for e in store.episodes(arm="A")}
    assert all("scripted" not in n for n in names)


def test_better_candidate_is_approved_and_gate_exits_zero(pytester: pytest.Pytester) -> None:
    report = pytester.path / "out" / "report.html"
    db = pytester.path / "approve.db"
    result = _run(
        pytester, "--ab", "scripted:noisy-0.3,scripted:oracle", "--ab-gate", "-n", "2",
        "--teach-report", str(report), "--collect-training-data", "--teach-db", str(db),
    )  # fmt: skip
    out = result.stdout.str()
    assert "verdict for B (scripted:oracle): APPROVE" in out, out[-3000:]
    assert "winner: scripted:oracle" in out
    assert result.ret == 0, "the gate's verdict decides the exit status"
    assert [s["exit_status"] for s in open_store(db).sessions()] == [0]
    # the report is built on the controller from the workers' reports, without a store
    html = report.read_text()
    assert (
        'data-verdict="APPROVE"' in html and html.count('<tr data-scenario="tool_selection[') == 534
    )


def test_without_gate_the_exit_status_is_pytest_s(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--ab", "scripted:noisy-0.3,scripted:oracle", "-k", "weather")
    assert result.ret == 1  # noisy failures fail the run as usual
    assert "A/B comparison" in result.stdout.str()


def test_ab_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(agent): pass")
    for args, message in (
        (["--ab", "scripted:oracle"], "give two model specs"),
        (["--ab", "scripted:oracle,scripted:oracle"], "the two models must differ"),
        (["--ab", "scripted:oracle,gpt4"], "is not PROVIDER:NAME"),
        (["--ab-gate"], "--ab-gate needs --ab"),
    ):
        result = pytester.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*{message}*"])


def test_tests_without_agent_run_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_with_agent(agent, episode):
            assert agent.name in ("oracle", "keyword")

        def test_without_agent(episode):
            pass
        """
    )
    result = pytester.runpytest("--ab", "scripted:oracle,scripted:keyword", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["*test_with_agent?scripted:oracle? PASSED*", "*test_with_agent?scripted:keyword? PASSED*"]
    )


_FIGURES_SUITE = """
import pytest

SLOWER = {{"keyword": 1.0, "oracle": 1.21}}  # B (oracle) is 21% slower, sub-millisecond
COST = {{"keyword": 0.01, "oracle": 0.0125}}  # B costs 25% more per episode


@pytest.mark.parametrize("i", range(12))
def test_scenario(agent, episode, i):
    if agent.name == "oracle" and i >= {b_runs}:
        pytest.skip("B ran fewer scenarios")
    episode.metric(latency_ms=(0.2 + 0.01 * i) * SLOWER[agent.name], cost_usd=COST[agent.name])
    assert agent.name == "oracle" or i != 0  # B passes a scenario A fails
"""


def _figures_run(pytester: pytest.Pytester, *args: str, b_runs: int) -> pytest.RunResult:
    pytester.makepyfile(test_figures=_FIGURES_SUITE.format(b_runs=b_runs))
    return pytester.runpytest(
        "--ab", "scripted:keyword,scripted:oracle", "--ab-gate", "-p", "no:cacheprovider", *args
    )


def test_sub_millisecond_latency_never_rejects_and_the_floor_is_an_ini_key(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nteach_ab_max_cost_ratio = 2\n")
    result = _figures_run(pytester, b_runs=12)
    out = result.stdout.str()
    assert "verdict for B (scripted:oracle): APPROVE" in out, out
    assert result.ret == 0
    assert "latency p50, paired on 12 scenarios: A 0.255 ms, B 0.309 ms" in out
    assert "not counted: under the 5 ms floor" in out
    assert "is 121% of the baseline" not in out
    pytester.makeini("[pytest]\nteach_ab_max_cost_ratio = 2\nteach_ab_latency_floor_ms = 0\n")
    result = _figures_run(pytester, b_runs=12)
    out = result.stdout.str()
    assert "latency p50 0.309 ms is 121% of the baseline's 0.255 ms" in out, out
    assert result.ret == 1 and "--ab-gate: exit status 1" in out


def test_cost_is_per_episode_when_an_arm_ran_fewer_scenarios(pytester: pytest.Pytester) -> None:
    report = pytester.path / "report.html"
    # A: 12 x $0.01, B: 3 x $0.0125
    result = _figures_run(pytester, f"--teach-report={report}", b_runs=3)
    out = result.stdout.str()
    assert "verdict for B (scripted:oracle): REJECT" in out, out
    reason = "cost $0.0125 per episode is 125% of the baseline's $0.0100"
    figure = "cost per episode, paired on 3 scenarios: A $0.0100, B $0.0125"
    assert reason in out and figure in out
    assert not re.search(r"improves .*cost", out)
    assert result.ret == 1
    # the report shows the same figures: per episode, paired
    html = report.read_text()
    assert f"<li>{html_escape(reason)}" in html and f"<li>{html_escape(figure)}" in html
    assert "cost $ per episode</th>" in html
    assert '<td class="num">0.0125</td>' in html  # B's mean, not a sum


def test_a_bad_gate_ini_value_fails_before_the_run(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nteach_ab_latency_floor_ms = fast\n")
    pytester.makepyfile("def test_a(agent): raise AssertionError('never runs')")
    result = pytester.runpytest("--ab", "scripted:oracle,scripted:keyword")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini teach_ab_latency_floor_ms = 'fast' is not a number*"])
    assert "never runs" not in result.stdout.str()
