"""Pages of the store for a viewer: a sorted, searched page of episodes, the episodes recorded
after a point, episode counts per session, and the review queue's next unreviewed episode.

Each query reads one page (``LIMIT``), never the whole store, and is written in SQLite's
spelling with ``?`` placeholders, so it runs on PostgreSQL too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._store import EpisodeFilter, Store, StoreError

__all__ = [
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
    """A page of episodes: its rows, how many match in all, and where the page starts."""

    rows: list[EpisodeRow]
    total: int
    offset: int
    limit: int

    @property
    def has_next(self) -> bool:
        """Whether more rows follow this page."""
        return self.offset + len(self.rows) < self.total


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
) -> EpisodePage:
    """One page of the episodes matching ``filters``, ``text`` (a case-insensitive substring of
    the id, scenario, test id, model or failure reason) and ``until`` (recorded before that
    epoch), sorted by ``sort`` (a key of :data:`EPISODE_SORTS`; missing values last, then by
    insertion).

    Raises:
        StoreError: an unknown ``sort``, or a negative ``offset`` or a ``limit`` under 1.
    """
    column = EPISODE_SORTS.get(sort)
    if column is None:
        raise StoreError(f"sort {sort!r} is not one of {', '.join(EPISODE_SORTS)}")
    if offset < 0 or limit < 1:
        raise StoreError(
            f"a page starts at 0 or later and holds 1 or more rows (got {offset}, {limit})"
        )
    where, args = _where(store, filters or EpisodeFilter(), text=text, until=until)
    direction = "DESC" if descending else "ASC"
    order = f"({column} IS NULL), {column} {direction}"
    if column != "rowid":
        order += f", rowid {direction}"
    conn = store.conn
    total = conn.execute(f"SELECT COUNT(*) FROM episodes {where}", args).fetchone()[0]
    rows = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM episodes {where} ORDER BY {order} LIMIT ? OFFSET ?",
        (*args, int(limit), int(offset)),
    ).fetchall()
    return EpisodePage([_row(r) for r in rows], int(total), int(offset), int(limit))


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
