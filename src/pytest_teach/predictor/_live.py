"""Live early warning: the trained predictor scoring each step as a scenario records it.

``pytest --intervention-predictor PATH`` builds one :class:`LiveScorer` per process and hands it
to every episode recorder; the probability is stored on the step and the first crossing of the
threshold becomes the episode's warning (see :mod:`._warning`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from ..store import Step

__all__ = ["LiveScorer"]


class LiveScorer:
    """A loaded predictor that scores steps and never fails the test it scores.

    Loading (:meth:`load`) raises :class:`~._dataset.PredictorError` for a bad checkpoint, so a
    run can refuse to start; a step that cannot be scored later is left without a probability,
    and the first such failure is kept in :attr:`problem` for the summary.
    """

    def __init__(self, predictor: Any, path: str, notes: Sequence[str] = ()) -> None:
        self.predictor = predictor
        self.path = path
        self.threshold = float(predictor.threshold)
        self.notes = list(notes)
        self.problem: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, scores: bool = True) -> LiveScorer:
        """Load the predictor at ``path`` (a directory or ``intervention_predictor.pt``) with its
        visual tower; the tower's notices (random weights) are kept as :attr:`notes`. A process
        that runs no test (``scores`` false: an xdist controller) skips building the tower and
        keeps only the checkpoint's threshold and notices, for the summary."""
        from ._encoder import NO_WEIGHTS, random_tower_notice
        from ._model import load_predictor

        predictor = load_predictor(path)
        cfg = predictor.encoder.cfg
        if not (scores and cfg.visual_fingerprint):
            random = cfg.visual_fingerprint and not cfg.visual_pretrained
            notes = [random_tower_notice(cfg.visual_model, NO_WEIGHTS, cfg.visual_seed)]
            return cls(predictor, str(predictor.path), notes if random else [])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            predictor.tower  # noqa: B018 -- build and check it now, not mid-test
        notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        return cls(predictor, str(predictor.path), notes)

    def score(self, steps: Sequence[Step], image_of: Callable[[str], bytes | None]) -> float | None:
        """P(intervention) of the last of ``steps``; None (and :attr:`problem` set) on failure."""
        if self.problem is not None:
            return None
        try:
            return self.predictor.score(steps, image_of)
        except Exception as exc:  # scoring must never turn into the agent's failure
            self.problem = f"scoring stopped: {type(exc).__name__}: {exc}"[:300]
            return None
