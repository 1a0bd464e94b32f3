"""``teach serve-model``: a local model behind an OpenAI-compatible endpoint."""

from __future__ import annotations

import click

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
def serve_model_cmd(path: str, host: str, port: int, name: str | None) -> None:
    """Serve the transformers model (or LoRA adapter) at PATH as an OpenAI-compatible API.

    PATH is a model directory, an adapter directory (its base is read from
    adapter_config.json) or BASE+ADAPTER. Endpoints: POST /v1/chat/completions,
    GET /v1/models, GET /health. Point OPENAI_BASE_URL at http://HOST:PORT/v1.
    """
    try:
        from ..serve import serve_model
    except ImportError as exc:
        fail(
            f"serving needs fastapi, uvicorn, torch and transformers ({exc}); "
            "install pytest-teach[serve,train]"
        )
    if name is not None and not name.strip():
        fail("--name must not be empty")
    serve_model(path, host=host, port=port, name=name)
