"""Fixtures for the tool-selection family: the planner behind `--model`."""

from __future__ import annotations

import pytest

from pytest_teach.agents import Agent
from pytest_teach.envs import tool_selection


@pytest.fixture
def planner(agent: Agent) -> tool_selection.ScriptedPlanner:
    """The planner under test, built from the `agent` fixture (`--model`)."""
    try:
        return tool_selection.planner_for(agent)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
