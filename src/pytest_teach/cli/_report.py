"""``teach report``: the HTML report from the store."""

from __future__ import annotations

import click

from ..store import StoreError
from ._common import DB_OPTION, TeachCommand, open_db


@click.command("report", cls=TeachCommand)
@DB_OPTION
@click.option(
    "-o",
    "--output",
    default="reports/teach-report.html",
    show_default=True,
    metavar="PATH",
    help="where to write the HTML file",
)
@click.option("--session", metavar="ID", help="the session to report (default: the latest)")
@click.option("--all", "everything", is_flag=True, help="report every episode in the store")
def report_cmd(db: str, output: str, session: str | None, everything: bool) -> None:
    """Write the self-contained HTML report for one session (or the whole store).

    Shows the run summary and dataset balance, the A/B verdict when the session ran --ab, a
    sortable per-scenario table, reward distributions, the history trend, and each failure with
    its last steps and screenshots. Secrets are redacted; page text is shown as text.
    """
    from ..compare import Thresholds, compare, history
    from ..report import build_report, write_report

    with open_db(db) as store:
        sessions = store.sessions()
        if everything:
            chosen = None
        elif session:
            matches = [s["id"] for s in sessions if s["id"].startswith(session.strip().lower())]
            if len(matches) != 1:
                raise StoreError(
                    f"--session {session!r} matches {len(matches)} sessions in {store.path}; "
                    "see `teach history` for ids"
                )
            chosen = matches[0]
        else:
            if not sessions:
                raise StoreError(f"{store.path} has no sessions yet")
            chosen = sessions[-1]["id"]
        episodes = list(store.episodes(session=chosen))
        comparison = None
        arms = {e.arm for e in episodes}
        if {"A", "B"} <= arms:
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
                return store.artifact_path(sha).read_bytes()
            except (StoreError, OSError):
                return None

        html = build_report(
            episodes,
            comparison=comparison,
            history=history(store, "success_rate"),
            sessions=[s for s in sessions if chosen is None or s["id"] == chosen],
            title=f"pytest-teach report: {'all sessions' if chosen is None else chosen}",
            image=image,
        )
    path = write_report(output, html)
    click.echo(f"wrote {path} ({len(episodes)} episodes)")
