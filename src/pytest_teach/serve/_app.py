"""The OpenAI-compatible app: ``/v1/chat/completions``, ``/v1/models`` and ``/health``."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..agents._hf import HFChat

__all__ = ["create_app", "default_model_name", "serve_model"]

#: Upper bound on ``max_tokens`` a request may ask for.
MAX_TOKENS_LIMIT = 4096
DEFAULT_MAX_TOKENS = 256


def default_model_name(model_path: str) -> str:
    """The name a served model answers to by default: its directory's name (``tiny`` for
    ``./models/tiny``), or the adapter's for ``BASE+ADAPTER``."""
    last = model_path.rpartition("+")[2] if "+" in model_path else model_path
    return Path(last.rstrip("/\\")).name or last


class ContentPart(BaseModel):
    """One part of a multi-part message content; only ``text`` parts are used."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="allow")
    role: str = Field(min_length=1)
    content: str | list[ContentPart] | None = None


class ChatRequest(BaseModel):
    """The body of ``POST /v1/chat/completions`` (unknown fields are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False


def _error(
    status: int, message: str, kind: str, param: str | None = None, code: Any = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(status_code=status, content=body)


def create_app(model_path: str, *, model_name: str | None = None) -> FastAPI:
    """Build the FastAPI app serving the model at ``model_path`` (``PATH`` or ``PATH+ADAPTER``).

    The model loads here, before the app is returned, so a server is ready to answer once it
    listens. Requests must name ``model_name`` (default: :func:`default_model_name`) or the
    path itself; generation runs one request at a time.

    Raises:
        ValueError: the model directory is missing or can't be loaded.
    """
    chat = HFChat(model_path).load()
    name = model_name or default_model_name(model_path)
    aliases = {name, model_path, chat.spec}
    created = int(time.time())
    lock = threading.Lock()

    app = FastAPI(title="pytest-teach model server", version="1")
    app.state.chat = chat
    app.state.model_name = name

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Any:
        problems = []
        param = None
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                detail = (err.get("ctx") or {}).get("error", "JSON decode error")
                return _error(400, f"malformed JSON body: {detail}", "invalid_request_error")
            loc = [str(p) for p in err.get("loc", ()) if p != "body"]
            param = param or (".".join(loc) or None)
            problems.append(f"{'.'.join(loc) or 'body'}: {err.get('msg', 'invalid')}")
        message = "invalid request: " + "; ".join(problems[:5])
        return _error(400, message, "invalid_request_error", param)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": name}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": created, "owned_by": "local"}],
        }

    @app.post("/v1/chat/completions")
    def chat_completions(body: ChatRequest) -> Any:
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
        max_tokens = body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS
        temperature = body.temperature or 0.0
        try:
            with lock:
                result = chat.generate(messages, max_tokens=max_tokens, temperature=temperature)
        except Exception as exc:  # the client gets a 500 in OpenAI's shape, not a traceback
            return _error(500, f"generation failed: {type(exc).__name__}: {exc}", "server_error")
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
) -> None:
    """Load the model at ``path`` and serve it with uvicorn until interrupted.

    Raises:
        ValueError: the model directory is missing or can't be loaded.
    """
    import uvicorn

    app = create_app(path, model_name=name)
    if ready_message:
        print(
            f"serving {app.state.model_name!r} ({path}) at http://{host}:{port}/v1 "
            f"(OPENAI_BASE_URL=http://{host}:{port}/v1, --model openai:{app.state.model_name})",
            flush=True,
        )
    uvicorn.run(app, host=host, port=port, log_level=log_level)
