"""The experience store: episodes, steps, labels, feedback and artifacts in one SQLite file."""

from ._codec import EpisodeDataError, dumps, to_jsonable
from ._health import StoreCheck, check_store, describe_database_error
from ._journal import Journal, replay
from ._models import OUTCOMES, Episode, Feedback, Label, Step, entropy_of
from ._recover import Recovery, TableRecovery, recover_store
from ._store import (
    ArtifactRef,
    EpisodeFilter,
    Store,
    StoreError,
    new_id,
    open_store,
    parse_since,
)

__all__ = [
    "OUTCOMES",
    "ArtifactRef",
    "Journal",
    "Episode",
    "EpisodeDataError",
    "EpisodeFilter",
    "Feedback",
    "Label",
    "Recovery",
    "Step",
    "Store",
    "StoreCheck",
    "StoreError",
    "TableRecovery",
    "check_store",
    "describe_database_error",
    "dumps",
    "entropy_of",
    "new_id",
    "open_store",
    "parse_since",
    "recover_store",
    "replay",
    "to_jsonable",
]
