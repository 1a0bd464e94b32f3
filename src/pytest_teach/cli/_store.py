"""``teach store``: check a store's pages, and copy what can be read from a damaged one."""

from __future__ import annotations

import sys

import click

from ._common import DB_OPTION, TeachGroup


@click.group("store", cls=TeachGroup)
def store_group() -> None:
    """Look after the experience store itself: check it, recover a damaged one."""


@store_group.command("check")
@DB_OPTION
def check_cmd(db: str) -> None:
    """Check the store, read-only: SQLite's integrity_check on a file; the schema and every
    artifact's chunks on PostgreSQL. Reports ok or the problems.

    Exits 0 when the store is sound, 1 when problems were found.
    """
    from ..store import check_store

    report = check_store(db)
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        sys.exit(1)


@store_group.command("recover")
@DB_OPTION
@click.option(
    "-o",
    "--output",
    "dest",
    required=True,
    metavar="DEST",
    help="the new store to write (must not exist; never overwritten)",
)
def recover_cmd(db: str, dest: str) -> None:
    """Copy what can be read from the store (--db, only read) into a new store DEST, and say
    what was lost, table by table.

    Uses SQLite's .recover when the sqlite3 command has it, else reads each table row by row,
    going on past damaged pages. Exits 0 when nothing was lost, 1 when rows were.
    """
    from ..store import recover_store

    report = recover_store(db, dest)
    for line in report.lines():
        click.echo(line)
    if not report.complete:
        sys.exit(1)
