"""Comparing two models on the same scenarios: per-model figures, paired statistics, a gate."""

from ._compare import (
    APPROVE,
    REJECT,
    Comparison,
    ModelSummary,
    Thresholds,
    compare,
    summarize,
)
from ._history import METRICS, History, HistoryPoint, history
from ._render import render_comparison
from ._stats import bootstrap_mean_diff_ci, linear_slope, mcnemar_exact, percentile

__all__ = [
    "APPROVE",
    "METRICS",
    "REJECT",
    "Comparison",
    "History",
    "HistoryPoint",
    "ModelSummary",
    "Thresholds",
    "bootstrap_mean_diff_ci",
    "compare",
    "history",
    "linear_slope",
    "mcnemar_exact",
    "percentile",
    "render_comparison",
    "summarize",
]
