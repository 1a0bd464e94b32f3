"""Active learning: the steps the predictor is least sure of, to be labelled next.

"Least sure" is closest to the decision threshold, measured in log-odds, so a step at p = 0.84
with a threshold of 0.85 comes before one at p = 0.5. Steps that already carry a human verdict
(a ``good``/``bad`` label, or step feedback) are skipped, and a state reached the same way in
several episodes (same scenario, same trajectory up to the step) is listed once, with the number
of identical ones: labelling one of them settles them all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..store import Episode, Store

__all__ = ["Candidate", "select_for_labeling"]


@dataclass
class Candidate:
    """A step to label: where it is, what was done, and the predictor's probability."""

    episode_id: str
    scenario: str
    model: str | None
    step: int
    p: float
    action: Any
    target: str
    identical: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(vars(self))


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _labelled(episode: Episode) -> set[int]:
    done = {s.index for s in episode.steps if s.label in ("good", "bad")}
    done |= {fb.step for fb in episode.feedback if fb.step is not None}
    return done


def select_for_labeling(store: Store, predictor: Any, k: int, **filters: Any) -> list[Candidate]:
    """The ``k`` unlabelled steps of the store's episodes (matching ``filters``, see
    :meth:`Store.episodes`) whose probability is closest to the predictor's threshold."""
    from ._labels import action_target, trajectory
    from ._model import image_source, predict_episodes

    chosen = {key: v for key, v in filters.items() if v is not None}
    episodes: Sequence[Episode] = [
        e for e in store.episodes(include_errors=False, **chosen) if e.steps
    ]
    probabilities = predict_episodes(predictor, episodes, image_source(store))
    boundary = _logit(predictor.threshold)
    paths = {e.id: trajectory(e) for e in episodes}
    settled = {  # states a human has judged, in whichever episode
        (e.scenario, paths[e.id][: i + 1])
        for e in episodes
        for i, step in enumerate(e.steps)
        if step.index in _labelled(e)
    }
    states: dict[tuple[str, tuple[str, ...]], tuple[float, Candidate]] = {}
    for episode in episodes:
        path = paths[episode.id]
        for i, (step, p) in enumerate(zip(episode.steps, probabilities[episode.id], strict=True)):
            key = (episode.scenario, path[: i + 1])
            if key in settled:
                continue
            if key in states:
                states[key][1].identical += 1
                continue
            role, name = action_target(step)
            states[key] = (
                abs(_logit(p) - boundary),
                Candidate(
                    episode_id=episode.id,
                    scenario=episode.scenario,
                    model=episode.model,
                    step=step.index,
                    p=p,
                    action=step.action,
                    target=f'{role} "{name}"' if role else "",
                ),
            )
    ranked = list(states.values())
    ranked.sort(key=lambda pair: (pair[0], pair[1].episode_id, pair[1].step))
    return [candidate for _, candidate in ranked[:k]]
