"""Pieces every ``teach`` verb shares: the --db option, opening the store, one-line errors."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from ..store import Store

DEFAULT_DB = ".teach/experience.db"

DB_OPTION = click.option(
    "--db",
    envvar="TEACH_DB",
    default=DEFAULT_DB,
    show_default=True,
    metavar="PATH",
    help="the experience store (env TEACH_DB)",
)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one error line and exit non-zero."""
    ctx = click.get_current_context(silent=True)
    verb = ctx.invoked_subcommand if ctx is not None else None
    prefix = f"teach {verb}" if verb else "teach"
    click.echo(f"{prefix}: error: {message}", err=True)
    sys.exit(code)


def open_db(path: str) -> Store:
    """Open an existing store (never creates one)."""
    return Store.open(path, create=False)


def parse_json(value: str | None, option: str) -> Any:
    """Parse a JSON option value, naming the option when it is malformed."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"malformed JSON ({exc.msg} at column {exc.colno}): {value!r}; "
            'quote strings, e.g. \'"click Submit"\'',
            param_hint=option,
        ) from None
