"""The chat-model interface behind ``openai:``, ``hf:`` and ``replay:`` specs, and
:func:`chat_model`, which builds one through the provider registry (:data:`PROVIDERS`).

Nothing heavy is imported here: a provider's module is imported when a spec first names it, and
the ``openai`` client, ``torch`` and ``transformers`` on its first call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InfrastructureError
from ._providers import PROVIDERS
from ._spec import ModelSpec, parse_model_spec

__all__ = [
    "CACHE_MODES",
    "MODEL_CALL_ERROR_KINDS",
    "ChatModel",
    "Completion",
    "ModelCallError",
    "chat_model",
]

MODEL_CALL_ERROR_KINDS = (
    "timeout",
    "server_error",
    "rate_limited",
    "connection",
    "bad_request",
    "cache_miss",
)
CACHE_MODES = ("off", "record", "replay")


@dataclass
class Completion:
    """One chat completion with its accounting."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    #: P(reply == action) over ``valid_actions``, when the provider computed it.
    action_probs: dict[str, float] | None = None
    #: True when the reply came from the replay cache rather than the model.
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


class ModelCallError(InfrastructureError):
    """A model call that failed for reasons outside the agent (endpoint down, timeout, ...).

    It is an :class:`~pytest_teach.errors.InfrastructureError`, so a scenario that fails with it
    is recorded with outcome ``error`` and never becomes a training example.
    """

    def __init__(self, kind: str, message: str) -> None:
        if kind not in MODEL_CALL_ERROR_KINDS:
            raise ValueError(
                f"unknown model call error kind {kind!r}; use one of "
                f"{', '.join(MODEL_CALL_ERROR_KINDS)}"
            )
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return f"model {self.kind.replace('_', ' ')}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.message))

    def as_step_error(self) -> dict[str, str]:
        """The structured step error for ``episode.step(..., error=...)``."""
        return {"type": f"model_{self.kind}", "message": self.message}


class ChatModel(ABC):
    """A chat model that answers a list of ``{"role", "content"}`` messages."""

    spec: str

    @abstractmethod
    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        valid_actions: Sequence[str] | None = None,
    ) -> Completion:
        """Answer ``messages``.

        ``valid_actions``, when given, asks the provider for ``action_probs`` (a distribution
        over those replies) if it can compute one; providers that can't leave it ``None``.

        Raises:
            ModelCallError: the call failed (timeout, server error, rate limit, connection,
                bad request, or a replay cache miss).
        """

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> ChatModel:
        """Build the provider for a parsed spec (its ``name`` is the model or path)."""
        return cls(spec.name)  # type: ignore[call-arg]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


def chat_model(
    spec: str | ModelSpec, *, cache: str = "off", cache_dir: str | Path | None = None
) -> ChatModel:
    """Build the chat model for ``spec`` (``openai:MODEL``, ``hf:PATH[+ADAPTER]`` or
    ``replay:FILE``).

    With ``cache="record"`` every reply is also written to ``cache_dir`` (default
    ``.teach/cache``); with ``cache="replay"`` replies come from there and the model is never
    called. Building is cheap: clients and weights load on the first call.

    Raises:
        ValueError: the spec is malformed, is a ``scripted:`` spec (scripted agents come from
            the scenario family, e.g. ``tool_selection.planner_for``), or ``cache`` is unknown.
    """
    parsed = parse_model_spec(spec) if isinstance(spec, str) else spec
    if cache not in CACHE_MODES:
        raise ValueError(f"cache mode {cache!r} is not one of {', '.join(CACHE_MODES)}")
    if parsed.provider == "scripted":
        raise ValueError(
            f"{parsed} is a scripted agent: scripted agents come from the scenario family "
            "(for example pytest_teach.envs.tool_selection.planner_for), not from chat_model()"
        )
    provider = PROVIDERS.get(parsed.provider)
    if provider is None or not provider.chat:
        chat = sorted(name for name, p in PROVIDERS.items() if p.chat)
        raise ValueError(f"no chat provider for {parsed}; chat providers: {', '.join(chat)}")
    model = provider.load().from_spec(parsed)
    if cache == "off":
        return model
    from ._cache import CachedChat

    return CachedChat(model, cache, cache_dir)
