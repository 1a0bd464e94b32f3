"""Small, dependency-free statistics for comparing two models on paired scenarios."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean, or ``None`` for no values."""
    return sum(values) / len(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation, or ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def binomial_two_sided(k: int, n: int) -> float:
    """Two-sided exact p-value of ``k`` successes in ``n`` trials under Binomial(n, 1/2).

    The distribution is symmetric, so the two-sided p doubles the smaller tail (capped at 1).
    """
    if n == 0:
        return 1.0
    k = min(k, n - k)
    # sum in log space: n can be in the thousands
    log_half_n = n * math.log(0.5)
    tail = sum(
        math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n)
        for i in range(k + 1)
    )
    return min(1.0, 2.0 * tail)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    ``b`` = pairs where only A passed, ``c`` = pairs where only B passed. Under the null both are
    equally likely, so min(b, c) follows Binomial(b + c, 1/2).
    """
    return binomial_two_sided(b, b + c)


def sign_test(diffs: Sequence[float]) -> tuple[int, int, float]:
    """Exact two-sided sign test on paired differences (B - A).

    Returns ``(higher, lower, p)``: how many pairs B exceeds A in, how many it falls below A in,
    and the p-value of that split under "no difference". Ties carry no sign and are dropped.
    """
    higher = sum(1 for d in diffs if d > 0)
    lower = sum(1 for d in diffs if d < 0)
    return higher, lower, binomial_two_sided(higher, higher + lower)


def bootstrap_mean_diff_ci(
    diffs: Sequence[float], *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap CI for the mean of paired differences (B - A), seeded."""
    n = len(diffs)
    if n == 0:
        return None
    if n == 1:
        return (diffs[0], diffs[0])
    rng = random.Random(seed)
    values = list(diffs)
    means = [sum(rng.choices(values, k=n)) / n for _ in range(resamples)]
    alpha = (1 - level) / 2 * 100
    low = percentile(means, alpha)
    high = percentile(means, 100 - alpha)
    assert low is not None and high is not None
    return (low, high)


def linear_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ``ys`` over ``xs``, or ``None`` with fewer than two points."""
    if len(xs) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
