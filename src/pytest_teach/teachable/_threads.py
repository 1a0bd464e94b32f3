"""How many threads the phases' libraries use, here and in the pytest runs they start."""

from __future__ import annotations

import os

__all__ = ["use_threads"]


def use_threads(count: int) -> None:
    """Run torch, OpenMP and BLAS on ``count`` threads in this process and the pytest runs it
    starts; offline, and without the libraries' progress bars (the phases print their own)."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(count)
    for name in (
        "HF_HUB_OFFLINE",
        "HF_HUB_DISABLE_PROGRESS_BARS",
        "HF_DATASETS_DISABLE_PROGRESS_BARS",
    ):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
