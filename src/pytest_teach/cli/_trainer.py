"""``teach trainer serve``: the trainer service (FastAPI + uvicorn); the command lives in
:mod:`pytest_teach.trainer` (``python -m pytest_teach.trainer serve`` runs it too)."""

from __future__ import annotations

import click

from ..trainer import serve_command
from ._common import TeachGroup


@click.group("trainer", cls=TeachGroup)
def trainer() -> None:
    """The trainer service: fine-tune models over HTTP, one run at a time."""


trainer.add_command(serve_command)
