"""``teach store``: check a store's pages, copy what can be read from a damaged one, and merge
or copy stores between SQLite files and PostgreSQL."""

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


@store_group.command("merge")
@click.argument("sources", nargs=-1, required=True, metavar="SRC...")
@click.option(
    "--into",
    "dest",
    required=True,
    metavar="DEST",
    help="the store to merge into: a SQLite file (created when missing) or a postgresql:// URL",
)
def merge_cmd(sources: tuple[str, ...], dest: str) -> None:
    """Merge the stores SRC... into DEST, keeping every id: sessions, episodes with their
    steps, labels and artifacts, feedback, improvement jobs, training runs and registered
    models. Each side is a SQLite file or a postgresql:// URL.

    A row DEST lacks is added, one it holds as it is is left alone (merging twice adds nothing),
    and the same id with different content is a conflict: reported by id, never overwritten.
    Feedback is matched by content; where its id is taken in DEST it gets the next one.

    Exits 0 when the merge was clean, 1 when there were conflicts. The shards of a CI matrix
    come together with, for example:

    \b
        teach store merge shard-1.db shard-2.db shard-3.db --into team.db
        teach store merge shard-1.db shard-2.db --into postgresql://ci@db.example:5432/teach
    """
    from ..store import merge_stores

    report = merge_stores(list(sources), dest, progress=click.echo)
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        sys.exit(1)


@store_group.command("copy")
@click.argument("source", metavar="SRC")
@click.argument("dest", metavar="DEST")
def copy_cmd(source: str, dest: str) -> None:
    """Copy the store SRC whole into DEST, a new store, keeping every id: a SQLite file into
    PostgreSQL, or back. DEST must be a new file or a database holding no pytest-teach rows
    (nothing is written otherwise; add to a store with `teach store merge`).

    \b
        teach store copy .teach/experience.db postgresql://me@db.example:5432/teach
        teach store copy postgresql://me@db.example:5432/teach backup.db

    Exits 0 when everything was copied, 1 when something could not be (an artifact file that
    can't be read).
    """
    from ..store import copy_store

    report = copy_store(source, dest, progress=click.echo)
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        sys.exit(1)
