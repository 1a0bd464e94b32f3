"""Whether a store can be written, whether its pages are sound, and what to say when not.

Three things stop a write, and each gets its own one-line message:

- the file or its folder is read-only (a read-only file, a folder where SQLite can't create
  its ``-wal``/``-shm`` files, a read-only file system). ``access(2)`` answers this for root
  too: root passes permission bits, which is right, since root can then write, but not an
  immutable flag or a read-only mount, which really stop it;
- the pages are damaged (``PRAGMA quick_check`` fails);
- anything else SQLite reports, named with the store's path.

``quick_check`` reads every page, about a second per GB with the file in the page cache and
several seconds from disk. So a clean result is remembered in ``<db>.checked`` beside the
store, keyed by the file's device, inode, size, mtime and ctime (ctime can't be set back by
hand), and the check runs again only when the file changed since. A store that was checked
(or matched) when opened and then written through SQLite is remembered as clean when it is
closed, so one's own recording doesn't cost the next run a check. The trade-off: damage done
by something other than SQLite *while* a store is open for writing goes unseen until the file
next changes while closed; ``teach store check`` runs the full ``integrity_check`` on demand.
The ``-wal`` file needs no check of its own: its frames carry checksums, and SQLite ignores a
frame that doesn't match.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "StoreCheck",
    "check_store",
    "damaged_message",
    "describe_database_error",
    "unwritable_reason",
]

CHECKED_SUFFIX = ".checked"
_READONLY_CODES = {"SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH"}
_DAMAGED_CODES = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}


def _writable(path: Path) -> bool:
    effective = os.access in os.supports_effective_ids
    return os.access(path, os.W_OK, effective_ids=effective)


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def unwritable_reason(path: str | os.PathLike[str]) -> str | None:
    """Why the store at ``path`` can't be written, as one line, or ``None`` when it can.

    The folder must be writable too: SQLite creates its ``-wal`` and ``-shm`` files there.
    """
    p = Path(path)
    folder = p.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # a store not created yet: the nearest folder that exists
    if _read_only_fs(folder):
        return f"can't write {p}: it is on a read-only file system ({folder})"
    if p.exists() and not _writable(p):
        return f"can't write {p}: read-only file"
    if not (_writable(folder) and os.access(folder, os.X_OK)):
        return f"can't write {p}: the folder {folder} is read-only"
    return None


def damaged_message(path: str | os.PathLike[str], detail: str, *, refused: bool = False) -> str:
    """The one line for a store whose pages are damaged, naming the commands that help;
    ``refused`` when a write was refused before anything was written."""
    written = "; nothing was written" if refused else ""
    return (
        f"{path} is damaged ({detail}){written}; see `teach store check --db {path}`, and copy "
        f"what can be read into a new store with `teach store recover --db {path} -o NEW.db`"
    )


def describe_database_error(path: str | os.PathLike[str], exc: sqlite3.DatabaseError) -> str:
    """One line for a SQLite error on the store at ``path``: read-only, damaged, or as SQLite
    says it, always with the path."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    base = "_".join(name.split("_")[:2])  # SQLITE_READONLY_DBMOVED -> SQLITE_READONLY
    if base in _READONLY_CODES or "readonly" in text or "unable to open" in text:
        reason = unwritable_reason(path)
        if reason:
            return reason
    if base in _DAMAGED_CODES or "malformed" in text or "not a database" in text:
        if not _has_sqlite_header(Path(path)):
            return f"{path} is not a pytest-teach store ({text})"
        return damaged_message(path, text)
    return f"the store {path}: {text}"


def _has_sqlite_header(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


# -- quick_check, remembered per file change ----------------------------------------------------


def _checked_path(path: Path) -> Path:
    return path.with_name(path.name + CHECKED_SUFFIX)


def _file_key(path: Path) -> dict[str, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {
        "dev": st.st_dev,
        "ino": st.st_ino,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
    }


def checked_since_change(path: Path) -> bool:
    """Whether ``path`` is byte-for-byte the file a clean check (or our own writes) left."""
    key = _file_key(path)
    if key is None:
        return False
    try:
        remembered = json.loads(_checked_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(remembered, dict) and remembered.get("file") == key


def remember_clean(path: Path) -> None:
    """Record that ``path``, as it is now, is sound (best effort: a failure only costs a check)."""
    key = _file_key(path)
    if key is None:
        return
    target = _checked_path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        tmp.write_text(json.dumps({"file": key}), encoding="utf-8")
        os.replace(tmp, target)
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def forget_clean(path: Path) -> None:
    """Drop the remembered check of ``path``."""
    with contextlib.suppress(OSError):
        _checked_path(path).unlink(missing_ok=True)


def quick_check_problems(conn: sqlite3.Connection, limit: int = 20) -> list[str]:
    """``PRAGMA quick_check``'s problems (empty when the file is sound), one per line.

    Raises :class:`sqlite3.DatabaseError` when SQLite can't even walk the file."""
    return _problems(conn.execute(f"PRAGMA quick_check({int(limit)})").fetchall())


def _problems(rows: list[Any]) -> list[str]:
    lines: list[str] = []
    for (text,) in rows:
        lines.extend(t.strip() for t in str(text).splitlines())
    lines = [t for t in lines if t and not t.startswith("*** in database")]
    return [] if lines == ["ok"] else lines


# -- teach store check ----------------------------------------------------------------------------


@dataclass
class StoreCheck:
    """What ``teach store check`` found: ``problems`` is empty when the store is sound."""

    path: Path | str
    problems: list[str] = field(default_factory=list)
    schema_version: int | None = None
    episodes: int | None = None
    size: int = 0
    read_only: str | None = None

    @property
    def ok(self) -> bool:
        """Whether ``integrity_check`` passed and the file is a pytest-teach store."""
        return not self.problems

    def lines(self) -> list[str]:
        """The report, one finding per line."""
        size = f"{self.size / 2**20:.1f} MB"
        if self.ok and isinstance(self.path, str):
            return [
                f"ok: {self.path} answers (PostgreSQL; schema {self.schema_version}, "
                f"{self.episodes} episodes, every artifact whole, {size})"
            ]
        if isinstance(self.path, str):
            return [f"{self.path}: {len(self.problems)} problem(s) ({size}):"] + [
                f"  {p}" for p in self.problems
            ]
        if self.ok:
            out = [
                f"ok: {self.path} passed integrity_check (schema {self.schema_version}, "
                f"{self.episodes} episodes, {size})"
            ]
        else:
            out = [f"{self.path}: {len(self.problems)} problem(s) ({size}):"]
            out.extend(f"  {p}" for p in self.problems)
            out.append(
                f"copy what can be read into a new store: "
                f"teach store recover --db {self.path} -o NEW.db"
            )
        if self.read_only:
            out.append(f"note: {self.read_only}")
        return out


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Open ``path`` for reading only, never writing it.

    In a folder where SQLite can't create its ``-shm`` file, and with no ``-wal`` file
    holding unmerged commits, the file is opened as immutable (nothing can be writing it)."""
    from urllib.parse import quote

    uri = f"file:{quote(str(path))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=60.0, check_same_thread=False)
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.OperationalError as exc:
        wal = path.with_name(path.name + "-wal")
        if "unable to open" not in str(exc) or (wal.exists() and wal.stat().st_size > 0):
            conn.close()
            raise
        conn.close()
        conn = sqlite3.connect(f"{uri}&immutable=1", uri=True, check_same_thread=False)
    return conn


def check_store(path: str | os.PathLike[str], limit: int = 100) -> StoreCheck:
    """Run ``PRAGMA integrity_check`` on the store at ``path``, read-only, and say what it found.

    A PostgreSQL store (a URL) is checked for its schema and for artifacts whose chunks don't
    add up to their size; its server keeps the pages consistent itself.

    Raises :class:`FileNotFoundError` when there is no file there."""
    from ._postgres import is_url

    if is_url(path):
        return _check_postgres(str(path), limit)
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"no store file at {p}")
    report = StoreCheck(path=p, size=p.stat().st_size, read_only=unwritable_reason(p))
    try:
        conn = connect_read_only(p)
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"SQLite can't open it: {exc}")
        return report
    try:
        report.problems = _problems(
            conn.execute(f"PRAGMA integrity_check({int(limit)})").fetchall()
        )
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables or "episodes" not in tables:
            report.problems.append(
                "not a pytest-teach store (no meta/episodes tables)"
                if tables
                else "an empty SQLite file, not a pytest-teach store"
            )
        else:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            report.schema_version = int(row[0]) if row else None
            with contextlib.suppress(sqlite3.DatabaseError):
                report.episodes = conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"SQLite stopped reading it: {exc}")
    finally:
        conn.close()
    return report


def _check_postgres(url: str, limit: int) -> StoreCheck:
    from ._store import Store

    store = Store.open(url)  # unreachable, refused or not a store: StoreError, one line
    try:
        conn = store.conn
        report = StoreCheck(
            path=store.location,
            size=conn.execute("SELECT pg_database_size(current_database())").fetchone()[0],
            schema_version=store.schema_version,
            episodes=conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0],
        )
        rows = conn.execute(
            "SELECT a.sha256, a.size, COALESCE(c.n, 0) FROM artifacts a LEFT JOIN "
            "(SELECT sha256, SUM(octet_length(data)) AS n FROM artifact_chunks GROUP BY sha256) c "
            "ON c.sha256 = a.sha256 WHERE COALESCE(c.n, 0) <> a.size LIMIT ?",
            (int(limit),),
        ).fetchall()
        report.problems = [
            f"artifact {sha}: {n} of its {size} bytes stored" for sha, size, n in rows
        ]
    finally:
        store.close()
    return report
