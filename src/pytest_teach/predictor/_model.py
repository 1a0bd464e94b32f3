"""The trained intervention predictor: its checkpoints, loading them back, and scoring steps.

A predictor directory holds ``experience_encoder.pt`` (the :class:`~._encoder.ExperienceEncoder`
and, once trained, the split and settings it was trained with) and ``intervention_predictor.pt``
(the :class:`InterventionClassifier` on the frozen encoder, its threshold and the split), each
with its config as ``.json`` beside it. :func:`load_predictor` and :func:`load_encoder` read them
back with one clear :class:`~pytest_teach.predictor.PredictorError` for anything wrong; training
is in :mod:`._training`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..export import atomic_write_text
from ..store import Episode, Step, Store, StoreError
from ._dataset import EpisodeSplit, PredictorError
from ._encoder import EncoderConfig, ExperienceEncoder, VisualTower
from ._features import (
    ACTION_NUMERIC,
    MAX_ACTIONS,
    MAX_WORDS,
    PAGE_DIM,
    StepFeatures,
    episode_features,
)

__all__ = [
    "ENCODER_FILE",
    "ENCODER_FORMAT",
    "PREDICTOR_FILE",
    "PREDICTOR_FORMAT",
    "ImageSource",
    "InterventionClassifier",
    "Predictor",
    "embed_screenshots",
    "encoder_file",
    "image_source",
    "load_encoder",
    "load_predictor",
    "one_thread",
    "predict_episodes",
    "predictor_file",
    "resolve_device",
    "save_checkpoint",
    "take",
    "tensorize",
    "visual_tower_for",
]

ENCODER_FILE = "experience_encoder.pt"
PREDICTOR_FILE = "intervention_predictor.pt"
ENCODER_FORMAT = "pytest-teach/experience-encoder"
PREDICTOR_FORMAT = "pytest-teach/intervention-predictor"
FORMAT_VERSION = 1

#: a screenshot's bytes by its artifact sha256 (None when it can't be read)
ImageSource = Callable[[str], "bytes | None"]


def resolve_device(name: str) -> str:
    """``cpu`` or ``cuda``; a CUDA request on a machine without it is a :class:`PredictorError`."""
    if name not in ("cpu", "cuda"):
        raise PredictorError(f"--device {name!r}: use cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise PredictorError(
            f"--device cuda: CUDA is not available on this machine (torch {torch.__version__}, "
            f"{build}, no usable GPU); use --device cpu"
        )
    return name


@contextlib.contextmanager
def one_thread(device: str) -> Iterator[None]:
    """Run torch on one CPU thread (restored afterwards). The towers are small, so threads gain
    little, and on a shared machine two spinning threads per process made an epoch 5-9x slower
    (52-67 s against 7.6-11 s) and the browser suite under xdist 1.8x slower."""
    if device != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class InterventionClassifier(nn.Module):
    """P(intervention) from a frozen encoder embedding: a one-hidden-layer MLP (logits out)."""

    def __init__(self, embed_dim: int = 512, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(embed_dim, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits, ``[B]``."""
        return self.net(z).squeeze(-1)


# -- tensors --------------------------------------------------------------------------------------


def tensorize(
    features: Sequence[StepFeatures], embeddings: dict[str, torch.Tensor], visual_dim: int
) -> dict[str, torch.Tensor]:
    """The model's input tensors for a list of steps (actions padded to :data:`MAX_ACTIONS`)."""
    n = len(features)
    kinds = torch.zeros(n, MAX_ACTIONS, dtype=torch.long)
    roles = torch.zeros_like(kinds)
    errors = torch.zeros_like(kinds)
    mask = torch.zeros(n, MAX_ACTIONS)
    words = torch.zeros(n, MAX_ACTIONS, MAX_WORDS, dtype=torch.long)
    numeric = torch.zeros(n, MAX_ACTIONS, ACTION_NUMERIC)
    visual = torch.zeros(n, visual_dim)
    visual_mask = torch.zeros(n)
    page = torch.tensor([f.page for f in features], dtype=torch.float32).reshape(n, PAGE_DIM)
    for i, f in enumerate(features):
        for j, token in enumerate(f.actions[-MAX_ACTIONS:]):
            kinds[i, j], roles[i, j], errors[i, j] = token.kind, token.role, token.error
            mask[i, j] = 1.0
            if token.words:
                words[i, j, : len(token.words)] = torch.tensor(token.words[:MAX_WORDS])
            numeric[i, j] = torch.tensor(token.numeric)
        embedding = embeddings.get(f.screenshot) if f.screenshot else None
        if embedding is not None:
            visual[i] = embedding
            visual_mask[i] = 1.0
    return {
        "kinds": kinds,
        "roles": roles,
        "errors": errors,
        "mask": mask,
        "words": words,
        "numeric": numeric,
        "visual": visual,
        "visual_mask": visual_mask,
        "page": page,
    }


def take(batch: dict[str, torch.Tensor], index: torch.Tensor, device: str) -> dict[str, Any]:
    """The rows ``index`` of every tensor of ``batch``, on ``device``."""
    return {k: v[index].to(device) for k, v in batch.items()}


def embed_screenshots(
    tower: VisualTower | None, shas: set[str], image_of: ImageSource
) -> dict[str, torch.Tensor]:
    """Embeddings of the screenshots that can be read (a missing file is a masked modality)."""
    if tower is None or not shas:
        return {}
    readable = {sha: data for sha in sorted(shas) if (data := image_of(sha))}
    vectors = tower.embed(list(readable.values()))
    return dict(zip(readable, vectors, strict=True))


def visual_tower_for(cfg: EncoderConfig, device: str, where: Path | None) -> VisualTower:
    """The frozen visual tower ``cfg`` was trained with, rebuilt and checked against its
    fingerprint (``where``: the checkpoint, for the error)."""
    tower = VisualTower(
        cfg.visual_model, cfg.visual_pretrained, seed=cfg.visual_seed, device=device
    )
    if cfg.visual_fingerprint and tower.fingerprint != cfg.visual_fingerprint:
        raise PredictorError(
            f"{where}: the visual tower rebuilt from open_clip {cfg.visual_model} "
            f"(weights {cfg.visual_pretrained or f'random, seed {cfg.visual_seed}'}) is "
            "not the one the encoder was trained with (another open_clip or torch "
            "version?); retrain with `teach train predictor`"
        )
    return tower


# -- the trained predictor ------------------------------------------------------------------------


class Predictor:
    """A trained encoder and classifier, ready to score steps."""

    def __init__(
        self,
        encoder: ExperienceEncoder,
        classifier: InterventionClassifier,
        config: dict[str, Any],
        *,
        device: str = "cpu",
        path: Path | None = None,
        tower: VisualTower | None = None,
        embeddings: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.encoder = encoder.to(device).eval()
        self.classifier = classifier.to(device).eval()
        self.config = config
        self.device = device
        self.path = path
        self._tower = tower
        self._embeddings: dict[str, torch.Tensor] = dict(embeddings or {})

    @property
    def threshold(self) -> float:
        """The decision threshold chosen on the validation episodes."""
        return float(self.config["threshold"])

    @property
    def split(self) -> EpisodeSplit:
        """The episodes it was trained, validated and tested on."""
        return EpisodeSplit.from_dict(self.config["split"])

    @property
    def tower(self) -> VisualTower:
        """The frozen visual tower, rebuilt as it was trained (and checked)."""
        if self._tower is None:
            self._tower = visual_tower_for(self.encoder.cfg, self.device, self.path)
        return self._tower

    def _embeddings_for(self, features: Sequence[StepFeatures], image_of: ImageSource) -> None:
        missing = {f.screenshot for f in features if f.screenshot} - set(self._embeddings)
        if missing:
            self._embeddings.update(embed_screenshots(self.tower, missing, image_of))

    @torch.no_grad()
    def embed(self, features: Sequence[StepFeatures], image_of: ImageSource) -> torch.Tensor:
        """Encoder embeddings ``[N, 512]`` of steps."""
        self._embeddings_for(features, image_of)
        out = []
        for start in range(0, len(features), 512):
            chunk = features[start : start + 512]
            batch = tensorize(chunk, self._embeddings, self.encoder.cfg.visual_dim)
            out.append(self.encoder(take(batch, torch.arange(len(chunk)), self.device)).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.encoder.cfg.embed_dim)

    @torch.no_grad()
    def probabilities(self, features: Sequence[StepFeatures], image_of: ImageSource) -> list[float]:
        """P(intervention) of each step."""
        if not features:
            return []
        with one_thread(self.device):
            z = self.embed(features, image_of).to(self.device)
            return torch.sigmoid(self.classifier(z)).cpu().tolist()

    def score(self, steps: Sequence[Step], image_of: ImageSource) -> float:
        """P(intervention) of the last of ``steps`` given the ones before it (live scoring)."""
        return self.probabilities(episode_features(steps)[-1:], image_of)[0]


# -- saving and loading ---------------------------------------------------------------------------


def save_checkpoint(path: Path, payload: dict[str, Any], sidecar: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` and ``sidecar`` (its readable config) to the ``.json``
    beside it, each to a temporary file first and renamed into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    atomic_write_text(path.with_suffix(".json"), json.dumps(sidecar, indent=2) + "\n")


def _read(path: Path, fmt: str) -> dict[str, Any]:
    if not path.is_file():
        raise PredictorError(f"{path}: no such checkpoint; train one with `teach train predictor`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PredictorError(
            f"{path} is not a readable checkpoint ({first[:160]}); retrain with "
            "`teach train predictor`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise PredictorError(f"{path} is not a {fmt} checkpoint (found {found!r})")
    if payload.get("version") != FORMAT_VERSION:
        raise PredictorError(
            f"{path} has format version {payload.get('version')!r}; this pytest-teach reads "
            f"version {FORMAT_VERSION}"
        )
    return payload


def _misfit(path: Path, exc: Exception) -> PredictorError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return PredictorError(
        f"{path}: the checkpoint does not fit this pytest-teach's predictor ({first[:200]})"
    )


def predictor_file(path: str | os.PathLike[str]) -> Path:
    """``intervention_predictor.pt`` itself, or inside a directory."""
    p = Path(path).expanduser()
    return p / PREDICTOR_FILE if p.is_dir() else p


def encoder_file(path: str | os.PathLike[str]) -> Path:
    """``experience_encoder.pt`` itself, or inside a directory."""
    p = Path(path).expanduser()
    return p / ENCODER_FILE if p.is_dir() else p


def load_encoder(path: str | os.PathLike[str]) -> tuple[ExperienceEncoder, dict[str, Any]]:
    """The experience encoder at ``path`` (a file, or a directory holding it) and what it was
    trained on (``split``, ``training``, ``db``, ...; empty for an encoder saved without it).
    Raises :class:`PredictorError` naming the file for a missing, corrupt or foreign one."""
    file = encoder_file(path)
    payload = _read(file, ENCODER_FORMAT)
    try:
        encoder = ExperienceEncoder(EncoderConfig(**payload["config"]))
        encoder.load_state_dict(payload["state_dict"])
        trained = dict(payload.get("trained") or {})
        if "split" in trained:
            EpisodeSplit.from_dict(trained["split"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise _misfit(file, exc) from None
    return encoder, trained


def load_predictor(path: str | os.PathLike[str], *, device: str = "cpu") -> Predictor:
    """Load ``intervention_predictor.pt`` (a file, or a directory holding it) and the encoder it
    names. Raises :class:`PredictorError` naming the file for a missing, corrupt or foreign
    checkpoint."""
    device = resolve_device(device)
    file = predictor_file(path)
    payload = _read(file, PREDICTOR_FORMAT)
    config = payload["config"]
    encoder, _ = load_encoder(file.parent / str(config.get("encoder", ENCODER_FILE)))
    try:
        classifier = InterventionClassifier(encoder.cfg.embed_dim, int(config.get("hidden", 128)))
        classifier.load_state_dict(payload["state_dict"])
        float(config["threshold"])
        EpisodeSplit.from_dict(config["split"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise _misfit(file, exc) from None
    return Predictor(encoder, classifier, config, device=device, path=file)


def image_source(store: Store) -> ImageSource:
    """Screenshot bytes from the store's artifacts; None for one that is missing."""

    def image_of(sha: str) -> bytes | None:
        try:
            return store.read_artifact(sha)
        except (StoreError, OSError):
            return None

    return image_of


def predict_episodes(
    predictor: Predictor, episodes: Sequence[Episode], image_of: ImageSource
) -> dict[str, list[float]]:
    """P(intervention) of every step of each episode, by episode id."""
    features = [(e.id, f) for e in episodes for f in episode_features(e.steps)]
    probs = predictor.probabilities([f for _, f in features], image_of)
    out: dict[str, list[float]] = {}
    for (episode_id, _), p in zip(features, probs, strict=True):
        out.setdefault(episode_id, []).append(p)
    return out
