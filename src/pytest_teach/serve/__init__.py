"""Serving over HTTP: the shared HTTP layer, and a local model as an OpenAI-compatible endpoint.

``teach serve-model PATH`` runs :func:`serve_model`; point ``OPENAI_BASE_URL`` at
``http://HOST:PORT/v1`` and run scenarios with ``--model openai:NAME``. Needs the ``serve``
extra (fastapi, uvicorn) and the ``train`` extra (torch, transformers, peft).

The HTTP layer (:class:`RequestGuard`, :func:`bind_socket`, :func:`serve_app`...) is what every
pytest-teach service stands on: credentials checked before the body is read, a body size limit
and deadlines, the socket bound before the URL is announced. Importing it loads no web framework;
the model server's names load FastAPI on first use.
"""

from __future__ import annotations

from typing import Any

from ._http import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    MAX_HEADER_BYTES,
    ErrorBody,
    PortInUseError,
    RequestGuard,
    bind_socket,
    guarded_protocol,
    lone_surrogate,
    no_lone_surrogates,
    parse_size,
    serve_app,
    url_for,
)
from ._options import SizeType, http_limit_options

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_MAX_BODY",
    "MAX_HEADER_BYTES",
    "ErrorBody",
    "PortInUseError",
    "RequestGuard",
    "SizeType",
    "bind_socket",
    "create_app",
    "default_model_name",
    "guarded_protocol",
    "http_limit_options",
    "lone_surrogate",
    "no_lone_surrogates",
    "parse_size",
    "serve_app",
    "serve_model",
    "url_for",
]

_MODEL_SERVER = ("DEFAULT_MAX_BODY", "create_app", "default_model_name", "serve_model")


def __getattr__(name: str) -> Any:
    if name in _MODEL_SERVER:
        from . import _app

        return getattr(_app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
