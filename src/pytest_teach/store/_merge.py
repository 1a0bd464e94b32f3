"""Merging stores: the shards of a CI matrix into one team store, or a whole store into a new one.

:func:`merge_stores` copies every source's sessions, artifacts, episodes (with their steps,
labels and artifact links), feedback and the improvement pipeline's records (improvement jobs,
training runs, registered models) into DEST, keeping their ids, between any backends (SQLite
files and ``postgresql://`` URLs, on either side):

- a row DEST lacks is added; a row DEST holds as it is is left alone, so merging twice adds
  nothing;
- the same id with different content is a conflict: reported by table and id, and DEST's row is
  kept as it is. A session whose end DEST has not seen yet (``finished_at``, ``exit_status`` and
  the other columns DEST holds as NULL) is completed from the source: a NULL on either side is
  never a conflict;
- feedback ids are integers that every shard starts at 1, so feedback is matched by its content
  (episode, step, rating, aspects, comment, actions, time); new feedback keeps its id when DEST
  has it free, else gets the next one (counted as renumbered).

Episodes go in batches, each in one DEST transaction together with its feedback, so an
interrupted merge leaves only whole episodes and a rerun finishes the job. The sources are read
page by page (keyset order), artifacts streamed: memory does not grow with a store's size.
Every insert ignores a row that is already there (``INSERT OR IGNORE``; on PostgreSQL ``ON
CONFLICT DO NOTHING``), so a merge into a store that pytest sessions are writing loses nothing.

:func:`copy_store` is a merge into a store that holds nothing yet.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from .._progress import Echo, Progress
from ._codec import dumps, loads
from ._models import Episode, Feedback
from ._postgres import _first_line, database_errors, is_url
from ._store import (
    _INSERT_EPISODE,
    _INSERT_STEP,
    ArtifactRef,
    Store,
    StoreError,
    _episode_row,
    _step_row,
)

__all__ = ["MergeConflict", "MergeReport", "TableMerge", "copy_store", "merge_stores"]

#: Episodes (and rows of the other tables) written per DEST transaction.
BATCH = 500
#: Conflicts listed by id in a report; the counts cover them all.
SHOWN_CONFLICTS = 50

#: The tables a merge copies, in the order it copies them (referenced rows first).
TABLES = (
    "sessions",
    "artifacts",
    "episodes",
    "feedback",
    "improvement_jobs",
    "training_runs",
    "registered_models",
)
#: The plain-column tables and their key columns.
_KEYS = {
    "sessions": "id",
    "improvement_jobs": "id",
    "training_runs": "run_id",
    "registered_models": "id",
}
#: Their columns that hold JSON (compared by value, not by spelling).
_JSON_COLUMNS = {
    "sessions": frozenset({"argv"}),
    "improvement_jobs": frozenset({"scope", "stats"}),
    "training_runs": frozenset({"params", "metrics"}),
    "registered_models": frozenset({"metrics"}),
}
#: Tables whose NULL columns in DEST are filled from the source (a session that ended later).
_FILLED = frozenset({"sessions"})
#: The rows that tell a store holds something (``copy`` refuses such a DEST).
_DATA_TABLES = (
    "episodes",
    "sessions",
    "feedback",
    "artifacts",
    "improvement_jobs",
    "training_runs",
    "registered_models",
)
#: Why a table's rows are skipped (see :class:`TableMerge`).
_SKIPPED = {
    "artifacts": "their bytes could not be read",
    "episodes": "they link an artifact that could not be read",
    "feedback": "on episodes that conflict or were skipped",
}
#: An episode's fields compared between the stores (its feedback is merged on its own).
_EPISODE_FIELDS = tuple(f.name for f in fields(Episode) if f.name != "feedback")


@dataclass
class TableMerge:
    """One table's counts: rows added, rows DEST already held, conflicts (same id, different
    content; DEST kept), rows added under a new id (feedback), rows completed (a session's
    NULLs filled) and rows skipped (feedback on a conflicting episode, episodes whose artifact
    could not be read)."""

    name: str
    added: int = 0
    present: int = 0
    conflicts: int = 0
    renumbered: int = 0
    filled: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class MergeConflict:
    """A row of ``table`` with key ``key`` that ``source`` holds with other content than DEST:
    ``fields`` name the columns that differ. DEST's row was kept."""

    table: str
    key: str
    source: str
    fields: tuple[str, ...]

    def line(self) -> str:
        """The conflict as one line."""
        what = ", ".join(self.fields) if self.fields else "content"
        return f"{self.table} {self.key} (from {self.source}): differs in {what}; DEST kept its row"


@dataclass
class MergeReport:
    """What a merge did: per-table counts, the conflicts (the first :data:`SHOWN_CONFLICTS` by
    id), and notes (artifacts that could not be read)."""

    sources: list[str]
    dest: str
    tables: dict[str, TableMerge] = field(
        default_factory=lambda: {name: TableMerge(name) for name in TABLES}
    )
    conflicts: list[MergeConflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verb: str = "merged"

    @property
    def conflict_count(self) -> int:
        """Conflicts in all tables."""
        return sum(t.conflicts for t in self.tables.values())

    @property
    def ok(self) -> bool:
        """Whether the merge found no conflict and skipped nothing."""
        return not self.conflict_count and not any(t.skipped for t in self.tables.values())

    def conflict(self, table: str, key: str, source: str, differing: Sequence[str]) -> None:
        """Count a conflict and keep it for the report (the first ones)."""
        self.tables[table].conflicts += 1
        if len(self.conflicts) < SHOWN_CONFLICTS:
            self.conflicts.append(MergeConflict(table, key, source, tuple(differing)))

    def lines(self) -> list[str]:
        """The report: a header, one line per table, the conflicts, the notes, the verdict."""
        out = [f"{self.verb} {', '.join(self.sources)} into {self.dest}:"]
        head = ("added", "already there", "conflicts", "renumbered")
        width = max(len(name) for name in self.tables)
        out.append(f"  {'':<{width}}  " + "  ".join(f"{h:>13}" for h in head))
        for t in self.tables.values():
            extra = []
            if t.filled:
                extra.append(f"{t.filled} completed from a source")
            if t.skipped:
                extra.append(f"{t.skipped} skipped: {_SKIPPED[t.name]}")
            counts = (t.added, t.present, t.conflicts, t.renumbered)
            row = f"  {t.name:<{width}}  " + "  ".join(f"{n:>13}" for n in counts)
            out.append(row + (f"  ({'; '.join(extra)})" if extra else ""))
        out.extend(f"conflict: {c.line()}" for c in self.conflicts)
        hidden = self.conflict_count - len(self.conflicts)
        if hidden > 0:
            out.append(f"conflict: ... and {hidden} more")
        out.extend(f"note: {n}" for n in self.notes)
        if self.ok:
            out.append("no conflicts")
        else:
            out.append(
                f"{self.conflict_count} conflict(s): DEST kept its rows; the sources' differing "
                "rows were not copied"
            )
        return out


def merge_stores(
    sources: Sequence[str | os.PathLike[str]],
    dest: str | os.PathLike[str],
    *,
    progress: Echo | None = None,
) -> MergeReport:
    """Merge every store of ``sources`` into ``dest`` (created when missing), keeping ids.

    ``sources`` and ``dest`` are SQLite files or ``postgresql://`` URLs. The sources are only
    read. ``progress`` (``click.echo``, a list's ``append``) gets progress lines of long merges.
    Returns the :class:`MergeReport`; conflicts are reported there, never overwritten.

    Raises:
        StoreError: no sources, a source that is missing or can't be opened, DEST among the
            sources, or DEST can't be opened or written (one line naming it).
    """
    if not sources:
        raise StoreError("give at least one store to merge")
    return _merge(sources, dest, progress=progress, verb="merged", fresh=False)


def copy_store(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    progress: Echo | None = None,
) -> MergeReport:
    """Copy the store ``source`` whole into ``dest``, between any backends, keeping ids.

    ``dest`` must be a new file, or a database with no pytest-teach rows (no tables, or empty
    ones); anything else is refused before a byte is written (finish an interrupted copy with
    :func:`merge_stores`).

    Raises:
        StoreError: ``source`` can't be opened, or ``dest`` already holds a store.
    """
    return _merge([source], dest, progress=progress, verb="copied", fresh=True)


def _merge(
    sources: Sequence[str | os.PathLike[str]],
    dest: str | os.PathLike[str],
    *,
    progress: Echo | None,
    verb: str,
    fresh: bool,
) -> MergeReport:
    dest_key = _identity(dest)
    for source in sources:
        if _identity(source) == dest_key:
            raise StoreError(f"{_printable(dest)} is both a source and DEST; merge into another")
    if len(set(map(_identity, sources))) < len(sources):
        raise StoreError("a store is named twice among the sources")
    opened: list[Store] = []
    try:
        # every source first: a missing one is refused before DEST is created
        for source in sources:
            opened.append(Store.open(source, create=False))
        if fresh and (held := _holds_data(dest)):
            raise StoreError(
                f"{_printable(dest)} already holds {held}; copy writes only into a new store "
                "(merge into it with `teach store merge SRC --into DEST`)"
            )
        with Store.open(dest, create=True) as out:
            report = MergeReport([s.location for s in opened], out.location, verb=verb)
            for i, src in enumerate(opened, 1):
                prefix = f"[{'copy' if fresh else 'merge'} {i}/{len(opened)}] "
                try:
                    _Merger(src, out, report, progress, prefix).run()
                except (sqlite3.DatabaseError, *database_errors()) as exc:
                    raise StoreError(
                        f"merging {src.location} into {out.location}: {_first_line(exc)} "
                        "(the batches written so far are whole; run the merge again to finish)"
                    ) from None
            return report
    finally:
        for store in opened:
            store.close()


def _printable(target: str | os.PathLike[str]) -> str:
    if is_url(target):
        from ..redaction import redact_url

        return redact_url(str(target))
    return str(Path(target).expanduser())


def _identity(target: str | os.PathLike[str]) -> str:
    """What tells two names of one store apart: the resolved file, or the server and database."""
    if is_url(target):
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(str(target).strip())
            return f"pg:{parts.hostname}:{parts.port or 5432}/{parts.path.lstrip('/')}"
        except ValueError:
            return str(target)
    return str(Path(target).expanduser().resolve())


def _holds_data(target: str | os.PathLike[str]) -> str | None:
    """What the store at ``target`` holds (``"3 episodes"``), or None when it is new or empty.
    Reads only: nothing is created or migrated."""
    if is_url(target):
        from ._postgres import Target

        conn = Target(str(target)).connect()
        try:
            tables = conn.table_names()
            if not tables:
                return None
            if "meta" not in tables:
                return f"tables {sorted(tables)[:5]} (it is not a pytest-teach store)"
            return _rows_held(conn, tables)
        finally:
            conn.close()
    path = Path(target).expanduser()
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return None
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a pytest-teach store")
    conn2 = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn2.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return _rows_held(conn2, tables) if tables else "a file that is not empty"
    except sqlite3.DatabaseError as exc:
        return f"a file SQLite can't read as a store ({exc})"
    finally:
        conn2.close()


def _rows_held(conn: Any, tables: set[str]) -> str | None:
    for table in _DATA_TABLES:
        if table in tables:
            n = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            if n:
                return f"{n} row(s) in {table}"
    return None


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _value(table: str, column: str, value: Any) -> Any:
    if column in _JSON_COLUMNS.get(table, ()) and isinstance(value, str):
        try:
            return loads(value)
        except ValueError:
            return value
    return value


def _feedback_key(f: Feedback) -> tuple[Any, ...]:
    """What makes two feedback rows the same feedback (the id aside)."""
    return (
        f.episode_id,
        f.step,
        f.rating,
        dumps(f.aspects or {}),
        f.comment,
        None if f.suggested_action is None else dumps(f.suggested_action),
        None if f.correct_action is None else dumps(f.correct_action),
        f.created_at,
    )


_INSERT_FEEDBACK = (
    "INSERT INTO feedback(id, episode_id, step_idx, rating, aspects, comment, "
    "suggested_action, correct_action, created_at) VALUES (?,?,?,?,?,?,?,?,?)"
)
_INSERT_FEEDBACK_NEW_ID = (
    "INSERT INTO feedback(episode_id, step_idx, rating, aspects, comment, suggested_action, "
    "correct_action, created_at) VALUES (?,?,?,?,?,?,?,?)"
)


def _feedback_values(f: Feedback) -> tuple[Any, ...]:
    return (
        f.episode_id,
        f.step,
        f.rating,
        dumps(f.aspects or {}),
        f.comment,
        None if f.suggested_action is None else dumps(f.suggested_action),
        None if f.correct_action is None else dumps(f.correct_action),
        f.created_at,
    )


class _Unreadable(Exception):
    """A source's artifact bytes can't be read."""


class _Reading(io.RawIOBase):
    """A source artifact's stream whose read errors are the source's (:class:`_Unreadable`),
    told apart from DEST's write errors."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except OSError as exc:
            raise _Unreadable(exc.strerror or str(exc)) from None

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class _Merger:
    """One source merged into DEST."""

    def __init__(
        self, src: Store, dest: Store, report: MergeReport, echo: Echo | None, prefix: str
    ) -> None:
        self.src = src
        self.dest = dest
        self.report = report
        self.echo = echo
        self.prefix = prefix
        self.name = src.location
        #: Artifacts of this source whose bytes could not be read (their episodes are skipped).
        self.unreadable: set[str] = set()

    def run(self) -> None:
        self.rows("sessions")
        self.artifacts()
        self.episodes()
        for table in ("improvement_jobs", "training_runs", "registered_models"):
            self.rows(table)

    # -- plain rows: sessions and the pipeline's records ---------------------------------------

    def rows(self, table: str) -> None:
        key = _KEYS[table]
        counts = self.report.tables[table]
        for batch in _chunks(_keyset(self.src, table, key), BATCH):
            keys = [r[key] for r in batch]
            marks = ",".join("?" * len(keys))
            held = {
                r[key]: r
                for r in self.dest.conn.execute(
                    f"SELECT * FROM {table} WHERE {key} IN ({marks})", keys
                ).fetchall()
            }
            new: list[dict[str, Any]] = []
            fills: list[tuple[str, str, Any]] = []
            for row in batch:
                mine = held.get(row[key])
                if mine is None:
                    new.append(row)
                    continue
                differ, fill = [], []
                lenient = table in _FILLED  # a NULL on either side is not a conflict
                for column, value in row.items():
                    theirs = mine[column]
                    if lenient and value is None:
                        continue
                    if lenient and theirs is None:
                        fill.append(column)
                    elif _value(table, column, theirs) != _value(table, column, value):
                        differ.append(column)
                if differ:
                    self.report.conflict(table, str(row[key]), self.name, differ)
                elif fill:
                    fills.extend((column, row[key], row[column]) for column in fill)
                    counts.filled += 1
                else:
                    counts.present += 1
            if not new and not fills:
                continue
            with self.dest.transaction() as conn:
                for row in new:
                    columns = [c for c in row if c != "rowid"]
                    sql = (
                        f"INSERT OR IGNORE INTO {table}({', '.join(columns)}) "
                        f"VALUES ({','.join('?' * len(columns))})"
                    )
                    if conn.execute(sql, [row[c] for c in columns]).rowcount:
                        counts.added += 1
                    else:  # written by another writer since it was looked up
                        counts.present += 1
                for column, k, value in fills:
                    conn.execute(
                        f"UPDATE {table} SET {column} = ? WHERE {key} = ? AND {column} IS NULL",
                        (value, k),
                    )

    # -- artifacts -----------------------------------------------------------------------------

    def artifacts(self) -> None:
        counts = self.report.tables["artifacts"]
        for batch in _chunks(self.src.artifacts(), BATCH):
            shas = [ref.sha256 for ref in batch]
            marks = ",".join("?" * len(shas))
            held = {
                r[0]
                for r in self.dest.conn.execute(
                    f"SELECT sha256 FROM artifacts WHERE sha256 IN ({marks})", shas
                ).fetchall()
            }
            for ref in batch:
                if ref.sha256 in held:
                    counts.present += 1
                elif self._copy_artifact(ref):
                    # its row is new in DEST (the bytes may have been there: SQLite stores in
                    # one folder share artifacts/)
                    counts.added += 1

    def _copy_artifact(self, ref: ArtifactRef) -> bool:
        """Copy one artifact's bytes and row; False when the source's bytes can't be read (a
        missing or damaged file)."""
        try:
            try:
                stream = self.src.open_artifact(ref.sha256)
            except OSError as exc:
                raise _Unreadable(exc.strerror or str(exc)) from None
            with stream:
                self.dest.copy_artifact_in(ref, _Reading(stream))
            return True
        except (_Unreadable, StoreError) as exc:
            if isinstance(exc, StoreError) and not str(exc).startswith(f"artifact {ref.sha256}"):
                raise  # DEST can't take it: not this artifact's fault
            self.unreadable.add(ref.sha256)
            self.report.tables["artifacts"].skipped += 1
            if len(self.report.notes) < SHOWN_CONFLICTS:
                self.report.notes.append(
                    f"artifact {ref.sha256} of {self.name} could not be read ({exc}); "
                    "the episodes that link it were not copied"
                )
            return False

    # -- episodes and their feedback -----------------------------------------------------------

    def episodes(self) -> None:
        total = self.src.count()
        done = 0
        bar = None if importlib.util.find_spec("tqdm") else False
        with Progress(
            total, unit="episode", echo=self.echo, prefix=self.prefix, every=None, bar=bar
        ) as progress:
            for batch in _chunks(self.src.episodes(), BATCH):
                self._episode_batch(batch)
                done += len(batch)
                progress.update(done)

    def _episode_batch(self, batch: list[Episode]) -> None:
        counts = self.report.tables["episodes"]
        there = _present(self.dest.conn, "episodes", "id", [e.id for e in batch])
        held = {e.id: e for e in self.dest.episodes(ids=sorted(there))} if there else {}
        new: list[Episode] = []
        feedback_of: list[Episode] = []  # episodes whose feedback is merged
        for episode in batch:
            mine = held.get(episode.id)
            if mine is None:
                lost = [sha for sha in episode.artifacts.values() if sha in self.unreadable]
                if lost:
                    counts.skipped += 1
                    self.report.tables["feedback"].skipped += len(episode.feedback)
                    continue
                new.append(episode)
                feedback_of.append(episode)
                continue
            differ = [
                name for name in _EPISODE_FIELDS if getattr(episode, name) != getattr(mine, name)
            ]
            if differ:
                self.report.conflict("episodes", episode.id, self.name, differ)
                self.report.tables["feedback"].skipped += len(episode.feedback)
                continue
            counts.present += 1
            feedback_of.append(episode)
        wanted = self._new_feedback(feedback_of, held)
        if not new and not wanted:
            return
        with self.dest.transaction() as conn:
            # looked up again inside the transaction: another writer may have stored some since
            there = _present(conn, "episodes", "id", [e.id for e in new]) if new else set()
            added = [e for e in new if e.id not in there]
            counts.present += len(new) - len(added)
            counts.added += len(added)
            # a round trip per statement, not per row; each insert ignores a row that is there
            if added:
                conn.executemany(_INSERT_EPISODE, [_episode_row(e) for e in added])
            steps = [_step_row(e.id, s) for e in added for s in e.steps]
            if steps:
                conn.executemany(_or_ignore(_INSERT_STEP), steps)
            labels = [(e.id, i, lb.kind, lb.reason) for e in added for i, lb in enumerate(e.labels)]
            if labels:
                conn.executemany(
                    "INSERT OR IGNORE INTO labels(episode_id, seq, kind, reason) VALUES (?,?,?,?)",
                    labels,
                )
            links = [(e.id, name, sha) for e in added for name, sha in e.artifacts.items()]
            if links:
                conn.executemany(
                    "INSERT OR IGNORE INTO episode_artifacts(episode_id, name, sha256) "
                    "VALUES (?,?,?)",
                    links,
                )
            if wanted:
                self._insert_feedback(conn, wanted)

    def _new_feedback(self, episodes: list[Episode], held: dict[str, Episode]) -> list[Feedback]:
        """The source's feedback on ``episodes`` that DEST lacks (matched by content)."""
        counts = self.report.tables["feedback"]
        wanted: list[Feedback] = []
        for episode in episodes:
            if not episode.feedback:
                continue
            mine = held.get(episode.id)
            there = Counter(_feedback_key(f) for f in (mine.feedback if mine else ()))
            for f in episode.feedback:
                k = _feedback_key(f)
                if there[k]:
                    there[k] -= 1
                    counts.present += 1
                else:
                    wanted.append(f)
        return wanted

    def _insert_feedback(self, conn: Any, wanted: list[Feedback]) -> None:
        """Add feedback inside the batch's transaction: under its own id where DEST has that
        id free, else under the next one."""
        counts = self.report.tables["feedback"]
        postgres = self.dest.backend == "postgresql"
        if postgres:
            # no other writer takes a feedback id until this transaction ends
            conn.execute("LOCK TABLE feedback IN SHARE ROW EXCLUSIVE MODE")
        # this transaction is the only feedback writer now, so the free ids are known exactly
        taken = _present(conn, "feedback", "id", [f.id for f in wanted])
        own = [f for f in wanted if f.id not in taken]
        later = [f for f in wanted if f.id in taken]
        if own:
            conn.executemany(_INSERT_FEEDBACK, [(f.id, *_feedback_values(f)) for f in own])
            counts.added += len(own)
        if postgres:  # the sequence goes past the ids given, so later inserts don't collide
            seq = conn.execute("SELECT pg_get_serial_sequence('feedback', 'id')").fetchone()[0]
            last, called = conn.execute(f"SELECT last_value, is_called FROM {seq}").fetchone()
            top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM feedback").fetchone()[0]
            conn.execute(
                "SELECT setval(?, ?, false)", (seq, max(top, last if called else last - 1) + 1)
            )
        for f in later:
            conn.execute(_INSERT_FEEDBACK_NEW_ID, _feedback_values(f))
            counts.added += 1
            counts.renumbered += 1


def _present(conn: Any, table: str, key: str, keys: Sequence[Any]) -> set[Any]:
    """Which of ``keys`` ``table`` holds."""
    found: set[Any] = set()
    for start in range(0, len(keys), BATCH):
        page = list(keys[start : start + BATCH])
        marks = ",".join("?" * len(page))
        found.update(
            r[0] for r in conn.execute(f"SELECT {key} FROM {table} WHERE {key} IN ({marks})", page)
        )
    return found


def _or_ignore(sql: str) -> str:
    """An ``INSERT`` that skips a row whose key is there already."""
    return sql.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)


def _keyset(store: Store, table: str, key: str) -> Iterator[dict[str, Any]]:
    """``table``'s rows as ``{column: value}`` in key order, a page at a time."""
    last: str | None = None
    while True:
        if last is None:
            rows = store.conn.execute(
                f"SELECT * FROM {table} ORDER BY {key} LIMIT ?", (BATCH,)
            ).fetchall()
        else:
            rows = store.conn.execute(
                f"SELECT * FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?", (last, BATCH)
            ).fetchall()
        for r in rows:
            row = dict(r)
            row.pop("rowid", None)
            yield row
        if len(rows) < BATCH:
            return
        last = rows[-1][key]
