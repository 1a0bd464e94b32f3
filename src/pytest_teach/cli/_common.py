"""Pieces every ``teach`` verb shares: the --db option, opening the store, one-line errors."""

from __future__ import annotations

import json
import sqlite3
import sys
from typing import Any, NoReturn

import click

from ..redaction import redact
from ..store import Store

DEFAULT_DB = ".teach/experience.db"

DB_OPTION = click.option(
    "--db",
    envvar="TEACH_DB",
    default=DEFAULT_DB,
    show_default=True,
    metavar="PATH|URL",
    help="the experience store: a SQLite file or a postgresql:// URL (env TEACH_DB)",
)


def fail(message: str, code: int = 2, ctx: click.Context | None = None) -> NoReturn:
    """Print one error line, prefixed with the command (``teach feedback add: error: ...``),
    and exit non-zero."""
    ctx = ctx or click.get_current_context(silent=True)
    prefix = ctx.command_path if ctx is not None else "teach"
    click.echo(redact(f"{prefix}: error: {message}"), err=True)
    sys.exit(code)


class TeachCommand(click.Command):
    """A verb whose known errors (bad store, bad input, unwritable output) print as one line."""

    def invoke(self, ctx: click.Context) -> Any:
        from ..export import ExportError
        from ..store import StoreError

        try:
            return super().invoke(ctx)
        except (StoreError, ExportError, ValueError, OSError) as exc:
            fail(str(exc), ctx=ctx)
        except sqlite3.DatabaseError as exc:
            fail(database_error(exc, ctx), ctx=ctx)
        except Exception as exc:
            if not type(exc).__module__.startswith("psycopg"):
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            fail(f"the PostgreSQL store: {first}", ctx=ctx)  # fail() masks any secret


def database_error(exc: sqlite3.DatabaseError, ctx: click.Context | None = None) -> str:
    """A SQLite error as one line naming the store (the verb's ``--db``): read-only, damaged,
    or as SQLite says it."""
    from ..store import describe_database_error

    while ctx is not None:
        db = ctx.params.get("db")
        if isinstance(db, str) and db:
            return describe_database_error(db, exc)
        ctx = ctx.parent
    return f"the store: {exc}; see `teach store check --db PATH`"


class TeachGroup(click.Group):
    """A group of :class:`TeachCommand` verbs."""

    command_class = TeachCommand


def open_db(path: str) -> Store:
    """Open an existing store (never creates one) for reading; a read-only or damaged store is
    refused with one line before its first write."""
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
            "quote strings, e.g. '\"click Submit\"'",
            param_hint=option,
        ) from None
