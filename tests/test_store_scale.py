"""What the store's reads need at scale: `teach stats` in one pass over its index, with the same
counts and the same order on both backends, and the indexes the paged reads use."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_teach import open_store
from pytest_teach.store import Episode, Step

# (scenario, category, model, outcome, label, steps): NULL models, categories and labels too
ROWS = [
    ("weather[a]", "info", "m:b", "success", 0, 2),
    ("weather[b]", "info", "m:a", "intervention", 1, 1),
    ("email[a]", None, "m:a", "error", None, 3),
    ("email[a]", None, None, "success", 0, 1),
    ("weather[a]", "info", "m:b", "intervention", 1, 2),
    ("Zeta[a]", "info", "m:a", "success", 0, 0),
]


def _store_with_rows(target: Path | str):
    store = open_store(target, create=True)
    store.write_episodes(
        [
            Episode(
                id=f"{i:016x}",
                nodeid=f"t::{scenario}",
                scenario=scenario,
                category=category,
                model=model,
                outcome=outcome,
                label=label,
                steps=[Step(index=k, observation={"k": k}, action="go") for k in range(steps)],
            )
            for i, (scenario, category, model, outcome, label, steps) in enumerate(ROWS)
        ]
    )
    return store


def _expected(rows: list[tuple]) -> dict:
    """The counts of ``rows`` per column, keys in SQLite's ORDER BY order (NULL first, then
    numbers, then text by code point), as ``stats()`` gives them."""

    def counted(values: list) -> dict[str, int]:
        order = sorted(set(values), key=lambda v: (v is not None, isinstance(v, str), v or 0))
        return {("none" if v is None else str(v)): values.count(v) for v in order}

    labels = counted([r[4] for r in rows])
    names = {"0": "success", "1": "intervention", "none": "unlabeled"}
    return {
        "episodes": len(rows),
        "steps": sum(r[5] for r in rows),
        "by_outcome": counted([r[3] for r in rows]),
        "by_label": {names[k]: n for k, n in labels.items()},
        "by_model": counted([r[2] for r in rows]),
        "by_category": counted([r[1] for r in rows]),
        "by_scenario": counted([r[0] for r in rows]),
    }


@pytest.mark.parametrize("store_target", ["sqlite", "postgresql"], indirect=True)
def test_stats_counts_and_orders_alike_on_both_backends(store_target: Path | str) -> None:
    store = _store_with_rows(store_target)
    try:
        stats = store.stats()
        got = {k: stats[k] for k in _expected(ROWS)}
        expected = _expected(ROWS)
        assert got == expected
        for column in ("by_outcome", "by_label", "by_model", "by_category", "by_scenario"):
            assert list(got[column]) == list(expected[column]), f"{column}: NULL first, then A-Z"
        assert stats["intervention_share"] == 2 / 5
        chosen = [r for r in ROWS if r[2] == "m:a" and r[3] != "error"]
        filtered = store.stats(model="m:a", include_errors=False)
        assert {k: filtered[k] for k in expected} == _expected(chosen)
    finally:
        store.close()


def test_stats_reads_the_episodes_once_through_its_index(tmp_path: Path) -> None:
    store = _store_with_rows(tmp_path / "experience.db")
    seen: list[str] = []
    store.conn.set_trace_callback(seen.append)
    try:
        store.stats()
    finally:
        store.conn.set_trace_callback(None)
    reads = [sql for sql in seen if " FROM episodes" in sql]
    assert len(reads) == 1, reads
    plan = [row[3] for row in store.conn.execute(f"EXPLAIN QUERY PLAN {reads[0]}")]
    store.close()
    assert plan == ["SCAN episodes USING COVERING INDEX episodes_stats"], plan


def test_postgresql_indexes_end_in_the_insertion_order(pg_url: str) -> None:
    """Pages of one session, outcome, model or scenario come in insertion order from the index,
    as SQLite's indexes (which end in the rowid) give them."""
    store = open_store(pg_url, create=True)
    try:
        rows = store.conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'episodes'"
        ).fetchall()
    finally:
        store.close()
    defs = {name: definition for name, definition in rows}
    for name, column in (
        ("episodes_session", "session_id"),
        ("episodes_outcome", "outcome"),
        ("episodes_model", "model"),
        ("episodes_scenario", "scenario"),
    ):
        assert defs[name].endswith(f"({column}, rowid)"), defs[name]
    assert defs["episodes_stats"].endswith("(model, outcome, label, category, scenario, n_steps)")
