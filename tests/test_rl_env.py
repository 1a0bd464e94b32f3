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


def test_multi_turn_grpo_on_the_gridworld(tmp_path: Path) -> None:
    """SFT on the BabyAI bot's demonstrations (as tool calls), then GRPO with the environment.

    What makes rewards vary within a group: the warm-started policy samples its actions at
    temperature 1, and on these one-step tasks some sampled rollouts reach the goal and some
    don't; the scenario test tells which.
    """
    from safetensors.torch import load_file

    from pytest_teach import rl

    demos = rl.oracle_demonstrations(
        rl.GridworldEnv,
        rl.gridworld_task_ids(["MockGoTo"], range(100, 200)),
        options={"max_steps": MAX_STEPS},
    )
    corpus = [m["content"] for r in demos for m in r["messages"] if m["content"]]
    corpus += [json.dumps(c["function"]) for r in demos for m in r["messages"]
               for c in m.get("tool_calls", [])] + [demos[0]["tools"]]  # fmt: skip
    base = rl.write_tool_model(
        tmp_path / "base", corpus, vocab_size=1024, hidden_size=128, sliding_window=48
    )
    warm = tmp_path / "sft"
    sft = rl.warm_start(demos, base, warm, max_steps=60, learning_rate=3e-3, batch_size=4)
    assert sft["loss"] < 0.5

    db = tmp_path / "exp.db"
    out = tmp_path / "grpo"
    run = rl.train_env_grpo(
        "gridworld",
        out,
        tasks=["MockGoTo-s0", "MockGoTo-s2"],
        held_out=["MockGoTo-s1"],
        suite=[SUITE],
        options={"max_steps": MAX_STEPS},
        base_model=warm,
        store=db,
        max_steps=2,
        batch_size=2,  # both tasks each step: two groups of four rollouts
        num_generations=4,
        max_completion_length=256,
        max_turns=MAX_STEPS,
        learning_rate=1e-3,
        workers=1,
        agent="grid",
    )
    stats = run.stats
    # tool calls were parsed by TRL and carried out in the world
    assert stats["tool_calls"] > 0 and stats["tool_calls_executed"] > 0
    assert stats["rollouts"] == 2 * 2 * 4
    # the rewards came from the scenario tests, and varied within at least one group
    assert set(stats["outcomes"]) <= {"passed", "failed"} and stats["scored"] == 16
    assert stats["groups_with_variance"] >= 1

    # the weights changed
    before, after = load_file(warm / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not before[k].equal(after[k]) for k in before)

    # every rollout is an episode; a rewarded one is a rollout that really reached the goal
    episodes = list(open_store(db).episodes())
    assert len(episodes) == 16 == stats["episodes_stored"]
    assert {e.meta["source"] for e in episodes} == {"rl"}
    assert {e.meta["task"] for e in episodes} <= {"MockGoTo-s0", "MockGoTo-s2"}
    assert {e.session_id for e in episodes} == {run.session_id}
    for e in episodes:
        assert e.model == f"hf:{out.resolve()}"
        assert e.nodeid.endswith(f"[{e.meta['task']}]")
        actions = [s.action for s in e.steps if s.error is None]
        level, seed = e.meta["task"].rsplit("-s", 1)
        world = mg.replay(level, int(seed), actions, max_steps=MAX_STEPS)
        assert e.reward == (1.0 if world.success else 0.0)
        assert e.reward_components["success"] == e.reward
    rewards = {(e.meta["step"], e.meta["task"], e.reward) for e in episodes}
    assert any((s, t, 0.0) in rewards and (s, t, 1.0) in rewards for s, t, _ in rewards)

    # the split is recorded, and the held-out task was never trained on
    record = json.loads((out / "rl-run.json").read_text())
    assert record["train_tasks"] == ["MockGoTo-s0", "MockGoTo-s2"]
    assert record["held_out_tasks"] == ["MockGoTo-s1"]
    assert run.registered.metrics["held_out_tasks"] == ["MockGoTo-s1"]
    assert record["tools_call_frequency"] > 0
