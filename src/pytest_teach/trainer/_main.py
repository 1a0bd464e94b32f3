"""``teach trainer serve`` (also ``python -m pytest_teach.trainer serve``): the trainer
service's command and :func:`serve_main`, what it runs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import click

from ..redaction import redact
from ..serve import DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, http_limit_options

__all__ = ["ServeRefused", "serve_command", "serve_main"]

TOKEN_ENV = "TEACH_TRAINER_TOKEN"
FAULTS_ENV = "TEACH_TRAINER_FAULTS"


class ServeRefused(click.ClickException):
    """The service could not start: one line, ``<command>: error: <why>``, and exit status
    ``code`` (1 for a busy port, else 2)."""

    def __init__(self, message: str, ctx: click.Context | None, code: int = 2) -> None:
        super().__init__(message)
        self.ctx = ctx
        self.exit_code = code

    def show(self, file: Any = None) -> None:
        """Print the one error line (the ``teach`` command prints it the same way)."""
        prefix = self.ctx.command_path if self.ctx is not None else "teach trainer serve"
        click.echo(redact(f"{prefix}: error: {self.format_message()}"), err=True, file=file)


def serve_main(
    data_dir: str | os.PathLike[str] = ".teach/trainer",
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    backend: str = "sft",
    run_timeout: float | None = None,
    model_dirs: Sequence[str | os.PathLike[str]] = (),
    log_level: str = "info",
    max_body: int = 1 << 20,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    processes: int = 1,
    launcher: str = "torchrun",
    accelerate_config: str | None = None,
) -> None:
    """Serve the trainer until interrupted. The bearer token comes from env
    ``TEACH_TRAINER_TOKEN`` (none: no token), fault injection is allowed with
    ``TEACH_TRAINER_FAULTS=1``.

    Raises:
        ImportError: fastapi or uvicorn is missing (the ``serve`` extra).
        PortInUseError: the port is taken.
        TrainerServiceError: the service can't start (data dir in use, unknown backend...).
    """
    from ._app import serve

    serve(
        data_dir,
        host=host,
        port=port,
        backend=backend,
        token=os.environ.get(TOKEN_ENV) or None,
        allow_faults=os.environ.get(FAULTS_ENV, "") not in ("", "0"),
        run_timeout=run_timeout,
        log_level=log_level,
        max_body=max_body,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        model_dirs=model_dirs,
        processes=processes,
        launcher=launcher,
        accelerate_config=accelerate_config,
    )


@click.command("serve")
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
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="train each run on N processes launched by --launcher (1: the in-process worker); "
    "recorded on the run",
)
@click.option(
    "--launcher",
    type=click.Choice(["torchrun", "accelerate"]),
    default="torchrun",
    show_default=True,
    help="what starts the processes of a run when --processes is 2 or more",
)
@click.option(
    "--accelerate-config",
    metavar="FILE",
    help="an accelerate config file for --launcher accelerate (DeepSpeed, FSDP...); default: "
    "accelerate launch --multi_gpu (on CPU the ranks use gloo)",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@http_limit_options("1MB")
@click.pass_context
def serve_command(ctx: click.Context, data_dir: str, **options: Any) -> None:
    """Serve the trainer until interrupted.

    Endpoints: GET /health, POST /train {jobId, datasetRef, runId, baseModel?, params?},
    GET /status/{runId}, GET /runs, OpenAPI at /openapi.json. datasetRef is a chat JSONL
    (`teach export --format sft`, `teach pipeline data`) inside --data-dir. Runs are
    kept in DIR/trainer.db and survive a restart; a run in flight at shutdown ends failed.
    With --processes N each run is launched on N processes (torchrun or accelerate launch);
    a rank that fails fails the run with that rank's error.

    Set TEACH_TRAINER_TOKEN to require `Authorization: Bearer <token>` on POST (checked
    before the body is read). TEACH_TRAINER_FAULTS=1 allows the params.crash fault injection
    (for tests). A busy port is one error line, exit status 1.
    """
    from ..serve import PortInUseError

    try:
        from ._app import TrainerServiceError
    except ImportError as exc:
        raise ServeRefused(
            f"the trainer needs fastapi and uvicorn ({exc}); install pytest-teach[serve]", ctx
        ) from None
    try:
        serve_main(data_dir, **options)
    except PortInUseError as exc:
        raise ServeRefused(str(exc), ctx, code=1) from None
    except (TrainerServiceError, ValueError, OSError) as exc:
        raise ServeRefused(str(exc), ctx) from None
