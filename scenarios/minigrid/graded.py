"""Graded gridworld missions: the same mission as ``test_minigrid.py``, its verdict split into
subtests, so a rollout that gets near the goal earns partial credit.

Four subtests, each one reward component: ``reached the goal`` (the mission's own check),
``got closer`` (the mission's object ends nearer than it started, by Manhattan distance),
``next to it`` (the object ends at most one cell away) and ``kept going`` (the student acted
until the episode ended: it neither stopped answering nor answered something unparseable). A
success passes all four. The test gives no ``episode.reward()``, so its reward is the share of
subtests passed.

The file is not named ``test_*.py``, so ``pytest scenarios/minigrid`` keeps to the binary
missions; name it to run it:

    pytest scenarios/minigrid/graded.py --model scripted:noisy-0.5 --collect-training-data
    teach train grpo --env gridworld --suite scenarios/minigrid/graded.py --tasks 0-7
"""

from __future__ import annotations

from typing import Any

from pytest_teach.agents import ModelCallError
from pytest_teach.envs import minigrid as mg


class _Ungraded:
    """The test's recorder, minus the pass/fail reward ``run_episode`` gives: the subtests
    grade the episode instead (its expert agreement is kept as a metric)."""

    def __init__(self, episode: Any) -> None:
        self._episode = episode

    def __getattr__(self, name: str) -> Any:
        return getattr(self._episode, name)

    def reward(self, value: float, **components: float) -> None:
        if "agreement" in components:
            self._episode.metric(agreement=components["agreement"])


def target_distance(world: mg.World) -> int:
    """The Manhattan distance from the agent to the mission's object (0 while it is carried
    or when the world can't tell)."""
    target = world.target()
    return 0 if target is None else abs(target[1]) + abs(target[2])


def test_graded_mission(task: mg.Task, minigrid_env, student, episode, subtests) -> None:
    world = minigrid_env.for_task(task)
    start = target_distance(world)
    try:
        result = mg.run_episode(world, student, _Ungraded(episode))
    except ModelCallError as exc:  # the endpoint's fault: recorded as an error, not a label
        episode.step(world.observe(), None, error=exc.as_step_error())
        raise
    end = target_distance(world)
    with subtests.test("reached the goal"):
        assert result.success, result.reason
    with subtests.test("got closer"):
        assert result.success or end < start, f"the object is {end} cells away (from {start})"
    with subtests.test("next to it"):
        assert result.success or end <= 1, f"the object is {end} cells away"
    with subtests.test("kept going"):
        assert world.done, result.reason
