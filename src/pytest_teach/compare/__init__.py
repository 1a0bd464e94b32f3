"""Comparing two models on the same scenarios: per-model figures, paired statistics, a gate."""

from ._compare import (
    APPROVE,
    REJECT,
    Comparison,
    ModelSummary,
    PairedFigure,
    Thresholds,
    compare,
    paired_cost,
    paired_latency,
    summarize,
)
from ._history import METRICS, History, HistoryPoint, history
from ._render import render_comparison
from ._stats import (
    binomial_two_sided,
    bootstrap_mean_diff_ci,
    linear_slope,
    mcnemar_exact,
    percentile,
    sign_test,
)

__all__ = [
    "APPROVE",
    "METRICS",
    "REJECT",
    "Comparison",
    "History",
    "HistoryPoint",
    "ModelSummary",
    "PairedFigure",
    "Thresholds",
    "binomial_two_sided",
    "bootstrap_mean_diff_ci",
    "compare",
    "history",
    "linear_slope",
    "mcnemar_exact",
    "paired_cost",
    "paired_latency",
    "percentile",
    "render_comparison",
    "sign_test",
    "summarize",
]
