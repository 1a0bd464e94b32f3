"""Graded stories: the same check as ``test_stories.py``, its verdict split into subtests.

Each axe-core rule group (axe's own ``cat.*`` tags: ``cat.aria``, ``cat.forms``,
``cat.name-role-value``...) is one subtest, and so is each group of the story's own checks
(``semantics``, ``keyboard``, ``assertions``). The test gives no ``episode.reward()``, so its
reward is the share of subtests passed and each subtest is a named reward component.

The file is not named ``test_*.py``, so ``pytest scenarios/stories`` keeps to the binary
stories; name it to run it:

    pytest scenarios/stories/graded.py --model scripted:div-soup --collect-training-data
    teach export --format grpo        # reward and reward_components per row

``scripted:accessible`` earns 1.0 on every intent; ``scripted:div-soup`` earns 0.69 to 0.88 (it
fails ``semantics`` and ``keyboard`` everywhere, and some axe groups on some intents). Every
subtest weighs the same, so groups with nothing to judge on a page pass and dilute the rest:
split or merge subtests to weight what matters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_teach.agents import ModelCallError
from pytest_teach.envs import stories

if TYPE_CHECKING:
    from playwright.sync_api import Page

#: The story's own check groups, one subtest each after the axe-core groups.
CHECK_GROUPS = ("semantics", "keyboard", "assertions")

CASES = [
    pytest.param(
        intent,
        id=intent.id,
        marks=[
            pytest.mark.story(intent.id, title=intent.title),
            pytest.mark.scenario("stories-graded", category="story"),
        ],
    )
    for intent in stories.INTENTS
]

_RULE_GROUPS: dict[str, tuple[str, ...]] = {}


def axe_rule_groups(page: Page) -> dict[str, tuple[str, ...]]:
    """axe-core's rules by the category it tags them with (``cat.aria`` -> its rule ids), read
    from the axe-core on ``page`` once per session."""
    if not _RULE_GROUPS:
        read = "() => window.axe ? window.axe.getRules().map(r => [r.ruleId, r.tags]) : null"
        rules = page.evaluate(read)
        if rules is None:  # a document older than axe-core's init script
            from axe_playwright_python.base import AXE_SCRIPT

            page.evaluate(AXE_SCRIPT)
            rules = page.evaluate(read)
        groups: dict[str, list[str]] = {}
        for rule, tags in rules:
            for tag in tags:
                if tag.startswith("cat."):
                    groups.setdefault(tag, []).append(rule)
        _RULE_GROUPS.update({tag: tuple(ids) for tag, ids in sorted(groups.items())})
    return _RULE_GROUPS


@pytest.mark.parametrize("intent", CASES)
def test_graded_story(intent: stories.Intent, generator, story_page, episode, subtests) -> None:
    try:
        gen = generator.generate(intent)
    except ModelCallError as exc:  # the endpoint's fault: recorded as an error, not a label
        episode.step(intent.prompt, None, error=exc.as_step_error())
        raise
    episode.step(intent.prompt, {"html": gen.html}, messages=gen.messages, error=gen.error)
    result = stories.check_story(story_page, intent, gen.html)

    violated = {v["id"]: v for v in result.violations}
    for group, rules in axe_rule_groups(story_page).items():
        with subtests.test(f"axe {group}"):
            hits = [violated[rule] for rule in rules if rule in violated]
            assert not hits, ", ".join(f"{v['id']} ({v['impact']}): {v['help']}" for v in hits)
    for component in CHECK_GROUPS:
        with subtests.test(component):
            failed = [c for c in result.checks if c.component == component and not c.passed]
            assert not failed, "; ".join(
                c.check + (f" ({c.detail})" if c.detail else "") for c in failed
            )
