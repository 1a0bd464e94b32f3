"""The experience store: episodes, steps, labels, feedback and artifacts in one SQLite file."""

from ._codec import EpisodeDataError, to_jsonable
from ._journal import Journal, replay
from ._models import OUTCOMES, Episode, Feedback, Label, Step, entropy_of
from ._store import ArtifactRef, Store, StoreError, new_id, open_store, parse_since

__all__ = [
    "OUTCOMES",
    "ArtifactRef",
    "Journal",
    "Episode",
    "EpisodeDataError",
    "Feedback",
    "Label",
    "Step",
    "Store",
    "StoreError",
    "entropy_of",
    "new_id",
    "open_store",
    "parse_since",
    "replay",
    "to_jsonable",
]
