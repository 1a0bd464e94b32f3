"""Comparing two models on the same scenarios: per-model figures, paired statistics, a gate;
and each model's figures over time."""

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
from ._pairs import PAIR_STATUSES, ScenarioPair, pair_scenarios
from ._render import SUMMARY_HEADER, render_comparison, render_history, summary_cells
from ._sides import compare_in_store, resolve_side
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
    "PAIR_STATUSES",
    "REJECT",
    "SUMMARY_HEADER",
    "Comparison",
    "History",
    "HistoryPoint",
    "ModelSummary",
    "PairedFigure",
    "ScenarioPair",
    "Thresholds",
    "binomial_two_sided",
    "bootstrap_mean_diff_ci",
    "compare",
    "compare_in_store",
    "history",
    "linear_slope",
    "mcnemar_exact",
    "pair_scenarios",
    "paired_cost",
    "paired_latency",
    "percentile",
    "render_comparison",
    "render_history",
    "resolve_side",
    "sign_test",
    "summarize",
    "summary_cells",
]
