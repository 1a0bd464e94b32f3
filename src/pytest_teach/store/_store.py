"""The experience store: one SQLite file in WAL mode, or a PostgreSQL database shared by a team;
both safe for concurrent pytest-xdist writers.

Every episode is written in one transaction together with its steps, labels and artifact links,
so a worker killed mid-run loses at most the test in flight and the store stays consistent.
The SQL is written once, in SQLite's spelling; on PostgreSQL ``_postgres.translate`` renders it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, NamedTuple

from ._codec import dumps, loads
from ._health import (
    checked_since_change,
    connect_read_only,
    damaged_message,
    describe_database_error,
    quick_check_problems,
    remember_clean,
    unwritable_reason,
)
from ._models import Episode, Feedback, Label, Step
from ._postgres import database_errors, is_url
from ._schema import APPLICATION, MIGRATIONS, SCHEMA_VERSION, render

__all__ = [
    "ArtifactRef",
    "EpisodeFilter",
    "Store",
    "StoreError",
    "open_store",
    "new_id",
    "prepare_store",
    "parse_since",
]

_PAGE = 500
#: Artifacts in a PostgreSQL store are rows of this many bytes (streamed, never whole in memory).
CHUNK = 1 << 20
_MEDIA_EXT = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "text/plain": ".txt",
    "text/html": ".html",
    "application/json": ".json",
}


class ArtifactRef(NamedTuple):
    """An artifact's database row: its content hash, size, media type and (in a SQLite store)
    its file under ``artifacts/``."""

    sha256: str
    size: int
    media_type: str
    relpath: str


class StoreError(Exception):
    """The store can't be opened or used; the message says why and what to do."""


def new_id() -> str:
    """A fresh episode or session id: 16 random hex digits."""
    return os.urandom(8).hex()


def parse_since(value: str | float | datetime | None) -> float | None:
    """Parse ``--since``: an ISO date or datetime, an epoch number, or a span like ``7d``/``12h``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    span = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text)
    if span:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[span.group(2)]
        return time.time() - float(span.group(1)) * unit
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise StoreError(
            f"--since {text!r} is not a date: use an ISO date (2026-11-01), a datetime, "
            "or a span such as 7d or 12h"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _connect_for_reading(path: Path) -> sqlite3.Connection:
    """A connection for reading; in a read-only folder (no ``-shm`` can be made) a read-only
    one. Writes through it are refused by :meth:`Store._before_write` with the reason."""
    probe = sqlite3.connect(str(path), timeout=60.0, check_same_thread=False)
    try:
        probe.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.OperationalError as exc:
        if "unable to open" not in str(exc) or unwritable_reason(path) is None:
            raise
        conn = connect_read_only(path)
        conn.isolation_level = None
        conn.row_factory = sqlite3.Row
        return conn
    finally:
        probe.close()
    return _connect(path)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute("PRAGMA foreign_keys = ON")
    # WAL + NORMAL: a commit survives the process being killed (the "lose at most the test in
    # flight" promise); only an OS crash may roll back the last commits, never corrupt the file.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint = 4000")
    return conn


@dataclass(frozen=True)
class EpisodeFilter:
    """Which episodes :meth:`Store.episodes`, :meth:`Store.count` and :meth:`Store.stats`
    take: every filter given must match; ``None`` leaves a filter out.

    ``ids``, ``outcome``, ``model`` and ``session`` take one value or several (any of them);
    ``label`` takes 0/1 or ``success``/``intervention``; ``scenario`` is a glob (see
    :meth:`Store.episodes`); ``since`` an ISO date, an epoch or a span such as ``7d``;
    ``include_errors=False`` leaves out episodes whose outcome is ``error``.
    """

    ids: Sequence[str] | None = None
    outcome: str | Sequence[str] | None = None
    label: int | str | None = None
    model: str | Sequence[str] | None = None
    scenario: str | None = None
    category: str | None = None
    session: str | Sequence[str] | None = None
    arm: str | None = None
    since: str | float | datetime | None = None
    min_quality: float | None = None
    min_reward: float | None = None
    include_errors: bool = True

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The filters' names, in order."""
        return tuple(f.name for f in fields(cls))

    def where_clause(self, backend: str = "sqlite") -> tuple[str, list[Any]]:
        """The SQL ``WHERE`` clause on the ``episodes`` table (empty when nothing is filtered)
        and its arguments, for ``backend`` (``sqlite`` or ``postgresql``).

        Raises:
            StoreError: a ``since`` that is not a date, or a ``label`` that is not a label.
        """
        clauses: list[str] = []
        args: list[Any] = []

        def one_of(column: str, value: str | Sequence[str]) -> None:
            values = [value] if isinstance(value, str) else list(value)
            clauses.append(f"{column} IN ({','.join('?' * len(values))})")
            args.extend(values)

        if self.ids is not None:
            one_of("id", self.ids)
        if self.outcome is not None:
            one_of("outcome", self.outcome)
        if self.label is not None:
            clauses.append("label = ?")
            args.append(_label_value(self.label))
        if self.model is not None:
            one_of("model", self.model)
        if self.scenario and "[" in self.scenario and not {"*", "?"} & set(self.scenario):
            clauses.append("scenario = ?")  # one whole name: an index lookup on both backends
            args.append(self.scenario)
        elif self.scenario:
            forms = _scenario_globs(self.scenario)
            if backend == "postgresql":
                forms = [_glob_to_like(form) for form in forms]
            test = "scenario LIKE ?" if backend == "postgresql" else "scenario GLOB ?"
            clauses.append("(" + " OR ".join([test] * len(forms)) + ")")
            args.extend(forms)
        if self.category is not None:
            clauses.append("category = ?")
            args.append(self.category)
        if self.session is not None:
            one_of("session_id", self.session)
        if self.arm is not None:
            clauses.append("arm = ?")
            args.append(self.arm)
        cutoff = parse_since(self.since)
        if cutoff is not None:
            clauses.append("created_at >= ?")
            args.append(cutoff)
        if self.min_quality is not None:
            clauses.append("quality >= ?")
            args.append(float(self.min_quality))
        if self.min_reward is not None:
            clauses.append("reward >= ?")
            args.append(float(self.min_reward))
        if not self.include_errors:
            clauses.append("outcome != 'error'")
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


class Store:
    """An open experience store. Use :func:`open_store` to get one."""

    def __init__(
        self,
        path: Path | None,
        conn: Any,
        *,
        backend: str = "sqlite",
        location: str | None = None,
    ) -> None:
        #: The SQLite file (``None`` for a PostgreSQL store).
        self.path = path
        #: ``"sqlite"`` or ``"postgresql"``.
        self.backend = backend
        #: The store's name for messages: the file, or the URL with its password masked.
        self.location = location or str(path)
        self._conn = conn
        #: Where a SQLite store keeps its artifact files (``None`` on PostgreSQL: in the database).
        self.artifacts_dir = path.parent / "artifacts" if path is not None else None
        self._write_ready = False  # checked for writing (see _before_write)
        self._record_columns: dict[str, frozenset[str]] = {}
        self._errors: tuple[type[BaseException], ...] = (
            (sqlite3.DatabaseError,) if backend == "sqlite" else database_errors()
        )

    @property
    def local_dir(self) -> Path:
        """Where files that belong beside the store go (datasets, journals): the SQLite file's
        folder, or ``.teach/`` in the working directory for a PostgreSQL store."""
        return self.path.parent if self.path is not None else Path.cwd() / ".teach"

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = False) -> Store:
        """Open the store at ``path`` (a SQLite file, or a ``postgresql://`` URL); with
        ``create``, make it (a file and its folder; the tables of an empty database) when
        missing.

        ``create`` opens it for writing: a read-only file or folder, or damaged pages (``PRAGMA
        quick_check``), are refused with one line before anything is written. Without it the
        store opens for reading (also in a read-only folder), and the same checks run before
        its first write. A PostgreSQL server that can't be reached, refuses the login or holds
        a newer schema is one line too, and nothing is written.
        """
        if is_url(path):
            return cls._open_postgres(str(path), create=create)
        p = Path(path).expanduser()
        if not p.exists():
            if not create:
                raise StoreError(
                    f"no pytest-teach store at {p}; record one with "
                    "`pytest --collect-training-data --teach-db PATH`"
                )
            if reason := unwritable_reason(p):
                raise StoreError(reason)
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store's folder {p.parent}: {exc}") from None
        elif p.is_dir():
            raise StoreError(f"{p} is a directory, not a pytest-teach store")
        elif not os.access(p, os.R_OK):
            raise StoreError(f"cannot read the store {p}: permission denied")
        elif create and (reason := unwritable_reason(p)):
            raise StoreError(reason)  # before connecting: SQLite would leave -wal/-shm files
        conn: sqlite3.Connection | None = None
        try:
            conn = _connect(p) if create else _connect_for_reading(p)
            store = cls(p, conn)
            if create:
                store._before_write()
            store._prepare(create=create)
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            raise StoreError(describe_database_error(p, exc)) from None
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        return store

    @classmethod
    def _open_postgres(cls, url: str, *, create: bool) -> Store:
        from ._postgres import Target, _first_line

        target = Target(url)
        conn = target.connect()
        store = cls(None, conn, backend="postgresql", location=target.location)
        try:
            store._prepare(create=create)
        except store._errors as exc:
            conn.close()
            raise StoreError(f"the store {target.location}: {_first_line(exc)}") from None
        except BaseException:
            conn.close()
            raise
        return store

    def _before_write(self) -> None:
        """Refuse to write a read-only or damaged store, before anything is written.

        Runs once per open store. ``PRAGMA quick_check`` runs only when the file changed since
        the last clean check (see :mod:`pytest_teach.store._health`). A PostgreSQL server
        keeps its own consistency and refuses what a role may not write."""
        if self._write_ready:
            return
        if self.path is None:
            self._write_ready = True
            return
        if reason := unwritable_reason(self.path):
            raise StoreError(reason)
        if self.path.stat().st_size and not checked_since_change(self.path):
            try:
                problems = quick_check_problems(self._conn)
            except sqlite3.DatabaseError as exc:
                raise StoreError(describe_database_error(self.path, exc)) from None
            if problems:
                raise StoreError(damaged_message(self.path, problems[0], refused=True))
            remember_clean(self.path)
        self._write_ready = True

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Any]:
        """Check before the first write; a database error on the way becomes one line."""
        self._before_write()
        try:
            yield self._conn
        except self._errors as exc:
            raise StoreError(self._describe(exc)) from None

    def _describe(self, exc: BaseException) -> str:
        """A database error as one line naming the store."""
        if self.path is not None and isinstance(exc, sqlite3.DatabaseError):
            return describe_database_error(self.path, exc)
        from ._postgres import _first_line

        return f"the store {self.location}: {_first_line(exc)}"

    def _table_names(self) -> set[str]:
        if self.path is None:
            return self._conn.table_names()
        return {
            r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }

    def _prepare(self, *, create: bool) -> None:
        conn = self._conn
        version = self._schema_version()
        if version == SCHEMA_VERSION:
            return
        if version is None:
            tables = self._table_names()
            if tables:
                # another writer's migration may have committed since: its tables and its
                # version arrive in one transaction, so the version is there now if it is ours
                version = self._schema_version()
                if version is None:
                    kind = "a SQLite file" if self.path is not None else "a PostgreSQL database"
                    raise StoreError(
                        f"{self.location} is {kind} but not a pytest-teach store "
                        f"(it has tables {sorted(tables)[:5]}); pass another --teach-db/--db"
                    )
                if version == SCHEMA_VERSION:
                    return
            elif not create:
                raise StoreError(f"{self.location} is empty, not a pytest-teach store")
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(_newer_schema(self.location, version))
        if create or version is not None:
            if self.path is not None:
                # another writer may hold the lock while it switches the file to WAL itself
                with contextlib.suppress(sqlite3.OperationalError):
                    conn.execute("PRAGMA journal_mode = WAL")
            self._migrate()

    def _schema_version(self) -> int | None:
        if self.path is None and "meta" not in self._conn.table_names():
            return None
        try:
            row = self._conn.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
        return int(row[0]) if row else None

    def _migrate(self) -> None:
        self._before_write()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self.path is None:  # one migrating writer at a time; the others wait, then see it
                conn.execute("SELECT pg_advisory_xact_lock(7463616368)")
            current = self._schema_version() or 0
            if current > SCHEMA_VERSION:
                raise StoreError(_newer_schema(self.location, current))
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in render(MIGRATIONS[version], self.backend):
                    conn.execute(statement)
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(version),),
                )
            conn.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('application', ?)", (APPLICATION,)
            )
            conn.execute("COMMIT")
        except self._errors as exc:
            conn.execute("ROLLBACK")
            raise StoreError(
                f"could not migrate {self.location} to schema {SCHEMA_VERSION} ({exc}); "
                "the store was left unchanged"
            ) from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection. A store checked and written since is remembered as sound, so
        the next writer needn't check it again (its own writes went through SQLite)."""
        self._conn.close()
        if self._write_ready and self.path is not None:
            remember_clean(self.path)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self) -> Any:
        """The open connection (autocommit): :class:`sqlite3.Connection`, or on PostgreSQL an
        object with the same ``execute``/``executemany``. Group several writes with
        :meth:`transaction`."""
        return self._conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; everything is rolled back if the block raises."""
        self._before_write()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        """The schema version of this store."""
        return self._schema_version() or 0

    def integrity_check(self) -> str:
        """Run ``PRAGMA integrity_check``; ``"ok"`` when the file is sound. On PostgreSQL
        ``"ok"`` once the schema answers (the server keeps its pages consistent itself)."""
        if self.path is None:
            self._conn.execute("SELECT COUNT(*) FROM meta").fetchone()
            return "ok"
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0]

    # -- sessions ----------------------------------------------------------------------------

    def start_session(
        self,
        session_id: str,
        *,
        argv: Sequence[str],
        version: str,
        git_commit: str | None,
        rootdir: str | None,
    ) -> None:
        """Record the start of a pytest run."""
        with self._writing() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO sessions(id, started_at, git_commit, argv, version, "
                "rootdir) VALUES (?, ?, ?, ?, ?, ?)",
                (session_id, time.time(), git_commit, dumps(list(argv)), version, rootdir),
            )

    def finish_session(self, session_id: str, exit_status: int) -> None:
        """Record the end of a pytest run."""
        with self._writing() as conn:
            conn.execute(
                "UPDATE sessions SET finished_at = ?, exit_status = ? WHERE id = ?",
                (time.time(), exit_status, session_id),
            )

    def sessions(self) -> list[dict[str, Any]]:
        """All sessions, oldest first."""
        rows = self._conn.execute("SELECT * FROM sessions ORDER BY started_at").fetchall()
        return [{**dict(r), "argv": loads(r["argv"])} for r in rows]

    # -- artifacts ---------------------------------------------------------------------------

    def save_artifact_file(self, data: bytes, media_type: str) -> ArtifactRef:
        """Keep bytes content-addressed: a file under ``artifacts/`` (its row comes with the
        episode that links it), or on PostgreSQL the chunks and the row at once."""
        sha = hashlib.sha256(data).hexdigest()
        rel = f"{sha[:2]}/{sha}{_MEDIA_EXT.get(media_type, '')}"
        ref = ArtifactRef(sha, len(data), media_type, rel)
        if self.artifacts_dir is None:
            self.copy_artifact_in(ref, io.BytesIO(data))
            return ref
        target = self.artifacts_dir / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return ref

    def put_artifact(self, data: bytes, media_type: str = "application/octet-stream") -> str:
        """Store bytes as an artifact (file and row); return their sha256."""
        self._before_write()
        ref = self.save_artifact_file(data, media_type)
        self._conn.execute(_INSERT_ARTIFACT, ref)
        return ref.sha256

    def artifact(self, sha: str) -> ArtifactRef:
        """An artifact's row."""
        row = self._conn.execute(
            "SELECT sha256, size, media_type, relpath FROM artifacts WHERE sha256 = ?", (sha,)
        ).fetchone()
        if row is None:
            raise StoreError(f"no artifact {sha} in {self.location}")
        return ArtifactRef(row[0], row[1], row[2], row[3])

    def artifacts(self) -> Iterator[ArtifactRef]:
        """Every artifact's row, in hash order."""
        last = ""
        while True:
            rows = self._conn.execute(
                "SELECT sha256, size, media_type, relpath FROM artifacts WHERE sha256 > ? "
                "ORDER BY sha256 LIMIT ?",
                (last, _PAGE),
            ).fetchall()
            yield from (ArtifactRef(r[0], r[1], r[2], r[3]) for r in rows)
            if len(rows) < _PAGE:
                return
            last = rows[-1][0]

    def artifact_path(self, sha: str) -> Path:
        """The file behind an artifact id (a SQLite store's; a PostgreSQL store keeps its
        artifacts in the database: use :meth:`open_artifact`)."""
        ref = self.artifact(sha)
        if self.artifacts_dir is None:
            raise StoreError(
                f"artifact {sha} of {self.location} lives in the database, not in a file"
            )
        return self.artifacts_dir / ref.relpath

    def open_artifact(self, sha: str) -> IO[bytes]:
        """An artifact's bytes as a binary file, read as they are asked for."""
        ref = self.artifact(sha)
        if self.artifacts_dir is not None:
            return (self.artifacts_dir / ref.relpath).open("rb")
        return io.BufferedReader(_ChunkReader(self._conn, ref), buffer_size=CHUNK)

    def read_artifact(self, sha: str) -> bytes:
        """An artifact's bytes."""
        with self.open_artifact(sha) as f:
            return f.read()

    def copy_artifact_in(self, ref: ArtifactRef, source: IO[bytes]) -> bool:
        """Store the artifact ``ref`` read from ``source`` (streamed; checked against its
        hash); ``False`` when the store already had it.

        Raises:
            StoreError: the content does not hash to ``ref.sha256``.
        """
        self._before_write()
        if self.artifacts_dir is None:
            return self._copy_chunks_in(ref, source)
        target = self.artifacts_dir / ref.relpath
        if target.exists():
            self._conn.execute(_INSERT_ARTIFACT, ref)
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        digest = hashlib.sha256()
        try:
            with tmp.open("wb") as out:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            _check_digest(ref, digest)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        self._conn.execute(_INSERT_ARTIFACT, ref)
        return True

    def _copy_chunks_in(self, ref: ArtifactRef, source: IO[bytes]) -> bool:
        conn = self._conn
        if conn.execute("SELECT 1 FROM artifacts WHERE sha256 = ?", (ref.sha256,)).fetchone():
            return False
        digest = hashlib.sha256()
        with self._writing():
            conn.execute("BEGIN")
            try:
                seq = 0
                while True:
                    chunk = source.read(CHUNK)
                    if not chunk and seq:
                        break
                    digest.update(chunk)
                    conn.execute(
                        "INSERT OR IGNORE INTO artifact_chunks(sha256, seq, data) VALUES (?,?,?)",
                        (ref.sha256, seq, chunk),
                    )
                    seq += 1
                    if not chunk:
                        break
                _check_digest(ref, digest)
                added = conn.execute(_INSERT_ARTIFACT, ref).rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return bool(added)

    # -- episodes ----------------------------------------------------------------------------

    def write_episode(self, episode: Episode, artifacts: Sequence[ArtifactRef] = ()) -> None:
        """Append one episode with its steps, labels and artifact links, atomically."""
        self.write_episodes([episode], artifacts)

    def write_episodes(
        self, episodes: Sequence[Episode], artifacts: Sequence[ArtifactRef] = ()
    ) -> int:
        """Append episodes in one transaction; return how many were new.

        Idempotent: an episode whose id is already stored is skipped with all its rows, so
        replaying a journal after a crash never duplicates anything.
        """
        self._before_write()
        conn = self._conn
        for episode in episodes:
            if not episode.created_at:
                episode.created_at = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if artifacts:
                conn.executemany(_INSERT_ARTIFACT, artifacts)
            if self.path is None:
                new = self._insert_pipelined(episodes)
                conn.execute("COMMIT")
                return new
            new = 0
            for episode in episodes:
                if conn.execute(_INSERT_EPISODE, _episode_row(episode)).rowcount == 0:
                    continue  # already stored
                new += 1
                if episode.steps:
                    conn.executemany(
                        _INSERT_STEP, [_step_row(episode.id, s) for s in episode.steps]
                    )
                if episode.labels:
                    conn.executemany(
                        "INSERT INTO labels(episode_id, seq, kind, reason) VALUES (?,?,?,?)",
                        [
                            (episode.id, i, lb.kind, lb.reason)
                            for i, lb in enumerate(episode.labels)
                        ],
                    )
                if episode.artifacts:
                    conn.executemany(
                        "INSERT INTO episode_artifacts(episode_id, name, sha256) VALUES (?,?,?)",
                        [(episode.id, name, sha) for name, sha in episode.artifacts.items()],
                    )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return new

    def _insert_pipelined(self, episodes: Sequence[Episode]) -> int:
        """PostgreSQL: the batch's new episodes and their rows in a few pipelined statements
        (a round trip per statement, not per row). A writer that stores the same episode at
        the same moment wins, and these rows are skipped whole (every insert ignores what is
        there)."""
        conn = self._conn
        fresh: dict[str, Episode] = {}
        for start in range(0, len(episodes), _PAGE):
            page = [e.id for e in episodes[start : start + _PAGE]]
            have = {
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM episodes WHERE id IN ({','.join('?' * len(page))})", page
                )
            }
            for episode in episodes[start : start + _PAGE]:
                if episode.id not in have:
                    fresh.setdefault(episode.id, episode)
        if not fresh:
            return 0
        batch = list(fresh.values())
        conn.executemany(_INSERT_EPISODE, [_episode_row(e) for e in batch])
        steps = [_step_row(e.id, s) for e in batch for s in e.steps]
        if steps:
            conn.executemany(_INSERT_STEP.replace("INSERT INTO", "INSERT OR IGNORE INTO"), steps)
        labels = [(e.id, i, lb.kind, lb.reason) for e in batch for i, lb in enumerate(e.labels)]
        if labels:
            conn.executemany(
                "INSERT OR IGNORE INTO labels(episode_id, seq, kind, reason) VALUES (?,?,?,?)",
                labels,
            )
        links = [(e.id, name, sha) for e in batch for name, sha in e.artifacts.items()]
        if links:
            conn.executemany(
                "INSERT OR IGNORE INTO episode_artifacts(episode_id, name, sha256) VALUES (?,?,?)",
                links,
            )
        return len(batch)

    def resolve_episode_id(self, prefix: str) -> str:
        """Expand a unique id prefix (at least 4 characters) to the full episode id."""
        text = prefix.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{4,32}", text):
            raise StoreError(f"example id {prefix!r} is not an episode id (hex, 4+ characters)")
        rows = self._conn.execute(
            "SELECT id FROM episodes WHERE id >= ? AND id < ? LIMIT 2", (text, text + "g")
        ).fetchall()
        if not rows:
            raise StoreError(f"unknown example id {prefix!r} in {self.location}; see `teach stats`")
        if len(rows) > 1:
            raise StoreError(f"example id {prefix!r} is ambiguous; give more characters")
        return rows[0][0]

    def get_episode(self, episode_id: str) -> Episode:
        """One episode by id (a unique prefix works too)."""
        full = self.resolve_episode_id(episode_id)
        return next(self.episodes(ids=[full]))

    def episodes(self, *, limit: int | None = None, **filters: Any) -> Iterator[Episode]:
        """Yield episodes matching every filter given, in the order they were recorded, with
        steps. The filters are :class:`EpisodeFilter`'s fields: ``ids``, ``outcome``,
        ``label``, ``model``, ``scenario``, ``category``, ``session``, ``arm``, ``since``,
        ``min_quality``, ``min_reward`` and ``include_errors``.

        ``label`` takes 0/1 or ``success``/``intervention``; ``scenario`` is a glob where
        ``*`` and ``?`` are wildcards and brackets are literal (``tool_selection[weather-*``);
        without brackets it also matches the case id (``weather-*``) or the family
        (``tool_selection``);
        ``since`` takes an ISO date, an epoch or a span such as ``7d``.

        Raises:
            TypeError: a filter that :class:`EpisodeFilter` doesn't have.
        """
        # the filters are checked now, the rows read as they are asked for
        return self._episodes(*EpisodeFilter(**filters).where_clause(self.backend), limit=limit)

    def _episodes(
        self, where: str, args: list[Any], *, limit: int | None = None
    ) -> Iterator[Episode]:
        # keyset pagination in insertion (rowid) order: no sort, no OFFSET rescans; with a
        # limit, no more rows are read (and turned into episodes) than it asks for
        page = f"{where} AND" if where else "WHERE"
        sql = f"SELECT rowid AS _row, * FROM episodes {page} rowid > ? ORDER BY rowid LIMIT ?"
        last = 0
        left = limit
        while left is None or left > 0:
            size = _PAGE if left is None else min(_PAGE, left)
            rows = self._conn.execute(sql, (*args, last, size)).fetchall()
            if not rows:
                return
            last = rows[-1]["_row"]
            yield from self._hydrate(rows)
            if len(rows) < size:
                return
            if left is not None:
                left -= len(rows)

    def count(self, **filters: Any) -> int:
        """How many episodes match the filters of :meth:`episodes` (:class:`EpisodeFilter`)."""
        where, args = EpisodeFilter(**filters).where_clause(self.backend)
        return self._conn.execute(f"SELECT COUNT(*) FROM episodes {where}", args).fetchone()[0]

    def _hydrate(self, rows: list[Any]) -> list[Episode]:
        episodes = {r["id"]: _episode_from_row(r) for r in rows}
        keys: list[Any] = list(episodes)
        if self.path is None:  # one array parameter: PostgreSQL parses no list of placeholders
            within, keys = "episode_id = ANY(?)", [keys]
        else:
            within = f"episode_id IN ({','.join('?' * len(keys))})"
        conn = self._conn
        for r in conn.execute(f"SELECT * FROM steps WHERE {within} ORDER BY episode_id, idx", keys):
            episodes[r["episode_id"]].steps.append(_step_from_row(r))
        for r in conn.execute(
            f"SELECT * FROM labels WHERE {within} ORDER BY episode_id, seq", keys
        ):
            episodes[r["episode_id"]].labels.append(Label(r["kind"], r["reason"]))
        for r in conn.execute(f"SELECT * FROM feedback WHERE {within} ORDER BY id", keys):
            episodes[r["episode_id"]].feedback.append(_feedback_from_row(r))
        for r in conn.execute(
            f"SELECT episode_id, name, sha256 FROM episode_artifacts WHERE {within}", keys
        ):
            episodes[r["episode_id"]].artifacts[r["name"]] = r["sha256"]
        return list(episodes.values())

    # -- feedback ----------------------------------------------------------------------------

    def add_feedback(
        self,
        episode_id: str,
        *,
        rating: int | None = None,
        aspects: dict[str, int] | None = None,
        comment: str | None = None,
        suggested_action: Any = None,
        step: int | None = None,
        correct_action: Any = None,
    ) -> Feedback:
        """Attach feedback to an episode (or one of its steps), validating every field first."""
        self._before_write()
        full = self.resolve_episode_id(episode_id)
        if rating is not None and not (isinstance(rating, int) and 1 <= rating <= 5):
            raise StoreError(f"--rating must be an integer from 1 to 5, got {rating!r}")
        for name, value in (aspects or {}).items():
            if not name or not (isinstance(value, int) and 1 <= value <= 5):
                raise StoreError(f"--aspect {name}={value!r}: each aspect is NAME=1..5")
        if (step is None) != (correct_action is None):
            raise StoreError("--step and --correct-action go together: give both or neither")
        if step is not None:
            n = self._conn.execute(
                "SELECT COUNT(*) FROM steps WHERE episode_id = ?", (full,)
            ).fetchone()[0]
            if not 0 <= step < n:
                raise StoreError(
                    f"--step {step} is out of range: example {full} has {n} step(s) (0..{n - 1})"
                )
        if rating is None and not comment and suggested_action is None and step is None:
            raise StoreError(
                "feedback needs at least one of --rating, --comment, --suggested-action "
                "or --step/--correct-action"
            )
        created = time.time()
        cur = self._conn.execute(
            "INSERT INTO feedback(episode_id, step_idx, rating, aspects, comment, suggested_action, "
            "correct_action, created_at) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
            (
                full,
                step,
                rating,
                dumps(aspects or {}),
                comment,
                None if suggested_action is None else dumps(suggested_action),
                None if correct_action is None else dumps(correct_action),
                created,
            ),
        )
        feedback_id = int(cur.fetchone()[0])
        return Feedback(
            id=feedback_id,
            episode_id=full,
            rating=rating,
            aspects=dict(aspects or {}),
            comment=comment,
            suggested_action=suggested_action,
            step=step,
            correct_action=correct_action,
            created_at=created,
        )

    def feedback(self, episode_id: str | None = None) -> list[Feedback]:
        """All feedback, or one episode's, oldest first."""
        if episode_id is None:
            rows = self._conn.execute("SELECT * FROM feedback ORDER BY id").fetchall()
        else:
            full = self.resolve_episode_id(episode_id)
            rows = self._conn.execute(
                "SELECT * FROM feedback WHERE episode_id = ? ORDER BY id", (full,)
            ).fetchall()
        return [_feedback_from_row(r) for r in rows]

    # -- the improvement pipeline's records --------------------------------------------------
    # Improvement jobs, training runs and registered models (schema 2) are rows of plain columns
    # that pytest_teach.pipeline turns into its records; these methods are the only SQL on them.

    def _record_table(self, table: str, columns: Iterable[str] = ()) -> str:
        """``table``'s key column, after checking the table and ``columns`` are the records'."""
        key = _RECORD_TABLES.get(table)
        if key is None:
            raise StoreError(
                f"{table!r} is not a record table; use one of {', '.join(_RECORD_TABLES)}"
            )
        known = self._record_columns.get(table)
        if known is None:
            if self.path is None:
                names = [c for c in self._conn.columns(table) if c != "rowid"]
            else:
                names = [r["name"] for r in self._conn.execute(f"PRAGMA table_info({table})")]
            known = self._record_columns[table] = frozenset(names)
        unknown = sorted(set(columns) - known)
        if unknown:
            raise StoreError(f"{table} has no column {unknown[0]!r}")
        return key

    def match_record_ids(self, table: str, prefix: str, *, limit: int = 2) -> list[str]:
        """The key of the row of ``table`` whose key is ``prefix``, else the keys (at most
        ``limit``) that start with ``prefix``, in key order.

        ``table`` is ``improvement_jobs``, ``training_runs`` or ``registered_models``.
        """
        key = self._record_table(table)
        row = self._conn.execute(f"SELECT {key} FROM {table} WHERE {key} = ?", (prefix,)).fetchone()
        if row is not None:
            return [row[0]]
        rows = self._conn.execute(
            f"SELECT {key} FROM {table} WHERE {key} >= ? AND {key} < ? ORDER BY {key} LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit),
        ).fetchall()
        return [r[0] for r in rows]

    def get_record(self, table: str, key: str) -> dict[str, Any] | None:
        """The row of ``table`` with key ``key`` as ``{column: value}``, or ``None``."""
        column = self._record_table(table)
        row = self._conn.execute(f"SELECT * FROM {table} WHERE {column} = ?", (key,)).fetchone()
        return None if row is None else _record(row)

    def list_records(self, table: str, **equal: Any) -> list[dict[str, Any]]:
        """The rows of ``table`` whose columns equal the values given (every row without any),
        newest first (by ``created_at``, then by insertion)."""
        self._record_table(table, equal)
        where = " AND ".join(f"{column} = ?" for column in equal)
        sql = f"SELECT * FROM {table}" + (f" WHERE {where}" if where else "")
        rows = self._conn.execute(
            sql + " ORDER BY created_at DESC, rowid DESC", tuple(equal.values())
        )
        return [_record(r) for r in rows.fetchall()]

    def insert_record(self, table: str, values: dict[str, Any]) -> None:
        """Add a row to ``table`` from ``{column: value}`` (JSON columns already encoded)."""
        self._record_table(table, values)
        columns = ", ".join(values)
        marks = ",".join("?" * len(values))
        with self._writing() as conn:
            conn.execute(f"INSERT INTO {table}({columns}) VALUES ({marks})", tuple(values.values()))

    def update_record(self, table: str, key: str, values: dict[str, Any]) -> None:
        """Set the columns in ``values`` on the row of ``table`` with key ``key``."""
        column = self._record_table(table, values)
        if not values:
            return
        sets = ", ".join(f"{name} = ?" for name in values)
        with self._writing() as conn:
            conn.execute(f"UPDATE {table} SET {sets} WHERE {column} = ?", (*values.values(), key))

    # -- statistics --------------------------------------------------------------------------

    def stats(self, **filters: Any) -> dict[str, Any]:
        """Counts by outcome, label, model and scenario (plus sessions, steps, feedback) of the
        episodes matching the filters of :meth:`episodes` (:class:`EpisodeFilter`)."""
        where, args = EpisodeFilter(**filters).where_clause(self.backend)
        conn = self._conn
        # one pass, in the column order of the episodes_stats index (which SQLite reads in
        # order, without sorting the table); each column's counts are summed here
        columns = ("model", "outcome", "label", "category", "scenario")
        counts: dict[str, dict[Any, int]] = {column: {} for column in columns}
        total = steps = 0
        listed = ", ".join(columns)
        for *keys, n, n_steps in conn.execute(
            f"SELECT {listed}, COUNT(*), SUM(n_steps) FROM episodes {where} GROUP BY {listed}", args
        ):
            total += n
            steps += int(n_steps or 0)
            for column, key in zip(columns, keys, strict=True):
                counts[column][key] = counts[column].get(key, 0) + n

        def grouped(column: str) -> dict[str, int]:
            # in SQLite's ORDER BY order on both backends: NULL, numbers, then text by code point
            def order(key: Any) -> tuple[int, Any]:
                return (0, 0) if key is None else (2, key) if isinstance(key, str) else (1, key)

            found = counts[column]
            return {("none" if k is None else str(k)): found[k] for k in sorted(found, key=order)}

        by_label = {
            {"0": "success", "1": "intervention", "none": "unlabeled"}[k]: n
            for k, n in grouped("label").items()
        }
        labeled = by_label.get("success", 0) + by_label.get("intervention", 0)
        return {
            "db": self.location,
            "schema_version": self.schema_version,
            "episodes": total,
            "steps": steps,
            "sessions": conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0],
            "feedback": conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0],
            "by_outcome": grouped("outcome"),
            "by_label": by_label,
            "by_model": grouped("model"),
            "by_category": grouped("category"),
            "by_scenario": grouped("scenario"),
            "intervention_share": (by_label.get("intervention", 0) / labeled) if labeled else None,
        }


#: The improvement pipeline's tables and their key columns.
_RECORD_TABLES = {
    "improvement_jobs": "id",
    "training_runs": "run_id",
    "registered_models": "id",
}

_INSERT_ARTIFACT = (
    "INSERT OR IGNORE INTO artifacts(sha256, size, media_type, relpath) VALUES (?,?,?,?)"
)
_INSERT_EPISODE = (
    "INSERT OR IGNORE INTO episodes(id, session_id, nodeid, scenario, category, model, arm, "
    "params, meta, outcome, label, label_reason, reward, reward_components, quality, metrics, "
    "duration_s, error, worker, created_at, n_steps) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_STEP = (
    "INSERT INTO steps(episode_id, idx, observation, action, messages, valid_actions, probs, "
    "entropy, label, correction, screenshot, error, intervention_p) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _episode_row(e: Episode) -> tuple[Any, ...]:
    return (
        e.id,
        e.session_id,
        e.nodeid,
        e.scenario,
        e.category,
        e.model,
        e.arm,
        dumps(e.params),
        dumps(e.meta),
        e.outcome,
        e.label,
        e.label_reason,
        e.reward,
        dumps(e.reward_components),
        e.quality,
        dumps(e.metrics),
        e.duration_s,
        e.error,
        e.worker,
        e.created_at,
        len(e.steps),
    )


def _step_row(episode_id: str, s: Step) -> tuple[Any, ...]:
    return (
        episode_id,
        s.index,
        dumps(s.observation),
        dumps(s.action),
        None if s.messages is None else dumps(s.messages),
        None if s.valid_actions is None else dumps(s.valid_actions),
        None if s.probs is None else dumps(s.probs),
        s.entropy,
        s.label,
        None if s.correction is None else dumps(s.correction),
        s.screenshot,
        None if s.error is None else dumps(s.error),
        s.intervention_p,
    )


def _record(row: Any) -> dict[str, Any]:
    """A record row as ``{column: value}`` (without PostgreSQL's insertion-order column)."""
    out = dict(row)
    out.pop("rowid", None)
    return out


def _newer_schema(location: str, version: int) -> str:
    return (
        f"{location} has schema {version}, newer than this pytest-teach supports "
        f"({SCHEMA_VERSION}); upgrade pytest-teach (the store was not changed)"
    )


def _check_digest(ref: ArtifactRef, digest: Any) -> None:
    if digest.hexdigest() != ref.sha256:
        raise StoreError(f"artifact {ref.sha256}: its content hashes to {digest.hexdigest()}")


class _ChunkReader(io.RawIOBase):
    """A PostgreSQL artifact read chunk by chunk (one row in memory at a time); a missing
    chunk is an error, never a short read."""

    def __init__(self, conn: Any, ref: ArtifactRef) -> None:
        self._conn = conn
        self._sha = ref.sha256
        self._left = ref.size
        self._seq = 0
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if not self._buffer:
            row = self._conn.execute(
                "SELECT data FROM artifact_chunks WHERE sha256 = ? AND seq = ?",
                (self._sha, self._seq),
            ).fetchone()
            if row is None:
                if self._left > 0:
                    raise StoreError(
                        f"artifact {self._sha}: chunk {self._seq} is missing, {self._left} bytes "
                        "unread; see `teach store check`"
                    )
                return 0
            self._seq += 1
            self._buffer = bytes(row[0])
            self._left -= len(self._buffer)
            if not self._buffer:
                return 0
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _glob_to_like(glob: str) -> str:
    """A GLOB pattern of :func:`_scenario_globs` (``*``, ``?`` and the literal bracket classes
    ``[[]`` and ``[]]``) as a PostgreSQL ``LIKE`` pattern."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        if glob.startswith("[[]", i) or glob.startswith("[]]", i):
            out.append(glob[i + 1])
            i += 3
            continue
        ch = glob[i]
        out.append({"*": "%", "?": "_", "%": "\\%", "_": "\\_", "\\": "\\\\"}.get(ch, ch))
        i += 1
    return "".join(out)


def _literal_brackets(pattern: str) -> str:
    """Scenario globs use ``*`` and ``?``; brackets match themselves, since parametrized
    scenario names contain them (``tool_selection[weather-001]``)."""
    return "".join({"[": "[[]", "]": "[]]"}.get(ch, ch) for ch in pattern)


def _scenario_globs(pattern: str) -> list[str]:
    """The SQLite ``GLOB`` patterns a scenario filter matches, in the forms users write.

    ``*`` and ``?`` are wildcards and brackets are literal. A pattern with a ``[`` of its own
    matches whole names only (``tool_selection[weather-*``). One without also matches the case id
    in the brackets (``weather-*`` matches ``tool_selection[weather-001]``) and the family before
    them (``tool_selection`` matches every ``tool_selection[...]``).
    """
    whole = _literal_brackets(pattern)
    if "[" in pattern:
        return [whole]
    return [whole, f"*[[]{whole}[]]", f"{whole}[[]*"]


def _label_value(label: int | str) -> int:
    mapping = {"0": 0, "1": 1, "success": 0, "intervention": 1}
    key = str(label).strip().lower()
    if key not in mapping:
        raise StoreError(f"label {label!r} is not one of success, intervention, 0, 1")
    return mapping[key]


def _episode_from_row(r: Any) -> Episode:
    return Episode(
        id=r["id"],
        session_id=r["session_id"],
        nodeid=r["nodeid"],
        scenario=r["scenario"],
        category=r["category"],
        model=r["model"],
        arm=r["arm"],
        params=loads(r["params"]),
        meta=loads(r["meta"]),
        outcome=r["outcome"],
        label=r["label"],
        label_reason=r["label_reason"],
        reward=r["reward"],
        reward_components=loads(r["reward_components"]),
        quality=r["quality"],
        metrics=loads(r["metrics"]),
        duration_s=r["duration_s"],
        error=r["error"],
        worker=r["worker"],
        created_at=r["created_at"],
    )


def _step_from_row(r: Any) -> Step:
    return Step(
        index=r["idx"],
        observation=loads(r["observation"]),
        action=loads(r["action"]),
        messages=loads(r["messages"]),
        valid_actions=loads(r["valid_actions"]),
        probs=loads(r["probs"]),
        entropy=r["entropy"],
        label=r["label"],
        correction=loads(r["correction"]),
        screenshot=r["screenshot"],
        error=loads(r["error"]),
        intervention_p=r["intervention_p"],
    )


def _feedback_from_row(r: Any) -> Feedback:
    return Feedback(
        id=r["id"],
        episode_id=r["episode_id"],
        rating=r["rating"],
        aspects=loads(r["aspects"]),
        comment=r["comment"],
        suggested_action=loads(r["suggested_action"]),
        step=r["step_idx"],
        correct_action=loads(r["correct_action"]),
        created_at=r["created_at"],
    )


def prepare_store(target: str | os.PathLike[str]) -> str:
    """Make ready a store that a pytest run is about to record into, and return its name for
    messages: a SQLite file's folder is made (the run makes the file); a PostgreSQL database is
    reached and given the store's tables now, so a server that can't be reached fails in one
    line before anything runs.

    Raises:
        StoreError: the database can't be reached or used.
    """
    if not is_url(target):
        Path(target).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return str(target)
    with Store.open(target, create=True) as store:
        return store.location


def open_store(path: str | os.PathLike[str], *, create: bool = False) -> Store:
    """Open the experience store at ``path`` (a SQLite file or a ``postgresql://`` URL) for
    reading (and writing feedback)."""
    return Store.open(path, create=create)
