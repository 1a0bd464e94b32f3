"""The experience store: episodes, steps, labels, feedback and artifacts, in one SQLite file or
a PostgreSQL database shared by a team."""

from ._codec import EpisodeDataError, dumps, to_jsonable
from ._health import StoreCheck, check_store, describe_database_error
from ._journal import Journal, journal_dir, replay
from ._merge import MergeConflict, MergeReport, TableMerge, copy_store, merge_stores
from ._models import OUTCOMES, Episode, Feedback, Label, Step, entropy_of
from ._pages import (
    EPISODE_SORTS,
    QUEUE_ORDERS,
    EpisodePage,
    EpisodeRow,
    QueueState,
    episode_page,
    episodes_after,
    review_queue,
    session_counts,
)
from ._postgres import is_url
from ._recover import Recovery, TableRecovery, recover_store
from ._store import (
    ArtifactRef,
    EpisodeFilter,
    Store,
    StoreError,
    new_id,
    open_store,
    parse_since,
    prepare_store,
)

__all__ = [
    "EPISODE_SORTS",
    "OUTCOMES",
    "QUEUE_ORDERS",
    "ArtifactRef",
    "Journal",
    "Episode",
    "EpisodeDataError",
    "EpisodeFilter",
    "EpisodePage",
    "EpisodeRow",
    "Feedback",
    "Label",
    "MergeConflict",
    "MergeReport",
    "QueueState",
    "Recovery",
    "Step",
    "Store",
    "StoreCheck",
    "StoreError",
    "TableMerge",
    "TableRecovery",
    "check_store",
    "copy_store",
    "describe_database_error",
    "dumps",
    "entropy_of",
    "episode_page",
    "episodes_after",
    "is_url",
    "journal_dir",
    "merge_stores",
    "new_id",
    "open_store",
    "parse_since",
    "prepare_store",
    "recover_store",
    "replay",
    "review_queue",
    "session_counts",
    "to_jsonable",
]
