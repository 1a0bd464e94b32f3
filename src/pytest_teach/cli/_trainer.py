"""``teach trainer serve``: the trainer service (FastAPI + uvicorn)."""

from __future__ import annotations

import os

import click

from ._common import TeachGroup, fail
from ._serve import http_limit_options


@click.group("trainer", cls=TeachGroup)
def trainer() -> None:
    """The trainer service: fine-tune models over HTTP, one run at a time."""


@trainer.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind")
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="TCP port"
)
@click.option(
    "--backend",
    type=click.Choice(["stub", "sft"]),
    default="sft",
    show_default=True,
    help="stub: validate the data and write a small artifact, fast, no torch; "
    "sft: a real TRL SFT run (LoRA via PEFT)",
)
@click.option(
    "--data-dir",
    default=".teach/trainer",
    show_default=True,
    metavar="DIR",
    help="datasets, run outputs, the run table (trainer.db), the cached tiny base model and "
    "the worker log",
)
@click.option(
    "--run-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="fail (and stop) a run that takes longer than this",
)
@click.option(
    "--models-dir",
    "model_dirs",
    multiple=True,
    metavar="DIR",
    help="a directory whose models baseModel may name, besides --data-dir (repeatable)",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@http_limit_options("1MB")
def serve_cmd(
    host: str,
    port: int,
    backend: str,
    data_dir: str,
    run_timeout: float | None,
    model_dirs: tuple[str, ...],
    log_level: str,
    max_body: int,
    header_timeout: float,
    body_timeout: float,
) -> None:
    """Serve the trainer until interrupted.

    Endpoints: GET /health, POST /train {jobId, datasetRef, runId, baseModel?, params?},
    GET /status/{runId}, GET /runs, OpenAPI at /openapi.json. datasetRef is a chat JSONL
    (`teach export --format sft`, `teach pipeline data`) inside --data-dir. Runs are
    kept in DIR/trainer.db and survive a restart; a run in flight at shutdown ends failed.

    Set TEACH_TRAINER_TOKEN to require `Authorization: Bearer <token>` on POST (checked
    before the body is read). TEACH_TRAINER_FAULTS=1 allows the params.crash fault injection
    (for tests). A busy port is one error line, exit status 1.
    """
    try:
        from ..serve import PortInUseError
        from ..trainer._app import TrainerServiceError, serve
    except ImportError as exc:
        fail(f"the trainer needs fastapi and uvicorn ({exc}); install pytest-teach[serve]")
    token = os.environ.get("TEACH_TRAINER_TOKEN") or None
    faults = os.environ.get("TEACH_TRAINER_FAULTS", "") not in ("", "0")
    try:
        serve(
            data_dir,
            host=host,
            port=port,
            backend=backend,
            token=token,
            allow_faults=faults,
            run_timeout=run_timeout,
            log_level=log_level,
            max_body=max_body,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            model_dirs=model_dirs,
        )
    except PortInUseError as exc:
        fail(str(exc), code=1)
    except TrainerServiceError as exc:
        fail(str(exc))
