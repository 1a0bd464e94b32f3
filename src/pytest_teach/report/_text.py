"""The store's counts and its feedback as terminal text (``teach stats``, ``teach feedback
list``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from ..store import Feedback

__all__ = ["render_feedback", "render_stats"]


def render_stats(data: dict[str, Any], top: int = 10) -> str:
    """:meth:`Store.stats` as text: totals, outcomes, the intervention share, counts by model and
    category, and the ``top`` scenarios."""
    total = data["episodes"]

    def pct(n: int) -> str:
        return f"{100 * n / total:.1f}%" if total else "-"

    lines = [
        f"store      {data['db']} (schema {data['schema_version']})",
        f"episodes   {total}   steps {data['steps']}   sessions {data['sessions']}   "
        f"feedback {data['feedback']}",
        "outcome    "
        + "   ".join(f"{k} {n} ({pct(n)})" for k, n in sorted(data["by_outcome"].items())),
    ]
    share = data["intervention_share"]
    lines.append(
        "interventions "
        + ("-" if share is None else f"{100 * share:.1f}% of labeled episodes")
        + " (guidance for predictor training: 60-70%)"
    )
    for title, key in (("by model", "by_model"), ("by category", "by_category")):
        lines.append(f"{title}:")
        lines.extend(f"  {k:<40} {n}" for k, n in sorted(data[key].items(), key=lambda x: -x[1]))
    scenarios = sorted(data["by_scenario"].items(), key=lambda x: (-x[1], x[0]))
    lines.append(f"by scenario: {len(scenarios)} scenarios" + (", top:" if scenarios else ""))
    lines.extend(f"  {k:<40} {n}" for k, n in scenarios[:top])
    return "\n".join(lines)


def render_feedback(items: Iterable[Feedback]) -> str:
    """One line per feedback item (id, UTC time, episode, rating, aspects, correction,
    suggestion, comment), or how to add the first."""
    lines = []
    for f in items:
        when = datetime.fromtimestamp(f.created_at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
        parts = [f"#{f.id}", when, f.episode_id]
        if f.rating is not None:
            parts.append(f"rating={f.rating}")
        parts.extend(f"{k}={v}" for k, v in f.aspects.items())
        if f.step is not None:
            parts.append(f"step {f.step} -> {json.dumps(f.correct_action, ensure_ascii=False)}")
        if f.suggested_action is not None:
            parts.append(f"suggested={json.dumps(f.suggested_action, ensure_ascii=False)}")
        if f.comment:
            parts.append(repr(f.comment))
        lines.append("  ".join(parts))
    if not lines:
        return "no feedback yet; add some with `teach feedback add --example ID --rating N`"
    return "\n".join(lines)
