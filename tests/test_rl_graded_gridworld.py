"""The graded gridworld scenario (scenarios/minigrid/graded.py): a rollout's reward through the
reward pool is the share of its subtests passed, each subtest a named component, and the RL
environment trains on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_teach.envs import minigrid as mg

ROOT = Path(__file__).resolve().parents[1]
GRADED = str(ROOT / "scenarios" / "minigrid" / "graded.py")
MAX_STEPS = 6
COMPONENTS = {"reached the goal", "got closer", "next to it", "kept going"}


def distance(world: mg.World) -> int:
    target = world.target()
    return 0 if target is None else abs(target[1]) + abs(target[2])


def expected(task: str, actions: list[str]) -> dict[str, float]:
    """The subtests' verdicts, worked out from the world itself."""
    level, seed = task.rsplit("-s", 1)
    start = distance(mg.make_world(level, int(seed), max_steps=MAX_STEPS))
    world = mg.replay(level, int(seed), actions, max_steps=MAX_STEPS)
    end, won = distance(world), world.success
    return {
        "reached the goal": float(won),
        "got closer": float(won or end < start),
        "next to it": float(won or end <= 1),
        "kept going": float(world.done),
    }


def expert(task: str) -> list[str]:
    level, seed = task.rsplit("-s", 1)
    world = mg.make_world(level, int(seed), max_steps=MAX_STEPS)
    actions = []
    while not world.done:
        actions.append(world.expert_action())
        world.step(actions[-1])
    return actions


@pytest.fixture(scope="module")
def pool():
    from pytest_teach.rewards import RewardPool
    from pytest_teach.rl import GridworldEnv

    args = GridworldEnv._suite_args(["MockGoTo-s0", "MockGoTo-s4"], {"max_steps": MAX_STEPS})
    with RewardPool([GRADED], workers=1, pytest_args=args, cwd=str(ROOT)) as started:
        yield started


def test_graded_gridworld_rewards_partial_progress(pool) -> None:
    from pytest_teach.agents import encode_replies
    from pytest_teach.rl import task_of

    nodeids = {task_of(n): n for n in pool.nodeids}
    assert set(nodeids) == {f"MockGoTo-s{s}" for s in range(5)}
    task = "MockGoTo-s4"
    won = expert(task)
    assert len(won) == 5
    rollouts = [won, won[:4], ["left", "left"], []]  # won[:4] ends next to the ball
    scores = pool.score([(nodeids[task], encode_replies(r)) for r in rollouts])
    values = []
    for replies, score in zip(rollouts, scores, strict=True):
        want = expected(task, replies)
        assert set(score.components) == COMPONENTS
        assert dict(score.components) == want, replies
        assert score.value == pytest.approx(sum(want.values()) / 4)
        values.append(score.value)
    assert values[0] == 1.0 and scores[0].outcome == "passed"
    assert values[-1] < 1.0 and scores[-1].outcome == "failed"
    assert any(0.0 < v < 1.0 for v in values)  # partial credit, not pass/fail


def test_rl_env_trains_on_the_graded_reward(pool) -> None:
    from pytest_teach.rl import GridworldEnv, RolloutContext, task_of

    tasks = {task_of(n): n for n in pool.nodeids}
    context = RolloutContext(pool, tasks, options={"max_steps": MAX_STEPS})
    env = GridworldEnv(context)
    task = "MockGoTo-s4"
    env.reset(task=task)
    for action in expert(task)[:4]:  # next to the ball, then the policy stops
        env.act(action)
    want = expected(task, expert(task)[:4])
    assert env.get_reward() == pytest.approx(sum(want.values()) / 4)
    assert 0.0 < env.get_reward() < 1.0
