"""``teach serve-model``: a local model behind an OpenAI-compatible endpoint."""

from __future__ import annotations

import os

import click

from ..serve import http_limit_options
from ._common import TeachCommand, fail


@click.command("serve-model", cls=TeachCommand)
@click.argument("path", metavar="PATH")
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port"
)
@click.option(
    "--name",
    metavar="NAME",
    help="the model name clients send (default: the directory's name); "
    "run scenarios with --model openai:NAME",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(1, 4096),
    default=4096,
    show_default=True,
    help="the longest reply the server generates, whatever a request asks for",
)
@http_limit_options("4MB")
def serve_model_cmd(
    path: str,
    host: str,
    port: int,
    name: str | None,
    max_tokens: int,
    max_body: int,
    header_timeout: float,
    body_timeout: float,
) -> None:
    """Serve the transformers model (or LoRA adapter) at PATH as an OpenAI-compatible API.

    PATH is a model directory, an adapter directory (its base is read from
    adapter_config.json) or BASE+ADAPTER. Endpoints: POST /v1/chat/completions,
    GET /v1/models, GET /health. Point OPENAI_BASE_URL at http://HOST:PORT/v1.

    The port is bound before the model loads; a busy port is one error line, exit status 1.
    Replies stop at --max-tokens and at the model's context; generation stops when the
    client disconnects.
    Set TEACH_SERVE_API_KEY to require `Authorization: Bearer <key>` (the client's
    OPENAI_API_KEY) on every request but GET /health.
    """
    try:
        from ..serve import PortInUseError, serve_model
    except ImportError as exc:
        fail(
            f"serving needs fastapi, uvicorn, torch and transformers ({exc}); "
            "install pytest-teach[serve,train]"
        )
    if name is not None and not name.strip():
        fail("--name must not be empty")
    try:
        serve_model(
            path,
            host=host,
            port=port,
            name=name,
            max_body=max_body,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_tokens=max_tokens,
            api_key=os.environ.get("TEACH_SERVE_API_KEY") or None,
        )
    except PortInUseError as exc:
        fail(str(exc), code=1)
