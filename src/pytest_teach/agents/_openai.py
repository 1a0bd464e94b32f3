"""``openai:MODEL``: any OpenAI-compatible chat endpoint through the official ``openai`` client.

Configuration comes from the environment:

- ``OPENAI_BASE_URL``: the endpoint (default: the OpenAI API). Any compatible server works,
  for example ``teach serve-model``.
- ``OPENAI_API_KEY``: the key. A server on 127.0.0.1/localhost gets a placeholder when unset.
  The key is handed to the client and never kept, logged or put in an error message.
- ``TEACH_OPENAI_TIMEOUT``: seconds per request (default 60).
- ``TEACH_OPENAI_MAX_RETRIES``: retries of 429, 5xx and connection errors (default 3); a
  timeout is retried at most once.
- ``TEACH_OPENAI_BACKOFF``: the first retry's delay in seconds (default 0.5, doubled each
  retry, with jitter).
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from ..redaction import redact, redact_logs
from ._chat import ChatModel, Completion, ModelCallError
from ._prices import cost_usd, load_prices
from ._spec import ModelSpec

__all__ = ["OpenAIChat"]

log = logging.getLogger("pytest_teach.agents.openai")
redact_logs(log)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF = 0.5
BACKOFF_FACTOR = 2.0
#: Longest a server's ``Retry-After`` may make us wait before a retry.
MAX_RETRY_AFTER = 30.0
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
#: Reasoning models take ``max_completion_tokens`` and only their default temperature.
_REASONING = re.compile(r"^(o\d|gpt-5)")


def _env_number(name: str, default: float, *, integer: bool = False) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"env {name}={raw!r} is not {kind}") from None
    if value < 0:
        raise ValueError(f"env {name}={raw!r} must not be negative")
    return value


def _is_local(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host in _LOCAL_HOSTS


def _public_url(url: str) -> str:
    """``url`` without credentials or query (safe to show in errors and the store)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else url


def _scrub(text: str, limit: int = 300) -> str:
    """One line of server text, with anything that looks like a key masked."""
    text = redact(" ".join(str(text).split()))
    return text[:limit]


def _status_detail(exc: Any) -> str:
    """The server's own error message from an ``APIStatusError``, if it gave one."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            for key in ("message", "detail"):
                if isinstance(inner.get(key), str) and inner[key]:
                    return inner[key]
        elif isinstance(inner, str) and inner:
            return inner
    message = str(getattr(exc, "message", "") or "")
    return re.sub(r"^Error code: \d+\s*-?\s*", "", message)


class OpenAIChat(ChatModel):
    """A chat model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Retries are done here (the client runs with ``max_retries=0``) so they are counted and
    logged: 429, 5xx and connection errors back off exponentially; a timeout is retried once.
    ``last_attempts`` holds how many requests the latest :meth:`complete` made.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff: float | None = None,
    ) -> None:
        if not model or not model.strip():
            raise ValueError("openai: spec needs a model name, e.g. openai:gpt-4o-mini")
        self.model = model.strip()
        self.spec = f"openai:{self.model}"
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        self.timeout = float(
            timeout if timeout is not None else _env_number("TEACH_OPENAI_TIMEOUT", DEFAULT_TIMEOUT)
        )
        self.max_retries = int(
            max_retries
            if max_retries is not None
            else _env_number("TEACH_OPENAI_MAX_RETRIES", DEFAULT_MAX_RETRIES, integer=True)
        )
        self.backoff = float(
            backoff if backoff is not None else _env_number("TEACH_OPENAI_BACKOFF", DEFAULT_BACKOFF)
        )
        if self.timeout <= 0:
            raise ValueError(f"openai timeout must be positive, got {self.timeout}")
        if self.max_retries < 0:
            raise ValueError(f"openai max_retries must be >= 0, got {self.max_retries}")
        self.prices = load_prices()
        self.last_attempts = 0
        self._client: Any = None

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> OpenAIChat:
        """Build from ``openai:MODEL``; everything else comes from the environment."""
        return cls(spec.name)

    def __repr__(self) -> str:
        return f"OpenAIChat({self.spec!r}, base_url={_public_url(self.base_url)!r})"

    # -- the client ------------------------------------------------------------------------

    def _get_client(self) -> Any:
        if self._client is None:
            api_key = os.environ.get("OPENAI_API_KEY") or None
            if api_key is None:
                if not _is_local(self.base_url):
                    raise ModelCallError("bad_request", "OPENAI_API_KEY is not set")
                api_key = "local"
            import openai

            self._client = openai.OpenAI(
                base_url=self.base_url, api_key=api_key, timeout=self.timeout, max_retries=0
            )
        return self._client

    def _request(self, messages: list[dict[str, str]], max_tokens: int, temperature: float) -> Any:
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages}
        if _REASONING.match(self.model):
            kwargs["max_completion_tokens"] = max_tokens
        else:
            kwargs["max_tokens"] = max_tokens
            kwargs["temperature"] = temperature
        return self._get_client().chat.completions.create(**kwargs)

    # -- errors ----------------------------------------------------------------------------

    def _classify(self, exc: Exception) -> tuple[str, str, float | None]:
        """``(kind, message, retry_after)`` for a client exception."""
        import openai

        where = f"{self.spec} at {_public_url(self.base_url)}"
        if isinstance(exc, openai.APITimeoutError):
            return "timeout", f"{where}: no reply within {self.timeout:g}s", None
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return "connection", f"{where}: cannot connect ({_scrub(cause)})", None
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = _scrub(_status_detail(exc))
            retry_after = None
            header = exc.response.headers.get("retry-after") if exc.response else None
            if header:
                try:
                    retry_after = min(float(header), MAX_RETRY_AFTER)
                except ValueError:
                    retry_after = None
            text = f"{where}: HTTP {status}" + (f": {detail}" if detail else "")
            if status == 429:
                return "rate_limited", text, retry_after
            if status >= 500:
                return "server_error", text, retry_after
            return "bad_request", text, None
        return "bad_request", f"{where}: {type(exc).__name__}: {_scrub(exc)}", None

    def _delay(self, retry: int, retry_after: float | None) -> float:
        base = self.backoff * BACKOFF_FACTOR**retry
        delay = base * (0.75 + 0.5 * random.random())
        return max(delay, retry_after or 0.0)

    # -- the call --------------------------------------------------------------------------

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        valid_actions: Sequence[str] | None = None,
    ) -> Completion:
        """Send ``messages`` to ``/chat/completions``, retrying transient failures.

        ``valid_actions`` is accepted for the protocol but not scored (``action_probs`` stays
        ``None``). Latency is the wall time of the whole call, retries included; the cost comes
        from the price table (0 for unknown or local models).

        Raises:
            ModelCallError: ``timeout``, ``server_error``, ``rate_limited``, ``connection`` or
                ``bad_request`` once the retries are spent (or at once when not retryable).
        """
        import openai

        start = time.perf_counter()
        retries = 0
        timeouts = 0
        self.last_attempts = 0
        while True:
            self.last_attempts += 1
            try:
                response = self._request(messages, max_tokens, temperature)
                break
            except openai.OpenAIError as exc:
                kind, message, retry_after = self._classify(exc)
            if kind == "timeout":
                timeouts += 1
            retryable = kind in ("server_error", "rate_limited", "connection") or (
                kind == "timeout" and timeouts <= 1
            )
            if not retryable or retries >= self.max_retries:
                if self.last_attempts > 1:
                    message = f"{message} (after {self.last_attempts} attempts)"
                raise ModelCallError(kind, message) from None
            delay = self._delay(retries, retry_after)
            retries += 1
            log.warning(
                "%s: %s; retry %d/%d in %.2fs", self.spec, kind, retries, self.max_retries, delay
            )
            time.sleep(delay)
        latency_ms = (time.perf_counter() - start) * 1000.0
        choices = getattr(response, "choices", None) or []
        text = ""
        if choices:
            text = getattr(choices[0].message, "content", None) or ""
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=latency_ms,
            cost_usd=cost_usd(self.model, prompt_tokens, completion_tokens, self.prices),
        )
