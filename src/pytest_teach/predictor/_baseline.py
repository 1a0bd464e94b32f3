"""The baseline the encoder has to beat: scikit-learn's logistic regression on the page-state
and action features, without screenshots and without a sequence model.

Each step is its page-state vector, the current and the previous action one-hot (type, target
role, step error) with their numbers, the current action's hashed name words, and the count of
each action type so far. It is fitted on the same training episodes as the encoder, with
balanced class weights, and thresholded the same way (best F1 on the validation episodes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._features import (
    ACTION_NUMERIC,
    ACTION_TYPES,
    ERROR_TYPES,
    NAME_BUCKETS,
    ROLES,
    ActionToken,
    StepFeatures,
)
from ._metrics import choose_threshold

__all__ = ["LogisticBaseline", "baseline_vector"]


def _one_hot(index: int, size: int) -> list[float]:
    out = [0.0] * (size + 1)
    out[index] = 1.0
    return out


def _token(token: ActionToken | None) -> list[float]:
    if token is None:
        return [0.0] * (len(ACTION_TYPES) + len(ROLES) + len(ERROR_TYPES) + 3 + ACTION_NUMERIC)
    return [
        *_one_hot(token.kind, len(ACTION_TYPES)),
        *_one_hot(token.role, len(ROLES)),
        *_one_hot(token.error, len(ERROR_TYPES)),
        *token.numeric,
    ]


def baseline_vector(features: StepFeatures) -> list[float]:
    """One step as the baseline's flat feature vector."""
    actions = features.actions
    current = actions[-1] if actions else None
    previous = actions[-2] if len(actions) > 1 else None
    words = [0.0] * NAME_BUCKETS
    for word in current.words if current else []:
        words[word - 1] = 1.0
    kinds = [0.0] * (len(ACTION_TYPES) + 1)
    for token in actions:
        kinds[token.kind] += 1.0
    return [*features.page, *_token(current), *_token(previous), *words, *kinds]


class LogisticBaseline:
    """Standardised features into ``LogisticRegression(class_weight="balanced")``."""

    def __init__(self, seed: int = 0) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model: Any = make_pipeline(
            StandardScaler(),
            LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed),
        )
        self.threshold = 0.5

    def fit(
        self,
        train: Sequence[StepFeatures],
        train_labels: Sequence[int],
        val: Sequence[StepFeatures],
        val_labels: Sequence[int],
    ) -> LogisticBaseline:
        """Fit on the training steps; choose the threshold on the validation steps."""
        self.model.fit([baseline_vector(f) for f in train], list(train_labels))
        self.threshold = choose_threshold(list(val_labels), self.probabilities(val))
        return self

    def probabilities(self, steps: Sequence[StepFeatures]) -> list[float]:
        """P(intervention) of each step."""
        if not steps:
            return []
        return self.model.predict_proba([baseline_vector(f) for f in steps])[:, 1].tolist()
