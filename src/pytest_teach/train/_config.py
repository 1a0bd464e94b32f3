"""CPU-safe TRL configs: one place that knows which fields to set on a machine without a GPU."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ._dist import dist_timeout


def on_gpu() -> bool:
    """Whether CUDA is available (torch is imported lazily)."""
    import torch

    return torch.cuda.is_available()


def trl_config(config_cls: type, **overrides: Any) -> Any:
    """Build a TRL config (``SFTConfig``, ``DPOConfig``, ``GRPOConfig``...) with defaults that
    work on CPU and GPU alike: ``use_cpu`` and no bf16 without CUDA, no activation
    checkpointing, no reporting, no hub pushes, and ``TEACH_DIST_TIMEOUT`` as the timeout of
    the collectives between processes. ``overrides`` win."""
    fields = {f.name for f in dataclasses.fields(config_cls)}
    gpu = on_gpu()
    defaults: dict[str, Any] = {
        "use_cpu": not gpu,
        "bf16": gpu,
        "fp16": False,
        "report_to": [],
        "save_strategy": "no",
        "push_to_hub": False,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "ddp_timeout": int(math.ceil(dist_timeout())),
    }
    # transformers 5 renamed gradient_checkpointing; TRL turns it on by default
    for name in ("activation_checkpointing", "gradient_checkpointing"):
        if name in fields:
            defaults[name] = False
            break
    return config_cls(**{k: v for k, v in {**defaults, **overrides}.items() if k in fields})
