"""Two models' episodes paired by scenario, one pair a row, regressions first: the A/B table the
viewer and the report show side by side."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..store import Episode
from ._compare import _latest_by_scenario

__all__ = ["PAIR_STATUSES", "ScenarioPair", "pair_scenarios"]

#: A pair's status, in the order the table lists them: passed under A and fails under B; failed
#: under A and passes under B; anything else that differs (outcome or reward); the same.
PAIR_STATUSES = ("regression", "improvement", "differs", "same")


@dataclass(frozen=True)
class ScenarioPair:
    """One scenario under both sides: the latest episode of each (``None`` where that side did
    not run it) and how B fares against A."""

    scenario: str
    a: Episode | None
    b: Episode | None
    status: str

    @property
    def diff(self) -> float | None:
        """B's reward minus A's, when both have one."""
        if self.a is None or self.b is None or self.a.reward is None or self.b.reward is None:
            return None
        return self.b.reward - self.a.reward


def _latest(episodes: Iterable[Episode]) -> dict[str, Episode]:
    latest: dict[str, Episode] = {}
    for e in episodes:
        if e.scenario not in latest or e.created_at >= latest[e.scenario].created_at:
            latest[e.scenario] = e
    return latest


def pair_scenarios(baseline: Sequence[Episode], candidate: Sequence[Episode]) -> list[ScenarioPair]:
    """Every scenario of either side as a :class:`ScenarioPair`, in :data:`PAIR_STATUSES` order,
    then by the reward difference (B - A, lowest first), then by name.

    A regression and an improvement are judged as :func:`~pytest_teach.compare.compare` judges
    them (the latest labeled episode of each side), so the table agrees with its counts; the
    pair shows each side's latest episode, errors included.
    """
    scored_a, scored_b = _latest_by_scenario(baseline), _latest_by_scenario(candidate)
    left, right = _latest(baseline), _latest(candidate)
    pairs = []
    for scenario in set(left) | set(right):
        sa, sb = scored_a.get(scenario), scored_b.get(scenario)
        ea, eb = left.get(scenario), right.get(scenario)
        if sa is not None and sb is not None and sa.label == 0 and sb.label == 1:
            status = "regression"
        elif sa is not None and sb is not None and sa.label == 1 and sb.label == 0:
            status = "improvement"
        elif (
            ea is not None
            and eb is not None
            and ea.outcome == eb.outcome
            and (ea.reward is None) == (eb.reward is None)
            and (ea.reward is None or abs((eb.reward or 0.0) - ea.reward) < 1e-12)
        ):
            status = "same"
        else:
            status = "differs"
        pairs.append(ScenarioPair(scenario, ea, eb, status))
    pairs.sort(
        key=lambda p: (
            PAIR_STATUSES.index(p.status),
            p.diff if p.diff is not None else 0.0,
            p.scenario,
        )
    )
    return pairs
