"""From the store to labeled steps: which episodes, the split by episode, the labels, the
features.

The split is by episode and stratified by the episode's label, so every step of a test episode
is held out together, and test episodes are never used in training, not even to decide the
training labels (the paths known to succeed come from training episodes only).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..store import Episode, Store
from ._features import StepFeatures, episode_features
from ._labels import known_paths, step_labels

__all__ = [
    "Example",
    "PredictorError",
    "EpisodeSplit",
    "examples_of",
    "labeled_episodes",
    "split_episodes",
    "split_members",
]

_MIN_PER_CLASS = 3  # one each for training, validation and test


class PredictorError(ValueError):
    """Bad input for the predictor: an unusable store, checkpoint or option. The message says
    what and where."""


@dataclass
class EpisodeSplit:
    """Episode ids for training (``train``: the model is fitted on them), validation (``val``:
    the threshold is chosen on them) and test (``test``: held out for ``teach evaluate``)."""

    train: list[str]
    val: list[str]
    test: list[str]
    seed: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"train": self.train, "val": self.val, "test": self.test, "seed": self.seed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeSplit:
        """Inverse of :meth:`as_dict`."""
        return cls(
            [str(x) for x in data["train"]],
            [str(x) for x in data["val"]],
            [str(x) for x in data["test"]],
            int(data.get("seed", 0)),
        )


@dataclass
class Example:
    """One labeled step: its episode, its index, its features and its label."""

    episode: Episode
    step: int
    features: StepFeatures
    label: int | None


def labeled_episodes(store: Store, **filters: Any) -> list[Episode]:
    """The store's episodes that have a label (success or intervention) and steps.

    Raises :class:`PredictorError` when there are none, or when they are all of one kind.
    """
    chosen = {k: v for k, v in filters.items() if v is not None}
    episodes = [
        e for e in store.episodes(include_errors=False, **chosen) if e.label in (0, 1) and e.steps
    ]
    where = f"{store.location}" + (" (with these filters)" if chosen else "")
    if not episodes:
        raise PredictorError(
            f"no labeled episodes with steps in {where}; record some with "
            "`pytest --collect-training-data`"
        )
    kinds = {e.label for e in episodes}
    if len(kinds) < 2:
        only = "success" if kinds == {0} else "intervention"
        raise PredictorError(
            f"all {len(episodes)} labeled episodes in {where} are {only}: the predictor needs "
            "both successes and interventions (run a noisier agent, e.g. --model "
            "scripted:noisy-0.5)"
        )
    return episodes


def split_episodes(
    episodes: Sequence[Episode],
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> EpisodeSplit:
    """EpisodeSplit by episode, stratified by label: ``test_fraction`` of each label's episodes are
    held out for test, then ``val_fraction`` of the rest for validation. Deterministic in
    ``seed``."""
    rng = random.Random(seed)
    train: list[str] = []
    val: list[str] = []
    test: list[str] = []
    for label, name in ((0, "success"), (1, "intervention")):
        ids = sorted(e.id for e in episodes if e.label == label)
        if len(ids) < _MIN_PER_CLASS:
            raise PredictorError(
                f"only {len(ids)} {name} episode(s): holding out test and validation episodes "
                f"needs at least {_MIN_PER_CLASS} of each label"
            )
        rng.shuffle(ids)
        n_test = min(max(1, round(test_fraction * len(ids))), len(ids) - 2)
        rest = ids[n_test:]
        n_val = min(max(1, round(val_fraction * len(rest))), len(rest) - 1)
        test += ids[:n_test]
        val += rest[:n_val]
        train += rest[n_val:]
    return EpisodeSplit(sorted(train), sorted(val), sorted(test), seed)


def split_members(
    store: Store, split: EpisodeSplit, trained_on: str | None = None
) -> list[Episode]:
    """The labeled episodes of ``split`` (train, validation and test) from ``store``, in the
    order they were recorded. Raises :class:`PredictorError` when some are not there (another
    store than the one trained on, ``trained_on``)."""
    wanted = sorted({*split.train, *split.val, *split.test})
    episodes = [  # in chunks: SQLite caps the parameters of one query
        e
        for start in range(0, len(wanted), 500)
        for e in store.episodes(ids=wanted[start : start + 500])
        if e.label in (0, 1)
    ]
    found = {e.id for e in episodes}
    missing = [i for i in wanted if i not in found]
    if missing:
        hint = f" ({trained_on})" if trained_on else ""
        raise PredictorError(
            f"{len(missing)} of the {len(wanted)} episodes the model was trained and tested on "
            f"are not in {store.location} (first: {missing[0]}); pass the --db it was trained on"
            f"{hint}"
        )
    return episodes


def examples_of(
    episodes: Sequence[Episode], split: EpisodeSplit, ids: Sequence[str] | None = None
) -> list[Example]:
    """The labeled steps of the episodes in ``ids`` (default: all of ``episodes``), labeled
    against the paths that succeeded in the split's training and validation episodes."""
    known = set(split.train) | set(split.val)
    paths = known_paths(e for e in episodes if e.id in known)
    wanted = None if ids is None else set(ids)
    out: list[Example] = []
    for episode in episodes:
        if wanted is not None and episode.id not in wanted:
            continue
        labels = step_labels(episode, paths)
        for i, features in enumerate(episode_features(episode.steps)):
            out.append(Example(episode, i, features, labels[i]))
    return out
