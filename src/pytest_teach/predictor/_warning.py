"""Early warnings: when a run's intervention probability first crossed the threshold, and how
long before the real failure that was.

Light on purpose (no torch): the plugin's terminal summary and the HTML report read the warning
each episode carries in ``episode.meta["intervention_warning"]``, and ``teach evaluate`` measures
held-out episodes with the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "WARNING_KEY",
    "EpisodeWarning",
    "WarningSummary",
    "first_crossing",
    "lead_time",
    "summarize_warnings",
    "warning_of",
]

#: the key of ``episode.meta`` under which a scored episode keeps its warning
WARNING_KEY = "intervention_warning"


def first_crossing(probabilities: Sequence[float | None], threshold: float) -> int | None:
    """The position of the first probability at or above ``threshold``; None when none is."""
    for i, p in enumerate(probabilities):
        if p is not None and p >= threshold:
            return i
    return None


def lead_time(failed: bool, steps: int, warned_at: int | None) -> int | None:
    """How many steps before the real failure (the episode's last step) the warning came: 0 when
    it came with the failing step itself. None for an episode that did not fail or was not
    warned."""
    if not failed or warned_at is None or steps <= 0:
        return None
    return max(steps - 1 - warned_at, 0)


@dataclass
class EpisodeWarning:
    """One scored episode: where (if anywhere) it was warned, and its lead time."""

    episode_id: str
    scenario: str
    model: str | None
    outcome: str
    steps: int
    threshold: float
    warned_at: int | None
    max_p: float | None
    probabilities: list[float | None] = field(default_factory=list)

    @classmethod
    def from_probabilities(
        cls, episode: Any, probabilities: Sequence[float], threshold: float
    ) -> EpisodeWarning:
        """The warning ``episode`` would have had live, had its steps scored ``probabilities``."""
        return cls(
            episode_id=episode.id,
            scenario=episode.scenario,
            model=episode.model,
            outcome=episode.outcome,
            steps=len(probabilities),
            threshold=threshold,
            warned_at=first_crossing(probabilities, threshold),
            max_p=max(probabilities, default=None),
            probabilities=list(probabilities),
        )

    @property
    def failed(self) -> bool:
        """Whether the episode needed intervention."""
        return self.outcome == "intervention"

    @property
    def warned(self) -> bool:
        """Whether its probability crossed the threshold."""
        return self.warned_at is not None

    @property
    def lead(self) -> int | None:
        """Steps between the warning and the real failure (see :func:`lead_time`)."""
        return lead_time(self.failed, self.steps, self.warned_at)


def warning_of(episode: Any) -> EpisodeWarning | None:
    """The warning an episode carries (``meta["intervention_warning"]``), with its steps'
    probabilities; None for an episode recorded without a predictor."""
    data = (episode.meta or {}).get(WARNING_KEY)
    if not isinstance(data, dict):
        return None
    try:
        threshold = float(data["threshold"])
        steps = int(data["steps"])
    except (KeyError, TypeError, ValueError):
        return None
    warned = data.get("step")
    max_p = data.get("p")
    return EpisodeWarning(
        episode_id=episode.id,
        scenario=episode.scenario,
        model=episode.model,
        outcome=episode.outcome,
        steps=steps,
        threshold=threshold,
        warned_at=int(warned) if isinstance(warned, int) else None,
        max_p=float(max_p) if isinstance(max_p, (int, float)) else None,
        probabilities=[getattr(s, "intervention_p", None) for s in episode.steps],
    )


@dataclass
class WarningSummary:
    """Early warnings over a set of episodes."""

    episodes: int
    warned: int
    failing: int
    failing_warned: int
    passing: int
    false_alarms: int
    leads: list[int]
    flagged: list[EpisodeWarning]

    @property
    def median_lead(self) -> float | None:
        """The median lead time over the failing episodes that were warned."""
        import statistics

        return statistics.median(self.leads) if self.leads else None

    @property
    def warned_early(self) -> int:
        """Failing episodes warned at least one step before they failed."""
        return sum(1 for lead in self.leads if lead >= 1)

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready values."""
        mean = sum(self.leads) / len(self.leads) if self.leads else None
        return {
            "episodes": self.episodes,
            "warned": self.warned,
            "failing_episodes": self.failing,
            "failing_warned": self.failing_warned,
            "failing_warned_early": self.warned_early,
            "passing_episodes": self.passing,
            "false_alarms": self.false_alarms,
            "median_lead_time_steps": self.median_lead,
            "mean_lead_time_steps": mean,
            "lead_times": sorted(self.leads),
        }

    def lines(self) -> list[str]:
        """The summary as short lines of text."""
        median = "-" if self.median_lead is None else f"{self.median_lead:g}"
        return [
            f"{self.warned} of {self.episodes} episodes crossed the threshold",
            f"failing episodes: {self.failing_warned} of {self.failing} warned "
            f"({self.warned_early} at least one step before the failure); "
            f"median lead time {median} steps",
            f"false alarms: {self.false_alarms} of {self.passing} passing episodes",
        ]


def summarize_warnings(warnings: Iterable[EpisodeWarning]) -> WarningSummary:
    """Count warnings, misses and false alarms, and collect the lead times."""
    items = list(warnings)
    failing = [w for w in items if w.failed]
    passing = [w for w in items if w.outcome == "success"]
    return WarningSummary(
        episodes=len(items),
        warned=sum(w.warned for w in items),
        failing=len(failing),
        failing_warned=sum(w.warned for w in failing),
        passing=len(passing),
        false_alarms=sum(w.warned for w in passing),
        leads=[w.lead for w in failing if w.lead is not None],
        flagged=[w for w in items if w.warned],
    )
