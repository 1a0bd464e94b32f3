"""``replay:FILE`` and ``replay:@pool``: a chat model that answers with a given completion.

``replay:FILE`` answers every call with the text of ``FILE``: a way to grade one fixed reply
with the whole suite (``pytest --model replay:reply.txt``). ``replay:@pool`` is what the reward
pool's workers run under (:mod:`pytest_teach.rewards`): each call answers with the candidate
completion the pool is scoring, and in capture mode it records the prompt the test sends and
stops the test there, so a suite's prompts come from the tests themselves.

A multi-turn trajectory is scored the same way: :func:`encode_replies` packs the replies a
policy gave, in order, into one completion, and ``replay:@pool`` answers the test's first model
call with the first reply, the second with the second, and so on; once they run out it answers
``""`` (the policy said nothing more), so the scenario's own loop ends the episode its usual way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._chat import ChatModel, Completion, ModelCallError
from ._spec import ModelSpec

__all__ = [
    "POOL_NAME",
    "POOL_SLOT",
    "PromptCaptured",
    "ReplayChat",
    "ReplaySlot",
    "decode_replies",
    "encode_replies",
]

#: The ``replay:`` name that reads the reward pool's slot instead of a file.
POOL_NAME = "@pool"

#: How a completion that carries a whole trajectory's replies starts (ASCII record separators
#: around a name: no model's single reply starts this way).
_REPLIES_MARK = "\x1ereplies\x1e"


def encode_replies(replies: Sequence[str]) -> str:
    """One completion carrying ``replies``, the answers to successive model calls, in order
    (what a multi-turn rollout sends the reward pool)."""
    if isinstance(replies, str) or not all(isinstance(r, str) for r in replies):
        raise TypeError("replies must be a sequence of strings")
    return _REPLIES_MARK + json.dumps(list(replies), ensure_ascii=False)


def decode_replies(completion: str) -> list[str] | None:
    """The replies :func:`encode_replies` packed into ``completion``, else ``None`` (a
    single reply)."""
    if not completion.startswith(_REPLIES_MARK):
        return None
    replies = json.loads(completion[len(_REPLIES_MARK) :])
    if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
        raise ValueError("a replies completion must hold a JSON list of strings")
    return replies


class PromptCaptured(BaseException):  # noqa: N818 - a control-flow signal, not an error
    """Raised by ``replay:@pool`` in capture mode once the test has sent its prompt.

    A ``BaseException``, so a test's ``except Exception`` can't swallow it.
    """


@dataclass
class ReplaySlot:
    """What ``replay:@pool`` answers with, set by the reward pool's worker for each candidate."""

    completion: str | None = None
    capture: bool = False
    calls: int = 0
    #: The captured request in capture mode: messages, max_tokens, temperature, valid_actions.
    request: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def arm(self, completion: str | None, *, capture: bool = False) -> None:
        self.completion = completion
        self.capture = capture
        self.calls = 0
        self.request = None


#: The process-wide slot ``replay:@pool`` reads.
POOL_SLOT = ReplaySlot()


class ReplayChat(ChatModel):
    """Answers with a fixed completion (``replay:FILE``) or the pool's candidate (``replay:@pool``).

    Under ``replay:@pool`` a test that calls the model a second time for one candidate gets a
    :class:`ModelCallError` (``bad_request``), unless the candidate carries a trajectory's
    replies (:func:`encode_replies`): then each call gets the next reply, and ``""`` after the
    last.
    """

    def __init__(self, name: str) -> None:
        self.spec = f"replay:{name}"
        self.name = name
        self._text: str | None = None
        if name != POOL_NAME:
            path = Path(name)
            try:
                self._text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(
                    f"replay:{name}: can't read the completion file ({exc.strerror or exc})"
                ) from None

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> ReplayChat:
        return cls(spec.name)

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        valid_actions: Sequence[str] | None = None,
    ) -> Completion:
        start = time.perf_counter()
        if self._text is not None:
            text = self._text
        else:
            slot = POOL_SLOT
            slot.calls += 1
            if slot.capture:
                slot.request = {
                    "messages": [dict(m) for m in messages],
                    "max_tokens": max_tokens,
                    "temperature": temperature,
                    "valid_actions": list(valid_actions) if valid_actions is not None else None,
                }
                raise PromptCaptured
            replies = None if slot.completion is None else decode_replies(slot.completion)
            if replies is not None:
                text = replies[slot.calls - 1] if slot.calls <= len(replies) else ""
                return Completion(
                    text=text,
                    prompt_tokens=0,
                    completion_tokens=0,
                    latency_ms=(time.perf_counter() - start) * 1000.0,
                )
            if slot.calls > 1:
                raise ModelCallError(
                    "bad_request",
                    "replay:@pool answers one call per candidate; this scenario called the "
                    "model again (multi-turn scenarios can't be scored from one completion)",
                )
            if slot.completion is None:
                raise ModelCallError("bad_request", "replay:@pool has no candidate to answer with")
            text = slot.completion
        return Completion(
            text=text,
            prompt_tokens=0,
            completion_tokens=0,
            latency_ms=(time.perf_counter() - start) * 1000.0,
        )
