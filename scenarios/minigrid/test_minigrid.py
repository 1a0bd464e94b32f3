"""BabyAI gridworld missions: the student reads an egocentric text view and answers with one
action per step; the mission's own check decides success. Record every run as training data:

    pytest scenarios/minigrid --model scripted:noisy-0.3 --collect-training-data
    pytest scenarios/minigrid --minigrid-levels GoToLocal --minigrid-seeds 50 --model hf:DIR
"""

from __future__ import annotations

from pytest_teach.agents import ModelCallError
from pytest_teach.envs import minigrid as mg


def test_minigrid_mission(task: mg.Task, minigrid_env, student, episode) -> None:
    world = minigrid_env.for_task(task)
    try:
        result = mg.run_episode(world, student, episode)
    except ModelCallError as exc:  # the endpoint's fault: recorded as an error, not a label
        episode.step(world.observe(), None, error=exc.as_step_error())
        raise
    assert result.success, result.reason
