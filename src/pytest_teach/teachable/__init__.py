"""Teachable moments: which failures are worth teaching.

A *teachable moment* is a failure state where the student is uncertain and a little correct
supervision reliably changes the outcome. This package measures it on gridworld scenarios
(:mod:`pytest_teach.envs.minigrid`):

- phase 0: :func:`collect` runs the suite with collection on; :func:`mine` extracts failure
  snapshots (``snapshots.jsonl``);
- phase 1: :func:`label_snapshots` gives each U, leverage ``L_local``, the contextual patch
  test (``ELP_net``, ``route_net``) and a quadrant (``labeled_snapshots.jsonl``);
  :func:`plot_thresholds` draws the distributions;
- phase 4: :func:`train_teachability_regressor` learns U, L, ELP and the quadrant from the snapshot's text;
- phase 1B: :func:`micro_train` validates the CPT score by micro-training
  (``cpt_correlation.json``);
- phase 2: :func:`train_matrix` fine-tunes per quadrant and supervision format
  (``training_summary.json``);
- phase 3: :func:`evaluate` plays every model on a fixed set (five CSVs);
- phase 5: :func:`run_selection` compares RANDOM, ENTROPY, PREDICTOR and ORACLE selection at a
  budget (``selection_summary.json``);
- :func:`write_figures` and :func:`write_tables` draw the results;
- :func:`run_pilot` chains them; :func:`build_student` makes the tiny LM student;
- ``render_*`` turn the phases' results into the lines ``teach teachable`` prints.

``teach teachable ...`` is the command-line face. Heavy libraries (torch, scikit-learn,
matplotlib, minigrid) are imported by the functions that need them.
"""

from ._artifacts import FIGURES, TABLES, hypotheses, load_results, write_figures, write_tables
from ._collect import Collection, Rollouts, collect
from ._embed import (
    EMBEDDERS,
    Embedder,
    HashingEmbedder,
    MiniLMEmbedder,
    field_words,
    make_embedder,
)
from ._eval import EVAL_FILES, Bench, EvalSettings, evaluate
from ._experiment import EVAL_SEED_START, Experiment, SnapshotSplit
from ._files import TeachableError, clear_output_folder
from ._label import LABELED_SCHEMA, LabelSettings, apply_quadrants, label_snapshots
from ._matrix import BASELINES, TRAINING_SUMMARY, MatrixSettings, train_matrix
from ._micro import CORRELATION, MICRO_RESULTS, MicroSettings, micro_train
from ._mine import SNAPSHOT_SCHEMA, MineResult, decode_state, mine
from ._patches import PATCH_KINDS, contrast_patch, demo_patch, hint_patch
from ._pilot import (
    FULL_OUTPUTS,
    PILOT_OUTPUTS,
    ExperimentSettings,
    PilotSettings,
    prepare_pilot_output,
    run_pilot,
)
from ._plots import plot_thresholds
from ._quadrants import QUADRANTS, assign_quadrant, auto_thresholds
from ._ranking import ndcg_at_k, precision_at_k
from ._regressor import (
    READS,
    REGRESSOR_SCHEMA,
    SEED_TARGETS,
    RegressorSettings,
    snapshot_text,
    state_features,
    train_teachability_regressor,
)
from ._render import (
    render_correlation,
    render_evaluation,
    render_pilot,
    render_regressor,
    render_selection,
)
from ._rollout import Outcome, play, rollout, rollout_rng
from ._select import METHODS, SELECTION_SUMMARY, SelectSettings, run_selection
from ._stats import bootstrap_mean, spearman, t_interval
from ._student import DEMO_SEED_START, StudentSettings, build_student
from ._supervision import FORMATS, FineTune, finetune, supervision_row
from ._threads import use_threads

__all__ = [
    "BASELINES",
    "CORRELATION",
    "DEMO_SEED_START",
    "EMBEDDERS",
    "EVAL_FILES",
    "EVAL_SEED_START",
    "FIGURES",
    "FORMATS",
    "FULL_OUTPUTS",
    "LABELED_SCHEMA",
    "METHODS",
    "MICRO_RESULTS",
    "PATCH_KINDS",
    "PILOT_OUTPUTS",
    "REGRESSOR_SCHEMA",
    "QUADRANTS",
    "READS",
    "SEED_TARGETS",
    "SELECTION_SUMMARY",
    "SNAPSHOT_SCHEMA",
    "TABLES",
    "TRAINING_SUMMARY",
    "Bench",
    "Collection",
    "Embedder",
    "EvalSettings",
    "Experiment",
    "ExperimentSettings",
    "FineTune",
    "HashingEmbedder",
    "LabelSettings",
    "MatrixSettings",
    "MicroSettings",
    "MineResult",
    "MiniLMEmbedder",
    "Outcome",
    "PilotSettings",
    "RegressorSettings",
    "Rollouts",
    "SelectSettings",
    "SnapshotSplit",
    "StudentSettings",
    "TeachableError",
    "apply_quadrants",
    "assign_quadrant",
    "auto_thresholds",
    "bootstrap_mean",
    "build_student",
    "clear_output_folder",
    "collect",
    "contrast_patch",
    "decode_state",
    "demo_patch",
    "evaluate",
    "field_words",
    "finetune",
    "hint_patch",
    "hypotheses",
    "label_snapshots",
    "load_results",
    "make_embedder",
    "micro_train",
    "mine",
    "ndcg_at_k",
    "play",
    "plot_thresholds",
    "precision_at_k",
    "prepare_pilot_output",
    "render_correlation",
    "render_evaluation",
    "render_pilot",
    "render_regressor",
    "render_selection",
    "rollout",
    "rollout_rng",
    "run_pilot",
    "run_selection",
    "snapshot_text",
    "spearman",
    "state_features",
    "supervision_row",
    "t_interval",
    "train_matrix",
    "train_teachability_regressor",
    "use_threads",
    "write_figures",
    "write_tables",
]
