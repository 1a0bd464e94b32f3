"""The trainer service: ``teach trainer serve`` fine-tunes models over HTTP, one run at a time.

The service (``_app``: FastAPI; ``_runs``: the persisted run table; ``_worker``: the worker
process; ``_backends``: ``stub`` and ``sft``) needs the ``serve`` extra, and the ``sft`` backend
the ``train`` extra. This package's top level stays light: it holds the stdlib client only, and
:mod:`.fixtures` (the ``trainer`` fixture, the ``e2e_trainer`` marker and ``LocalTrainer``) is imported at pytest
start-up.
"""

from typing import Any

from .client import TrainerClient, TrainerError

__all__ = ["ServeRefused", "TrainerClient", "TrainerError", "serve_command", "serve_main"]


def __getattr__(name: str) -> Any:
    if name in ("ServeRefused", "serve_command", "serve_main"):
        from . import _main

        return getattr(_main, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
