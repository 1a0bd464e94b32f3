"""Serve a local model (optionally with a LoRA adapter) as an OpenAI-compatible endpoint.

``teach serve-model PATH`` runs :func:`serve_model`; point ``OPENAI_BASE_URL`` at
``http://HOST:PORT/v1`` and run scenarios with ``--model openai:NAME``. Needs the ``serve``
extra (fastapi, uvicorn) and the ``train`` extra (torch, transformers, peft).
"""

from ._app import create_app, default_model_name, serve_model

__all__ = ["create_app", "default_model_name", "serve_model"]
