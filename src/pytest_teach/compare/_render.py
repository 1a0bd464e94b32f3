"""The comparison and the history as terminal text."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from ._compare import Comparison, ModelSummary
from ._history import History

__all__ = ["SUMMARY_HEADER", "render_comparison", "render_history", "summary_cells"]


def summary_cells(s: ModelSummary, missing: str = "-") -> list[str]:
    """One model's figures as table cells, in the order of :data:`SUMMARY_HEADER`: episodes,
    success %, mean reward, mean quality, p50 and p95 latency (ms), tokens and cost per episode.

    A figure that is unknown (or not finite) is shown as ``missing``. The terminal comparison and
    the HTML report's A/B table both take their rows from here.
    """

    def cell(value: float | None, spec: str) -> str:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return missing
        return format(value, spec)

    return [
        str(s.n),
        cell(None if s.success_rate is None else 100 * s.success_rate, ".1f"),
        cell(s.mean_reward, ".3f"),
        cell(s.mean_quality, ".2f"),
        cell(s.latency_p50, ".1f"),
        cell(s.latency_p95, ".1f"),
        cell(s.tokens, ".0f"),
        cell(s.mean_cost, ".4g"),
    ]


#: the headers of :func:`summary_cells`' cells
SUMMARY_HEADER = ("n", "success%", "reward", "quality", "p50 ms", "p95 ms", "tokens", "cost $/ep")


def render_comparison(c: Comparison) -> str:
    """The per-model table, the paired view and the verdict, as aligned text."""
    header = ["model", *SUMMARY_HEADER]
    rows = [header, [f"A {c.baseline.model}", *summary_cells(c.baseline)]]
    rows.append([f"B {c.candidate.model}", *summary_cells(c.candidate)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    ci = (
        "-"
        if c.reward_diff_ci is None
        else f"{c.reward_diff:+.3f} [{c.reward_diff_ci[0]:+.3f}, {c.reward_diff_ci[1]:+.3f}]"
    )
    lines += [
        "",
        f"paired on {c.pairs} scenarios: B wins {c.wins}, loses {c.losses}, ties {c.ties}",
        f"McNemar exact p = {c.mcnemar_p:.4g} (only A passed {c.only_baseline_passed}, "
        f"only B passed {c.only_candidate_passed})",
        f"reward difference B - A, bootstrap 95% CI: {ci}",
        c.latency.describe(),
        c.cost.describe(),
        f"winner: {c.winner_text}",
        f"verdict for B ({c.candidate.model}): {c.verdict}",
    ]
    lines += [f"  - {reason}" for reason in c.reasons]
    return "\n".join(lines)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def render_history(h: History) -> str:
    """Each model's points (UTC start, session, episodes, value) under its trend, then the
    drops flagged; one line when nothing is recorded."""
    metric = h.metric
    if not h.series:
        return f"no {metric} recorded yet"
    lines = []
    for name, points in sorted(h.series.items()):
        slope = h.trends.get(name)
        trend = "-" if slope is None else f"{slope:+.4f} per run"
        lines.append(f"{name}  ({metric}, trend {trend})")
        lines.extend(
            f"  {_when(p.started_at)}  {p.session_id}  n={p.n:<5} {p.value:.4f}" for p in points
        )
    lines.extend(
        f"DROP: {d['model']} {metric} {d['latest']:.4f} vs {d['previous_mean']:.4f} "
        f"before ({d['change']:+.1%}) in session {d['session_id']}"
        for d in h.drops
    )
    return "\n".join(lines)
