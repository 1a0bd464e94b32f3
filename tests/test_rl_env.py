"""Scenario families as multi-turn RL environments: the gridworld's TRL environment, its reward
from the scenario's own test (replayed in the reward pool), rollouts stored as episodes, the
tool-calling student, and a tiny multi-turn GRPO run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_teach import open_store
from pytest_teach.agents import POOL_SLOT, ReplayChat, decode_replies, encode_replies
from pytest_teach.cli import cli
from pytest_teach.envs import minigrid as mg

ROOT = Path(__file__).resolve().parents[1]
SUITE = str(ROOT / "scenarios" / "minigrid")
MAX_STEPS = 6
#: Tasks the expert solves within MAX_STEPS, and one held out.
POOL_ARGS = [
    "--minigrid-levels",
    "MockGoTo",
    "--minigrid-seed-start",
    "0",
    "--minigrid-seeds",
    "3",
    "--minigrid-max-steps",
    str(MAX_STEPS),
]


def expert_actions(task: str) -> list[str]:
    level, seed = task.rsplit("-s", 1)
    world = mg.make_world(level, int(seed), max_steps=MAX_STEPS)
    actions = []
    while not world.done:
        action = world.expert_action()
        actions.append(action)
        world.step(action)
    assert world.success
    return actions


def test_replay_answers_successive_calls_with_a_trajectorys_replies() -> None:
    chat = ReplayChat("@pool")
    POOL_SLOT.arm(encode_replies(["left", "forward"]))
    try:
        texts = [chat.complete([{"role": "user", "content": "?"}]).text for _ in range(3)]
    finally:
        POOL_SLOT.arm(None)
    assert texts == ["left", "forward", ""]
    assert decode_replies("left") is None
    with pytest.raises(TypeError):
        encode_replies("left")


@pytest.fixture(scope="module")
def pool():
    from pytest_teach.rewards import RewardPool

    with RewardPool([SUITE], workers=1, pytest_args=POOL_ARGS, cwd=str(ROOT)) as started:
        yield started


def test_gridworld_env_rewards_a_rollout_with_the_scenario_test(pool, tmp_path: Path) -> None:
    from pytest_teach.rl import GridworldEnv, RolloutContext, task_of

    tasks = {task_of(n): n for n in pool.nodeids}
    assert set(tasks) == {"MockGoTo-s0", "MockGoTo-s1", "MockGoTo-s2"}
    held = "MockGoTo-s1"
    db = tmp_path / "exp.db"
    context = RolloutContext(
        pool,
        {t: n for t, n in tasks.items() if t != held},
        held_out=[held],
        store=db,
        model="hf:policy",
        options={"max_steps": MAX_STEPS},
    )
    env = GridworldEnv(context)
    with context:
        with pytest.raises(ValueError, match="held out"):
            env.reset(task=held)
        first = env.reset(task="MockGoTo-s2")
        assert first.startswith("Mission: go to")
        refused = json.loads(env.act("jump"))
        assert refused["error"]["type"] == "invalid_action"
        for action in expert_actions("MockGoTo-s2"):
            observation = env.act(action)
        assert observation.endswith("The episode is over: mission complete.")
        assert json.loads(env.act("left"))["error"]["type"] == "episode_over"
        assert env.replies == expert_actions("MockGoTo-s2")  # refused calls are not replayed
        assert env.get_reward() == 1.0
        assert env.get_reward() == 1.0  # scored once per rollout

        env.reset(task="MockGoTo-s2")
        env.act("left")  # turns away from the goal and stops: the test fails it
        assert env.get_reward() == 0.0
    stats = context.stats
    assert (stats.rollouts, stats.tool_calls, stats.action_errors) == (2, 4, 2)
    assert stats.outcomes == {"passed": 1, "failed": 1}
    assert stats.group_spreads() == [0.5]  # both rollouts of step 0 on one task

    episodes = list(open_store(db).episodes())
    assert len(episodes) == 2
    by_reward = {e.reward: e for e in episodes}
    won, lost = by_reward[1.0], by_reward[0.0]
    assert won.outcome == "success" and lost.outcome == "intervention"
    assert won.meta["source"] == "rl" and won.meta["task"] == "MockGoTo-s2"
    assert won.model == "hf:policy" and won.session_id == context.session_id
    assert won.nodeid == tasks["MockGoTo-s2"]
    assert won.reward_components["success"] == 1.0  # the test's own components
    assert [s.action for s in won.steps][1:-1] == expert_actions("MockGoTo-s2")
    assert won.steps[0].error["type"] == "invalid_action"  # refused calls stay in the record
    assert won.steps[-1].error["type"] == "episode_over"
    # the test's own verdict: the policy stopped answering before the mission was done
    assert "step 1: '' is not one of the actions" in (lost.label_reason or "")


def test_tool_model_speaks_the_tool_call_format_trl_parses(tmp_path: Path) -> None:
    from transformers import AutoTokenizer
    from trl.chat_template_utils import (
        add_response_schema,
        is_chat_template_prefix_preserving,
        parse_response,
        supports_tool_calling,
    )

    from pytest_teach.rl import (
        GridworldEnv,
        gridworld_task_ids,
        oracle_demonstrations,
        write_demonstrations,
        write_tool_model,
    )

    rows = oracle_demonstrations(
        GridworldEnv, gridworld_task_ids(["MockGoTo"], [0, 2]), options={"max_steps": MAX_STEPS}
    )
    assert [r["task"] for r in rows] == ["MockGoTo-s0", "MockGoTo-s2"]
    calls = [m for m in rows[1]["messages"] if m.get("tool_calls")]
    assert [c["tool_calls"][0]["function"]["arguments"]["action"] for c in calls] == (
        expert_actions("MockGoTo-s2")
    )
    assert rows[1]["messages"][-2]["content"].endswith("mission complete.")
    assert json.loads(rows[0]["tools"])[0]["function"]["name"] == "act"
    path = write_demonstrations(rows, tmp_path / "demos.jsonl")
    assert len(path.read_text().splitlines()) == 2

    model = write_tool_model(tmp_path / "tiny-tools")
    tokenizer = AutoTokenizer.from_pretrained(model)
    assert supports_tool_calling(tokenizer)
    assert is_chat_template_prefix_preserving(tokenizer)
    add_response_schema(tokenizer)  # raises for a template TRL doesn't know
    prompt = rows[1]["messages"][:2]
    prefix = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=False)
    full = tokenizer.apply_chat_template(rows[1]["messages"][:3], return_dict=False)
    assert full[: len(prefix)] == prefix
    parsed = parse_response(tokenizer, full[len(prefix) :], prefix=prefix)
    assert parsed["tool_calls"][0]["function"] == {
        "name": "act",
        "arguments": {"action": expert_actions("MockGoTo-s2")[0]},
    }


def test_init_tiny_tools_builds_a_tool_calling_model(tmp_path: Path) -> None:
    from transformers import AutoTokenizer
    from trl.chat_template_utils import supports_tool_calling

    result = CliRunner().invoke(
        cli, ["model", "init-tiny", "--tools", "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 0, result.output
    assert "tool calls" in result.output
    assert supports_tool_calling(AutoTokenizer.from_pretrained(tmp_path / "m"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "0-2", "--held-out", "2"], "both trained on and held out: MockGoTo-s2"),
        (["--held-out", "2"], "--env needs --tasks"),
        (["--tasks", "3-1"], "runs backwards"),
        (["--tasks", "0", "--scenario", "x*"], "drop --scenario"),
    ],
)
def test_train_grpo_env_refuses_a_bad_split(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["train", "grpo", "--env", "gridworld", "--suite", SUITE, "-o", str(tmp_path / "o")] + args,
    )
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "o").exists()


def test_train_grpo_env_names_an_unknown_family(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["train", "grpo", "--env", "chess", "--tasks", "0", "-o", str(tmp_path / "o")]
    )
    assert result.exit_code != 0
    assert "--env 'chess': use one of gridworld" in result.output
