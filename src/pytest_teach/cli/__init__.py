"""The ``teach`` command: read the experience store, export it, and add feedback.

Each verb has ``--help``. Errors are one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from typing import Any

import click

from .. import __version__
from ..redaction import redact
from ._common import DB_OPTION, TeachGroup, database_error, open_db
from ._compare import compare_cmd, history_cmd
from ._experiment import EXPERIMENT_COMMANDS
from ._export import export_cmd
from ._feedback import feedback
from ._loop import loop_cmd
from ._model import model, models
from ._pipeline import pipeline
from ._predictor import evaluate_cmd, select_cmd
from ._record import record_cmd
from ._report import report_cmd
from ._serve import serve_model_cmd
from ._store import store_group
from ._teachable import teachable
from ._train import train
from ._trainer import trainer
from ._view import view_cmd

__all__ = ["main", "cli"]


class TeachCLI(TeachGroup):
    """The top-level group: usage errors print as one line too, not a usage block."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command; usage errors print as one line too, not a usage block."""
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("teach: aborted", err=True)
            sys.exit(130)
        except sqlite3.DatabaseError as exc:  # a verb outside TeachCommand: still one line
            click.echo(f"teach: error: {database_error(exc)}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            prefix = ctx.command_path if ctx is not None else "teach"
            hint = f" (see `{prefix} --help`)" if isinstance(exc, click.UsageError) else ""
            click.echo(redact(f"{prefix}: error: {exc.format_message()}{hint}"), err=True)
            sys.exit(exc.exit_code or 2)


@click.group("teach", cls=TeachCLI, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pytest-teach")
def cli() -> None:
    """pytest-teach: turn what your agent scenarios recorded into training data.

    Record with `pytest --collect-training-data`, then inspect and export the store with these
    commands. Every verb that reads the store takes --db (env TEACH_DB, default
    .teach/experience.db).
    """


@cli.command()
@DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
@click.option("--top", default=10, show_default=True, help="scenarios to list in the text view")
def stats(db: str, as_json: bool, top: int) -> None:
    """Counts of episodes by outcome, label, model and scenario."""
    from ..report import render_stats

    with open_db(db) as store:
        data = store.stats()
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(render_stats(data, top))


cli.add_command(export_cmd)
cli.add_command(compare_cmd)
cli.add_command(history_cmd)
cli.add_command(report_cmd)
cli.add_command(record_cmd)
cli.add_command(serve_model_cmd)
cli.add_command(trainer)
cli.add_command(train)
cli.add_command(model)
cli.add_command(models)
cli.add_command(pipeline)
cli.add_command(feedback)
cli.add_command(store_group)
cli.add_command(loop_cmd)
for _verb in EXPERIMENT_COMMANDS:
    teachable.add_command(_verb)
cli.add_command(teachable)
cli.add_command(evaluate_cmd)
cli.add_command(select_cmd)
cli.add_command(view_cmd)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="teach")
