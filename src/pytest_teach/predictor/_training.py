"""Training the intervention predictor from the store, in two phases.

1. **Contrastive** (``epochs_contrastive``): the :class:`~._encoder.ExperienceEncoder` is trained
   with the supervised contrastive loss (:func:`~._encoder.supcon_loss`) on the training
   episodes' steps, so states that needed intervention and states that did not are pulled
   apart. Each batch is ``batch_size`` whole episodes, mixed so that each batch holds a failing
   one where there are enough.
2. **Classifier** (``epochs_predictor``): the encoder is frozen and a small MLP learns
   P(intervention) from its embedding, with the positive class weighted by the ratio of
   negative to positive steps. The decision threshold is the one with the best F1 on the
   validation episodes.

:func:`train_encoder` runs phase 1 alone (``teach train encoder``) and writes
``experience_encoder.pt`` with the split it used. :func:`train_predictor` runs both and writes
both checkpoints, or, given a trained encoder, phase 2 alone on that encoder's split, so the
episodes it held out stay held out. The checkpoints and the loaded :class:`~._model.
Predictor` are in :mod:`._model`.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..store import Store
from ._dataset import (
    EpisodeSplit,
    Example,
    PredictorError,
    examples_of,
    labeled_episodes,
    split_episodes,
    split_members,
)
from ._encoder import EncoderConfig, ExperienceEncoder, VisualTower, supcon_loss
from ._features import (
    ACTION_NUMERIC,
    ACTION_TYPES,
    ERROR_TYPES,
    MAX_ACTIONS,
    NAME_BUCKETS,
    PAGE_DIM,
    ROLES,
)
from ._labels import LABELING
from ._metrics import choose_threshold
from ._model import (
    ENCODER_FILE,
    ENCODER_FORMAT,
    FORMAT_VERSION,
    PREDICTOR_FILE,
    PREDICTOR_FORMAT,
    ImageSource,
    InterventionClassifier,
    Predictor,
    embed_screenshots,
    encoder_file,
    image_source,
    load_encoder,
    one_thread,
    resolve_device,
    save_checkpoint,
    take,
    tensorize,
    visual_tower_for,
)

__all__ = ["PredictorTrainingConfig", "train_encoder", "train_predictor"]

_HIDDEN = 128

#: called with (phase, epoch, epochs, mean loss) as each phase starts (epoch 0, loss NaN) and
#: after each of its epochs
EpochCallback = Callable[[str, int, int, float], None]


@dataclass
class PredictorTrainingConfig:
    """The options of ``teach train predictor`` (and ``teach train encoder``)."""

    epochs_contrastive: int = 20
    epochs_predictor: int = 10
    batch_size: int = 4
    lr: float = 1e-4
    temperature: float = 0.07
    device: str = "cpu"
    seed: int = 0
    clip_model: str = "ViT-B-32"
    clip_pretrained: str | None = None
    test_fraction: float = 0.2
    val_fraction: float = 0.2

    def check(self) -> None:
        """Raise :class:`PredictorError` for an out-of-range option."""
        for name in ("epochs_contrastive", "epochs_predictor", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PredictorError(f"--{name.replace('_', '-')} must be an integer >= 0")
        if self.batch_size < 1 or self.epochs_predictor < 1:
            raise PredictorError("--batch-size and --epochs-predictor must be at least 1")
        if not 0 < self.lr <= 1:
            raise PredictorError(f"--lr must be in (0, 1], got {self.lr}")
        if not 0 < self.temperature <= 10:
            raise PredictorError(f"--temperature must be in (0, 10], got {self.temperature}")


# -- the training set -----------------------------------------------------------------------------


@dataclass
class _TrainingSet:
    """The training and validation steps of a split, with their screenshots embedded."""

    split: EpisodeSplit
    fit: list[Example]
    val: list[Example]
    tower: VisualTower | None
    embeddings: dict[str, torch.Tensor]
    image_of: ImageSource
    seconds_embedding: float
    _tensors: dict[int, tuple[dict[str, torch.Tensor], torch.Tensor]] = field(default_factory=dict)

    def tensors(self, visual_dim: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The training steps as model inputs, and their labels (built once)."""
        if visual_dim not in self._tensors:
            data = tensorize([ex.features for ex in self.fit], self.embeddings, visual_dim)
            labels = torch.tensor([int(ex.label or 0) for ex in self.fit])
            self._tensors[visual_dim] = (data, labels)
        return self._tensors[visual_dim]


def _training_set(
    store: Store,
    cfg: PredictorTrainingConfig,
    filters: dict[str, Any] | None,
    *,
    split: EpisodeSplit | None = None,
    trained_on: str | None = None,
    make_tower: Callable[[], VisualTower] | None,
) -> _TrainingSet:
    """EpisodeSplit the store's labeled episodes (or take ``split``'s, from the store ``trained_on``),
    label their steps and embed the screenshots with ``make_tower()`` (no tower: none)."""
    if split is None:
        episodes = labeled_episodes(store, **(filters or {}))
        split = split_episodes(
            episodes, test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction, seed=cfg.seed
        )
    else:
        episodes = split_members(store, split, trained_on)
    fit = examples_of(episodes, split, split.train)
    val = examples_of(episodes, split, split.val)
    labels = {ex.label for ex in fit}
    if len(labels) < 2:
        raise PredictorError(
            f"the training steps of {store.location} are all labelled {labels.pop()}; "
            "the predictor needs both"
        )
    started = time.perf_counter()
    shots = {ex.features.screenshot for ex in fit + val if ex.features.screenshot}
    tower = make_tower() if shots and make_tower is not None else None
    image_of = image_source(store)
    embeddings = embed_screenshots(tower, shots, image_of)
    return _TrainingSet(split, fit, val, tower, embeddings, image_of, time.perf_counter() - started)


def _encoder_config(tower: VisualTower | None, cfg: PredictorTrainingConfig) -> EncoderConfig:
    return EncoderConfig(
        page_dim=PAGE_DIM,
        action_types=len(ACTION_TYPES),
        roles=len(ROLES),
        errors=len(ERROR_TYPES),
        name_buckets=NAME_BUCKETS,
        action_numeric=ACTION_NUMERIC,
        max_actions=MAX_ACTIONS,
        visual_model=cfg.clip_model,
        visual_pretrained=None if tower is None else tower.pretrained,
        visual_seed=cfg.seed,
        visual_fingerprint=None if tower is None else tower.fingerprint,
        visual_dim=512 if tower is None else tower.dim,
    )


def _episode_batches(
    examples: Sequence[Example], batch_size: int, rng: random.Random
) -> list[torch.Tensor]:
    """Example indices grouped by ``batch_size`` whole episodes; failing episodes are dealt
    round-robin first, so every batch holds one while they last."""
    by_episode: dict[str, list[int]] = {}
    failing: set[str] = set()
    for i, ex in enumerate(examples):
        by_episode.setdefault(ex.episode.id, []).append(i)
        if ex.label == 1:
            failing.add(ex.episode.id)
    bad = [e for e in by_episode if e in failing]
    good = [e for e in by_episode if e not in failing]
    rng.shuffle(bad)
    rng.shuffle(good)
    count = max(1, math.ceil(len(by_episode) / batch_size))
    groups: list[list[str]] = [[] for _ in range(count)]
    for k, episode_id in enumerate(bad):
        groups[k % count].append(episode_id)
    rest = iter(good)  # count * batch_size >= episodes, so every one finds a place
    for group in groups:
        group.extend(itertools.islice(rest, max(batch_size - len(group), 0)))
    rng.shuffle(groups)
    return [torch.tensor([i for e in group for i in by_episode[e]]) for group in groups if group]


# -- the two phases -------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _epochs(
    phase: str,
    model: nn.Module,
    epochs: int,
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    fit: Sequence[Example],
    cfg: PredictorTrainingConfig,
    rng: random.Random,
    on_epoch: EpochCallback | None,
) -> list[float]:
    """Train ``model`` for ``epochs`` over batches of whole episodes (``loss_of(example
    indices)``); the mean loss of each epoch. A loss that is not finite stops training."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    means: list[float] = []
    if on_epoch and epochs:
        on_epoch(phase, 0, epochs, float("nan"))
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for index in _episode_batches(fit, cfg.batch_size, rng):
            loss = loss_of(index)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        means.append(_mean(losses))
        if on_epoch:
            on_epoch(phase, epoch, epochs, means[-1])
    if means and not math.isfinite(means[-1]):
        raise PredictorError(f"training diverged: the {phase} loss is {means[-1]}")
    return means


def _fit_encoder(
    data: _TrainingSet,
    cfg: PredictorTrainingConfig,
    rng: random.Random,
    on_epoch: EpochCallback | None,
) -> tuple[ExperienceEncoder, list[float]]:
    """Phase 1: a fresh encoder trained with the supervised contrastive loss; the mean loss per
    epoch."""
    encoder = ExperienceEncoder(_encoder_config(data.tower, cfg))
    tensors, labels = data.tensors(encoder.cfg.visual_dim)
    encoder.set_page_scale(tensors["page"])
    encoder.to(cfg.device)

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        z = encoder(take(tensors, index, cfg.device))
        return supcon_loss(z, labels[index].to(cfg.device), cfg.temperature)

    losses = _epochs(
        "contrastive", encoder, cfg.epochs_contrastive, loss_of, data.fit, cfg, rng, on_epoch
    )
    return encoder, losses


def _fit_classifier(
    encoder: ExperienceEncoder,
    data: _TrainingSet,
    cfg: PredictorTrainingConfig,
    rng: random.Random,
    on_epoch: EpochCallback | None,
) -> tuple[InterventionClassifier, list[float]]:
    """Phase 2: the classifier on the frozen encoder, positives weighted by the class ratio."""
    device = cfg.device
    encoder.to(device).eval().requires_grad_(False)
    tensors, labels = data.tensors(encoder.cfg.visual_dim)
    with torch.no_grad():
        z_fit = torch.cat(
            [
                encoder(take(tensors, chunk, device))
                for chunk in torch.arange(len(data.fit)).split(512)
            ]
        )
    classifier = InterventionClassifier(encoder.cfg.embed_dim, _HIDDEN).to(device)
    positives = int(labels.sum())
    pos_weight = torch.tensor((len(labels) - positives) / max(positives, 1), device=device)

    def loss_of(index: torch.Tensor) -> torch.Tensor:
        logits = classifier(z_fit[index.to(device)])
        target = labels[index].float().to(device)
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)

    losses = _epochs(
        "predictor", classifier, cfg.epochs_predictor, loss_of, data.fit, cfg, rng, on_epoch
    )
    return classifier, losses


# -- the entry points -----------------------------------------------------------------------------


def _provenance(
    store: Store,
    data: _TrainingSet,
    cfg: PredictorTrainingConfig,
    filters: dict[str, Any] | None,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """What a checkpoint was trained on and how."""
    return {
        "labeling": LABELING,
        "split": data.split.as_dict(),
        "training": asdict(cfg),
        "db": store.location,
        "filters": {k: str(v) for k, v in (filters or {}).items() if v is not None},
        "metrics": metrics,
    }


def _counts(data: _TrainingSet, started: float, cfg: PredictorTrainingConfig) -> dict[str, Any]:
    split = data.split
    return {
        "episodes": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "steps": {
            "train": len(data.fit),
            "train_positive": sum(int(ex.label == 1) for ex in data.fit),
            "val": len(data.val),
        },
        "screenshots": len(data.embeddings),
        "seconds": round(time.perf_counter() - started, 2),
        "seconds_embedding_screenshots": round(data.seconds_embedding, 2),
        "device": cfg.device,
    }


def _save_encoder(path: Path, encoder: ExperienceEncoder, trained: dict[str, Any]) -> None:
    config = encoder.cfg.as_dict()
    save_checkpoint(
        path,
        {
            "format": ENCODER_FORMAT,
            "version": FORMAT_VERSION,
            "config": config,
            "trained": trained,
            "state_dict": encoder.state_dict(),
        },
        {**config, "trained": trained},
    )


def _new_tower(cfg: PredictorTrainingConfig) -> Callable[[], VisualTower]:
    return lambda: VisualTower(
        cfg.clip_model, cfg.clip_pretrained, seed=cfg.seed, device=cfg.device
    )


def _start(cfg: PredictorTrainingConfig) -> random.Random:
    cfg.check()
    cfg.device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    return random.Random(cfg.seed)


def train_encoder(
    store: Store,
    output: str | os.PathLike[str],
    cfg: PredictorTrainingConfig,
    *,
    filters: dict[str, Any] | None = None,
    on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    """Phase 1 alone: split ``store``'s labeled episodes, train the encoder on the training
    ones, write ``experience_encoder.pt`` (with the split) to ``output``; return the metrics."""
    started = time.perf_counter()
    rng = _start(cfg)
    with one_thread(cfg.device):
        data = _training_set(store, cfg, filters, make_tower=_new_tower(cfg))
        encoder, losses = _fit_encoder(data, cfg, rng, on_epoch)
        metrics = {"contrastive_loss": losses[-1] if losses else None}
        metrics.update(_counts(data, started, cfg))
        out = Path(output).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        _save_encoder(out / ENCODER_FILE, encoder, _provenance(store, data, cfg, filters, metrics))
    return metrics


def _copy_encoder(source: Path, out: Path) -> None:
    """Put the encoder checkpoint (and its JSON) beside the predictor, so the directory is
    self-contained."""
    target = out / ENCODER_FILE
    if target.exists() and os.path.samefile(source, target):
        return
    for src, dst in ((source, target), (source.with_suffix(".json"), target.with_suffix(".json"))):
        if src.is_file():
            tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)


def train_predictor(
    store: Store,
    output: str | os.PathLike[str],
    cfg: PredictorTrainingConfig,
    *,
    filters: dict[str, Any] | None = None,
    on_epoch: EpochCallback | None = None,
    encoder: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train the encoder and the classifier on ``store`` (see the module docstring), or only the
    classifier on the trained ``encoder`` (a file or directory, on its own split); write both
    checkpoints to ``output``; return the metrics (losses, validation figures, timings)."""
    started = time.perf_counter()
    rng = _start(cfg)
    with one_thread(cfg.device):
        if encoder is None:
            data = _training_set(store, cfg, filters, make_tower=_new_tower(cfg))
            model, losses = _fit_encoder(data, cfg, rng, on_epoch)
            contrastive = losses[-1] if losses else None
        else:
            source = encoder_file(encoder)
            model, trained = load_encoder(source)
            if "split" not in trained:
                raise PredictorError(
                    f"{source} was saved without its split; train it with `teach train encoder`"
                )
            tower_cfg = model.cfg
            data = _training_set(
                store,
                cfg,
                None,
                split=EpisodeSplit.from_dict(trained["split"]),
                trained_on=trained.get("db"),
                make_tower=(lambda: visual_tower_for(tower_cfg, cfg.device, source))
                if tower_cfg.visual_fingerprint
                else None,
            )
            contrastive = (trained.get("metrics") or {}).get("contrastive_loss")
        classifier, predictor_losses = _fit_classifier(model, data, cfg, rng, on_epoch)
        predictor = Predictor(
            model, classifier, {}, device=cfg.device, tower=data.tower, embeddings=data.embeddings
        )
        val_p = predictor.probabilities([ex.features for ex in data.val], data.image_of)
        threshold = choose_threshold([int(ex.label or 0) for ex in data.val], val_p)
        metrics = {
            "contrastive_loss": contrastive,
            "predictor_loss": predictor_losses[-1],
            "threshold": threshold,
            **_counts(data, started, cfg),
        }
        if encoder is not None:
            metrics["encoder"] = str(encoder_file(encoder).resolve())
        provenance = _provenance(store, data, cfg, filters, metrics)
        out = Path(output).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        if encoder is None:
            _save_encoder(out / ENCODER_FILE, model, provenance)
        else:
            _copy_encoder(encoder_file(encoder), out)
        config = {"encoder": ENCODER_FILE, "hidden": _HIDDEN, "threshold": threshold, **provenance}
        save_checkpoint(
            out / PREDICTOR_FILE,
            {
                "format": PREDICTOR_FORMAT,
                "version": FORMAT_VERSION,
                "config": config,
                "state_dict": classifier.state_dict(),
            },
            config,
        )
    return metrics
