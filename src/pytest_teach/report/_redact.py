"""Masking values that look like secrets before they are shown anywhere."""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["REDACTED", "redact"]

REDACTED = "[REDACTED]"

# Key names whose value is a secret: the name must *end* with one of these words, so
# ``access_token`` and ``OPENAI_API_KEY`` match while ``max_tokens`` and ``token_count`` don't.
_KEY_WORDS = (
    r"api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key"
    r"|token|secret|password|passwd|authorization"
)

_PATTERN = re.compile(
    # key=value, key: value, "key": "value", 'key': 'value', \"key\": \"value\" (escaped JSON)
    r"(?P<pair>(?<![\w.-])(?P<q>\\?[\"']?)"
    rf"(?i:[\w.-]*?(?:{_KEY_WORDS}))(?!\w)(?P=q)[ \t]*[:=][ \t]*)"
    r"(?P<val>\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|\\\"(?:(?!\\\").)*\\\""
    r"|(?i:(?:bearer|basic|token)\s+)?[^\s\"'&,;<>{}()\[\]]+)"
    # Authorization: Bearer <token>
    r"|(?P<bearer>(?i:\bbearer)\s+)"
    r"(?:(?=[\w.~+/-]*\d)[\w.~+/-]{8,}|[\w.~+/-]{16,})=*"
    # JSON Web Tokens: header.payload.signature, both first parts base64url JSON objects
    r"|eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
    # OpenAI (sk-..., sk-proj-...), Anthropic (sk-ant-...)
    r"|(?<![A-Za-z0-9])sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{16,}"
    # Hugging Face
    r"|(?<![A-Za-z0-9])hf_[A-Za-z0-9]{16,}"
    # GitHub: classic (ghp_, gho_, ghu_, ghs_, ghr_) and fine-grained tokens
    r"|(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"
    # AWS access key ids (long-term and temporary)
    r"|(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])"
    # Slack
    r"|(?<![A-Za-z0-9])xox[abpr]-[A-Za-z0-9-]{10,}"
)

# cheap pre-check: every pattern above needs one of these substrings (case-folded)
_HINTS = (
    "key",
    "token",
    "secret",
    "passw",
    "authorization",
    "bearer",
    "eyj",
    "sk-",
    "hf_",
    "gh",
    "akia",
    "asia",
    "xox",
)


def _replace(m: re.Match[str]) -> str:
    if m.group("pair") is not None:
        value = m.group("val")
        if value.startswith('\\"'):
            return f'{m.group("pair")}\\"{REDACTED}\\"'
        if value[0] in "\"'":
            return f"{m.group('pair')}{value[0]}{REDACTED}{value[0]}"
        return m.group("pair") + REDACTED
    if m.group("bearer") is not None:
        return m.group("bearer") + REDACTED
    return REDACTED


def _redact(text: str) -> str:
    folded = text.lower()
    if not any(hint in folded for hint in _HINTS):
        return text
    return _PATTERN.sub(_replace, text)


_redact_short = lru_cache(maxsize=8192)(_redact)


def redact(text: str) -> str:
    """Replace values that look like secrets with ``[REDACTED]``.

    Covers OpenAI-style keys (``sk-...``, ``sk-proj-...``), Anthropic keys (``sk-ant-...``),
    Hugging Face tokens (``hf_...``), GitHub tokens (``ghp_``/``gho_``/``ghs_``/``github_pat_``...),
    AWS access key ids (``AKIA...``), Slack tokens (``xox[abpr]-...``), ``Bearer <token>``,
    JSON Web Tokens, and the value of ``key=value`` / ``key: value`` / ``"key": "value"`` pairs
    whose key names an api key, token, secret, password or authorization (the key is kept).
    """
    if not isinstance(text, str):
        raise TypeError(f"redact() expects a str, got {type(text).__name__}")
    if type(text) is not str:  # a subclass (Markup...): redact and cache a plain copy
        text = str.__str__(text)
    if len(text) <= 256:
        return _redact_short(text)
    return _redact(text)
