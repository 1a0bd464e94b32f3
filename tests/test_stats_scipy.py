"""The comparison's hand-written statistics, checked against scipy (a dev-only dependency).

The core computes McNemar's exact test, the sign test and the percentile bootstrap by hand, so
that the plugin stays light; these tests hold them to scipy's implementations.
"""

from __future__ import annotations

import random
import statistics
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_teach.compare import bootstrap_mean_diff_ci, mcnemar_exact, sign_test

scipy_stats = pytest.importorskip("scipy.stats", reason="scipy comes with the dev extra")
np = pytest.importorskip("numpy")


def _binomtest_p(k: int, n: int) -> float:
    return 1.0 if n == 0 else float(scipy_stats.binomtest(k, n, p=0.5).pvalue)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400))
def test_mcnemar_exact_is_scipy_binomtest_on_the_discordant_pairs(b: int, c: int) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(_binomtest_p(b, b + c), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (0, 1), (1, 0), (10, 2), (84, 0), (3000, 2900)])
def test_mcnemar_exact_at_known_points(b: int, c: int) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(_binomtest_p(b, b + c), rel=1e-9, abs=1e-300)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([-2.5, -0.1, 0.0, 0.1, 3.0]), max_size=200))
def test_sign_test_is_scipy_binomtest_without_ties(diffs: list[float]) -> None:
    higher, lower, p = sign_test(diffs)
    assert higher == sum(d > 0 for d in diffs) and lower == sum(d < 0 for d in diffs)
    assert p == pytest.approx(_binomtest_p(higher, higher + lower), rel=1e-9, abs=1e-300)


def _samples() -> list[tuple[str, list[float]]]:
    rng = random.Random(7)
    return [
        ("rewards in {-1, 0, 1}", [rng.choice([-1.0, 0.0, 0.0, 1.0]) for _ in range(60)]),
        ("mostly ties, a few losses", [0.0] * 180 + [-1.0] * 20),
        ("normal", [rng.gauss(0.05, 0.3) for _ in range(40)]),
        ("skewed (exponential)", [rng.expovariate(2.0) - 0.4 for _ in range(100)]),
        ("uniform, small", [rng.uniform(-1, 1) for _ in range(20)]),
        ("latency-like ms differences", [rng.lognormvariate(3, 0.5) - 20 for _ in range(267)]),
    ]


def _tail_tolerance(tail: float, resamples: int = 2000) -> float:
    return 4 * (tail * (1 - tail) / resamples) ** 0.5


def _tail_masses(distribution: Any, value: float) -> tuple[float, float]:
    """The share of ``distribution`` strictly below ``value`` and at or below it."""
    eps = 1e-12 * max(1.0, abs(value))
    return float(np.mean(distribution < value - eps)), float(np.mean(distribution <= value + eps))


@pytest.mark.parametrize(("what", "diffs"), _samples(), ids=[w for w, _ in _samples()])
@pytest.mark.parametrize("level", [0.95, 0.80])
def test_bootstrap_ci_agrees_with_scipy_percentile_bootstrap(
    what: str, diffs: list[float], level: float
) -> None:
    ours = bootstrap_mean_diff_ci(diffs, level=level)
    assert ours is not None
    result = scipy_stats.bootstrap(
        (np.asarray(diffs),),
        np.mean,
        confidence_level=level,
        method="percentile",
        n_resamples=20_000,
        rng=np.random.default_rng(0),
    )
    theirs = result.confidence_interval
    assert theirs.low <= theirs.high and ours[0] <= ours[1]
    # Both are Monte Carlo estimates of the same two percentiles, ours from 2,000 resamples. The
    # tolerance is on the tail each endpoint cuts off scipy's 20,000-resample distribution: it
    # must be (1 - level) / 2 within four Monte Carlo standard errors of a tail estimated from
    # 2,000 resamples (0.014 for a 2.5% tail: a 90% interval's 5% tail is well outside). A
    # discrete distribution puts mass on the endpoint itself, so any share between "strictly
    # beyond" and "at or beyond" will do.
    tail = (1 - level) / 2
    tolerance = _tail_tolerance(tail)
    below, at_or_below = _tail_masses(result.bootstrap_distribution, ours[0])
    assert below - tolerance <= tail <= at_or_below + tolerance, (what, below, at_or_below)
    above_or_at, above = (1 - m for m in _tail_masses(result.bootstrap_distribution, ours[1]))
    assert above - tolerance <= tail <= above_or_at + tolerance, (what, above, above_or_at)
    # and in the data's units: within half a standard error of the mean of scipy's endpoints
    half_se = 0.5 * statistics.pstdev(diffs) / len(diffs) ** 0.5
    assert ours[0] == pytest.approx(theirs.low, abs=half_se)
    assert ours[1] == pytest.approx(theirs.high, abs=half_se)


def test_the_tolerance_tells_a_90_percent_interval_from_a_95_percent_one() -> None:
    diffs = dict(_samples())["normal"]
    result = scipy_stats.bootstrap(
        (np.asarray(diffs),),
        np.mean,
        method="percentile",
        n_resamples=20_000,
        rng=np.random.default_rng(0),
    )
    wrong = bootstrap_mean_diff_ci(diffs, level=0.90)
    assert wrong is not None
    below, _ = _tail_masses(result.bootstrap_distribution, wrong[0])
    assert below - _tail_tolerance(0.025) > 0.025  # the check above would reject it
