"""``teach report``: the HTML report from the store."""

from __future__ import annotations

import click

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
    from ..report import report_store

    with open_db(db) as store:
        written = report_store(store, output, session=session, everything=everything)
    click.echo(f"wrote {written.path} ({written.episodes} episodes)")
