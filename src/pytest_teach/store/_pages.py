"""Pages of the store for a viewer: a sorted, searched page of episodes, the episodes recorded
after a point, episode counts per session, and the review queue's next unreviewed episode.

Each query reads one page (``LIMIT``), never the whole store, and is written in SQLite's
spelling with ``?`` placeholders, so it runs on PostgreSQL too. A page that follows another is
found by the last row's sort key (keyset paging), so a deep page costs what the first does, and
a count stops at :data:`COUNT_CAP`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._store import EpisodeFilter, Store, StoreError

__all__ = [
    "COUNT_CAP",
    "EPISODE_SORTS",
    "QUEUE_ORDERS",
    "EpisodePage",
    "EpisodeRow",
    "QueueState",
    "episode_page",
    "episodes_after",
    "review_queue",
    "session_counts",
]

#: The columns an episode page sorts by, by the name a viewer gives them.
EPISODE_SORTS = {
    "time": "rowid",
    "scenario": "scenario",
    "model": "model",
    "outcome": "outcome",
    "reward": "reward",
    "duration": "duration_s",
}
#: An episode page counts the matching episodes up to this many (then says "at least").
COUNT_CAP = 10_000
#: How the review queue orders the unreviewed episodes.
QUEUE_ORDERS = ("uncertainty", "failures", "time")

_ROW_COLUMNS = (
    "rowid AS _row, id, session_id, scenario, category, model, arm, outcome, label, "
    "label_reason, reward, duration_s, created_at, "
    "(SELECT COUNT(*) FROM steps WHERE steps.episode_id = episodes.id) AS n_steps, "
    "(SELECT COUNT(*) FROM feedback WHERE feedback.episode_id = episodes.id) AS n_feedback"
)
_SEARCHED = ("id", "scenario", "nodeid", "model", "label_reason")
_FAILURES_FIRST = "CASE outcome WHEN 'intervention' THEN 0 WHEN 'error' THEN 1 ELSE 2 END"
_UNREVIEWED = "NOT EXISTS (SELECT 1 FROM feedback WHERE feedback.episode_id = episodes.id)"


@dataclass
class EpisodeRow:
    """One episode as a list shows it: no steps, the number of its steps and feedback."""

    rowid: int
    id: str
    session_id: str | None
    scenario: str
    category: str | None
    model: str | None
    arm: str | None
    outcome: str
    label: int | None
    label_reason: str | None
    reward: float | None
    duration_s: float | None
    created_at: float
    steps: int
    feedback: int


@dataclass
class EpisodePage:
    """A page of episodes: its rows, how many match in all (at most :data:`COUNT_CAP`; see
    ``capped``), where the page starts, and the cursors of the pages beside it."""

    rows: list[EpisodeRow]
    total: int
    offset: int
    limit: int
    capped: bool = False
    more: bool | None = None
    sort: str = "time"

    @property
    def has_next(self) -> bool:
        """Whether more rows follow this page."""
        if self.more is not None:
            return self.more
        return self.offset + len(self.rows) < self.total

    @property
    def next_cursor(self) -> str:
        """The ``after`` of the next page: its last row's sort key (empty without rows)."""
        return cursor_of(self.rows[-1], self.sort) if self.rows else ""

    @property
    def prev_cursor(self) -> str:
        """The ``before`` of the previous page: its first row's sort key (empty without rows)."""
        return cursor_of(self.rows[0], self.sort) if self.rows else ""


@dataclass
class QueueState:
    """Where a review stands: how many episodes are in scope, how many have feedback, and the
    unreviewed episode at ``position`` (``None`` past the last)."""

    total: int
    reviewed: int
    position: int
    episode_id: str | None

    @property
    def remaining(self) -> int:
        """Episodes in scope without feedback."""
        return self.total - self.reviewed


_SORT_FIELDS = {
    "time": "rowid",
    "scenario": "scenario",
    "model": "model",
    "outcome": "outcome",
    "reward": "reward",
    "duration": "duration_s",
}


def cursor_of(row: EpisodeRow, sort: str = "time") -> str:
    """The keyset cursor of ``row`` for a page sorted by ``sort``: its sort value and its
    insertion position, as JSON (``[value, rowid]``)."""
    if sort == "time":
        return json.dumps([row.rowid, row.rowid])
    return json.dumps([getattr(row, _SORT_FIELDS[sort]), row.rowid], ensure_ascii=False)


def _parse_cursor(text: str, sort: str) -> tuple[Any, int]:
    try:
        value, rowid = json.loads(text)
    except (ValueError, TypeError):
        raise StoreError(f"page cursor {text[:80]!r} is not [value, position]") from None
    numeric = sort in ("time", "reward", "duration")
    ok_value = (
        value is None
        or (isinstance(value, str) and not numeric)
        or (isinstance(value, (int, float)) and not isinstance(value, bool) and numeric)
    )
    if not ok_value or not isinstance(rowid, int) or isinstance(rowid, bool):
        raise StoreError(f"page cursor {text[:80]!r} does not fit a page sorted by {sort}")
    return value, rowid


def _keyset(
    column: str, value: Any, rowid: int, *, ascending: bool, after: bool
) -> tuple[str, list[Any]]:
    """The rows after (or before) the one with sort ``value`` at ``rowid`` in the page order
    ``(column IS NULL), column, rowid``: missing values last, ``column`` and ``rowid`` ascending
    or descending."""
    later, earlier = (">", "<") if ascending else ("<", ">")
    if column == "rowid":
        return f"rowid {later if after else earlier} ?", [rowid]
    if after:
        if value is None:
            return f"({column} IS NULL AND rowid {later} ?)", [rowid]
        tie = f"{column} {later} ? OR ({column} = ? AND rowid {later} ?)"
        return f"({column} IS NULL OR {tie})", [value, value, rowid]
    if value is None:
        return f"({column} IS NOT NULL OR rowid {earlier} ?)", [rowid]
    tie = f"{column} {earlier} ? OR ({column} = ? AND rowid {earlier} ?)"
    return f"({column} IS NOT NULL AND ({tie}))", [value, value, rowid]


def _row(r: Any) -> EpisodeRow:
    return EpisodeRow(
        rowid=int(r["_row"]),
        id=r["id"],
        session_id=r["session_id"],
        scenario=r["scenario"],
        category=r["category"],
        model=r["model"],
        arm=r["arm"],
        outcome=r["outcome"],
        label=r["label"],
        label_reason=r["label_reason"],
        reward=r["reward"],
        duration_s=r["duration_s"],
        created_at=r["created_at"],
        steps=int(r["n_steps"]),
        feedback=int(r["n_feedback"]),
    )


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(
    store: Store,
    filters: EpisodeFilter,
    *,
    text: str | None = None,
    until: float | None = None,
    extra: Sequence[str] = (),
) -> tuple[str, list[Any]]:
    where, args = filters.where_clause(store.backend)
    clauses = [where.removeprefix("WHERE ")] if where else []
    if text and text.strip():
        pattern = _like(text.strip())
        clauses.append("(" + " OR ".join(f"LOWER({c}) LIKE ? ESCAPE '\\'" for c in _SEARCHED) + ")")
        args.extend([pattern] * len(_SEARCHED))
    if until is not None:
        clauses.append("created_at < ?")
        args.append(float(until))
    clauses.extend(extra)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


def episode_page(
    store: Store,
    filters: EpisodeFilter | None = None,
    *,
    text: str | None = None,
    until: float | None = None,
    sort: str = "time",
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
    after: str | None = None,
    before: str | None = None,
) -> EpisodePage:
    """One page of the episodes matching ``filters``, ``text`` (a case-insensitive substring of
    the id, scenario, test id, model or failure reason) and ``until`` (recorded before that
    epoch), sorted by ``sort`` (a key of :data:`EPISODE_SORTS`; missing values last, then by
    insertion).

    The page starts at ``offset``, or, cheaply at any depth, right after the row whose cursor
    is ``after`` (:attr:`EpisodePage.next_cursor`) or ends right before the one whose cursor is
    ``before`` (:attr:`EpisodePage.prev_cursor`); ``offset`` then only numbers the rows. The
    count stops at :data:`COUNT_CAP` (``capped`` says so).

    Raises:
        StoreError: an unknown ``sort``, a negative ``offset``, a ``limit`` under 1, or a cursor
            that is not one of this sort's.
    """
    column = EPISODE_SORTS.get(sort)
    if column is None:
        raise StoreError(f"sort {sort!r} is not one of {', '.join(EPISODE_SORTS)}")
    if offset < 0 or limit < 1:
        raise StoreError(
            f"a page starts at 0 or later and holds 1 or more rows (got {offset}, {limit})"
        )
    if after and before:
        raise StoreError("a page starts after one row or ends before one, not both")
    where, args = _where(store, filters or EpisodeFilter(), text=text, until=until)
    conn = store.conn
    counted = conn.execute(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM episodes {where} LIMIT ?) AS matched",
        (*args, COUNT_CAP + 1),
    ).fetchone()[0]
    capped = int(counted) > COUNT_CAP
    total = min(int(counted), COUNT_CAP)
    mark = after or before
    backwards = bool(before)
    page_where, page_args = where, list(args)
    if mark:
        value, rowid = _parse_cursor(mark, sort)
        clause, extra = _keyset(column, value, rowid, ascending=not descending, after=not backwards)
        page_where = f"{where} AND {clause}" if where else f"WHERE {clause}"
        page_args += extra
    direction = "DESC" if descending != backwards else "ASC"
    nulls = "DESC" if backwards else "ASC"
    if column == "rowid":  # never missing: the bare key lets the table's own order serve
        order = f"rowid {direction}"
    else:
        order = f"({column} IS NULL) {nulls}, {column} {direction}, rowid {direction}"
    # the page's positions first, then its columns: the per-row counts are read for the page's
    # rows only, never for the rows sorted or skipped to find them
    rows = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM episodes WHERE rowid IN (SELECT rowid FROM episodes "
        f"{page_where} ORDER BY {order} LIMIT ? OFFSET ?) ORDER BY {order}",
        (*page_args, int(limit) + 1, 0 if mark else int(offset)),
    ).fetchall()
    extra_row = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    more = True if backwards else extra_row  # a page before another has that one after it
    return EpisodePage([_row(r) for r in rows], total, int(offset), int(limit), capped, more, sort)


def episodes_after(
    store: Store,
    after: int,
    filters: EpisodeFilter | None = None,
    *,
    text: str | None = None,
    limit: int = 50,
) -> list[EpisodeRow]:
    """The episodes matching the filters recorded after the one at insertion position ``after``
    (an :attr:`EpisodeRow.rowid`), oldest first, at most ``limit``: what a live page adds."""
    where, args = _where(store, filters or EpisodeFilter(), text=text, extra=["rowid > ?"])
    rows = store.conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM episodes {where} ORDER BY rowid LIMIT ?",
        (*args, int(after), int(limit)),
    ).fetchall()
    return [_row(r) for r in rows]


def session_counts(store: Store, session_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{session: {outcome: episodes}}`` for the sessions given (a session without episodes is
    left out)."""
    ids = list(dict.fromkeys(session_ids))
    out: dict[str, dict[str, int]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = store.conn.execute(
            "SELECT session_id, outcome, COUNT(*) FROM episodes "
            f"WHERE session_id IN ({','.join('?' * len(chunk))}) GROUP BY session_id, outcome",
            chunk,
        ).fetchall()
        for session, outcome, n in rows:
            out.setdefault(session, {})[outcome] = int(n)
    return out


def review_queue(
    store: Store,
    filters: EpisodeFilter | None = None,
    *,
    order: str = "failures",
    position: int = 0,
    threshold: float = 0.5,
) -> QueueState:
    """The review of the episodes matching ``filters``: how many there are, how many have
    feedback, and the unreviewed one at ``position`` in ``order``.

    ``order`` is one of :data:`QUEUE_ORDERS`: ``uncertainty`` first takes the episodes whose
    steps the intervention predictor scored closest to ``threshold`` (scored live with
    ``--intervention-predictor``; unscored episodes follow, failures first), ``failures``
    takes interventions, then errors, then successes, and ``time`` the newest first.

    Raises:
        StoreError: an unknown ``order``.
    """
    if order not in QUEUE_ORDERS:
        raise StoreError(f"queue order {order!r} is not one of {', '.join(QUEUE_ORDERS)}")
    filters = filters or EpisodeFilter()
    conn = store.conn
    where, args = _where(store, filters)
    total = conn.execute(f"SELECT COUNT(*) FROM episodes {where}", args).fetchone()[0]
    where_open, open_args = _where(store, filters, extra=[_UNREVIEWED])
    remaining = conn.execute(f"SELECT COUNT(*) FROM episodes {where_open}", open_args).fetchone()[0]
    keys: list[str] = []
    key_args: list[Any] = []
    if order == "uncertainty":
        closeness = (
            "(SELECT MIN(ABS(steps.intervention_p - ?)) FROM steps "
            "WHERE steps.episode_id = episodes.id)"
        )
        keys += [f"({closeness} IS NULL)", closeness]
        key_args += [float(threshold), float(threshold)]
    if order in ("uncertainty", "failures"):
        keys.append(_FAILURES_FIRST)
    keys.append("rowid DESC")
    row = conn.execute(
        f"SELECT id FROM episodes {where_open} ORDER BY {', '.join(keys)} LIMIT 1 OFFSET ?",
        (*open_args, *key_args, max(int(position), 0)),
    ).fetchone()
    return QueueState(
        total=int(total),
        reviewed=int(total) - int(remaining),
        position=max(int(position), 0),
        episode_id=None if row is None else row[0],
    )
