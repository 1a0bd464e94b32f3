"""The records the store holds: episodes with their steps, labels, feedback and artifacts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("success", "intervention", "error")
LABEL_OF_OUTCOME = {"success": 0, "intervention": 1, "error": None}
STEP_LABELS = ("good", "bad")


@dataclass
class Step:
    """One decision point: what the agent saw and what it did."""

    index: int
    observation: Any
    action: Any
    messages: list[dict[str, Any]] | None = None
    valid_actions: list[Any] | None = None
    probs: Any = None
    entropy: float | None = None
    label: str | None = None
    correction: Any = None
    screenshot: str | None = None
    error: dict[str, Any] | None = None
    intervention_p: float | None = None


@dataclass
class Label:
    """A label given with ``episode.label(kind, reason)``."""

    kind: str
    reason: str | None = None


@dataclass
class Feedback:
    """Human feedback on an episode, or on one of its steps."""

    id: int
    episode_id: str
    rating: int | None = None
    aspects: dict[str, int] = field(default_factory=dict)
    comment: str | None = None
    suggested_action: Any = None
    step: int | None = None
    correct_action: Any = None
    created_at: float = 0.0


@dataclass
class Episode:
    """One recorded test outcome: a labeled training example."""

    id: str
    nodeid: str
    scenario: str
    outcome: str
    session_id: str | None = None
    category: str | None = None
    model: str | None = None
    arm: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    label: int | None = None
    label_reason: str | None = None
    reward: float | None = None
    reward_components: dict[str, float] = field(default_factory=dict)
    quality: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    duration_s: float | None = None
    error: str | None = None
    worker: str | None = None
    created_at: float = 0.0
    steps: list[Step] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)

    @property
    def is_intervention(self) -> bool:
        """True when the episode needed intervention (label 1)."""
        return self.label == 1


def entropy_of(probs: Any) -> float | None:
    """Shannon entropy (nats) of a distribution given as a list or a ``{action: p}`` mapping."""
    values = list(probs.values()) if isinstance(probs, dict) else probs
    if not isinstance(values, list) or not values:
        return None
    try:
        ps = [float(p) for p in values]
    except (TypeError, ValueError):
        return None
    total = sum(ps)
    if total <= 0 or any(p < 0 for p in ps):
        return None
    return -sum((p / total) * math.log(p / total) for p in ps if p > 0)
