"""The intervention predictor in the store's model registry: train and register it in one call,
and find the one to use (a path given, else the latest registered, else the default folder).

Light to import: training loads torch inside :func:`train_and_register_predictor`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..pipeline import SpecialistModel
    from ..store import Store
    from ._training import EpochCallback, PredictorTrainingConfig

__all__ = [
    "DEFAULT_PREDICTOR_DIR",
    "PREDICTOR_AGENT",
    "predictor_path",
    "train_and_register_predictor",
]

#: the agent name predictors are registered under (``teach models list --agent ...``)
PREDICTOR_AGENT = "intervention-predictor"
#: where a predictor is written, and looked for when none is registered
DEFAULT_PREDICTOR_DIR = Path(".teach") / "models"


def predictor_path(store: Store, given: str | os.PathLike[str] | None = None) -> str:
    """``given``, else the newest predictor registered in ``store``, else
    :data:`DEFAULT_PREDICTOR_DIR`."""
    if given:
        return str(given)
    from ..pipeline import list_specialist_models

    registered = list_specialist_models(store, agent=PREDICTOR_AGENT)
    return registered[0].path if registered else str(DEFAULT_PREDICTOR_DIR)


def train_and_register_predictor(
    store: Store,
    output: str | os.PathLike[str],
    cfg: PredictorTrainingConfig,
    *,
    filters: dict[str, Any] | None = None,
    on_epoch: EpochCallback | None = None,
    encoder: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> tuple[dict[str, Any], SpecialistModel]:
    """Train the predictor on ``store`` into ``output`` (see :func:`train_predictor`) and
    register it there as a model of :data:`PREDICTOR_AGENT` named ``name``; return the training
    metrics and the registered model."""
    from ..pipeline import register_trained_model
    from ._training import train_predictor

    metrics = train_predictor(
        store, output, cfg, filters=filters, on_epoch=on_epoch, encoder=encoder
    )
    registered = register_trained_model(
        store,
        str(Path(output).resolve()),
        agent=PREDICTOR_AGENT,
        name=name,
        metrics={**metrics, "method": "predictor"},
    )
    return metrics, registered
