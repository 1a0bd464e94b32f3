"""Ranking metrics: how well a score puts the most teachable snapshots first."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["ndcg_at_k", "precision_at_k", "top_k"]


def top_k(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` highest scores (ties keep the earlier index)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]


def precision_at_k(scores: Sequence[float], relevance: Sequence[float], k: int) -> float | None:
    """The share of the ``k`` top-scored items that are among the truly top ``k``: relevance
    at least the ``k``-th highest and above zero (ties count). ``None`` when nothing is
    relevant."""
    if k < 1 or not scores:
        return None
    k = min(k, len(scores))
    cut = sorted(relevance, reverse=True)[k - 1]
    relevant = {i for i, r in enumerate(relevance) if r >= cut and r > 0}
    if not relevant:
        return None
    return sum(i in relevant for i in top_k(scores, k)) / k


def ndcg_at_k(scores: Sequence[float], relevance: Sequence[float], k: int) -> float | None:
    """Normalised discounted cumulative gain of the top ``k`` by score, with the relevance
    (clipped at zero) as the gain. ``None`` when no item has a positive gain."""
    if k < 1 or not scores:
        return None
    gains = [max(0.0, float(r)) for r in relevance]
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(gains, reverse=True)[:k]))
    if ideal <= 0:
        return None
    dcg = sum(gains[j] / math.log2(i + 2) for i, j in enumerate(top_k(scores, k)))
    return dcg / ideal
