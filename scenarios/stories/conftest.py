"""Fixtures for the stories family: the generator behind `--model` and one page for the session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from pytest_teach.agents import Agent
from pytest_teach.envs import stories
from pytest_teach.envs.browser.fixtures import VIEWPORT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@pytest.fixture
def generator(agent: Agent) -> stories.ScriptedGenerator | stories.LLMGenerator:
    """The story generator under test, built from the `agent` fixture (`--model`, `--teach-cache`)."""
    try:
        return stories.generator_for(agent, cache=agent.cache, cache_dir=agent.cache_dir)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def story_page(browser: Browser) -> Iterator[Page]:
    """One page for every story of the session: `check_story` loads a fresh document each time."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context.new_page()
    finally:
        context.close()
