"""The browser family as a multi-turn RL environment: page actions as tools answering with the
next accessibility snapshot, the reward from the scenario's own test replaying the rollout in
the reward pool, rollouts stored as episodes, and the oracle's tool-call demonstrations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_teach import open_store
from pytest_teach.cli import cli
from pytest_teach.envs import browser as br

from .conftest import REPO, needs_chromium

SUITE = str(REPO / "scenarios" / "browser")
TASK = "docs-cli-reference"  # two plan steps: the sidebar link, then done
HELD = "docs-default-port"


def ref_of(observation: str, role: str, name: str) -> str:
    snapshot = observation.split("Snapshot:\n", 1)[1]
    node = br.find(br.parse_snapshot(snapshot), {"role": role, "name": name})
    assert node is not None, f'no {role} "{name}" in\n{snapshot}'
    return node.ref


@pytest.fixture(scope="module")
def pool():
    from pytest_teach import rl
    from pytest_teach.rewards import RewardPool

    try:
        with RewardPool([SUITE], workers=1, cwd=str(REPO)) as started:
            yield started
    finally:
        rl.close_browser()  # sync Playwright runs once per process: free it for other modules


def test_browser_is_a_bundled_env_named_by_task_id(tmp_path: Path) -> None:
    from pytest_teach.rl import BrowserEnv, browser_task_ids, resolve_env, tool_schemas

    assert resolve_env("browser") is BrowserEnv
    assert TASK in browser_task_ids() and len(browser_task_ids()) == len(br.TASKS)
    names = [s["function"]["name"] for s in tool_schemas(BrowserEnv)]
    assert sorted(names) == ["click", "done", "navigate", "press", "scroll", "select", "type"]
    press = next(
        s["function"] for s in tool_schemas(BrowserEnv) if s["function"]["name"] == "press"
    )
    assert press["parameters"]["required"] == ["key"]  # the ref is optional
    result = CliRunner().invoke(
        cli,
        ["train", "grpo", "--env", "browser", "--tasks", "0-3", "-o", str(tmp_path / "o")],
    )
    assert result.exit_code != 0
    assert "browser tasks are named by id, not by seed" in result.output
    assert not (tmp_path / "o").exists()


@needs_chromium
def test_browser_env_rewards_a_rollout_with_the_scenario_test(pool, tmp_path: Path) -> None:
    from pytest_teach.rl import BrowserEnv, RolloutContext, task_of

    tasks = {task_of(n): n for n in pool.nodeids}
    assert {TASK, HELD} <= set(tasks)
    db = tmp_path / "exp.db"
    context = RolloutContext(
        pool,
        {t: n for t, n in tasks.items() if t != HELD},
        held_out=[HELD],
        store=db,
        model="hf:policy",
    )
    env = BrowserEnv(context)
    with context:
        with pytest.raises(ValueError, match="held out"):
            env.reset(task=HELD)
        first = env.reset(task=TASK)
        assert first.startswith("Goal: Open the CLI reference from the sidebar.")
        assert "Current page: /docs/index.html" in first
        link = ref_of(first, "link", "CLI reference")
        # a malformed call is refused without a step; a ref the page lacks is a step that fails
        refused = json.loads(env.click("not a ref!"))
        assert refused["error"]["type"] == "invalid_action"
        missing = env.click("e999")
        assert json.loads(missing.splitlines()[0])["error"]["type"] == "not_found"
        assert "Current page: /docs/index.html" in missing
        opened = env.click(link)
        assert "Current page: /docs/page.html?p=cli-reference" in opened
        assert env.done() == "The episode is over: done."
        assert json.loads(env.click(link))["error"]["type"] == "episode_over"
        assert env.replies == [
            '{"type": "click", "ref": "e999"}',
            f'{{"type": "click", "ref": "{link}"}}',
            '{"type": "done"}',
        ]
        assert env.get_reward() == 1.0

        decoy_start = env.reset(task=TASK)
        env.click(ref_of(decoy_start, "link", "API reference"))  # the decoy
        env.done()
        assert env.get_reward() == 0.0

        # the pool runs the test again for the next rollout: a fresh page, the same refs
        env.reset(task=TASK)
        env.click(link)
        env.done()
        assert env.get_reward() == 1.0
    stats = context.stats
    assert (stats.rollouts, stats.tool_calls, stats.action_errors) == (3, 9, 2)
    assert stats.outcomes == {"passed": 2, "failed": 1}
    assert stats.group_spreads() == [pytest.approx((2 / 9) ** 0.5)]

    episodes = sorted(open_store(db).episodes(), key=lambda e: e.created_at)
    assert [e.reward for e in episodes] == [1.0, 0.0, 1.0]
    won, lost = episodes[0], episodes[1]
    assert won.outcome == "success" and lost.outcome == "intervention"
    assert won.meta["source"] == "rl" and won.meta["task"] == TASK
    assert won.model == "hf:policy" and won.session_id == context.session_id
    assert won.nodeid == tasks[TASK]
    # the test's own components: the failed click was replayed as a step of its run (3 steps
    # for a plan of 2)
    assert won.reward_components["check"] == 1.0
    assert won.reward_components["efficiency"] == pytest.approx(2 / 3)
    assert [s.action for s in won.steps][1:] == [
        '{"type": "click", "ref": "e999"}',
        f'{{"type": "click", "ref": "{link}"}}',
        '{"type": "done"}',
        {"tool": "click", "ref": link},
    ]
    assert won.steps[0].error["type"] == "invalid_action"
    assert won.steps[-1].error["type"] == "episode_over"
    assert lost.reward_components["done"] == 1.0 and lost.reward_components["check"] == 0.0
    assert "task not achieved" in (lost.label_reason or "")


@needs_chromium
def test_browser_oracle_demonstrations_match_a_direct_run(pool, tmp_path: Path) -> None:
    """The oracle's tool calls in the environment are the actions the scripted oracle takes in a
    direct run of the scenario's test, refs included, and the test passes on both."""
    from pytest_teach.rl import BrowserEnv, oracle_demonstrations

    rows = oracle_demonstrations(BrowserEnv, [TASK, HELD])
    assert [r["task"] for r in rows] == [TASK, HELD]
    calls = [c["function"] for r in rows for m in r["messages"] for c in m.get("tool_calls") or []]
    assert [c["name"] for c in calls] == ["click", "done", "click", "done"]
    assert calls[3]["arguments"] == {"answer": "8080"}
    assert rows[1]["messages"][-1]["content"] == "Done."

    db = tmp_path / "direct.db"
    direct = subprocess.run(
        [sys.executable, "-m", "pytest", SUITE, "-q", "-p", "no:cacheprovider",
         "-k", f"{TASK} or {HELD}", "--model", "scripted:oracle",
         "--collect-training-data", "--teach-db", str(db)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert direct.returncode == 0, direct.stdout[-2000:] + direct.stderr[-2000:]
    by_task = {e.meta["task"]: e for e in open_store(db).episodes()}
    for row in rows:
        taken = [json.loads(s.action) if isinstance(s.action, str) else s.action
                 for s in by_task[row["task"]].steps]  # fmt: skip
        called = [c["function"] for m in row["messages"] for c in m.get("tool_calls") or []]
        assert [a["type"] for a in taken] == [
            "fill" if c["name"] == "type" else c["name"] for c in called
        ]
        assert [a.get("ref") for a in taken] == [c["arguments"].get("ref") for c in called]


@needs_chromium
def test_multi_turn_grpo_on_the_browser(pool, tmp_path: Path) -> None:
    """SFT on the oracle's tool calls, then GRPO on one short task with the browser environment.

    The task is a sidebar link and ``done``. The reward is the test's ``check`` component (was
    the goal reached on the page): a model this small rarely gets as far as ``done`` within the
    2048 tokens it is trained on. What varies within a group: at temperature 1 the warm-started
    policy clicks the right link, another link, or writes no call.
    """
    import torch
    from safetensors.torch import load_file

    from pytest_teach import rl

    demos = rl.oracle_demonstrations(rl.BrowserEnv, [TASK, HELD])
    rl.close_browser()  # the rollouts start it again
    corpus = [m["content"] for r in demos for m in r["messages"] if m["content"]]
    corpus += [json.dumps(c["function"]) for r in demos for m in r["messages"]
               for c in m.get("tool_calls") or []] + [demos[0]["tools"]]  # fmt: skip
    base = rl.write_tool_model(
        tmp_path / "base", corpus, vocab_size=1024, hidden_size=128, sliding_window=48
    )
    config = json.loads((base / "config.json").read_text())
    config["max_position_embeddings"] = 8192  # rotary positions: a snapshot and its answer fit
    (base / "config.json").write_text(json.dumps(config))
    warm = tmp_path / "sft"
    sft = rl.warm_start(demos, base, warm, max_steps=30, learning_rate=3e-3, batch_size=2)
    assert sft["loss"] < 0.5

    torch.manual_seed(0)
    db = tmp_path / "exp.db"
    out = tmp_path / "grpo"
    run = rl.train_env_grpo(
        "browser",
        out,
        tasks=[TASK],
        held_out=[HELD],
        suite=[SUITE],
        base_model=warm,
        store=db,
        reward="check",
        max_steps=2,
        batch_size=1,
        num_generations=4,
        max_completion_length=2048,
        max_turns=2,
        learning_rate=1e-3,
        workers=1,
    )
    stats = run.stats
    # tool calls were parsed by TRL and carried out in the browser
    assert stats["tool_calls"] > 0 and stats["tool_calls_executed"] > 0
    assert stats["rollouts"] == 2 * 4 == stats["scored"]
    # the rewards came from the scenario test, and varied within at least one group
    assert set(stats["outcomes"]) <= {"passed", "failed"}
    assert stats["groups_with_variance"] >= 1

    before, after = load_file(warm / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not before[k].equal(after[k]) for k in before)

    episodes = list(open_store(db).episodes())
    assert len(episodes) == 8 == stats["episodes_stored"]
    assert {e.meta["source"] for e in episodes} == {"rl"}
    assert {e.meta["task"] for e in episodes} == {TASK}
    assert {e.session_id for e in episodes} == {run.session_id}
    # a rewarded rollout clicked the oracle's link; one that clicked it alone was rewarded
    link = {
        "type": "click",
        "ref": demos[0]["messages"][2]["tool_calls"][0]["function"]["arguments"]["ref"],
    }
    for e in episodes:
        assert e.reward == e.reward_components["check"]  # the test's own component
        executed = [json.loads(s.action) for s in e.steps if s.error is None]
        if e.reward:
            assert link in executed
        if executed in ([link], [link, {"type": "done"}]):
            assert e.reward == 1.0

    record = json.loads((out / "rl-run.json").read_text())
    assert record["train_tasks"] == [TASK] and record["held_out_tasks"] == [HELD]
    assert record["reward_source"] == "check" and record["tools_call_frequency"] > 0
