"""Stories: a model builds a UI component from an intent; Chromium, axe-core and the keyboard
judge it.

Run it against any model and record every outcome as training data:

    pytest scenarios/stories --model scripted:accessible --collect-training-data
"""

from __future__ import annotations

import pytest

from pytest_teach.agents import ModelCallError
from pytest_teach.envs import stories

CASES = [
    pytest.param(
        intent,
        id=intent.id,
        marks=[
            pytest.mark.story(intent.id, title=intent.title),
            pytest.mark.scenario("stories", category="story"),
        ],
    )
    for intent in stories.INTENTS
]


@pytest.mark.parametrize("intent", CASES)
def test_story(intent: stories.Intent, generator, story_page, episode) -> None:
    try:
        gen = generator.generate(intent)
    except ModelCallError as exc:  # the endpoint's fault: recorded as an error, not a label
        episode.step(intent.prompt, None, error=exc.as_step_error())
        raise
    episode.step(intent.prompt, {"html": gen.html}, messages=gen.messages, error=gen.error)
    episode.metric(
        latency_ms=gen.latency_ms,
        prompt_tokens=gen.prompt_tokens,
        completion_tokens=gen.completion_tokens,
        cost_usd=gen.cost_usd,
    )
    result = stories.check_story(story_page, intent, gen.html)
    episode.reward(result.reward)
    episode.metric(check_ms=result.duration_ms)
    episode.meta(story_result=result.to_dict())
    assert result.passed, result.message
