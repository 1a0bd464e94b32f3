"""Fixtures for the browser family: the local sites, one Chromium per session, a fresh page, and
the policy behind `--model` for each task."""

from __future__ import annotations

import pytest

from pytest_teach.agents import Agent
from pytest_teach.envs import browser as br


@pytest.fixture
def policy(agent: Agent, task: br.Task) -> br.BrowserPolicy:
    """The browser policy under test for `task`, built from the `agent` fixture (`--model`)."""
    try:
        return br.browser_policy_for(agent, task, seed=agent.seed)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
