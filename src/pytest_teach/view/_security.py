"""Who may talk to the viewer: loopback by default, a token otherwise, a CSRF token on writes.

- :func:`check_bind` refuses a non-loopback address without a token, before anything binds.
- :class:`AccessGuard`, a pure ASGI middleware, answers every request that lacks the token (an
  ``Authorization: Bearer`` header, or the cookie a ``?token=`` login sets) with 401, and on a
  loopback viewer without a token refuses a ``Host`` that is not a loopback name (a page on
  another site that rebinds its DNS name to 127.0.0.1 gets nothing).
- :func:`csrf_ok` checks the CSRF token a writing request carries.

Imports the standard library only.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "TOKEN_COOKIE",
    "TOKEN_ENV",
    "AccessGuard",
    "ViewerError",
    "check_bind",
    "csrf_ok",
    "is_loopback",
]

#: The environment variable that gives the viewer its token.
TOKEN_ENV = "TEACH_VIEW_TOKEN"
#: The cookie a ``?token=`` login sets.
TOKEN_COOKIE = "teach_view_token"
#: Where a writing request carries its CSRF token: a header (scripts) or a form field.
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"

_LOOPBACK_NAMES = {"localhost", "localhost."}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ViewerError(Exception):
    """The viewer can't start as asked; the message says why and what to do."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine
    only: ``localhost``, ``127.0.0.0/8`` or ``::1``."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback ``host`` without a token.

    Raises:
        ViewerError: ``host`` is reachable from other machines and no token was given.
    """
    if not is_loopback(host) and not token:
        raise ViewerError(
            f"refusing to bind {host}: it is reachable from other machines; give the viewer a "
            f"token ({TOKEN_ENV} or --token), which every request must then carry, or bind "
            "127.0.0.1"
        )


def csrf_ok(expected: str, given: str | None) -> bool:
    """Whether ``given`` is the viewer's CSRF token (compared in constant time)."""
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {bytes(k).lower(): bytes(v) for k, v in scope.get("headers", ())}


class AccessGuard:
    """Pure ASGI middleware: the token (when the viewer has one) on every request, and a
    loopback ``Host`` on a loopback viewer without one (see the module's docstring)."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback_only: bool) -> None:
        self.app = app
        self.token = token or None
        self.loopback_only = loopback_only and not token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if self.loopback_only:
            host = headers.get(b"host", b"").decode("latin-1")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if not is_loopback(name):
                await _plain(send, 403, "this viewer answers on its loopback address only\n")
                return
        if self.token is None or self._carries_token(headers):
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        pairs = parse_qsl(query, keep_blank_values=True)
        given = next((v for k, v in pairs if k == "token"), None)
        if scope.get("method") == "GET" and given is not None and self._matches(given):
            rest = urlencode([(k, v) for k, v in pairs if k != "token"])
            location = scope.get("path", "/") + (f"?{rest}" if rest else "")
            cookie = f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
            await _plain(
                send,
                303,
                "signed in\n",
                [(b"location", location.encode()), (b"set-cookie", cookie.encode())],
            )
            return
        await _plain(
            send,
            401,
            "this viewer needs its token: open it once with ?token=YOUR_TOKEN, "
            "or send Authorization: Bearer YOUR_TOKEN\n",
            [(b"www-authenticate", b"Bearer")],
        )

    def _matches(self, given: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(self.token.encode(), given.encode())

    def _carries_token(self, headers: dict[bytes, bytes]) -> bool:
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() == "bearer" and self._matches(credential.strip()):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
        except Exception:  # a malformed cookie header is no token
            return False
        morsel = cookie.get(TOKEN_COOKIE)
        return morsel is not None and self._matches(morsel.value)


async def _plain(
    send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
