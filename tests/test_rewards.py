"""The reward pool: a suite's own pytest tests score completions, in warm persistent workers."""

from __future__ import annotations

import asyncio
import inspect
import textwrap
from pathlib import Path

import pytest

from pytest_teach import Reward, RewardError
from pytest_teach.envs import tool_selection as ts
from pytest_teach.rewards import RewardPool, RewardPoolError

ROOT = Path(__file__).resolve().parents[1]

SUITE = """
import signal
import time

import pytest

from pytest_teach import Reward
from pytest_teach.agents import chat_model


def _log(what):
    with open("setups.log", "a") as fh:
        fh.write(what + "\\n")


@pytest.fixture(scope="session")
def warm():
    _log("session")
    return object()


@pytest.fixture
def per_test():
    _log("function")


def ask(agent, text):
    return chat_model(agent.spec).complete([{"role": "user", "content": text}], max_tokens=7).text


@pytest.mark.parametrize("target", ["alpha", "beta"])
def test_echo(target, agent, episode, warm, per_test):
    reply = ask(agent, f"say {target}")
    if reply == "boom":
        raise RuntimeError("the check crashed")
    if reply == "skip":
        pytest.skip("not applicable")
    if reply == "slow":
        time.sleep(30)
    if reply == "stuck":  # a check the alarm can't interrupt
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(30)
    hit = 1.0 if target in reply else 0.0
    short = 1.0 if len(reply) < 20 else 0.0
    episode.reward(
        Reward.of(
            {"hit": hit, "short": short, "chars": min(len(reply) / 100, 1.0)},
            weights={"hit": 3, "short": 1, "chars": 0},
        )
    )
    assert hit, f"{target!r} not in {reply!r}"


def test_plain_pass_fail(agent):
    assert ask(agent, "say yes") == "yes"


def test_no_agent():
    assert True


def test_twice(agent):
    ask(agent, "one")
    ask(agent, "two")


@pytest.mark.slowpath
def test_marked(agent):
    assert ask(agent, "marked") == "ok"
"""


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("suite")
    (root / "test_suite.py").write_text(textwrap.dedent(SUITE))
    (root / "pytest.ini").write_text("[pytest]\nmarkers =\n    slowpath: a marked test\n")
    return root


@pytest.fixture(scope="module")
def pool(suite: Path):
    with RewardPool(["test_suite.py"], workers=2, timeout=1.0, cwd=suite) as started:
        yield started


def echo(target: str) -> str:
    return f"test_suite.py::test_echo[{target}]"


# -- the Reward type ---------------------------------------------------------------------------


def test_reward_is_the_weighted_mean_and_weight_zero_only_logs() -> None:
    r = Reward.of({"a": 1.0, "b": 0.5, "len": 0.2}, weights={"a": 3, "b": 1, "len": 0})
    assert r.value == pytest.approx((3 * 1.0 + 1 * 0.5) / 4)
    assert r.metrics == {"len": 0.2}
    assert Reward.of({"x": 0.25}).value == 0.25  # a missing weight is 1


@pytest.mark.parametrize(
    ("components", "weights", "message"),
    [
        ({}, None, "at least one component"),
        ({"a": 1.5}, None, "'a' = 1.5 is outside"),
        ({"a": float("nan")}, None, "not a finite number"),
        ({"a": "high"}, None, "expected a number"),
        ({"a": 1.0}, {"a": -1}, "negative"),
        ({"a": 1.0}, {"b": 1}, "unknown component 'b'"),
        ({"a": 1.0}, {"a": 0}, "all 0"),
    ],
)
def test_reward_rejects_bad_components(components, weights, message) -> None:
    with pytest.raises(RewardError, match=message):
        Reward.of(components, weights)


# -- the pool --------------------------------------------------------------------------------


def test_prompts_come_from_the_tests_and_promptless_tests_are_reported(pool: RewardPool) -> None:
    tasks = {t.nodeid: t for t in pool.tasks()}
    assert tasks[echo("alpha")].messages == [{"role": "user", "content": "say alpha"}]
    assert tasks[echo("alpha")].max_tokens == 7
    assert "test_suite.py::test_no_agent" not in tasks
    assert "never called the model" in pool.skipped["test_suite.py::test_no_agent"]
    assert "test_suite.py::test_twice" in tasks  # the first call's prompt


def test_the_reward_is_what_the_test_records_with_components_and_weights(
    pool: RewardPool,
) -> None:
    good, bad, wrong_target = pool.score(
        [
            (echo("alpha"), "alpha"),
            (echo("alpha"), "a very long reply, no luck"),
            (echo("beta"), "alpha"),
        ]
    )
    assert (good.value, good.outcome) == (1.0, "passed")
    assert good.components == {"hit": 1.0, "short": 1.0, "chars": 0.05}
    assert good.weights == {"hit": 3.0, "short": 1.0, "chars": 0.0}
    assert (bad.value, bad.outcome) == (0.0, "failed")
    assert "not in" in bad.reason
    assert wrong_target.value == 0.25  # short but misses: 1 / (3 + 1)


def test_without_a_recorded_reward_pass_is_one_and_fail_is_zero(pool: RewardPool) -> None:
    scores = pool.score([("test_suite.py::test_plain_pass_fail", t) for t in ("yes", "no")])
    assert [s.value for s in scores] == [1.0, 0.0]


def test_exceptions_skips_timeouts_and_second_calls_give_none_not_zero(pool: RewardPool) -> None:
    node = echo("alpha")
    crashed, skipped, slow, after = pool.score(
        [(node, "boom"), (node, "skip"), (node, "slow"), (node, "alpha")]
    )
    assert (crashed.value, crashed.outcome) == (None, "error")
    assert "RuntimeError: the check crashed" in crashed.reason
    assert (skipped.value, skipped.outcome) == (None, "skipped")
    assert (slow.value, slow.outcome) == (None, "timeout")
    assert slow.ms < 5000
    assert after.value == 1.0  # the worker carries on after a timeout
    (twice,) = pool.score([("test_suite.py::test_twice", "x")])
    assert twice.value is None and "called the model again" in twice.reason
    assert pool.stats.none_reasons  # logged with the reason


def test_order_is_kept_across_nodeids_and_workers(pool: RewardPool) -> None:
    requests = [(echo(t), reply) for t in ("alpha", "beta") for reply in ("alpha", "beta")] * 5
    scores = pool.score(requests)
    assert [s.nodeid for s in scores] == [n for n, _ in requests]
    assert [s.value for s in scores] == [1.0 if n.endswith(f"[{r}]") else 0.25 for n, r in requests]


def test_fixtures_stay_warm_between_candidates(suite: Path) -> None:
    log = suite / "setups.log"
    log.unlink(missing_ok=True)
    with RewardPool(["test_suite.py"], workers=1, cwd=suite) as one:
        one.score([(echo("alpha"), "alpha")] * 20 + [(echo("beta"), "beta")] * 20)
    lines = log.read_text().split()
    # one session setup for everything; a function fixture once per item, not per candidate
    assert lines.count("session") == 1
    assert lines.count("function") == 2


def test_a_check_the_alarm_cannot_stop_kills_and_replaces_the_worker(suite: Path) -> None:
    with RewardPool(
        ["test_suite.py"], workers=1, timeout=0.5, kill_grace=0.5, cwd=suite
    ) as fragile:
        stuck, after = fragile.score([(echo("alpha"), "stuck"), (echo("alpha"), "alpha")])
        assert (stuck.value, stuck.outcome) == (None, "timeout")
        assert "replaced" in stuck.reason
        assert after.value == 1.0
        assert fragile.stats.restarts == 1


def test_markers_and_keywords_select_through_pytest(suite: Path) -> None:
    with RewardPool(["test_suite.py"], workers=1, pytest_args=["-m", "slowpath"], cwd=suite) as p:
        assert p.nodeids == ["test_suite.py::test_marked"]
    with RewardPool(["test_suite.py"], workers=1, pytest_args=["-k", "echo"], cwd=suite) as p:
        assert p.nodeids == [echo("alpha"), echo("beta")]


def test_bad_suites_get_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RewardPoolError, match="does not exist"):
        RewardPool(["missing_dir"], cwd=tmp_path)
    (tmp_path / "test_broken.py").write_text("def test_x(:\n")
    with pytest.raises(RewardPoolError, match="error.*collecting"):
        RewardPool(["test_broken.py"], workers=1, cwd=tmp_path).start()
    (tmp_path / "test_empty.py").write_text("X = 1\n")
    with pytest.raises(RewardPoolError, match="collected no tests"):
        RewardPool(["test_empty.py"], workers=1, cwd=tmp_path).start()


def test_the_trl_reward_function_is_async_and_logs_components_and_flat_groups(
    pool: RewardPool,
) -> None:
    reward = pool.reward_func()
    assert inspect.iscoroutinefunction(reward)
    logged: dict[str, float] = {}
    nodeids = [echo("alpha")] * 4 + [echo("beta")] * 4
    completions = [[{"role": "assistant", "content": c}] for c in ("alpha", "x", "alpha", "y")]
    completions += [[{"role": "assistant", "content": "nope"}]] * 4
    values = asyncio.run(
        reward(
            prompts=[[]] * 8,
            completions=completions,
            nodeid=nodeids,
            log_metric=lambda k, v: logged.__setitem__(k, v),
        )
    )
    assert values == [1.0, 0.25, 1.0, 0.25] + [0.25] * 4
    assert logged["checks/hit"] == pytest.approx(2 / 8)
    assert logged["checks/chars"] == pytest.approx(
        sum(len(c[0]["content"]) for c in completions) / 800
    )
    assert logged["checks/zero_variance_groups"] == 0.5
    assert (echo("beta"), 0.25) in pool.stats.zero_variance


# -- the bundled tool-selection suite ------------------------------------------------------------


def test_tool_selection_prompts_and_scores_match_the_family_check() -> None:
    with RewardPool(
        ["scenarios/tool_selection"], workers=2, pytest_args=["-k", "weather"], cwd=ROOT
    ) as pool:
        tasks = pool.tasks()
        assert len(tasks) == len([s for s in ts.SCENARIOS if s.id.startswith("weather")])
        cases = {s.id: s for s in ts.SCENARIOS}
        requests = []
        for task in tasks:
            case = cases[task.nodeid.rsplit("[", 1)[1].rstrip("]")]
            assert task.messages == ts.planner_messages(case.query)
            requests += [
                (task.nodeid, ts.format_plan(list(case.expected))),
                (task.nodeid, ts.format_plan(["web_search"])),
                (task.nodeid, "not a plan"),
            ]
        scores = pool.score(requests)
    for (nodeid, text), score in zip(requests, scores, strict=True):
        case = cases[nodeid.rsplit("[", 1)[1].rstrip("]")]
        try:
            expected = ts.check(case, ts.parse_plan(text)).reward
        except ts.PlanParseError:
            expected = 0.0
        assert score.value == pytest.approx(expected)
    assert {s.value for s in scores[::3]} == {1.0}
