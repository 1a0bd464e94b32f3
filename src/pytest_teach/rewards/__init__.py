"""Rewards from scenario checks: a suite's own pytest tests score completions for GRPO.

A scenario's test sends a prompt through the ``agent`` fixture and asserts on a check that
returns a :class:`~pytest_teach.Reward`. A reward pool collects the suite with pytest
(parametrization, markers, ``-k``/``-m`` apply), captures each test's prompt, and scores
candidate completions by running the test with the ``agent`` answering the candidate, in
persistent workers whose fixtures stay warm. Two backends hold the workers:
:class:`RewardPool` (``local``: processes on this machine) and :class:`RayRewardPool` (``ray``:
Ray actors, ``pip install 'pytest-teach[ray]'``); :func:`reward_pool` picks one by name.
``teach train grpo --suite PATH [--reward-backend ray]`` is built on them. Importing this
package is light; the workers import pytest and the suite, and only the Ray backend imports ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._base import PoolStats, RewardPoolError, Score, ScoringPool, Task, completion_text
from ._pool import RewardPool
from ._ray import RayRewardPool

__all__ = [
    "REWARD_BACKENDS",
    "PoolStats",
    "RayRewardPool",
    "RewardPool",
    "RewardPoolError",
    "Score",
    "ScoringPool",
    "Task",
    "completion_text",
    "reward_pool",
]

#: The reward pool backends by name.
REWARD_BACKENDS: dict[str, type[ScoringPool]] = {"local": RewardPool, "ray": RayRewardPool}


def reward_pool(
    suite: str | Sequence[str],
    *,
    backend: str = "local",
    ray_address: str | None = None,
    **options: Any,
) -> ScoringPool:
    """A reward pool over ``suite`` on ``backend`` (``local`` or ``ray``), not yet started.

    ``options`` are the pool's arguments (``workers``, ``timeout``, ``pytest_args``, ``cwd``,
    ``max_checks_per_worker``, ``max_worker_rss_mb``...). ``ray_address`` is the Ray cluster
    (``auto`` or ``HOST:PORT``; ``None`` starts a local one) and needs ``backend="ray"``.

    Raises:
        RewardPoolError: an unknown backend, or ``ray_address`` without the Ray backend.
    """
    cls = REWARD_BACKENDS.get(backend)
    if cls is None:
        raise RewardPoolError(
            f"unknown reward backend {backend!r}: choose one of {', '.join(REWARD_BACKENDS)}"
        )
    if cls is RayRewardPool:
        return RayRewardPool(suite, address=ray_address, **options)
    if ray_address is not None:
        raise RewardPoolError(f"a Ray address needs the ray backend, not {backend!r}")
    return cls(suite, **options)
