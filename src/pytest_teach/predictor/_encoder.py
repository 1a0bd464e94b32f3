"""The experience encoder: a step (screenshot, actions so far, page state) as a unit vector.

Three towers, fused:

- **visual**: open_clip's image tower (``ViT-B-32`` by default), frozen, giving a 512-d
  embedding of the step's screenshot. Weights come from ``pretrained`` (a local checkpoint file,
  or an open_clip tag where the network allows); without them it is initialised randomly from a
  fixed seed, with a one-line warning, and the same seed rebuilds the same tower when the
  checkpoint is loaded (its fingerprint is checked).
- **action**: a small transformer over the actions so far (type, target role, step error, hashed
  target-name words and a few numbers per action), giving 128-d.
- **page state**: an MLP over the page features of
  :mod:`pytest_teach.predictor._features`, standardised with the training set's mean and
  spread, giving 128-d.

Fusion concatenates the three with the visual mask, projects to 512-d and L2-normalises. A step
without a screenshot (the tool-selection and gridworld families) has its visual input masked:
zeros and a mask of 0, never a made-up image.

The contrastive loss is :func:`supcon_loss`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "NO_WEIGHTS",
    "EncoderConfig",
    "ExperienceEncoder",
    "VisualTower",
    "random_tower_notice",
    "supcon_loss",
]


@dataclass
class EncoderConfig:
    """The encoder's shape and its visual tower. Saved with the weights."""

    page_dim: int
    action_types: int
    roles: int
    errors: int
    name_buckets: int
    action_numeric: int
    max_actions: int
    visual_model: str = "ViT-B-32"
    visual_pretrained: str | None = None
    visual_seed: int = 0
    visual_fingerprint: str | None = None
    visual_dim: int = 512
    action_dim: int = 128
    page_dim_out: int = 128
    embed_dim: int = 512
    action_layers: int = 2
    action_heads: int = 4
    page_mean: list[float] = field(default_factory=list)
    page_std: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


# -- the visual tower -----------------------------------------------------------------------------

#: why a tower is random when no weights were asked for
NO_WEIGHTS = "no pretrained weights given (--clip-pretrained)"


def random_tower_notice(model: str, reason: str, seed: int) -> str:
    """The one-line notice of a visual tower initialised randomly."""
    return f"open_clip {model}: {reason}; the visual tower is random (seed {seed})"


class VisualTower:
    """open_clip's image tower, frozen: PNG/JPEG bytes to 512-d embeddings.

    The whole screenshot is resized to the tower's input size (no crop: a banner at the edge of
    the page must stay in view) and normalised with its mean and spread.
    """

    def __init__(
        self,
        model: str = "ViT-B-32",
        pretrained: str | None = None,
        *,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        if pretrained and _looks_like_path(pretrained) and not os.path.isfile(pretrained):
            raise ValueError(f"--clip-pretrained {pretrained}: no such weights file")
        visual, used, reason = _clip_visual(model, pretrained, seed, device)
        if reason is not None:
            warnings.warn(random_tower_notice(model, reason, seed), stacklevel=2)
        self.model_name = model
        self.pretrained = used
        self.seed = seed
        self.device = device
        self.visual = visual
        cfg = getattr(visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size", visual.image_size)
        self.size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        self.mean = torch.tensor(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)))
        self.std = torch.tensor(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)))
        self.dim = int(visual.output_dim)
        self.fingerprint = self._fingerprint()

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name, tensor in sorted(self.visual.state_dict().items())[:8]:
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().flatten()[:4096].numpy().tobytes())
        return digest.hexdigest()[:32]

    def _pixels(self, data: bytes) -> torch.Tensor:
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB").resize(self.size[::-1], Image.Resampling.BICUBIC)
            pixels = pil_to_tensor(rgb).float() / 255.0
        return (pixels - self.mean[:, None, None]) / self.std[:, None, None]

    @torch.inference_mode()
    def embed(self, images: Sequence[bytes], batch_size: int = 16) -> torch.Tensor:
        """Embeddings (``[len(images), 512]``, on the CPU) of encoded images."""
        out = []
        for start in range(0, len(images), batch_size):
            batch = torch.stack([self._pixels(b) for b in images[start : start + batch_size]])
            out.append(self.visual(batch.to(self.device)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)


# -- the trainable towers -------------------------------------------------------------------------


class ActionTower(nn.Module):
    """A small transformer over the action sequence so far, read out at a [CLS] token."""

    def __init__(self, cfg: EncoderConfig, width: int = 128) -> None:
        super().__init__()
        self.kind = nn.Embedding(cfg.action_types + 1, width, padding_idx=0)
        self.role = nn.Embedding(cfg.roles + 1, width, padding_idx=0)
        self.error = nn.Embedding(cfg.errors + 1, width, padding_idx=0)
        self.words = nn.Embedding(cfg.name_buckets + 1, width, padding_idx=0)
        self.numeric = nn.Linear(cfg.action_numeric, width)
        self.position = nn.Embedding(cfg.max_actions + 1, width)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        layer = nn.TransformerEncoderLayer(
            width,
            cfg.action_heads,
            dim_feedforward=2 * width,
            dropout=0.1,
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(
            layer, cfg.action_layers, enable_nested_tensor=False
        )
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, cfg.action_dim))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, action_dim]`` from the padded action tensors of a batch."""
        words = batch["words"]  # [B, L, W]
        word_mask = (words > 0).float().unsqueeze(-1)
        word_mean = (self.words(words) * word_mask).sum(2) / word_mask.sum(2).clamp(min=1.0)
        length = batch["kinds"].shape[1]
        # positions count back from the current action (0), so the latest is always in one place
        count = batch["mask"].sum(1, keepdim=True).long()
        positions = (count - 1 - torch.arange(length, device=count.device)).clamp(min=0)
        tokens = (
            self.kind(batch["kinds"])
            + self.role(batch["roles"])
            + self.error(batch["errors"])
            + word_mean
            + self.numeric(batch["numeric"])
            + self.position(positions)
        )
        cls = self.cls.expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], dim=1)
        pad = torch.cat([torch.zeros_like(batch["mask"][:, :1]), batch["mask"] == 0], dim=1)
        x = self.transformer(x, src_key_padding_mask=pad.bool())
        return self.out(x[:, 0])


class ExperienceEncoder(nn.Module):
    """The trainable part of the encoder: action and page towers and the fusion. The frozen
    visual tower's embeddings come in precomputed (``batch["visual"]``,
    ``batch["visual_mask"]``)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.action = ActionTower(cfg)
        self.page = nn.Sequential(
            nn.Linear(cfg.page_dim, 256),
            nn.GELU(),
            nn.Dropout(0.1),
            nn.Linear(256, cfg.page_dim_out),
        )
        self.visual_norm = nn.LayerNorm(cfg.visual_dim)
        fused = cfg.visual_dim + 1 + cfg.action_dim + cfg.page_dim_out
        self.fusion = nn.Sequential(
            nn.Linear(fused, cfg.embed_dim), nn.GELU(), nn.Linear(cfg.embed_dim, cfg.embed_dim)
        )
        mean = torch.tensor(cfg.page_mean or [0.0] * cfg.page_dim)
        std = torch.tensor(cfg.page_std or [1.0] * cfg.page_dim)
        self.register_buffer("page_mean", mean)
        self.register_buffer("page_std", std)

    def set_page_scale(self, pages: torch.Tensor) -> None:
        """Standardise the page features with the mean and spread of ``pages`` (training set)."""
        self.page_mean.copy_(pages.mean(0))
        self.page_std.copy_(pages.std(0).clamp(min=1e-3))
        self.cfg.page_mean = self.page_mean.tolist()
        self.cfg.page_std = self.page_std.tolist()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, embed_dim]`` unit vectors."""
        mask = batch["visual_mask"].unsqueeze(-1)
        visual = self.visual_norm(batch["visual"]) * mask  # a missing screenshot stays zero
        page = self.page((batch["page"] - self.page_mean) / self.page_std)
        fused = torch.cat([visual, mask, self.action(batch), page], dim=-1)
        return F.normalize(self.fusion(fused), dim=-1)


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al., 2020, the "out" form), class-balanced.

    For each anchor, every other state with the same label is a positive and every state with
    the other label a negative; anchors are weighted so that each label contributes equally
    however rare interventions are. Anchors without a positive in the batch are skipped.
    """
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (z @ z.T) / temperature
    logits = logits.masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~eye
    count = positive.sum(1)
    has = count > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~positive, 0.0)).sum(1)[has] / count[has]
    anchor_labels = labels[has]
    weights = torch.ones_like(per_anchor)
    for value in anchor_labels.unique():
        chosen = anchor_labels == value
        weights[chosen] = 1.0 / chosen.sum()
    return (per_anchor * weights).sum() / weights.sum()


@functools.lru_cache(maxsize=2)
def _clip_visual(
    model: str, pretrained: str | None, seed: int, device: str
) -> tuple[nn.Module, str | None, str | None]:
    """open_clip's image tower, frozen, with ``pretrained`` weights or random ones from ``seed``:
    ``(tower, the weights used or None, why it is random or None)``. Built once per process for
    the same arguments: it is frozen, so loads can share it."""
    import open_clip

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # open_clip logs a notice of its own
    reason = None
    try:
        with torch.random.fork_rng(devices=[]):
            clip = None
            if pretrained is not None:
                torch.manual_seed(seed)
                try:
                    clip = open_clip.create_model(model, pretrained=pretrained, device="cpu")
                except Exception as exc:  # a missing tag, no network, a bad file
                    if _looks_like_path(pretrained):
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                        raise ValueError(
                            f"--clip-pretrained {pretrained}: cannot load it into open_clip "
                            f"{model} ({first or type(exc).__name__})"
                        ) from None
                    reason = f"weights {pretrained!r} unavailable ({type(exc).__name__})"
                    pretrained = None
            else:
                reason = NO_WEIGHTS
            if clip is None:
                torch.manual_seed(seed)
                clip = open_clip.create_model(model, pretrained=None, device="cpu")
    finally:
        root.setLevel(level)
    visual = clip.visual
    del clip  # the text tower is not needed
    visual.eval().requires_grad_(False)
    return visual.to(device), pretrained, reason


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith((".pt", ".pth", ".bin", ".safetensors"))
