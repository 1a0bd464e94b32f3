"""Generators: what answers a story's prompt with HTML. Scripted baselines and a chat model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._baselines import ACCESSIBLE, DIV_SOUP
from ._intents import Intent
from ._prompt import StoryParseError, format_reply, parse_html, story_messages

if TYPE_CHECKING:
    from ...agents import Agent, ChatModel

__all__ = [
    "SCRIPTED_NAMES",
    "Generation",
    "LLMGenerator",
    "ScriptedGenerator",
    "generator_for",
    "scripted_generator",
]


@dataclass
class Generation:
    """One generator reply for an intent: the HTML, the raw reply and its accounting."""

    html: str
    text: str
    #: the prompt and the assistant's reply
    messages: list[dict[str, str]]
    latency_ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    #: ``{"type": "unparseable_output", "message", "output"}`` when the reply held no HTML
    error: dict[str, Any] | None = None


class ScriptedGenerator:
    """A deterministic baseline that answers with a fixed snippet per intent (free, instant)."""

    def __init__(self, name: str, snippets: dict[str, str]) -> None:
        self.name = name
        self.snippets = snippets

    def __repr__(self) -> str:
        return f"ScriptedGenerator({self.name!r})"

    def html_for(self, intent: Intent) -> str:
        """This baseline's snippet for ``intent``.

        Raises:
            ValueError: the baseline has no snippet for the intent.
        """
        try:
            return self.snippets[intent.id]
        except KeyError:
            raise ValueError(
                f"scripted:{self.name} has no HTML for intent {intent.id!r}; "
                f"it knows {', '.join(self.snippets)}"
            ) from None

    def generate(self, intent: Intent) -> Generation:
        """Answer ``intent`` with this baseline's snippet, as a ```html reply."""
        from ..tool_selection import count_tokens

        start = time.perf_counter()
        prompt = story_messages(intent)
        text = format_reply(self.html_for(intent))
        return Generation(
            html=parse_html(text),
            text=text,
            messages=[*prompt, {"role": "assistant", "content": text}],
            latency_ms=(time.perf_counter() - start) * 1000.0,
            prompt_tokens=sum(count_tokens(m["content"]) for m in prompt),
            completion_tokens=count_tokens(text),
        )


#: ``accessible`` passes every story; ``div-soup`` fails them all.
SCRIPTED_NAMES: tuple[str, ...] = ("accessible", "div-soup")
_SCRIPTED = {"accessible": ACCESSIBLE, "div-soup": DIV_SOUP}


def scripted_generator(name: str) -> ScriptedGenerator:
    """The scripted baseline called ``name`` (``accessible`` or ``div-soup``).

    Raises:
        ValueError: an unknown name; the message lists the valid ones.
    """
    if name not in _SCRIPTED:
        valid = ", ".join(repr(n) for n in SCRIPTED_NAMES)
        raise ValueError(f"unknown scripted story generator {name!r}; valid names: {valid}")
    return ScriptedGenerator(name, _SCRIPTED[name])


class LLMGenerator:
    """A generator backed by a chat model (``openai:``, ``hf:`` or ``replay:`` spec).

    Each :meth:`generate` makes exactly one ``chat.complete(...)`` call at temperature 0 (a
    reward pool answers one candidate completion per test). A reply without parseable HTML
    gives ``html == ""`` and an ``unparseable_output`` error: the check scores it and the story
    fails. A failed call raises :class:`~pytest_teach.agents.ModelCallError`.
    """

    def __init__(self, chat: ChatModel, *, max_tokens: int = 2048) -> None:
        self.chat = chat
        self.name = chat.spec
        self.max_tokens = max_tokens

    def __repr__(self) -> str:
        return f"LLMGenerator({self.chat!r})"

    def generate(self, intent: Intent) -> Generation:
        """Ask the model for ``intent``'s HTML.

        Raises:
            ModelCallError: the model call failed (timeout, server error, cache miss...).
        """
        prompt = story_messages(intent)
        completion = self.chat.complete(prompt, max_tokens=self.max_tokens, temperature=0.0)
        text = completion.text
        error: dict[str, Any] | None = None
        try:
            html = parse_html(text)
        except StoryParseError as exc:
            html = ""
            error = {"type": "unparseable_output", "message": str(exc), "output": text[:500]}
        return Generation(
            html=html,
            text=text,
            messages=[*prompt, {"role": "assistant", "content": text}],
            latency_ms=completion.latency_ms,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            cost_usd=completion.cost_usd,
            error=error,
        )


def generator_for(
    agent: Agent, *, cache: str = "off", cache_dir: str | Path | None = None
) -> ScriptedGenerator | LLMGenerator:
    """The story generator behind an ``agent`` fixture.

    ``scripted:NAME`` gives a scripted baseline (:func:`scripted_generator`); any other spec an
    :class:`LLMGenerator` over :func:`~pytest_teach.agents.chat_model`, recording or replaying
    replies in ``cache_dir`` when ``cache`` is ``record`` or ``replay``.

    Raises:
        ValueError: an unknown scripted name, a bad spec or cache mode.
    """
    if agent.provider == "scripted":
        return scripted_generator(agent.name)
    from ...agents import chat_model

    return LLMGenerator(chat_model(agent.spec, cache=cache, cache_dir=cache_dir))
