"""The statistics the experiment reports: Spearman correlation with a bootstrap interval, the
bootstrap interval of a mean (or of a difference of means), and Student-t intervals over seeds.
Every interval is 95% and seeded, so a rerun prints the same figures."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

__all__ = ["bootstrap_mean", "spearman", "t_interval"]

#: Bootstrap resamples.
RESAMPLES = 2000


def _percentiles(values: list[float]) -> list[float]:
    values.sort()
    lo = values[int(0.025 * (len(values) - 1))]
    hi = values[int(math.ceil(0.975 * (len(values) - 1)))]
    return [lo, hi]


def spearman(x: Sequence[float], y: Sequence[float], *, seed: int = 0) -> dict[str, Any]:
    """Spearman's rho of ``x`` and ``y`` with its p-value and a bootstrap 95% interval
    (resampling pairs). ``rho`` is ``None`` when either side is constant."""
    from scipy.stats import spearmanr

    n = len(x)
    out: dict[str, Any] = {"n": n, "rho": None, "p_value": None, "ci95": None}
    if n < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return out
    rho, p = spearmanr(x, y)
    out.update(rho=float(rho), p_value=float(p))
    rng = random.Random(seed)
    draws = []
    for _ in range(RESAMPLES):
        index = [rng.randrange(n) for _ in range(n)]
        xs, ys = [x[i] for i in index], [y[i] for i in index]
        if len(set(xs)) > 1 and len(set(ys)) > 1:
            draws.append(float(spearmanr(xs, ys)[0]))
    if len(draws) >= RESAMPLES // 2:
        out["ci95"] = _percentiles(draws)
    return out


def bootstrap_mean(
    values: Sequence[float], *, seed: int = 0, minus: Sequence[float] | None = None
) -> dict[str, Any]:
    """The mean of ``values`` (minus the mean of ``minus``, resampled independently) with a
    bootstrap 95% interval; ``None`` figures for no values."""
    if not values or (minus is not None and not minus):
        return {"n": len(values), "mean": None, "ci95": None}
    rng = random.Random(seed)

    def mean(v: Sequence[float]) -> float:
        return sum(v) / len(v)

    def draw(v: Sequence[float]) -> float:
        return mean([v[rng.randrange(len(v))] for _ in v])

    base = mean(values) - (mean(minus) if minus is not None else 0.0)
    draws = [draw(values) - (draw(minus) if minus is not None else 0.0) for _ in range(RESAMPLES)]
    return {"n": len(values), "mean": base, "ci95": _percentiles(draws)}


def t_interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation and the Student-t 95% interval of ``values`` (seeds);
    one value has no interval."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "ci95": None}
    mean = sum(values) / n
    if n == 1:
        return {"n": 1, "mean": mean, "sd": None, "ci95": None}
    from scipy.stats import t

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half]}
