"""Performance over time: one point per (session, model), a trend, and flagged drops."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..store import Episode, Store, StoreError
from ._compare import ModelSummary, summarize
from ._stats import linear_slope, mean

#: metric name -> (how to read it off a ModelSummary, whether higher is better)
METRICS: dict[str, tuple[Any, bool]] = {
    "success_rate": (lambda s: s.success_rate, True),
    "reward": (lambda s: s.mean_reward, True),
    "quality": (lambda s: s.mean_quality, True),
    "latency": (lambda s: s.latency_p50, False),
    "cost": (lambda s: s.mean_cost, False),
}


@dataclass
class HistoryPoint:
    """One model's figure in one session."""

    session_id: str
    started_at: float
    model: str
    value: float
    n: int


@dataclass
class History:
    """The series per model, each model's trend (change per run) and the drops flagged."""

    metric: str
    higher_is_better: bool
    series: dict[str, list[HistoryPoint]] = field(default_factory=dict)
    trends: dict[str, float | None] = field(default_factory=dict)
    drops: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the metric, its direction, the series, trends and drops."""
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "series": {k: [vars(p) for p in v] for k, v in self.series.items()},
            "trends": self.trends,
            "drops": self.drops,
        }


def history(
    store: Store,
    metric: str,
    *,
    model: str | None = None,
    days: float | None = None,
    threshold: float = 0.05,
    window: int = 5,
) -> History:
    """Per-session values of ``metric`` for each model, oldest first.

    A drop is flagged when a model's latest value is worse than the mean of its previous
    ``window`` values by more than ``threshold`` (relative).

    Raises:
        ValueError: an unknown ``metric``.
        StoreError: ``model`` is given and the store has no episodes of it.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if model is not None and store.count(model=model) == 0:
        known = ", ".join(sorted(store.stats()["by_model"])) or "none"
        raise StoreError(f"no episodes for model {model!r} in {store.location} (models: {known})")
    read, higher = METRICS[metric]
    since = None if days is None else time.time() - days * 86400
    started = {s["id"]: s["started_at"] for s in store.sessions()}
    groups: dict[tuple[str, str], list[Episode]] = defaultdict(list)
    for e in store.episodes(model=model, since=since, include_errors=False):
        groups[(e.session_id or "", e.model or "none")].append(e)
    result = History(metric=metric, higher_is_better=higher)
    for (session_id, name), episodes in groups.items():
        summary: ModelSummary = summarize(name, episodes)
        value = read(summary)
        if value is None:
            continue
        result.series.setdefault(name, []).append(
            HistoryPoint(
                session_id, started.get(session_id, episodes[0].created_at), name, value, summary.n
            )
        )
    for name, points in result.series.items():
        points.sort(key=lambda p: p.started_at)
        result.trends[name] = linear_slope(list(range(len(points))), [p.value for p in points])
        if len(points) >= 2:
            previous = mean([p.value for p in points[-1 - window : -1]])
            last = points[-1].value
            assert previous is not None
            change = (last - previous) / abs(previous) if previous else 0.0
            worse = -change if higher else change
            if worse > threshold:
                result.drops.append(
                    {
                        "model": name,
                        "session_id": points[-1].session_id,
                        "previous_mean": previous,
                        "latest": last,
                        "change": change,
                    }
                )
    return result
