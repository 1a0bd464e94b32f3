"""Prompts and rewards from a pytest suite's own tests, for GRPO (``teach train grpo --suite``)."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._util import json_line
from ._records import PipelineError

__all__ = ["SuiteSource"]


class SuiteSource:
    """A pytest suite as GRPO's prompts and reward: its tests are collected (``pytest_args``
    such as ``-k weather`` apply), each test's prompt is captured from its ``agent`` call, and
    each sampled completion is scored by running that test in persistent reward workers: local
    processes (``backend="local"``) or Ray actors (``backend="ray"``, on the cluster at
    ``ray_address``: ``auto``, ``HOST:PORT``, or ``None`` for a local one started for the run)."""

    def __init__(
        self,
        paths: Sequence[str],
        pytest_args: str | None = None,
        workers: int = 2,
        timeout: float = 30.0,
        recycle_after: int | None = None,
        max_rss_mb: float | None = None,
        backend: str = "local",
        ray_address: str | None = None,
    ) -> None:
        self.paths = list(paths)
        self.pytest_args = shlex.split(pytest_args or "")
        self.workers = workers
        self.timeout = timeout
        self.recycle_after = recycle_after
        self.max_rss_mb = max_rss_mb
        self.backend = backend
        self.ray_address = ray_address
        self.pool: Any = None

    def prepare(
        self, tmp: Path, stack: contextlib.ExitStack, echo: Callable[[str], None] | None
    ) -> tuple[str, dict[str, Any]]:
        """Start the reward pool (closed with ``stack``), capture the prompts and write them to
        ``tmp`` as the GRPO dataset; return its path and where the rows came from.

        Raises:
            PipelineError: the pool could not start, or no test sent a prompt.
        """
        from ..rewards import RewardPoolError, reward_pool

        try:
            pool = reward_pool(
                self.paths,
                backend=self.backend,
                ray_address=self.ray_address,
                workers=self.workers,
                timeout=self.timeout,
                pytest_args=self.pytest_args,
                max_checks_per_worker=self.recycle_after,
                max_worker_rss_mb=self.max_rss_mb,
            )
            stack.enter_context(pool)
            tasks = pool.tasks()
        except RewardPoolError as exc:
            raise PipelineError(str(exc)) from None
        self.pool = pool
        if echo:
            echo(
                f"suite {' '.join(self.paths)}: {len(pool.nodeids)} tests collected, "
                f"{len(tasks)} prompts captured by {self.workers} reward worker(s) "
                f"({'Ray actors' if self.backend == 'ray' else 'local processes'})"
            )
            for nodeid, reason in list(pool.skipped.items())[:3]:
                echo(f"  no prompt from {nodeid}: {reason}")
        if not tasks:
            raise PipelineError(
                f"no test in {' '.join(self.paths)} sent a prompt through the `agent` fixture"
                + (f" (first: {next(iter(pool.skipped.values()))})" if pool.skipped else "")
            )
        path = tmp / "suite-prompts.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json_line(task.row()) for task in tasks)
        source = {
            "suite": self.paths,
            "pytest_args": self.pytest_args,
            "tasks": len(tasks),
            "skipped": len(pool.skipped),
            "reward_backend": self.backend,
        }
        return str(path), source

    def reward_func(self) -> Any:
        """The TRL reward function that scores completions by running their tests."""
        return self.pool.reward_func()

    def report(self, echo: Callable[[str], None] | None) -> dict[str, Any]:
        """The checks' statistics (echoed as one summary line), for the run's metrics."""
        stats = self.pool.stats
        if echo:
            echo(stats.summary())
        return {
            "scored": stats.scored,
            "none": stats.none,
            "groups": stats.groups,
            "zero_variance_groups": len(stats.zero_variance),
            "worker_restarts": stats.restarts,
            "worker_recycles": stats.recycled,
        }
