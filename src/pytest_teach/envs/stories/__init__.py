"""Stories: UI generation from an intent, checked in Chromium with axe-core and the keyboard.

A model gets an intent (:data:`INTENTS`: a button, a toggle switch, a dialog, tabs...) as a chat
prompt (:func:`story_messages`) and answers with one HTML snippet (:func:`parse_html`).
:func:`check_story` renders it on a Playwright page, runs axe-core, then the intent's semantic,
keyboard and state assertions, and returns a :class:`StoryResult` whose
:class:`~pytest_teach.Reward` has the components ``a11y``, ``semantics``, ``keyboard`` and
``assertions`` (:data:`REWARD_WEIGHTS`). :func:`generator_for` turns the ``agent`` fixture into a
generator: ``scripted:accessible`` and ``scripted:div-soup`` are the baselines.

Importing this package is light: Playwright and axe-core load when a page is checked.
"""

from __future__ import annotations

from ._check import (
    AXE_PENALTIES,
    BLOCKING_IMPACTS,
    COMPONENTS,
    REWARD_WEIGHTS,
    CheckResult,
    StoryResult,
    check_story,
)
from ._generators import (
    SCRIPTED_NAMES,
    Generation,
    LLMGenerator,
    ScriptedGenerator,
    generator_for,
    scripted_generator,
)
from ._intents import INTENTS, INTENTS_BY_ID, Intent
from ._page import story_document
from ._prompt import SYSTEM_PROMPT, StoryParseError, format_reply, parse_html, story_messages

__all__ = [
    "AXE_PENALTIES",
    "BLOCKING_IMPACTS",
    "COMPONENTS",
    "INTENTS",
    "INTENTS_BY_ID",
    "REWARD_WEIGHTS",
    "SCRIPTED_NAMES",
    "SYSTEM_PROMPT",
    "CheckResult",
    "Generation",
    "Intent",
    "LLMGenerator",
    "ScriptedGenerator",
    "StoryParseError",
    "StoryResult",
    "check_story",
    "format_reply",
    "generator_for",
    "parse_html",
    "scripted_generator",
    "story_document",
    "story_messages",
]
