"""``teach compare`` and ``teach history``: models across runs, from the store."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

import click

from ..store import Episode, Store, StoreError
from ._common import DB_OPTION, TeachCommand, fail, open_db


def _side(store: Store, ident: str, option: str) -> tuple[str, list[Episode]]:
    """Resolve a session id (or unique prefix) or a model spec to its scored episodes."""
    text = ident.strip()
    if re.fullmatch(r"[0-9a-f]{4,16}", text):
        sessions = [s["id"] for s in store.sessions() if s["id"].startswith(text)]
        if len(sessions) > 1:
            raise StoreError(f"{option} {ident!r} matches several sessions; give more characters")
        if sessions:
            episodes = list(store.episodes(session=sessions[0], include_errors=False))
            models = sorted({e.model or "none" for e in episodes})
            if len(models) > 1:
                raise StoreError(
                    f"{option} {ident!r}: session {sessions[0]} ran several models "
                    f"({', '.join(models)}); pass a model spec instead"
                )
            label = f"{models[0] if models else 'none'} @ {sessions[0]}"
            return label, episodes
    episodes = list(store.episodes(model=text, include_errors=False))
    if not episodes:
        known = sorted(store.stats()["by_model"])
        raise StoreError(
            f"{option} {ident!r} is neither a session id nor a model in {store.path} "
            f"(models: {', '.join(known) or 'none'}; sessions: see `teach history`)"
        )
    return text, episodes


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
    from ..compare import Thresholds, compare, render_comparison

    with open_db(db) as store:
        a_name, a_eps = _side(store, baseline, "--baseline")
        b_name, b_eps = _side(store, candidate, "--candidate")
    result = compare(
        a_eps,
        b_eps,
        baseline_name=a_name,
        candidate_name=b_name,
        thresholds=Thresholds(
            min_quality_ratio=min_quality_ratio,
            max_latency_ratio=max_latency_ratio,
            max_cost_ratio=max_cost_ratio,
            latency_floor_ms=latency_floor_ms,
        ),
    )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(render_comparison(result))
    if gate and result.verdict != "APPROVE":
        raise SystemExit(1)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


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
    from ..compare import history

    with open_db(db) as store:
        if model is not None and store.count(model=model) == 0:
            known = ", ".join(sorted(store.stats()["by_model"])) or "none"
            fail(f"no episodes for model {model!r} in {store.path} (models: {known})")
        result = history(store, metric, model=model, days=days, threshold=threshold)
    if as_json:
        data: dict[str, Any] = {
            "metric": metric,
            "higher_is_better": result.higher_is_better,
            "series": {k: [vars(p) for p in v] for k, v in result.series.items()},
            "trends": result.trends,
            "drops": result.drops,
        }
        click.echo(json.dumps(data, indent=2))
        return
    if not result.series:
        click.echo(f"no {metric} recorded yet")
        return
    for name, points in sorted(result.series.items()):
        slope = result.trends.get(name)
        trend = "-" if slope is None else f"{slope:+.4f} per run"
        click.echo(f"{name}  ({metric}, trend {trend})")
        for p in points:
            click.echo(f"  {_when(p.started_at)}  {p.session_id}  n={p.n:<5} {p.value:.4f}")
    for drop in result.drops:
        click.echo(
            f"DROP: {drop['model']} {metric} {drop['latest']:.4f} vs {drop['previous_mean']:.4f} "
            f"before ({drop['change']:+.1%}) in session {drop['session_id']}"
        )
