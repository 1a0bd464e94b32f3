"""Graded rewards from pytest's ``subtests``: the share of subtests passed is the reward, each
subtest a named component, in the store (plain and xdist runs), the reward pool and the exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_teach import open_store
from pytest_teach.export import export

from .conftest import REPO, needs_chromium

pytest_plugins = ["pytester"]

#: Three subtests, the second fails: 2 of 3 pass.
GRADED = """
import pytest

@pytest.mark.scenario("graded", category="demo")
def test_graded(subtests, episode):
    episode.step("make three things", "did them")
    for part in ("names", "roles", "focus"):
        with subtests.test(part, rule=f"r-{part}"):
            assert part != "roles", f"{part} is wrong"

@pytest.mark.scenario("all-pass")
def test_all_pass(subtests, episode):
    for i in range(4):
        with subtests.test(i=i):
            assert True

@pytest.mark.scenario("explicit")
def test_explicit(subtests, episode):
    with subtests.test("one"):
        assert False, "one is off"
    with subtests.test("two"):
        pass
    episode.reward(0.9, judge=0.9)

@pytest.mark.scenario("body-fails")
def test_body_fails(subtests, episode):
    with subtests.test("one"):
        pass
    assert False, "the body's own check"

@pytest.mark.scenario("skips")
def test_skips(subtests, episode):
    with subtests.test("kept"):
        pass
    with subtests.test("skipped"):
        pytest.skip("not here")
    with subtests.test("bug"):
        {}["missing"]

@pytest.mark.scenario("plain")
def test_plain(episode):
    episode.step("o", "a")
"""


def _by_scenario(store) -> dict:
    return {e.scenario: e for e in store.episodes()}


def _check_graded(episodes: dict) -> None:
    graded = episodes["graded"]
    assert graded.outcome == "intervention" and graded.label == 1
    assert graded.reward == pytest.approx(2 / 3)
    assert graded.reward_components == {
        "names (rule=r-names)": 1.0,
        "roles (rule=r-roles)": 0.0,
        "focus (rule=r-focus)": 1.0,
    }
    assert "1 of 3 subtests failed" in graded.label_reason
    assert "roles is wrong" in graded.label_reason

    passing = episodes["all-pass"]
    assert passing.outcome == "success" and passing.reward == 1.0
    assert passing.reward_components == {f"i={i}": 1.0 for i in range(4)}

    explicit = episodes["explicit"]
    assert explicit.outcome == "intervention"
    assert explicit.reward == 0.9 and explicit.reward_components == {"judge": 0.9}

    body = episodes["body-fails"]
    assert body.outcome == "intervention" and "the body's own check" in body.label_reason
    assert body.reward == 0.5 and body.reward_components == {"one": 1.0, "test body": 0.0}

    # a subtest that hits a bug in the test code is no agent failure; skips are no verdict
    bug = episodes["skips"]
    assert bug.outcome == "error" and bug.label is None and bug.reward is None
    assert "KeyError" in bug.label_reason and "subtest bug" in bug.label_reason

    plain = episodes["plain"]
    assert plain.reward == 1.0 and plain.reward_components == {}


def test_subtests_grade_the_reward_in_the_store(pytester: pytest.Pytester, collect) -> None:
    pytester.makepyfile(test_graded=GRADED)
    result, store = collect()
    result.assert_outcomes(passed=2, failed=7)  # 3 of them subtests
    _check_graded(_by_scenario(store))


def test_subtests_grade_the_reward_under_xdist(pytester: pytest.Pytester, collect) -> None:
    pytester.makepyfile(test_graded=GRADED)
    result, store = collect("-n", "2", subprocess=True)
    episodes = _by_scenario(store)
    assert {e.worker for e in episodes.values()} <= {"gw0", "gw1"}
    assert all(e.worker for e in episodes.values()), "recorded in the workers"
    _check_graded(episodes)


# -- the reward pool: what GRPO is given -----------------------------------------------------

POOL_SUITE = """
from pytest_teach.agents import chat_model


def ask(agent, text):
    return chat_model(agent.spec).complete([{"role": "user", "content": text}], max_tokens=16).text


def test_colours(agent, subtests):
    reply = ask(agent, "name three colours")
    for colour in ("red", "green", "blue"):
        with subtests.test(colour):
            assert colour in reply, f"no {colour}"


def test_colours_judged(agent, subtests, episode):
    reply = ask(agent, "name a colour")
    with subtests.test("red"):
        assert "red" in reply
    episode.reward(0.9, judge=0.9)


def test_colours_buggy(agent, subtests):
    reply = ask(agent, "name a colour")
    with subtests.test("lookup"):
        assert {"red": True}[reply]
"""


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory):
    from pytest_teach.rewards import RewardPool

    root = tmp_path_factory.mktemp("graded_suite")
    (root / "test_suite.py").write_text(POOL_SUITE)
    with RewardPool(["test_suite.py"], workers=1, timeout=5.0, cwd=root) as started:
        yield started


def test_the_reward_pool_gives_partial_credit_with_components(pool) -> None:
    node = "test_suite.py::test_colours"
    full, partial, none = pool.score(
        [(node, "red green blue"), (node, "red, blue"), (node, "purple")]
    )
    assert (full.value, full.outcome) == (1.0, "passed")
    assert full.components == {"red": 1.0, "green": 1.0, "blue": 1.0}
    assert partial.value == pytest.approx(2 / 3) and partial.outcome == "failed"
    assert partial.components == {"red": 1.0, "green": 0.0, "blue": 1.0}
    assert "1 of 3 subtests failed" in partial.reason and "no green" in partial.reason
    assert (none.value, none.outcome) == (0.0, "failed")
    # the same candidate scores the same again: nothing carries over between candidates
    (again,) = pool.score([(node, "red, blue")])
    assert again.value == pytest.approx(2 / 3) and again.components == partial.components


def test_the_pool_keeps_an_explicit_reward_and_refuses_a_buggy_subtest(pool) -> None:
    (judged,) = pool.score([("test_suite.py::test_colours_judged", "blue")])
    assert judged.value == 0.9 and judged.components == {"judge": 0.9}
    (buggy,) = pool.score([("test_suite.py::test_colours_buggy", "blue")])
    assert (buggy.value, buggy.outcome) == (None, "error")
    assert "KeyError" in buggy.reason


def test_the_grpo_reward_function_is_fractional_and_logs_the_subtests(pool) -> None:
    import asyncio

    reward = pool.reward_func()
    logged: dict[str, float] = {}
    replies = ["red green blue", "red", "green blue", "nothing"]
    values = asyncio.run(
        reward(
            prompts=[[]] * 4,
            completions=[[{"role": "assistant", "content": r}] for r in replies],
            nodeid=["test_suite.py::test_colours"] * 4,
            log_metric=lambda k, v: logged.__setitem__(k, v),
        )
    )
    assert values == pytest.approx([1.0, 1 / 3, 2 / 3, 0.0])
    assert logged["checks/red"] == 0.5 and logged["checks/blue"] == 0.5
    assert logged["checks/green"] == 0.5


# -- exports ---------------------------------------------------------------------------------


def test_exports_carry_the_subtest_components(
    pytester: pytest.Pytester, collect, tmp_path: Path
) -> None:
    pytester.makepyfile(test_graded=GRADED)
    _, store = collect()
    graded = {
        "names (rule=r-names)": 1.0,
        "roles (rule=r-roles)": 0.0,
        "focus (rule=r-focus)": 1.0,
    }
    export(store, "grpo", tmp_path / "grpo.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "grpo.jsonl").read_text("utf-8").splitlines()]
    (row,) = [r for r in rows if r["scenario"] == "graded"]
    assert row["reward"] == pytest.approx(2 / 3)
    assert json.loads(row["reward_components"]) == graded
    export(store, "interventions", tmp_path / "iv")
    summaries = json.loads((tmp_path / "iv" / "interventions.json").read_text("utf-8"))
    (summary,) = [s for s in summaries if s["scenario"] == "graded"]
    assert summary["reward"] == pytest.approx(2 / 3)
    assert summary["reward_components"] == graded


# -- the worked example: graded stories ------------------------------------------------------


@needs_chromium
def test_graded_stories_give_each_axe_group_and_check_group_a_component(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    db = tmp_path / "experience.db"
    pytester.runpytest_subprocess(
        str(REPO / "scenarios" / "stories" / "graded.py"), "-k", "dialog", "-p", "no:cacheprovider", "-q", "--collect-training-data", "--teach-db", str(db),
        "--ab", "scripted:accessible,scripted:div-soup",
    )  # fmt: skip
    episodes = {e.model: e for e in open_store(db).episodes()}
    good, soup = episodes["scripted:accessible"], episodes["scripted:div-soup"]
    axe = [name for name in good.reward_components if name.startswith("axe cat.")]
    assert {"axe cat.aria", "axe cat.name-role-value", "axe cat.keyboard"} <= set(axe)
    assert list(good.reward_components) == [*axe, "semantics", "keyboard", "assertions"]
    assert good.outcome == "success" and good.reward == 1.0
    assert set(good.reward_components.values()) == {1.0}
    assert set(soup.reward_components) == set(good.reward_components)
    failed = {name for name, value in soup.reward_components.items() if value == 0.0}
    assert {"semantics", "keyboard"} <= failed
    assert soup.outcome == "intervention" and soup.label == 1
    assert soup.reward == pytest.approx(1 - len(failed) / len(soup.reward_components))
    assert 0.0 < soup.reward < 1.0
