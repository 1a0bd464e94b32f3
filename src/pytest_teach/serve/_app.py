"""The OpenAI-compatible app: ``/v1/chat/completions``, ``/v1/models`` and ``/health``."""

from __future__ import annotations

import hmac
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..agents import HFChat
from ..redaction import redact_logs
from ._http import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    RequestGuard,
    bind_socket,
    no_lone_surrogates,
    serve_app,
    url_for,
)

__all__ = ["DEFAULT_MAX_BODY", "create_app", "default_model_name", "serve_model"]

#: uvicorn's request and error logs show paths, queries and messages: mask secrets in them.
redact_logs("uvicorn.error", "uvicorn.access")

#: Upper bound on ``max_tokens`` a request may ask for.
MAX_TOKENS_LIMIT = 4096
DEFAULT_MAX_TOKENS = 256
#: The default limit on a request body, in bytes: room for a long context's messages.
DEFAULT_MAX_BODY = 4_000_000
#: Seconds between checks that the client is still there, while generating.
DISCONNECT_POLL_S = 0.05

#: Text a client sends: no lone surrogates (they can't be tokenized or encoded).
Text = Annotated[str, AfterValidator(no_lone_surrogates)]


def default_model_name(model_path: str) -> str:
    """The name a served model answers to by default: its directory's name (``tiny`` for
    ``./models/tiny``), or the adapter's for ``BASE+ADAPTER``."""
    last = model_path.rpartition("+")[2] if "+" in model_path else model_path
    return Path(last.rstrip("/\\")).name or last


class ContentPart(BaseModel):
    """One part of a multi-part message content; only ``text`` parts are used."""

    model_config = ConfigDict(extra="allow")
    type: Text
    text: Text | None = None


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="allow")
    role: Text = Field(min_length=1)
    content: Text | list[ContentPart] | None = None


class ChatRequest(BaseModel):
    """The body of ``POST /v1/chat/completions`` (unknown fields are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")
    model: Text
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False


def _error_body(message: str, kind: str, param: str | None = None, code: Any = None) -> Any:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _error(
    status: int, message: str, kind: str, param: str | None = None, code: Any = None
) -> JSONResponse:
    return JSONResponse(status_code=status, content=_error_body(message, kind, param, code))


def _guard_error(status: int, message: str, code: str) -> Any:
    """A refusal of :class:`RequestGuard`, in OpenAI's error shape."""
    if status == 401:
        return _error_body(message, "invalid_request_error", None, "invalid_api_key")
    return _error_body(message, "invalid_request_error", None, code)


_MISMATCH = {"string_type", "list_type", "none_required", "model_type", "dict_type"}


def _param(loc: tuple[Any, ...]) -> str | None:
    """``messages.0.content`` for a pydantic location (union branches left out)."""
    parts = [str(p) for p in loc if p != "body" and not (isinstance(p, str) and "[" in p)]
    parts = [p for p in parts if p not in ("str", "list", "none")]
    return ".".join(parts) or None


def create_app(
    model_path: str,
    *,
    model_name: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_tokens: int = MAX_TOKENS_LIMIT,
    api_key: str | None = None,
) -> FastAPI:
    """Build the FastAPI app serving the model at ``model_path`` (``PATH`` or ``PATH+ADAPTER``).

    The model loads here, before the app is returned, so a server is ready to answer once it
    listens. Requests must name ``model_name`` (default: :func:`default_model_name`) or the
    path itself; generation runs one request at a time, and stops when its client disconnects.

    Client input never gets a 5xx: lone surrogates, a body that isn't UTF-8 and messages
    longer than the model's context are 400 in OpenAI's error shape. A reply is bounded by
    ``max_tokens`` and by the room the context leaves. A
    :class:`~pytest_teach.serve.RequestGuard` refuses a body over ``max_body`` bytes (413) or
    slower than ``body_timeout`` seconds (408) without reading the rest, and, with ``api_key``,
    a request without ``Authorization: Bearer <api_key>`` (401) before reading its body.

    Raises:
        ValueError: the model directory is missing or can't be loaded.
    """
    import anyio

    chat = HFChat(model_path).load()
    name = model_name or default_model_name(model_path)
    aliases = {name, model_path, chat.spec}
    created = int(time.time())
    lock = threading.Lock()
    context = chat.context_length
    ceiling = max(1, min(max_tokens, MAX_TOKENS_LIMIT))
    # generations answered, and cut short because their client left (with the tokens they made)
    stats = {"completed": 0, "cancelled": 0, "cancelledTokens": 0}

    def authorize(method: str, path: str, authorization: str | None) -> str | None:
        if api_key is None or path == "/health":
            return None
        scheme, _, key = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            key.strip().encode(), api_key.encode()
        ):
            return "Incorrect API key provided: send Authorization: Bearer <the server's key>"
        return None

    app = FastAPI(title="pytest-teach model server", version="1")
    app.state.chat = chat
    app.state.model_name = name
    app.state.context_length = context
    app.add_middleware(
        RequestGuard,
        max_body=max_body,
        body_timeout=body_timeout,
        error_body=_guard_error,
        authorize=authorize,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Any:
        problems = []
        param = None
        # a union's branches each fail; the branch that was meant names the real problem
        errors = sorted(exc.errors(), key=lambda e: str(e.get("type")) in _MISMATCH)
        for err in errors:
            if err.get("type") == "json_invalid":
                detail = (err.get("ctx") or {}).get("error", "JSON decode error")
                return _error(400, f"malformed JSON body: {detail}", "invalid_request_error")
            where = _param(tuple(err.get("loc", ())))
            param = param or where
            problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
        message = "invalid request: " + "; ".join(dict.fromkeys(problems[:5]))
        return _error(400, message, "invalid_request_error", param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        detail = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in detail:  # not JSON
            return _error(400, f"malformed JSON body: {detail}", "invalid_request_error")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return _error(exc.status_code, detail, "invalid_request_error", None, code)

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness: the model's name and context, and the generations so far."""
        return {"status": "ok", "model": name, "contextLength": context, "generations": stats}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": created, "owned_by": "local"}],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request) -> Any:
        if body.model not in aliases:
            return _error(
                404,
                f"The model '{body.model}' does not exist; this server serves '{name}'",
                "invalid_request_error",
                "model",
                "model_not_found",
            )
        if body.stream:
            return _error(
                400,
                "stream=true is not supported by teach serve-model; send stream=false",
                "invalid_request_error",
                "stream",
            )
        messages = []
        for message in body.messages:
            content = message.content
            if isinstance(content, list):
                content = "".join(part.text or "" for part in content if part.type == "text")
            messages.append({"role": message.role, "content": content or ""})
        prompt_tokens = await anyio.to_thread.run_sync(chat.prompt_length, messages)
        wanted = min(body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS, ceiling)
        if context is not None:
            room = context - prompt_tokens
            if room < 1:
                return _error(
                    400,
                    f"This model's maximum context length is {context} tokens; the messages "
                    f"take {prompt_tokens} tokens. Shorten the messages.",
                    "invalid_request_error",
                    "messages",
                    "context_length_exceeded",
                )
            wanted = min(wanted, room)
        temperature = body.temperature or 0.0
        gone = threading.Event()

        def generate() -> Any:
            with lock:  # one generation at a time; a client that left meanwhile is skipped
                if gone.is_set():
                    return None
                return chat.generate(
                    messages, max_tokens=wanted, temperature=temperature, stop=gone.is_set
                )

        async def watch() -> None:
            while not gone.is_set():
                if await request.is_disconnected():
                    gone.set()
                    return
                await anyio.sleep(DISCONNECT_POLL_S)

        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(watch)
                try:
                    result = await anyio.to_thread.run_sync(generate)
                finally:
                    tasks.cancel_scope.cancel()
        except Exception as exc:  # the client gets a 500 in OpenAI's shape, not a traceback
            return _error(500, f"generation failed: {type(exc).__name__}: {exc}", "server_error")
        if result is None or gone.is_set():  # nobody is listening
            stats["cancelled"] += 1
            stats["cancelledTokens"] += result.completion_tokens if result else 0
            return _error(499, "the client closed the request", "invalid_request_error")
        stats["completed"] += 1
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "logprobs": None,
                    "finish_reason": result.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            },
        }

    return app


def serve_model(
    path: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    name: str | None = None,
    log_level: str = "warning",
    ready_message: bool = True,
    max_body: int = DEFAULT_MAX_BODY,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_tokens: int = MAX_TOKENS_LIMIT,
    api_key: str | None = None,
) -> None:
    """Bind ``host:port``, load the model at ``path``, announce the URL, and serve it with
    uvicorn until interrupted. The socket is bound first: a busy port fails before the model
    loads, and the ``serving ...`` line means the port is ours.

    Raises:
        PortInUseError: the port is taken (one line naming it).
        ValueError: the model directory is missing or can't be loaded.
    """
    sock = bind_socket(host, port)
    try:
        app = create_app(
            path,
            model_name=name,
            max_body=max_body,
            body_timeout=body_timeout,
            max_tokens=max_tokens,
            api_key=api_key,
        )
    except BaseException:
        sock.close()
        raise
    if ready_message:
        base = f"{url_for(sock, host)}/v1"
        print(
            f"serving {app.state.model_name!r} ({path}) at {base} "
            f"(OPENAI_BASE_URL={base}, --model openai:{app.state.model_name})",
            flush=True,
        )
    serve_app(app, sock, header_timeout=header_timeout, log_level=log_level)
