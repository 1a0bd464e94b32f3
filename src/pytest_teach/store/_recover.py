"""Copying what can still be read from a damaged store into a new one, and saying what was lost.

SQLite's own ``.recover`` (the ``sqlite3`` command, when it is built with it) reads the raw pages
into a scratch database; otherwise each table is read row by row: a scan in key order that,
where a damaged page stops it, probes forward for the next readable row and goes on from there.
Either way the rows go into a fresh store of the current schema, so the result always opens,
and the rows of each table are counted before and after.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._health import (
    connect_read_only,
    describe_database_error,
    forget_clean,
    remember_clean,
    unwritable_reason,
)
from ._schema import SCHEMA_VERSION
from ._store import Store, StoreError

__all__ = ["Recovery", "TableRecovery", "recover_store"]

#: How far past the last readable row to probe when a table's largest rowid is unreadable.
_PROBE_LIMIT = 100_000
_MIN_ROWID = -(2**63)
#: A value longer than this is a damaged length, not data (reading it would take minutes).
_MAX_VALUE = 256 * 2**20
#: A single row that takes longer than this to read is on a damaged page (SQLite going round).
_ROW_SECONDS = 30.0


class _Watchdog:
    """Stops reading a row that takes longer than ``_ROW_SECONDS`` or a value longer than
    ``_MAX_VALUE``: damaged pages can claim gigabyte lengths or send SQLite round a loop."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.deadline = time.monotonic() + _ROW_SECONDS
        if hasattr(conn, "setlimit"):  # Python 3.11+
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _MAX_VALUE)
        conn.set_progress_handler(self._expired, 10_000)

    def _expired(self) -> bool:
        return time.monotonic() > self.deadline

    def touch(self) -> None:
        """Give the next row its own ``_ROW_SECONDS``."""
        self.deadline = time.monotonic() + _ROW_SECONDS


@dataclass
class TableRecovery:
    """One table: rows the source counted (``None`` when even that failed), rows copied, and
    the key ranges that could not be read or were rejected."""

    name: str
    before: int | None
    after: int = 0
    unreadable: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int | None:
        """Rows counted in the source but not copied (``None`` when the count is unknown)."""
        return None if self.before is None else max(self.before - self.after, 0)


@dataclass
class Recovery:
    """What ``teach store recover`` did."""

    source: Path
    dest: Path
    method: str
    tables: list[TableRecovery] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether every counted row was copied and nothing was found unreadable."""
        return all(t.lost == 0 and not t.unreadable for t in self.tables)

    def lines(self) -> list[str]:
        """The report: one line per table, then the notes."""
        out = [f"recovered {self.dest} from {self.source} ({self.method}):"]
        width = max((len(t.name) for t in self.tables), default=8)
        for t in self.tables:
            before = "?" if t.before is None else str(t.before)
            lost = (
                "count unreadable"
                if t.lost is None
                else ("nothing lost" if t.lost == 0 else f"lost {t.lost}")
            )
            where = f" (unreadable: {'; '.join(t.unreadable[:3])}" if t.unreadable else ""
            more = f"; {len(t.unreadable) - 3} more ranges" if len(t.unreadable) > 3 else ""
            more += ")" if t.unreadable else ""
            out.append(f"  {t.name:<{width}}  {before:>8} -> {t.after:<8} {lost}{where}{more}")
        out.extend(f"note: {n}" for n in self.notes)
        known = [t.lost for t in self.tables if t.lost is not None]
        out.append(
            "nothing was lost"
            if self.complete
            else f"{sum(known)} counted rows lost in all; the new store opens with --db {self.dest}"
        )
        return out


def recover_store(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Recovery:
    """Copy what can be read from the store at ``source`` into a new store at ``dest``.

    ``source`` is only read. ``dest`` must not exist: it is never overwritten. Raises
    :class:`StoreError` when nothing can be recovered (the schema itself is unreadable)."""
    from ._postgres import is_url

    if is_url(source):
        raise StoreError(
            "recover reads a damaged SQLite file; a PostgreSQL store is kept consistent by its "
            "server (copy it with `teach store copy`)"
        )
    src = Path(source).expanduser()
    out = Path(dest).expanduser()
    if not src.is_file():
        raise StoreError(f"no store file at {src}")
    for taken in (out, out.with_name(out.name + "-wal")):
        if taken.exists() or taken.is_symlink():
            raise StoreError(f"{taken} exists; recover never overwrites: give a new path with -o")
    if reason := unwritable_reason(out):
        raise StoreError(reason)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.recovering-{os.getpid()}")
    scratch = out.with_name(f".{out.name}.scratch-{os.getpid()}")
    try:
        report, relpaths = _recover_into(src, tmp, scratch)
        _publish(tmp, out)
    finally:
        for path in (tmp, scratch):
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    Path(str(path) + suffix).unlink(missing_ok=True)
            forget_clean(path)
    remember_clean(out)
    report.dest = out
    _copy_artifact_files(src, out, relpaths, report)
    return report


def _copy_artifact_files(src: Path, out: Path, relpaths: Sequence[str], report: Recovery) -> None:
    """Artifact files live in ``artifacts/`` beside a store: copy those the new store refers to
    when it is in another folder."""
    src_dir, out_dir = src.parent / "artifacts", out.parent / "artifacts"
    if src_dir.resolve() == out_dir.resolve():
        return
    copied = missing = 0
    for rel in relpaths:
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts:
            missing += 1  # not a path inside artifacts/: a damaged row
            continue
        target = out_dir / rel
        if target.exists():
            continue
        if not (src_dir / rel).is_file():
            missing += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src_dir / rel, target)
        copied += 1
    if copied or missing:
        report.notes.append(
            f"artifact files: {copied} copied to {out_dir}"
            + (f", {missing} missing from {src_dir}" if missing else "")
        )


def _recover_into(src: Path, tmp: Path, scratch: Path) -> tuple[Recovery, list[str]]:
    try:
        source = connect_read_only(src)
    except sqlite3.DatabaseError as exc:
        raise StoreError(describe_database_error(src, exc)) from None
    try:
        try:
            src_tables = _tables(source)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{src}: the schema can't be read ({exc}); nothing can be copied row by row"
            ) from None
        if "episodes" not in src_tables:
            raise StoreError(f"{src} is not a pytest-teach store (it has no episodes table)")
        with contextlib.suppress(sqlite3.DatabaseError, TypeError, ValueError):
            version = int(
                source.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
            )
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{src} has schema {version}, newer than this pytest-teach supports "
                    f"({SCHEMA_VERSION}); upgrade pytest-teach to recover it"
                )
        report = Recovery(source=src, dest=tmp, method="row by row")
        counts = {t: _count(source, t) for t in src_tables}
        reader = source
        recovered = _sqlite3_recover(src, scratch)
        if isinstance(recovered, str):
            report.notes.append(recovered)
        else:
            reader = recovered
            report.method = "sqlite3 .recover"
            orphans = _count(reader, "lost_and_found")
            if orphans:
                report.notes.append(
                    f"{orphans} rows whose table could not be told are left out (lost_and_found)"
                )
        try:
            with Store.open(tmp, create=True) as store:
                _copy_tables(reader, store.conn, src_tables, counts, report)
                store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                relpaths = [r[0] for r in store.conn.execute("SELECT relpath FROM artifacts")]
        finally:
            if reader is not source:
                reader.close()
        return report, relpaths
    finally:
        source.close()


def _publish(tmp: Path, out: Path) -> None:
    """Give ``tmp`` the name ``out`` without ever replacing a file that appeared meanwhile."""
    try:
        os.link(tmp, out)
    except FileExistsError:
        raise StoreError(f"{out} exists; recover never overwrites: give a new path") from None
    except OSError:  # a file system without hard links: reserve the name, then move onto it
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise StoreError(f"{out} exists; recover never overwrites: give a new path") from None
        os.close(fd)
        os.replace(tmp, out)


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY rowid"
    ).fetchall()
    return [r[0] for r in rows]


def _count(conn: sqlite3.Connection, table: str) -> int | None:
    try:
        return conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
    except sqlite3.DatabaseError:
        return None


def _sqlite3_recover(src: Path, scratch: Path) -> sqlite3.Connection | str:
    """SQLite's ``.recover`` into ``scratch``; a note saying why not when it can't be used."""
    exe = shutil.which("sqlite3")
    if exe is None:
        return "no sqlite3 command on PATH for .recover; copied row by row"
    with subprocess.Popen(
        [exe, "-readonly", str(src), ".recover"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as dump:
        load = subprocess.run(
            [exe, str(scratch)], stdin=dump.stdout, capture_output=True, check=False
        )
        assert dump.stderr is not None
        dump_err = dump.stderr.read().decode(errors="replace").strip()
    if dump.returncode or load.returncode or dump_err:
        why = (dump_err or load.stderr.decode(errors="replace").strip()).splitlines()
        return (
            f"the sqlite3 command could not .recover ({why[-1] if why else 'no output'}); "
            "copied row by row"
        )
    return sqlite3.connect(scratch)


def _columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, int]]:
    """(name, position in the primary key, 0 when not in it) of each column."""
    return [(r[1], r[5]) for r in conn.execute(f'PRAGMA table_info("{table}")')]


def _without_rowid(conn: sqlite3.Connection, table: str) -> bool:
    try:
        conn.execute(f'SELECT rowid FROM "{table}" LIMIT 0')
    except sqlite3.OperationalError:
        return True
    return False


def _copy_tables(
    reader: sqlite3.Connection,
    dest: sqlite3.Connection,
    src_tables: Sequence[str],
    counts: dict[str, int | None],
    report: Recovery,
) -> None:
    dest.execute("PRAGMA foreign_keys = OFF")  # keep a row whose parent row was lost
    try:
        reader_tables = set(_tables(reader))
    except sqlite3.DatabaseError:
        reader_tables = set(src_tables)
    dest_tables = _tables(dest)
    for table in dest_tables:  # the schema's order: parents before children
        if table not in src_tables:
            continue
        result = TableRecovery(table, counts.get(table))
        report.tables.append(result)
        if table in reader_tables:
            _copy_table(reader, dest, table, result)
        else:
            result.unreadable.append("the table is missing from what .recover found")
    for table in src_tables:
        if table not in dest_tables:
            report.notes.append(f"table {table} is not part of the store's schema; not copied")
    dest.execute("PRAGMA foreign_keys = ON")


def _copy_table(
    reader: sqlite3.Connection, dest: sqlite3.Connection, table: str, result: TableRecovery
) -> None:
    dest_cols = [c for c, _ in _columns(dest, table)]
    src_info = _columns(reader, table)
    cols = [c for c in dest_cols if c in {name for name, _ in src_info}]
    watchdog = _Watchdog(reader)
    keep_rowid = (
        not _without_rowid(dest, table)
        and not dest.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone()
    )  # the meta table has rows of the new store already: new rowids there
    if _without_rowid(reader, table):
        pk = [name for name, pos in sorted(src_info, key=lambda x: x[1]) if pos]
        candidates = _candidates(dest, table, pk)
        rows = _scan_by_key(reader, table, cols, pk, candidates, result, watchdog)
        keep_rowid = False
    else:
        rows = _scan_by_rowid(reader, table, cols, result, watchdog)
    targets = (["rowid"] if keep_rowid else []) + [f'"{c}"' for c in cols]
    insert = (
        f'INSERT OR IGNORE INTO "{table}"({", ".join(targets)}) '
        f"VALUES ({', '.join('?' * len(targets))})"
    )
    dest.execute("BEGIN IMMEDIATE")
    try:
        for rowid, values in rows:
            try:
                dest.execute(insert, ((rowid,) if keep_rowid else ()) + tuple(values))
            except sqlite3.DatabaseError as exc:
                result.unreadable.append(f"row {rowid!r} rejected ({exc})")
    except BaseException:
        dest.execute("ROLLBACK")
        raise
    dest.execute("COMMIT")
    result.after = dest.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]


def _scan_by_rowid(
    conn: sqlite3.Connection,
    table: str,
    cols: Sequence[str],
    result: TableRecovery,
    watchdog: _Watchdog,
) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """Rows in rowid order; past a damaged page, probe rowid by rowid for the next one."""
    select = ", ".join(["rowid"] + [f'"{c}"' for c in cols])
    scan = f'SELECT {select} FROM "{table}" WHERE rowid > ? ORDER BY rowid'
    probe = f'SELECT {select} FROM "{table}" WHERE rowid >= ? ORDER BY rowid LIMIT 1'
    try:
        watchdog.touch()
        hi = conn.execute(f'SELECT max(rowid) FROM "{table}"').fetchone()[0]
    except sqlite3.DatabaseError:
        hi = None
    last = _MIN_ROWID
    while True:
        try:
            watchdog.touch()
            for row in conn.execute(scan, (last,)):
                watchdog.touch()
                if row[0] <= last or (hi is not None and row[0] > hi):
                    continue  # a cell from a damaged page, not a row
                last = row[0]
                yield row[0], tuple(row[1:])
            return
        except sqlite3.DatabaseError:
            start = max(last + 1, 1) if last != _MIN_ROWID else 1
            stop = hi if hi is not None else start + _PROBE_LIMIT
            found = _first_readable(conn, probe, range(start, stop + 1), watchdog)
            if found is None or found[0] < start:
                result.unreadable.append(f"rowids {start}..{stop if hi is not None else 'end'}")
                return
            if found[0] > start:
                result.unreadable.append(f"rowids {start}..{found[0] - 1}")
            # the probe read this row whole; the scan goes on after it (a scan reads one row
            # ahead, so starting it here could fail on the next row before returning this one)
            last = found[0]
            yield found[0], tuple(found[1:])


def _first_readable(
    conn: sqlite3.Connection, probe: str, candidates: Iterable[Any], watchdog: _Watchdog
) -> Any:
    """The row ``probe`` finds for the first candidate key whose page reads, or None."""
    for candidate in candidates:
        watchdog.touch()
        try:
            return conn.execute(probe, (candidate,)).fetchone()
        except sqlite3.DatabaseError:
            continue
    return None


def _candidates(dest: sqlite3.Connection, table: str, pk: Sequence[str]) -> list[Any]:
    """Values the first key column can take: the recovered keys of the table it refers to."""
    if not pk:
        return []
    for row in dest.execute(f'PRAGMA foreign_key_list("{table}")'):
        parent, column, target = row[2], row[3], row[4]
        if column == pk[0]:
            target = target or "rowid"
            return [
                r[0] for r in dest.execute(f'SELECT DISTINCT "{target}" FROM "{parent}" ORDER BY 1')
            ]
    return []


def _scan_by_key(
    conn: sqlite3.Connection,
    table: str,
    cols: Sequence[str],
    pk: Sequence[str],
    candidates: Sequence[Any],
    result: TableRecovery,
    watchdog: _Watchdog,
) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """Rows of a WITHOUT ROWID table in key order; past a damaged page, go on from the next
    parent key (``candidates``) whose rows can be read."""
    select = ", ".join(f'"{c}"' for c in cols)
    key = ", ".join(f'"{c}"' for c in pk)
    marks = ", ".join("?" * len(pk))
    first = f'SELECT {select} FROM "{table}" ORDER BY {key}'
    after = f'SELECT {select} FROM "{table}" WHERE ({key}) > ({marks}) ORDER BY {key}'
    probe = f'SELECT {select} FROM "{table}" WHERE "{pk[0]}" >= ? ORDER BY {key} LIMIT 1'
    at = [cols.index(c) for c in pk]
    last: tuple[Any, ...] | None = None
    while True:
        try:
            watchdog.touch()
            cursor = conn.execute(after, last) if last is not None else conn.execute(first)
            for row in cursor:
                watchdog.touch()
                k = tuple(row[i] for i in at)
                if last is not None and k <= last:
                    continue  # a cell from a damaged page, not a row
                last = k
                yield k, tuple(row)
            return
        except sqlite3.DatabaseError:
            pending = [c for c in candidates if last is None or c > last[0]]
            found = _first_readable(conn, probe, pending, watchdog)
            where = "the start" if last is None else f"{last}"
            k = None if found is None else tuple(found[i] for i in at)
            if k is None or (last is not None and k <= last):
                result.unreadable.append(f"after {where} to the end")
                return
            result.unreadable.append(f"after {where} to {k}")
            last = k  # the probe read this row whole: go on after it
            yield k, tuple(found)
