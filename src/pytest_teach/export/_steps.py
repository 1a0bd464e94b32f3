"""How recorded steps become chat turns, and which of them were good or bad.

Every export format reads steps through these functions, so SFT rows, DPO pairs and GRPO prompts
agree on what the model saw and what counts as a good action.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..store import Episode, Step

Message = dict[str, Any]

GOOD_RATING = 4  # run-level feedback at or above this marks the run's steps good
BAD_RATING = 2  # at or below this marks them bad


def text_of(value: Any) -> str:
    """Text for a chat turn: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ": "))


def _history(episode: Episode, upto: int) -> list[Message]:
    turns: list[Message] = []
    for step in episode.steps[:upto]:
        if step.messages:
            return []  # steps that carry their own context don't chain
        turns.append({"role": "user", "content": text_of(step.observation)})
        turns.append({"role": "assistant", "content": text_of(step.action)})
    return turns


def prompt_of(episode: Episode, step: Step) -> list[Message]:
    """The chat context the agent saw before acting at ``step``.

    A step that recorded ``messages`` uses them (without a trailing assistant reply); otherwise
    the earlier steps of the episode become user/assistant turns and the observation the last
    user turn.
    """
    if step.messages:
        messages = [dict(m) for m in step.messages]
        if messages and messages[-1].get("role") == "assistant":
            messages.pop()
        return messages
    return [
        *_history(episode, step.index),
        {"role": "user", "content": text_of(step.observation)},
    ]


def reply_of(step: Step) -> str:
    """What the agent answered at ``step``: its recorded assistant reply, else its action."""
    if step.messages and step.messages[-1].get("role") == "assistant":
        return text_of(step.messages[-1].get("content", ""))
    return text_of(step.action)


def _run_rating(episode: Episode) -> int | None:
    rated = [f.rating for f in episode.feedback if f.rating is not None and f.step is None]
    return rated[-1] if rated else None


def verdict(episode: Episode, step: Step) -> str | None:
    """``good``, ``bad`` or ``None`` (unknown) for one step.

    In order: the step's own label; run-level feedback (rating <= 2 marks the run's steps bad,
    >= 4 good); then the outcome: a successful episode's steps are good, and the last step of an
    episode that needed intervention is the bad one.
    """
    if step.label in ("good", "bad"):
        return step.label
    rating = _run_rating(episode)
    if rating is not None and rating <= BAD_RATING:
        return "bad"
    if rating is not None and rating >= GOOD_RATING:
        return "good"
    if episode.label == 0:
        return "good"
    if episode.label == 1 and episode.steps and step.index == episode.steps[-1].index:
        return "bad"
    return None


def corrections(episode: Episode) -> Iterator[tuple[Step, Any]]:
    """(step, correct action) for every correction: recorded on the step or given as feedback."""
    by_index = {s.index: s for s in episode.steps}
    for step in episode.steps:
        if step.correction is not None:
            yield step, step.correction
    for fb in episode.feedback:
        if fb.step is not None and fb.correct_action is not None and fb.step in by_index:
            yield by_index[fb.step], fb.correct_action
