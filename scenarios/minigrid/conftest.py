"""Fixtures for the gridworld family: the tasks the --minigrid-* options select, and the
student behind `--model` (`minigrid_env` comes with the plugin)."""

from __future__ import annotations

import pytest

from pytest_teach.agents import Agent
from pytest_teach.envs import minigrid as mg
from pytest_teach.envs.minigrid.fixtures import minigrid_tasks


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "task" in metafunc.fixturenames:
        cases = [
            pytest.param(
                task,
                id=task.id,
                marks=pytest.mark.scenario(
                    "minigrid", category=mg.short_name(task.level), level=task.level
                ),
            )
            for task in minigrid_tasks(metafunc.config)
        ]
        metafunc.parametrize("task", cases)


@pytest.fixture
def student(agent: Agent) -> mg.Student:
    """The gridworld student under test, built from the `agent` fixture (`--model`)."""
    try:
        return mg.student_for(agent)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
