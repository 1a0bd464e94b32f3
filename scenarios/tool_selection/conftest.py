"""Fixtures for the tool-selection family: the planner behind `--model`."""

from __future__ import annotations

import pytest

from pytest_teach.agents import Agent
from pytest_teach.envs import tool_selection


@pytest.fixture
def planner(agent: Agent) -> tool_selection.ScriptedPlanner | tool_selection.LLMPlanner:
    """The planner under test, built from the `agent` fixture (`--model`, `--teach-cache`)."""
    try:
        return tool_selection.planner_for(agent, cache=agent.cache, cache_dir=agent.cache_dir)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
