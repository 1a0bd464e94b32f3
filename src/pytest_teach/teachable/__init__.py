"""Teachable moments: which failures are worth teaching.

A *teachable moment* is a failure state where the student is uncertain and a little correct
supervision reliably changes the outcome. This package measures it on gridworld scenarios
(:mod:`pytest_teach.envs.minigrid`):

- phase 0: :func:`collect` runs the suite with collection on; :func:`mine` extracts failure
  snapshots (``snapshots.jsonl``);
- phase 1: :func:`label_snapshots` gives each U, leverage ``L_local``, the contextual patch
  test (``ELP_net``, ``route_net``) and a quadrant (``labeled_snapshots.jsonl``);
  :func:`plot_thresholds` draws the distributions;
- phase 4: :func:`train_predictor` learns U, L, ELP and the quadrant from the snapshot's text;
- :func:`run_pilot` chains them; :func:`build_student` makes the tiny LM student.

``teach teachable ...`` is the command-line face. Heavy libraries (torch, scikit-learn,
matplotlib, minigrid) are imported by the functions that need them.
"""

from ._collect import Collection, Rollouts, collect
from ._embed import (
    EMBEDDERS,
    Embedder,
    HashingEmbedder,
    MiniLMEmbedder,
    field_words,
    make_embedder,
)
from ._files import TeachableError
from ._label import LABELED_SCHEMA, LabelSettings, apply_quadrants, label_snapshots
from ._mine import SNAPSHOT_SCHEMA, MineResult, decode_state, mine
from ._patches import PATCH_KINDS, contrast_patch, demo_patch, hint_patch
from ._pilot import PilotSettings, run_pilot
from ._plots import plot_thresholds
from ._predictor import (
    PREDICTOR_SCHEMA,
    READS,
    SEED_TARGETS,
    PredictorSettings,
    snapshot_text,
    state_features,
    train_predictor,
)
from ._quadrants import QUADRANTS, assign_quadrant, auto_thresholds
from ._ranking import ndcg_at_k, precision_at_k
from ._rollout import rollout, rollout_rng
from ._student import DEMO_SEED_START, StudentSettings, build_student

__all__ = [
    "DEMO_SEED_START",
    "EMBEDDERS",
    "LABELED_SCHEMA",
    "PATCH_KINDS",
    "PREDICTOR_SCHEMA",
    "QUADRANTS",
    "READS",
    "SEED_TARGETS",
    "SNAPSHOT_SCHEMA",
    "Collection",
    "Embedder",
    "HashingEmbedder",
    "LabelSettings",
    "MineResult",
    "MiniLMEmbedder",
    "PilotSettings",
    "PredictorSettings",
    "Rollouts",
    "StudentSettings",
    "TeachableError",
    "apply_quadrants",
    "assign_quadrant",
    "auto_thresholds",
    "build_student",
    "collect",
    "contrast_patch",
    "decode_state",
    "field_words",
    "demo_patch",
    "hint_patch",
    "label_snapshots",
    "make_embedder",
    "mine",
    "ndcg_at_k",
    "plot_thresholds",
    "precision_at_k",
    "rollout",
    "rollout_rng",
    "run_pilot",
    "snapshot_text",
    "state_features",
    "train_predictor",
]
