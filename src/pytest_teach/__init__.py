"""pytest-teach: turn an agent test suite into a training pipeline.

Scenarios are ordinary pytest tests. Under ``pytest --collect-training-data`` every outcome becomes
a labeled example in the experience store, which :func:`open_store` reads back::

    from pytest_teach import open_store

    for episode in open_store(".teach/experience.db").episodes(label="intervention"):
        print(episode.scenario, episode.label_reason, len(episode.steps))
"""

from __future__ import annotations

__version__ = "0.1.0"

from .reward import Reward, RewardError
from .store import Episode, EpisodeDataError, Feedback, Step, Store, StoreError, open_store

__all__ = [
    "Episode",
    "EpisodeDataError",
    "Feedback",
    "Reward",
    "RewardError",
    "Step",
    "Store",
    "StoreError",
    "__version__",
    "open_store",
]
