"""The HTML report of one session (or of every episode) read straight from the store."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..compare import Thresholds, compare, history
from ..store import Store, StoreError
from ._html import build_report, write_report
from ._path import check_report_path
from ._title import run_name

__all__ = ["StoreReport", "report_store"]


@dataclass(frozen=True)
class StoreReport:
    """Where the report was written and how many episodes it shows."""

    path: Path
    episodes: int


def _chosen_session(store: Store, sessions: list[dict], session: str | None) -> str:
    if session:
        matches = [s["id"] for s in sessions if s["id"].startswith(session.strip().lower())]
        if len(matches) != 1:
            raise StoreError(
                f"--session {session!r} matches {len(matches)} sessions in {store.location}; "
                "see `teach history` for ids"
            )
        return matches[0]
    if not sessions:
        raise StoreError(f"{store.location} has no sessions yet")
    return sessions[-1]["id"]


def report_store(
    store: Store,
    output: str | os.PathLike[str],
    *,
    session: str | None = None,
    everything: bool = False,
) -> StoreReport:
    """Write the HTML report of ``session`` (a unique id prefix; default the latest) to
    ``output``, or of every episode with ``everything``.

    The report is titled with the session's run name (:func:`run_name`), or "all sessions".
    It shows the A/B verdict (default thresholds) when the session ran both arms, the
    success-rate history of the whole store, and the screenshots the store holds.

    Raises:
        StoreError: the store has no sessions, or ``session`` matches none or several.
        ReportPathError: ``output`` is a directory, doesn't end in ``.html``, or is a file that
            pytest-teach did not write (it is never overwritten).
    """
    output = check_report_path(output)
    sessions = store.sessions()
    chosen = None if everything else _chosen_session(store, sessions, session)
    episodes = list(store.episodes(session=chosen))
    comparison = None
    if {"A", "B"} <= {e.arm for e in episodes}:
        a = [e for e in episodes if e.arm == "A"]
        b = [e for e in episodes if e.arm == "B"]
        comparison = compare(
            a,
            b,
            baseline_name=a[0].model or "A",
            candidate_name=b[0].model or "B",
            thresholds=Thresholds(),
        )

    def image(sha: str) -> bytes | None:
        try:
            return store.read_artifact(sha)
        except (StoreError, OSError):
            return None

    shown = [s for s in sessions if chosen is None or s["id"] == chosen]
    html = build_report(
        episodes,
        comparison=comparison,
        history=history(store, "success_rate"),
        sessions=shown,
        title="all sessions" if chosen is None else run_name(shown[0].get("argv") or []),
        image=image,
    )
    return StoreReport(write_report(output, html), len(episodes))
