"""``teach compare`` and ``teach history``: models across runs, from the store."""

from __future__ import annotations

import json

import click

from ._common import DB_OPTION, TeachCommand, open_db


@click.command("compare", cls=TeachCommand)
@DB_OPTION
@click.option(
    "--baseline", required=True, metavar="ID", help="session id (prefix) or model spec (A)"
)
@click.option(
    "--candidate", required=True, metavar="ID", help="session id (prefix) or model spec (B)"
)
@click.option("--min-quality-ratio", default=0.95, show_default=True, type=float)
@click.option("--max-latency-ratio", default=1.10, show_default=True, type=float)
@click.option(
    "--max-cost-ratio",
    default=1.20,
    show_default=True,
    type=float,
    help="on the paired cost per episode",
)
@click.option(
    "--latency-floor-ms",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="latency differences under this many ms don't count",
)
@click.option("--gate", is_flag=True, help="exit 1 when the candidate is REJECTed")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def compare_cmd(
    db: str,
    baseline: str,
    candidate: str,
    min_quality_ratio: float,
    max_latency_ratio: float,
    max_cost_ratio: float,
    latency_floor_ms: float,
    gate: bool,
    as_json: bool,
) -> None:
    """Compare a candidate (B) with a baseline (A) from the store, paired by scenario.

    Each side is a session id or a model spec. Outcomes and rewards pair the latest episode per
    scenario; latency and cost pair each scenario's per-episode means, so a side with more runs
    weighs no more. Prints the per-model table, wins/losses/ties, McNemar's exact p, a bootstrap
    CI for the reward difference, the paired latency (sign test) and cost per episode, the
    winner and the gate's verdict.
    """
    from ..compare import Thresholds, compare_in_store, render_comparison

    thresholds = Thresholds(
        min_quality_ratio=min_quality_ratio,
        max_latency_ratio=max_latency_ratio,
        max_cost_ratio=max_cost_ratio,
        latency_floor_ms=latency_floor_ms,
    )
    with open_db(db) as store:
        result = compare_in_store(store, baseline, candidate, thresholds)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(render_comparison(result))
    if gate and result.verdict != "APPROVE":
        raise SystemExit(1)


@click.command("history", cls=TeachCommand)
@DB_OPTION
@click.option(
    "--metric",
    type=click.Choice(["success_rate", "reward", "quality", "latency", "cost"]),
    default="success_rate",
    show_default=True,
)
@click.option("--model", metavar="SPEC", help="only this model")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), help="only the last N days")
@click.option(
    "--threshold", default=0.05, show_default=True, type=float, help="relative drop that is flagged"
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def history_cmd(
    db: str, metric: str, model: str | None, days: float | None, threshold: float, as_json: bool
) -> None:
    """A metric per run and model over time, with its trend; drops beyond --threshold are flagged
    (exit status stays 0)."""
    from ..compare import history, render_history

    with open_db(db) as store:
        result = history(store, metric, model=model, days=days, threshold=threshold)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(render_history(result))
