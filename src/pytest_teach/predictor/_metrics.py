"""Choosing the decision threshold: the one that maximises F1 on validation steps.

Pure Python, shared by the encoder's classifier and the logistic-regression baseline, so both
are thresholded the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["choose_threshold", "f1_at"]


def f1_at(labels: Sequence[int], probabilities: Sequence[float], threshold: float) -> float:
    """F1 of the positive class when ``p >= threshold`` is predicted positive."""
    tp = fp = fn = 0
    for y, p in zip(labels, probabilities, strict=True):
        hit = p >= threshold
        tp += hit and y == 1
        fp += hit and y == 0
        fn += (not hit) and y == 1
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def choose_threshold(labels: Sequence[int], probabilities: Sequence[float]) -> float:
    """The threshold with the best F1 on these steps (0.5 when there is no positive).

    Candidates are the midpoints between consecutive distinct probabilities, so the threshold
    sits between the scores it separates; ties go to the higher threshold (fewer alarms).
    """
    if not any(y == 1 for y in labels):
        return 0.5
    pairs = sorted(zip(probabilities, labels, strict=True), reverse=True)
    positives = sum(labels)
    best, best_f1 = 0.5, -1.0
    tp = fp = 0
    for i, (p, y) in enumerate(pairs):
        tp += y == 1
        fp += y == 0
        following = pairs[i + 1][0] if i + 1 < len(pairs) else p - 1e-6
        if following == p:
            continue  # the cut must fall between two distinct scores
        f1 = 2 * tp / (2 * tp + fp + (positives - tp))
        if f1 > best_f1:
            best, best_f1 = (p + following) / 2.0, f1
    return float(min(max(best, 1e-6), 1.0))
