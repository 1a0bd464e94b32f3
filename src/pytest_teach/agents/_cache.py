"""Record model replies to disk and replay them, for free, offline and deterministic reruns.

An entry's key is the SHA-256 of the canonical JSON of ``(spec, messages, max_tokens,
temperature, valid_actions)``; it lives at ``CACHE_DIR/ab/abcdef....json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from hashlib import sha256
from pathlib import Path
from typing import Any

from .._util import atomic_write_text
from ._chat import ChatModel, Completion, ModelCallError

__all__ = ["DEFAULT_CACHE_DIR", "CachedChat", "cache_key"]

DEFAULT_CACHE_DIR = ".teach/cache"
_FORMAT = 1


def cache_key(
    spec: str,
    messages: list[dict[str, str]],
    max_tokens: int,
    temperature: float,
    valid_actions: Sequence[str] | None,
) -> str:
    """The hex SHA-256 that names a call's cache entry."""
    payload = {
        "spec": spec,
        "messages": messages,
        "max_tokens": int(max_tokens),
        "temperature": float(temperature),
        "valid_actions": None if valid_actions is None else list(valid_actions),
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return sha256(canonical.encode("utf-8")).hexdigest()


def _completion_from(data: Any) -> Completion:
    """Rebuild a Completion from stored JSON; ValueError when it doesn't fit."""
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError("not a pytest-teach cache entry")
    stored = data.get("completion")
    if not isinstance(stored, dict) or not isinstance(stored.get("text"), str):
        raise ValueError("no completion text")
    known = {f.name for f in fields(Completion)}
    values = {k: v for k, v in stored.items() if k in known}
    for name in ("prompt_tokens", "completion_tokens"):
        if isinstance(values.get(name, 0), bool) or not isinstance(values.get(name, 0), int):
            raise ValueError(f"{name} is not an integer")
    for name in ("latency_ms", "cost_usd"):
        value = values.get(name, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} is not a number")
    probs = values.get("action_probs")
    if probs is not None and not (
        isinstance(probs, dict)
        and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in probs.values())
    ):
        raise ValueError("action_probs is not a mapping of numbers")
    values["cached"] = True
    return Completion(**values)


class CachedChat(ChatModel):
    """Wraps a chat model: ``record`` calls it and stores each reply; ``replay`` only reads.

    In ``replay`` mode the inner model is never called, so no key, server or weights are needed.
    """

    def __init__(self, inner: ChatModel, mode: str, cache_dir: str | Path | None = None) -> None:
        if mode not in ("record", "replay"):
            raise ValueError(f"cache mode {mode!r} is not 'record' or 'replay'")
        self.inner = inner
        self.mode = mode
        self.spec = inner.spec
        self.cache_dir = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR)

    def __repr__(self) -> str:
        return f"CachedChat({self.inner!r}, {self.mode!r}, {str(self.cache_dir)!r})"

    def path_for(self, key: str) -> Path:
        """Where the entry for ``key`` lives."""
        return self.cache_dir / key[:2] / f"{key}.json"

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        valid_actions: Sequence[str] | None = None,
    ) -> Completion:
        """Replay the stored reply, or call the inner model and store its reply.

        Raises:
            ModelCallError: ``cache_miss`` in replay mode when there is no entry or it is
                corrupt; whatever the inner model raises in record mode.
        """
        key = cache_key(self.spec, messages, max_tokens, temperature, valid_actions)
        path = self.path_for(key)
        if self.mode == "replay":
            return self._read(key, path)
        completion = self.inner.complete(
            messages, max_tokens=max_tokens, temperature=temperature, valid_actions=valid_actions
        )
        self._write(key, path, completion)
        return completion

    def _read(self, key: str, path: Path) -> Completion:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelCallError(
                "cache_miss",
                f"no cached reply for {self.spec} (key {key[:12]}...) in {self.cache_dir}; "
                "record it first: run the suite with --teach-cache record against the live model",
            ) from None
        except OSError as exc:
            raise ModelCallError(
                "cache_miss", f"cannot read cache entry {path}: {exc.strerror or exc}"
            ) from None
        try:
            return _completion_from(json.loads(text))
        except (ValueError, TypeError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise ModelCallError(
                "cache_miss",
                f"corrupt cache entry {path} ({reason}); delete it and record again with "
                "--teach-cache record",
            ) from None

    def _write(self, key: str, path: Path, completion: Completion) -> None:
        entry = {
            "format": _FORMAT,
            "key": key,
            "spec": self.spec,
            "completion": {**completion.to_dict(), "cached": False},
        }
        atomic_write_text(path, json.dumps(entry, ensure_ascii=False, indent=1, allow_nan=False))
