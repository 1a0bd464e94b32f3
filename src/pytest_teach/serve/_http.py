"""The HTTP layer the services share: refuse before reading, bind before announcing.

- :class:`RequestGuard`, a pure ASGI middleware, checks a request's credentials from its headers
  before one byte of the body is read, refuses a declared ``Content-Length`` over the limit at
  once (413), counts the bytes of a chunked body as they arrive (413 as soon as they pass the
  limit), gives the whole body a deadline (408), and requires UTF-8. A refusal closes the
  connection, so the rest of the body is never read. The app then sees the body, whole.
- :func:`guarded_protocol` is uvicorn's h11 protocol with a deadline on the request head: a
  client that connects and sends nothing, or drips a header a byte at a time, is answered 408
  and disconnected. (uvicorn itself only times out idle keep-alive connections.) h11 caps the
  head's size.
- :func:`serve_app` binds the socket first, then announces the URL, then serves; a busy port is
  a :class:`PortInUseError` naming it.

Nothing here imports FastAPI; uvicorn and h11 are imported where a server runs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "MAX_HEADER_BYTES",
    "ErrorBody",
    "PortInUseError",
    "RequestGuard",
    "bind_socket",
    "guarded_protocol",
    "lone_surrogate",
    "no_lone_surrogates",
    "parse_size",
    "serve_app",
    "url_for",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: ``(status, message, code) -> JSON body``: each service answers refusals in its own shape.
ErrorBody = Callable[[int, str, str], Any]
#: ``(method, path, authorization header or None) -> None`` when allowed, else why not.
Authorize = Callable[[str, str, str | None], str | None]

#: Seconds a client has to send a request's head (line and headers), from its first byte or
#: from the connection.
DEFAULT_HEADER_TIMEOUT = 10.0
#: Seconds a client has to send a request's whole body.
DEFAULT_BODY_TIMEOUT = 30.0
#: The largest request head h11 accepts (bytes); a larger one is answered 400.
MAX_HEADER_BYTES = 16 * 1024

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmg])(i)?)?b?\s*$", re.IGNORECASE)
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_size(text: str | int) -> int:
    """Bytes for a size such as ``1048576``, ``512KB``, ``1MB``, ``4MiB`` or ``1g`` (KB, MB, GB
    are powers of 1000; KiB, MiB, GiB of 1024).

    Raises:
        ValueError: not a size, or under one byte.
    """
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a size; write bytes, or e.g. 512KB, 1MB, 4MiB")
        number, prefix, binary = match.groups()
        scale = (1024 if binary else 1000) ** ("kmg".index(prefix.lower()) + 1) if prefix else 1
        value = int(float(number) * scale)
    if value < 1:
        raise ValueError(f"a size must be at least 1 byte, got {text!r}")
    return value


def lone_surrogate(text: str) -> int | None:
    """The index of the first lone surrogate (U+D800..U+DFFF) in ``text``, or ``None``.

    JSON's ``\\ud800`` escapes decode to such code points; they can't be encoded, tokenized or
    stored, so a service refuses them as bad input.
    """
    match = _SURROGATE.search(text)
    return match.start() if match else None


def no_lone_surrogates(value: str) -> str:
    """A pydantic ``AfterValidator``: ``value`` unchanged, or ``ValueError`` naming the index of
    its first lone surrogate."""
    index = lone_surrogate(value)
    if index is not None:
        raise ValueError(
            f"contains a lone surrogate (U+{ord(value[index]):04X} at index {index}); "
            "send valid Unicode"
        )
    return value


class PortInUseError(OSError):
    """The port is taken (or can't be bound); the message names it."""


class _Refused(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RequestGuard:
    """Pure ASGI middleware in front of a JSON service (see the module's docstring).

    ``authorize(method, path, authorization)`` runs on the headers alone; a reason it returns is
    answered 401 before the body is read. ``max_body`` bounds the body in bytes (413), and
    ``body_timeout`` the seconds it may take to arrive (408). ``error_body(status, message,
    code)`` renders every refusal in the service's own error shape. Every refusal closes the
    connection.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        error_body: ErrorBody,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        authorize: Authorize | None = None,
        require_utf8: bool = True,
    ) -> None:
        if max_body < 1:
            raise ValueError(f"max_body must be at least 1 byte, got {max_body}")
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.error_body = error_body
        self.authorize = authorize
        self.require_utf8 = require_utf8

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check_head(scope)
            body = await self._read_body(receive)
        except _Refused as refused:
            await self._refuse(send, refused)
            return
        if body is None:  # the client left while sending
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: http.disconnect, when it comes

        await self.app(scope, replay, send)

    def _check_head(self, scope: Scope) -> None:
        headers = _headers(scope)
        if self.authorize is not None:
            authorization = headers.get(b"authorization")
            problem = self.authorize(
                str(scope.get("method", "GET")),
                str(scope.get("path", "/")),
                authorization.decode("latin-1") if authorization is not None else None,
            )
            if problem is not None:
                raise _Refused(401, problem, "unauthorized")
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise _Refused(400, "Content-Length is not a number", "bad_request") from None
            if declared > self.max_body:
                raise _Refused(413, self._too_large(f"declares {declared} bytes"), "too_large")

    def _too_large(self, what: str) -> str:
        return (
            f"request body too large: it {what}, the limit is {self.max_body} bytes "
            "(the server's --max-body)"
        )

    async def _read_body(self, receive: Receive) -> bytes | None:
        import anyio

        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.body_timeout) as scope:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    raise _Refused(413, self._too_large(f"passed {self.max_body}"), "too_large")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if scope.cancelled_caught:
            raise _Refused(
                408,
                f"request body not received within {self.body_timeout:g}s "
                "(the server's --body-timeout)",
                "body_timeout",
            )
        body = b"".join(chunks)
        if self.require_utf8 and body:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _Refused(
                    400, f"the body is not UTF-8 (byte {exc.start}); send UTF-8 JSON", "not_utf8"
                ) from None
        return body

    async def _refuse(self, send: Send, refused: _Refused) -> None:
        payload = json.dumps(
            self.error_body(refused.status, str(refused), refused.code), ensure_ascii=True
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"connection", b"close"),  # the rest of the body is never read
        ]
        if refused.status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": refused.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload, "more_body": False})


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {bytes(name).lower(): bytes(value) for name, value in scope.get("headers", ())}


_HEAD_408 = b"request head not received in time\n"
_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_HEAD_408), _HEAD_408)
)


def guarded_protocol(header_timeout: float = DEFAULT_HEADER_TIMEOUT) -> type:
    """uvicorn's h11 protocol with a deadline on every request head: from the connection, and
    from the first byte of each later request. Past it, the client gets 408 and is disconnected.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadTimeoutProtocol(H11Protocol):  # type: ignore[misc]
        _head_timer: Any = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                self._disarm()  # the head is complete (or the connection is done)
            else:
                self._arm()  # part of a head: its clock runs from its first byte

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(header_timeout, self._head_timed_out)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if self.conn.our_state is h11.IDLE:  # nothing of ours is in flight on the wire
                self.transport.write(_TIMEOUT_408)
            self.transport.close()

    return HeadTimeoutProtocol


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``port`` 0: a free one), not yet listening.

    Raises:
        PortInUseError: the port is taken, or the address can't be bound (one line naming it).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortInUseError(f"cannot bind {host}:{port}: unknown host ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use; stop what listens there "
                "or pass another --port"
            ) from None
        raise PortInUseError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None
    return sock


def url_for(sock: socket.socket, host: str) -> str:
    """``http://HOST:PORT`` for a bound socket (IPv6 hosts in brackets; port 0 resolved)."""
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve_app(
    app: ASGIApp,
    sock: socket.socket,
    *,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    keep_alive: int = 5,
    log_level: str = "warning",
) -> None:
    """Serve ``app`` with uvicorn on the bound ``sock`` until interrupted (SIGINT/SIGTERM),
    with the head deadline of :func:`guarded_protocol` and h11's head-size cap."""
    import uvicorn

    config = uvicorn.Config(
        app,
        http=guarded_protocol(header_timeout),
        log_level=log_level,
        lifespan="on",
        timeout_keep_alive=keep_alive,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
