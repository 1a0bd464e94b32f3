"""Keyset paging of the viewer's episode list: every page follows from its neighbour's first or
last row, in every sort, with ties and missing values, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pytest_teach.store import (
    Episode,
    EpisodeFilter,
    Store,
    StoreError,
    _pages,
    episode_page,
    new_id,
)

from .test_view import serving

# rewards with ties and gaps; models with missing values; durations all different
_REWARDS = [0.5, None, 1.0, 0.5, 0.0, None, 0.5, 1.0, 0.25, 0.5, None, 0.0, 0.75, 0.5]


def _fill(store: Store, copies: int = 1) -> list[str]:
    session = new_id()
    store.start_session(session, argv=["x"], version="0", git_commit=None, rootdir=None)
    ids = []
    for k in range(copies):
        for i, reward in enumerate(_REWARDS):
            outcome = "success" if reward == 1.0 else "error" if reward is None else "intervention"
            e = Episode(
                id=new_id(),
                nodeid=f"t.py::t[{i}]",
                scenario=f"fam[{i % 4}]",
                outcome=outcome,
                session_id=session,
                model=None if i % 5 == 0 else f"m:{i % 3}",
                label={"success": 0, "intervention": 1}.get(outcome),
                reward=reward,
                duration_s=float(i + k * 100),
            )
            store.write_episode(e)  # one by one: insertion order is the recording order
            ids.append(e.id)
    return ids


def _walk(store: Store, sort: str, descending: bool, limit: int, **kw: Any) -> list[list[str]]:
    """Every page, from the first, each started from the last one's cursor."""
    pages = []
    page = episode_page(store, sort=sort, descending=descending, limit=limit, **kw)
    pages.append([r.id for r in page.rows])
    while page.has_next:
        page = episode_page(
            store, sort=sort, descending=descending, limit=limit, after=page.next_cursor, **kw
        )
        pages.append([r.id for r in page.rows])
    return pages


@pytest.mark.parametrize("store_target", ["sqlite", "postgresql"], indirect=True)
def test_pages_follow_each_other_by_cursor_in_every_order(store_target: Any) -> None:
    with Store.open(store_target, create=True) as store:
        _fill(store)
        for sort in _pages.EPISODE_SORTS:
            for descending in (True, False):
                whole = [
                    r.id
                    for r in episode_page(store, sort=sort, descending=descending, limit=100).rows
                ]
                pages = _walk(store, sort, descending, 3)
                assert [i for p in pages for i in p] == whole, (sort, descending)
                assert all(len(p) == 3 for p in pages[:-1]) and pages[-1]
                # and back: each page ends right before the next one's first row
                for earlier, later in zip(pages, pages[1:], strict=False):
                    start = whole.index(later[0])
                    row = episode_page(store, sort=sort, descending=descending, limit=100).rows[
                        start
                    ]
                    back = episode_page(
                        store,
                        sort=sort,
                        descending=descending,
                        limit=3,
                        before=_pages.cursor_of(row, sort),
                    )
                    assert [r.id for r in back.rows] == earlier, (sort, descending)
                    assert back.has_next
        filtered = _walk(store, "reward", True, 2, filters=EpisodeFilter(outcome="intervention"))
        flat = [i for p in filtered for i in p]
        assert len(flat) == len(set(flat)) == store.count(outcome="intervention")


def test_a_deep_page_reads_one_page_not_the_rows_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pages, "COUNT_CAP", 1)  # the count reads two rows: the page is left
    with Store.open(tmp_path / "s.db", create=True) as store:
        _fill(store, copies=40)  # 560 episodes
        deep = episode_page(store, limit=5, offset=500)
        cursor = episode_page(store, limit=1, offset=499).next_cursor
        keyed = episode_page(store, limit=5, after=cursor, offset=500)
        assert [r.id for r in keyed.rows] == [r.id for r in deep.rows]
        shallow = episode_page(store, limit=1, offset=4).next_cursor

        def steps_of(**kw: Any) -> int:  # SQLite's virtual machine steps, in tens
            steps: list[int] = []
            store.conn.set_progress_handler(lambda: steps.append(1), 10)
            try:
                episode_page(store, limit=5, **kw)
            finally:
                store.conn.set_progress_handler(None, 0)
            return len(steps)

        by_cursor, near_start = steps_of(after=cursor), steps_of(after=shallow)
        by_offset = steps_of(offset=500)
        assert by_cursor <= near_start + 1, (by_cursor, near_start)  # depth costs nothing
        assert by_cursor * 3 < by_offset, (by_cursor, by_offset)  # the offset walks 500 rows


def test_bad_cursors_are_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db", create=True) as store:
        _fill(store)
        for cursor, sort in (
            ("nope", "time"),
            ('["a", 1]', "reward"),
            ("[1.5, 1]", "scenario"),
            ('[1, "x"]', "time"),
            ("[1, 2, 3]", "time"),
        ):
            with pytest.raises(StoreError, match="page cursor"):
                episode_page(store, sort=sort, after=cursor)
        with pytest.raises(StoreError, match="not both"):
            episode_page(store, after="[1, 1]", before="[2, 2]")


def test_the_count_stops_at_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pages, "COUNT_CAP", 5)
    with Store.open(tmp_path / "s.db", create=True) as store:
        _fill(store)
        page = episode_page(store, limit=3)
        assert (page.total, page.capped, page.has_next) == (5, True, True)
        few = episode_page(store, EpisodeFilter(outcome="success"), limit=3)
        assert (few.total, few.capped) == (2, False)
        with serving(store) as client:
            listed = client.page("/episodes")
        assert 'at least <span id="total">5</span> matching' in listed


def test_the_episode_list_links_its_neighbours_by_cursor(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db", create=True) as store:
        _fill(store, copies=10)  # 140 episodes: three pages of 50
        with serving(store) as client:
            first = client.page("/episodes?sort=reward")
            seen = []
            page = first
            for _ in range(3):
                seen.append(re.findall(r'data-rowid="(\d+)"', page))
                found = re.search(r'<a href="([^"]+)" rel="next">', page)
                if found is None:
                    break
                link = found.group(1).replace("&amp;", "&")
                assert "after=" in link and "sort=reward" in link
                page = client.page(link)
            assert [len(s) for s in seen] == [50, 50, 40]
            flat = [r for s in seen for r in s]
            assert len(set(flat)) == 140
            back = re.search(r'<a href="([^"]+)" rel="prev">', page)
            assert back is not None and "before=" in back.group(1)
            previous = client.page(back.group(1).replace("&amp;", "&"))
            assert re.findall(r'data-rowid="(\d+)"', previous) == seen[1]
            assert "showing 51&ndash;100" in previous
