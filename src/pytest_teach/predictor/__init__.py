"""The intervention predictor, end to end: labels, features, the dataset, the experience
encoder and classifier (:mod:`._encoder`, :mod:`._model`), their checkpoints and training
(:mod:`._training`), registration in the store, evaluation, live early warnings and active
learning, and their results as text.

Light to import: the names below are loaded on first use, so importing the package loads no
torch, scikit-learn or matplotlib (the plugin reads early warnings through it at every run).
Only the modules that hold the models (:mod:`._encoder`, :mod:`._model`, :mod:`._training`)
import torch at module level; :mod:`._evaluate`, :mod:`._baseline` and :mod:`._select` import
their libraries inside the functions that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "_dataset": (
        "Example",
        "PredictorError",
        "EpisodeSplit",
        "examples_of",
        "labeled_episodes",
        "split_episodes",
        "split_members",
    ),
    "_encoder": (
        "NO_WEIGHTS",
        "EncoderConfig",
        "ExperienceEncoder",
        "VisualTower",
        "random_tower_notice",
        "supcon_loss",
    ),
    "_evaluate": ("evaluate_predictor",),
    "_labels": ("known_paths", "step_labels", "trajectory"),
    "_live": ("LiveScorer",),
    "_model": (
        "ENCODER_FILE",
        "PREDICTOR_FILE",
        "InterventionClassifier",
        "Predictor",
        "image_source",
        "load_encoder",
        "load_predictor",
        "predict_episodes",
        "resolve_device",
        "tensorize",
    ),
    "_registered": (
        "DEFAULT_PREDICTOR_DIR",
        "PREDICTOR_AGENT",
        "predictor_path",
        "train_and_register_predictor",
    ),
    "_render": (
        "render_encoder_training",
        "render_evaluation",
        "render_predictor_training",
        "render_selection",
    ),
    "_select": ("select_for_labeling",),
    "_training": ("PredictorTrainingConfig", "train_encoder", "train_predictor"),
    "_warning": (
        "WARNING_KEY",
        "EpisodeWarning",
        "WarningSummary",
        "first_crossing",
        "lead_time",
        "summarize_warnings",
        "warning_of",
    ),
}

__all__ = [
    "DEFAULT_PREDICTOR_DIR",
    "ENCODER_FILE",
    "NO_WEIGHTS",
    "PREDICTOR_AGENT",
    "PREDICTOR_FILE",
    "EncoderConfig",
    "EpisodeWarning",
    "Example",
    "ExperienceEncoder",
    "InterventionClassifier",
    "LiveScorer",
    "Predictor",
    "PredictorError",
    "PredictorTrainingConfig",
    "VisualTower",
    "EpisodeSplit",
    "WARNING_KEY",
    "WarningSummary",
    "evaluate_predictor",
    "examples_of",
    "first_crossing",
    "image_source",
    "known_paths",
    "labeled_episodes",
    "lead_time",
    "load_encoder",
    "load_predictor",
    "predict_episodes",
    "predictor_path",
    "random_tower_notice",
    "render_encoder_training",
    "render_evaluation",
    "render_predictor_training",
    "render_selection",
    "resolve_device",
    "select_for_labeling",
    "split_episodes",
    "split_members",
    "step_labels",
    "summarize_warnings",
    "supcon_loss",
    "tensorize",
    "train_and_register_predictor",
    "train_encoder",
    "train_predictor",
    "trajectory",
    "warning_of",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from ._dataset import (
        EpisodeSplit,
        Example,
        PredictorError,
        examples_of,
        labeled_episodes,
        split_episodes,
        split_members,
    )
    from ._encoder import (
        NO_WEIGHTS,
        EncoderConfig,
        ExperienceEncoder,
        VisualTower,
        random_tower_notice,
        supcon_loss,
    )
    from ._evaluate import evaluate_predictor
    from ._labels import known_paths, step_labels, trajectory
    from ._live import LiveScorer
    from ._model import (
        ENCODER_FILE,
        PREDICTOR_FILE,
        InterventionClassifier,
        Predictor,
        image_source,
        load_encoder,
        load_predictor,
        predict_episodes,
        resolve_device,
        tensorize,
    )
    from ._registered import (
        DEFAULT_PREDICTOR_DIR,
        PREDICTOR_AGENT,
        predictor_path,
        train_and_register_predictor,
    )
    from ._render import (
        render_encoder_training,
        render_evaluation,
        render_predictor_training,
        render_selection,
    )
    from ._select import select_for_labeling
    from ._training import PredictorTrainingConfig, train_encoder, train_predictor
    from ._warning import (
        WARNING_KEY,
        EpisodeWarning,
        WarningSummary,
        first_crossing,
        lead_time,
        summarize_warnings,
        warning_of,
    )
