"""Masking secrets in anything shown or stored for display.

One redaction serves the report, the terminal summary, log records, the stored session argv,
export manifests and error messages. It imports only the standard library, so any module can
use it without slowing pytest's start-up.

What is masked (each replaced with ``[REDACTED]``):

- Key-like values, wherever they stand: OpenAI (``sk-…``, ``sk-proj-…``), Anthropic
  (``sk-ant-…``), Hugging Face (``hf_…``), AWS access key ids (``AKIA…``/``ASIA…``), GitHub
  (``ghp_``/``gho_``/``ghs_``/``ghu_``/``ghr_``/``github_pat_…``), Slack (``xox[abposr]-…``),
  Stripe (``sk_live_…``, ``rk_test_…``)
  and JSON Web Tokens. An ``sk-`` or ``hf_`` key glued to a preceding letter or digit
  (``abcsk-proj-…``) is recognised when its body has an upper-case letter and a digit, as real
  keys of that length do; standing alone, any body of the key's length is.
- Credentials after ``Bearer``/``Basic`` in every spelling: ``Bearer X``, ``bearer=X``,
  ``Bearer%20X``, ``Bearer+X``, ``Authorization: …``. A bare ``Bearer X`` masks a
  credential-shaped ``X`` (:data:`CREDENTIAL_SHAPE`) and a bare ``Basic X`` one that is base64
  of ``user:password``, so "Bearer of bad news" and "Basic instructions" are left alone.
- The value after an option or key whose name ends in a secret word (``token``, ``secret``,
  ``password``, ``passwd``, ``passphrase``, ``api-key``/``api_key``/``apikey``,
  ``access-key``, ``secret-key``, ``private-key``, ``authorization``, ``credential(s)``,
  ``bearer``): ``--token X``, ``--token=X``, ``-password X``, ``api_key=X``, ``token: X``,
  ``"token": "X"``, ``x-api-key: X``, ``OPENAI_API_KEY=X``. The key itself is kept.
  ``max_tokens``, ``tokenizer`` and ``token_count`` don't end in a secret word and are left
  alone.
- A bare secret word followed by a space (``token X``, ``api-key X``, ``password X``) masks
  ``X`` only when it looks like a credential (:data:`CREDENTIAL_SHAPE`), so prose such as
  "the token budget" or "enter your password below" is left alone.
- The password in a URL's userinfo: ``scheme://user:PASS@host`` becomes
  ``scheme://user:[REDACTED]@host``.

Where a value ends: an option's value at whitespace, a quote or a backtick; a ``key=value``
pair's at those or one of ``&,;<>{}()[]`` (so query strings, JSON and Markdown keep their
shape); a quoted value at its closing quote; a URL password at the last ``@`` before whitespace,
``/``, ``?`` or ``#``. Hex digests, UUIDs, paths and ordinary code are not masked unless one of
the rules above names them: masking every long hex string would hide the commit ids and content
hashes that reports rely on.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = [
    "CREDENTIAL_SHAPE",
    "REDACTED",
    "RedactingFilter",
    "is_secret_name",
    "redact",
    "redact_argv",
    "drain_redacted",
    "redact_logs",
    "redact_url",
    "redact_value",
]

REDACTED = "[REDACTED]"

#: Names whose value is a secret. A name must *end* with one of these words.
_NAMES = (
    r"api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key"
    r"|token|secret|password|passwd|passphrase|authorization|credentials?|bearer"
)

#: A value that looks like a credential: 6+ token characters with a digit, or 16+ with both
#: upper- and lower-case letters, then any ``=`` padding. Used where nothing but a space ties a
#: value to its name (``token X``, ``Bearer X``).
_C = r"[A-Za-z0-9_.~+/-]"
CREDENTIAL_SHAPE = rf"(?:(?={_C}*[0-9]){_C}{{6,}}|(?={_C}*[A-Z])(?={_C}*[a-z]){_C}{{16,}})=*"

_KEY_CHARS = r"[A-Za-z0-9_-]"
_GLUED_KEY = r"(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Z])"

# Three passes. URL passwords go first, so a user called "token" keeps its host. The second masks
# values tied to a secret name (options, pairs, "Bearer X"): it finds the names with a
# case-sensitive search of the lower-cased text, which is fast, and matches the rules only where
# a name stands. The third masks key-like values; each of those rules starts with a literal, so
# the regex engine searches for it quickly.

# --token X, --token=X, -password X (a value starting with '-', '=' or ':' is not its value)
_OPTION_RULE = (
    rf"(?P<opt>(?:--|(?<![\w-])-)(?i:[\w-]{{0,40}}?(?:{_NAMES}))(?:=|[ \t]+(?![-=:])))"
    r"(?P<optval>\"[^\"\n]*\"|'[^'\n]*'|[\"']?[^\s\"'`]+)"
)
_AT_NAME_RULES = (
    # key=value, key: value, "key": "value", 'key': 'value', \"key\": \"value\" (escaped JSON)
    rf"(?P<pair>(?i:{_NAMES})(?!\w)(?:\\?[\"'])?[ \t]*[:=][ \t]*)"
    r"(?P<val>\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|\\\"(?:(?!\\\").)*\\\""
    r"|(?i:(?:bearer|basic|token|digest)(?:\s+|%20|\+))?[^\s\"'`&,;<>{}()\[\]]+)"
    # Bearer%20X, Bearer+X, Basic%20X: URL-encoded header values
    r"|(?P<enc>(?i:(?P<encbasic>basic)|bearer)(?:%20|\+))(?P<encval>[^\s\"'&,;<>]+)"
    # Basic X: only base64 of "user:password"
    r"|(?P<basic>(?i:basic)[ \t]+)(?P<b64>[A-Za-z0-9+/]{4,}={0,2})(?![A-Za-z0-9+/=])"
    # Bearer X, token X, api-key X: only a credential-shaped X
    rf"|(?P<word>(?i:{_NAMES})(?!\w)[ \t]+){CREDENTIAL_SHAPE}"
)
_OPTION = re.compile(_OPTION_RULE)
_AT_NAME = re.compile(_AT_NAME_RULES)
_NAMED = re.compile(f"{_OPTION_RULE}|{_AT_NAME_RULES}")  # for text whose lower() changes length
#: Where a rule of the first pass can apply, searched in the lower-cased text.
_TRIGGER = re.compile(rf"(?:{_NAMES}|basic)(?!\w)")

#: The second pass: (a substring every match contains, the rule), each run only when its
#: substring is in the text, so the engine searches for a literal.
_KEY_RULES = [
    (hint, re.compile(rule))
    for hint, rule in [
        # scheme://user:PASS@host (the scheme and user are kept)
        ("://", r"(?P<url>://[^\s/?#@:\"'<>]*:)[^\s/?#\"'<>]*@"),
        # JSON Web Tokens: header.payload.signature, both first parts base64url JSON objects
        ("eyJ", r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
        # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-), Anthropic (sk-ant-)
        (
            "sk-",
            rf"sk-(?<![A-Za-z0-9]sk-)(?:ant-|proj-|svcacct-|admin-)?{_KEY_CHARS}{{16,}}"
            rf"|sk-(?:ant-|proj-|svcacct-|admin-)?{_GLUED_KEY}{_KEY_CHARS}{{20,}}",
        ),
        # Hugging Face
        (
            "hf_",
            r"hf_(?<![A-Za-z0-9]hf_)[A-Za-z0-9]{16,}"
            r"|hf_(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Z])[A-Za-z0-9]{20,}",
        ),
        # GitHub: classic (ghp_, gho_, ghu_, ghs_, ghr_) and fine-grained tokens
        ("gh", r"gh[pousr]_[A-Za-z0-9]{20,}"),
        ("github_pat_", r"github_pat_[A-Za-z0-9_]{20,}"),
        # AWS access key ids (long-term and temporary)
        ("AKIA", r"AKIA[0-9A-Z]{16}"),
        ("ASIA", r"ASIA[0-9A-Z]{16}"),
        # Slack
        ("xox", r"xox[abposr]-[A-Za-z0-9-]{10,}"),
        # Stripe secret and restricted keys (live and test)
        ("k_live_", r"[sr]k_live_[A-Za-z0-9]{16,}"),
        ("k_test_", r"[sr]k_test_[A-Za-z0-9]{16,}"),
    ]
]

# cheap pre-check: every rule of the first pass needs one of these substrings (case-folded)
_NAMED_HINTS = (
    "key",
    "token",
    "secret",
    "passw",
    "passphrase",
    "authorization",
    "credential",
    "bearer",
    "basic",
)

_SECRET_NAME = re.compile(rf"(?i:[\w.-]*(?:{_NAMES}))")


def _is_basic(value: str) -> bool:
    """Whether ``value`` is base64 of ``user:password`` (HTTP Basic credentials)."""
    if len(value) % 4:
        return False
    try:
        return b":" in base64.b64decode(value, validate=True)
    except ValueError:
        return False


def _replace_named(m: re.Match[str]) -> str:
    if m.re is not _AT_NAME and m.group("opt") is not None:
        value = m.group("optval")
        quote = value[0] if value[0] in "\"'" else ""
        closing = quote if len(value) > 1 and value.endswith(quote) else ""
        return f"{m.group('opt')}{quote}{REDACTED}{closing}"
    if m.group("pair") is not None:
        value = m.group("val")
        if value.startswith('\\"'):
            return f'{m.group("pair")}\\"{REDACTED}\\"'
        if value[0] in "\"'":
            return f"{m.group('pair')}{value[0]}{REDACTED}{value[0]}"
        return m.group("pair") + REDACTED
    if m.group("enc") is not None:
        if m.group("encbasic") is not None and not _is_basic(unquote(m.group("encval"))):
            return m.group(0)
        return m.group("enc") + REDACTED
    if m.group("basic") is not None:
        return m.group("basic") + REDACTED if _is_basic(m.group("b64")) else m.group(0)
    return m.group("word") + REDACTED


def _replace_key(m: re.Match[str]) -> str:
    if m.re.groupindex and m.group("url") is not None:
        return f"{m.group('url')}{REDACTED}@"
    return REDACTED


def _option_before(text: str, name_at: int, floor: int) -> re.Match[str] | None:
    """An option (``--token X``) whose name ends with the secret name at ``name_at``."""
    lo = max(floor, name_at - 44)
    if text.rfind("-", lo, name_at + 1) < 0:
        return None
    start = name_at
    while start > lo and (text[start - 1].isalnum() or text[start - 1] in "_-"):
        start -= 1
    for at in range(start, name_at + 1):
        if text[at] == "-":
            m = _OPTION.match(text, at)
            if m is not None:
                return m
    return None


def _redact_named(text: str, folded: str) -> str:
    if len(folded) != len(text):  # lower() changed the length: scan the original instead
        return _NAMED.sub(_replace_named, text)
    out: list[str] = []
    done = 0
    for trigger in _TRIGGER.finditer(folded):
        at = trigger.start()
        if at < done:
            continue
        m = _option_before(text, at, done) or _AT_NAME.match(text, at)
        if m is not None:
            out.append(text[done : m.start()])
            out.append(_replace_named(m))
            done = m.end()
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _redact(text: str) -> str:
    url_hint, url_rule = _KEY_RULES[0]
    if url_hint in text:  # first, so a user called "token" keeps its host: token:[REDACTED]@host
        text = url_rule.sub(_replace_key, text)
    folded = text.lower()
    if any(hint in folded for hint in _NAMED_HINTS):
        text = _redact_named(text, folded)
    for hint, rule in _KEY_RULES[1:]:
        if hint in text:
            text = rule.sub(_replace_key, text)
    return text


_redact_short = lru_cache(maxsize=8192)(_redact)


def redact(text: str) -> str:
    """``text`` with every value that looks like a secret replaced by ``[REDACTED]``.

    See the module's docstring for what is masked and where a masked value ends. Text without a
    secret comes back unchanged (the same characters).

    Raises:
        TypeError: ``text`` is not a ``str``.
    """
    if not isinstance(text, str):
        raise TypeError(f"redact() expects a str, got {type(text).__name__}")
    if type(text) is not str:  # a subclass (Markup...): redact and cache a plain copy
        text = str.__str__(text)
    if len(text) <= 256:
        return _redact_short(text)
    return _redact(text)


def is_secret_name(name: str) -> bool:
    """Whether an option, key or header called ``name`` holds a secret (``--api-key``,
    ``OPENAI_API_KEY``, ``x-api-key``, ``password``; not ``max_tokens``)."""
    return _SECRET_NAME.fullmatch(name.lstrip("-")) is not None


def redact_argv(argv: Iterable[str]) -> list[str]:
    """A command line with its secrets masked, one element per argument as given.

    The argument after an option named like a secret (``--token X``) is masked whole, spaces
    and all, unless it is itself an option; ``--token=X`` keeps ``--token=``. Every argument is
    also passed through :func:`redact`.
    """
    out: list[str] = []
    mask_next = False
    for arg in map(str, argv):
        if mask_next and not arg.startswith("-"):
            out.append(REDACTED)
            mask_next = False
            continue
        mask_next = arg.startswith("-") and "=" not in arg and is_secret_name(arg)
        out.append(redact(arg))
    return out


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo (``scheme://user:PASS@host``) and any secret
    query value masked; the user name, host, port and path are kept."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return redact(url)
    if password:
        user, _, host = parts.netloc.rpartition("@")
        name = user.split(":", 1)[0]
        parts = parts._replace(netloc=f"{name}:{REDACTED}@{host}")
        url = urlunsplit(parts)
    return redact(url)


def redact_value(value: Any) -> Any:
    """A copy of a JSON-like ``value`` (dicts, lists, strings, numbers) with its secrets masked.

    Strings go through :func:`redact`; the value of a key named like a secret (``{"token": …}``)
    is masked whole when it is a string or a number.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED
            if isinstance(k, str)
            and is_secret_name(k)
            and isinstance(v, (str, int, float))
            and not isinstance(v, bool)
            else redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in a record's message, arguments and traceback.

    String arguments are masked one by one, so formatters that read ``record.args`` (uvicorn's
    access log) keep working; a secret that only appears once the message is formatted
    (``"--token %s"``) folds the formatted, masked message into ``record.msg``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.args:
            if isinstance(record.msg, str):
                record.msg = redact(record.msg)
        else:
            if isinstance(record.args, tuple):
                record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
            elif isinstance(record.args, Mapping):
                record.args = redact_value(dict(record.args))
            try:
                message = record.getMessage()
            except (TypeError, ValueError):
                message = None  # logging reports the bad format itself
            if message is not None and redact(message) != message:
                record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def redact_logs(*loggers: str | logging.Logger) -> None:
    """Mask secrets in every record logged to these loggers (by name or object); idempotent.

    A logger's filters see the records logged to it directly, so name each logger that logs.
    """
    for logger in loggers:
        target = logging.getLogger(logger) if isinstance(logger, str) else logger
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(_FILTER)


#: a line longer than this is written (redacted) in pieces rather than held back whole
_LONGEST_LINE = 65536


def _redacted_bytes(data: bytes) -> bytes:
    return redact(data.decode("utf-8", "replace")).encode("utf-8")


def drain_redacted(fd: int, write: Callable[[bytes], Any]) -> None:
    """Copy what arrives on the pipe ``fd`` to ``write``, redacted line by line (so a secret
    split across two reads is still masked), until every writer has closed it; then close ``fd``.

    A process's captured output (a reward worker's, the trainer worker's) goes to its log
    through this, typically on a daemon thread.
    """
    pending = b""
    try:
        while chunk := os.read(fd, 65536):
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            if cut == 0 and len(pending) > _LONGEST_LINE:
                cut = len(pending)
            if cut:
                write(_redacted_bytes(pending[:cut]))
                pending = pending[cut:]
    except OSError:
        pass
    finally:
        if pending:
            write(_redacted_bytes(pending))
        with contextlib.suppress(OSError):
            os.close(fd)
