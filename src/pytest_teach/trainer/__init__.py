"""The trainer service: ``teach trainer serve`` fine-tunes models over HTTP, one run at a time.

The service (``_app``: FastAPI; ``_runs``: the persisted run table; ``_worker``: the worker
process; ``_backends``: ``stub`` and ``sft``) needs the ``serve`` extra, and the ``sft`` backend
the ``train`` extra. This package's top level stays light: it holds the stdlib client only, and
``_pytest`` (the ``trainer`` fixture and the ``e2e_trainer`` marker) is imported at pytest
start-up.
"""

from .client import TrainerClient, TrainerError

__all__ = ["TrainerClient", "TrainerError"]
