"""``teach export``: the store as training data."""

from __future__ import annotations

import click

from ..export import EXPORTERS, NothingToExport, export
from ._common import DB_OPTION, TeachCommand, fail, open_db


@click.command("export", cls=TeachCommand)
@DB_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(EXPORTERS)),
    required=True,
    help="; ".join(f"{name}: {cls.description}" for name, cls in EXPORTERS.items()),
)
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="PATH",
    help="file (a directory for interventions and stories)",
)
@click.option(
    "--label", type=click.Choice(["success", "intervention"]), help="only episodes with this label"
)
@click.option(
    "--model", "models", multiple=True, metavar="SPEC", help="only these models (repeatable)"
)
@click.option(
    "--scenario",
    metavar="GLOB",
    help="only scenarios matching this glob: a whole name ('tool_selection[weather-*'), "
    "a case id ('weather-*') or a family ('tool_selection')",
)
@click.option("--min-quality", type=float, help="only episodes with quality >= this")
@click.option("--min-reward", type=float, help="only episodes with reward >= this")
@click.option(
    "--since", metavar="WHEN", help="only episodes since an ISO date/datetime or a span (7d, 12h)"
)
@click.option(
    "--session", "sessions", multiple=True, metavar="ID", help="only these sessions (repeatable)"
)
@click.option(
    "--include-errors",
    is_flag=True,
    help="keep episodes that errored: in setup or teardown, or with an exception in the test "
    "body that is not an agent failure (see teach_agent_exceptions)",
)
@click.option(
    "--allow-empty",
    is_flag=True,
    help="write an empty export when nothing matches (otherwise: an error, nothing written)",
)
def export_cmd(
    db: str,
    fmt: str,
    output: str,
    label: str | None,
    models: tuple[str, ...],
    scenario: str | None,
    min_quality: float | None,
    min_reward: float | None,
    since: str | None,
    sessions: tuple[str, ...],
    include_errors: bool,
    allow_empty: bool,
) -> None:
    """Export episodes as openai/sft chat rows, dpo pairs, grpo prompts or interventions.

    The file is written to a temporary name and renamed into place, so a failed export never
    leaves a half-written file. An export of no rows is an error, and writes nothing, unless
    --allow-empty is given.
    """
    with open_db(db) as store:
        try:
            result = export(
                store,
                fmt,
                output,
                allow_empty=allow_empty,
                label=label,
                model=list(models) or None,
                scenario=scenario,
                min_quality=min_quality,
                min_reward=min_reward,
                since=since,
                session=list(sessions) or None,
                include_errors=include_errors,
            )
        except NothingToExport as exc:
            fail(f"{exc} (--allow-empty writes an empty export)")
    unit = {"interventions": "episodes", "stories": "story runs"}.get(fmt, "rows")
    click.echo(f"wrote {result.rows} {unit} to {result.path} ({fmt})")
