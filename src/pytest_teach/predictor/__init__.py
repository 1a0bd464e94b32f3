"""The intervention predictor: labels, features, early warnings, evaluation, active learning.

Light to import: the names below are loaded on first use, and none of them imports torch,
scikit-learn or matplotlib at module level (the plugin reads early warnings through
:mod:`._warning` at every run). The models live in :mod:`pytest_teach.train.encoder` and
:mod:`pytest_teach.train.predictor`; :mod:`._evaluate`, :mod:`._baseline` and :mod:`._select`
import their libraries inside the functions that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "_dataset": (
        "Example",
        "PredictorError",
        "Split",
        "examples_of",
        "labeled_episodes",
        "split_episodes",
        "split_members",
    ),
    "_labels": ("known_paths", "step_labels", "trajectory"),
    "_live": ("LiveScorer",),
    "_warning": (
        "WARNING_KEY",
        "EpisodeWarning",
        "WarningSummary",
        "first_crossing",
        "lead_time",
        "summarize_warnings",
        "warning_of",
    ),
}

__all__ = [
    "EpisodeWarning",
    "Example",
    "LiveScorer",
    "PredictorError",
    "Split",
    "WARNING_KEY",
    "WarningSummary",
    "examples_of",
    "first_crossing",
    "known_paths",
    "labeled_episodes",
    "lead_time",
    "split_episodes",
    "split_members",
    "step_labels",
    "summarize_warnings",
    "trajectory",
    "warning_of",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from ._dataset import (
        Example,
        PredictorError,
        Split,
        examples_of,
        labeled_episodes,
        split_episodes,
        split_members,
    )
    from ._labels import known_paths, step_labels, trajectory
    from ._live import LiveScorer
    from ._warning import (
        WARNING_KEY,
        EpisodeWarning,
        WarningSummary,
        first_crossing,
        lead_time,
        summarize_warnings,
        warning_of,
    )
