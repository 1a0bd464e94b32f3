"""What every reward pool shares: tasks, scores, statistics, planning and the TRL reward function.

A backend (:class:`~pytest_teach.rewards.RewardPool`'s local processes, the Ray actors of
:class:`~pytest_teach.rewards.RayRewardPool`) subclasses :class:`ScoringPool` and provides the
life cycle and two calls on one of its workers: capture prompts, and score a list of
candidates in order. Planning (which worker scores which candidates), statistics, the
zero-variance report and the async TRL reward function live here, once.
"""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import logging
import math
import os
import statistics
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..redaction import redact_logs

__all__ = [
    "PoolStats",
    "RewardPoolError",
    "Score",
    "ScoringPool",
    "Task",
    "completion_text",
]

log = logging.getLogger("pytest_teach.rewards")
redact_logs(log)

#: Extra seconds the pool waits past a check's timeout before it kills the worker.
KILL_GRACE_S = 5.0


class RewardPoolError(RuntimeError):
    """The pool could not start or collect the suite; the message says why."""


@dataclass(frozen=True)
class Task:
    """One collected scenario the pool can score: its node id and the prompt its test sends."""

    nodeid: str
    messages: list[dict[str, Any]]
    max_tokens: int = 256
    temperature: float = 0.0
    valid_actions: list[str] | None = None

    def row(self) -> dict[str, Any]:
        """A GRPO dataset row: ``{"prompt": messages, "nodeid": ..., "scenario": ...}``."""
        return {"prompt": self.messages, "nodeid": self.nodeid, "scenario": self.nodeid}


@dataclass(frozen=True)
class Score:
    """The reward one completion earned, or ``None`` (left out of training) with the reason.

    ``outcome`` is ``passed``/``failed`` (scored), or ``timeout``/``crashed``/``error``/``skipped``
    (``None``). A check that exits (``sys.exit(3)``, ``os._exit(3)``, a fatal signal) is
    ``crashed`` and its reason starts with ``crashed (exit 3)`` or ``crashed (killed by SIGSEGV)``.
    """

    nodeid: str
    value: float | None
    outcome: str
    reason: str | None = None
    components: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    ms: float = 0.0


@dataclass
class PoolStats:
    """What the pool has scored so far."""

    scored: int = 0
    none: int = 0
    by_outcome: collections.Counter = field(default_factory=collections.Counter)
    none_reasons: collections.Counter = field(default_factory=collections.Counter)
    groups: int = 0
    #: ``(nodeid, reward)`` of every group whose completions all earned the same reward.
    zero_variance: list[tuple[str, float]] = field(default_factory=list)
    #: Workers replaced because a check hung past its timeout or crashed the worker.
    restarts: int = 0
    #: Workers stopped and started afresh after ``max_checks_per_worker`` checks or past
    #: ``max_worker_rss_mb``.
    recycled: int = 0

    def summary(self) -> str:
        """One line per fact, for the end of a training run."""
        lines = [
            f"checks: {self.scored + self.none} scored by the suite, {self.none} left out "
            f"(None): " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_outcome.items()))
        ]
        for reason, count in self.none_reasons.most_common(3):
            lines.append(f"  left out x{count}: {reason}")
        if self.groups:
            lines.append(
                f"groups with no reward variance: {len(self.zero_variance)} of {self.groups}"
                + (
                    " (" + ", ".join(f"{n} = {v:g}" for n, v in self.zero_variance[:3]) + ")"
                    if self.zero_variance
                    else ""
                )
            )
        if self.restarts:
            lines.append(f"workers replaced after a hung or crashed check: {self.restarts}")
        if self.recycled:
            lines.append(f"workers recycled (check or memory limit): {self.recycled}")
        return "\n".join(lines)


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or the contents of conversational messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(
            m.get("content", "") if isinstance(m.get("content"), str) else ""
            for m in completion
            if isinstance(m, dict)
        )
    return str(completion)


def _rss_mb(pid: int) -> float | None:
    """The resident memory of process ``pid`` in MiB, or ``None`` if it can't be read."""
    try:
        fd = os.open(f"/proc/{pid}/statm", os.O_RDONLY)
    except OSError:
        return _psutil_rss_mb(pid)
    try:
        pages = int(os.read(fd, 256).split()[1])
    except (OSError, IndexError, ValueError):
        return None
    finally:
        os.close(fd)
    return pages * _PAGE_SIZE / 2**20


def _psutil_rss_mb(pid: int) -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return None


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _can_read_rss() -> bool:
    return os.path.exists(f"/proc/{os.getpid()}/statm") or (
        importlib.util.find_spec("psutil") is not None
    )


class ScoringPool:
    """Scores completions with a suite's own checks, in workers that each hold a warm pytest
    session over the suite. Subclasses start and stop the workers and run the calls on them.

    Args:
        suite: test paths or node ids, as on pytest's command line.
        workers: how many workers score in parallel (each holds its own fixtures).
        timeout: seconds one check may run; past it the score is ``None``.
        pytest_args: extra pytest arguments (``-k``, ``-m``, ``-p``, ``-o``...).
        cwd: the directory pytest runs in (rootdir and conftest discovery).
        start_timeout: seconds a worker may take to collect the suite.
        kill_grace: seconds past ``timeout`` after which a worker that hasn't answered (a check
            stuck where the alarm can't interrupt it) is killed and replaced.
        max_checks_per_worker: recycle a worker (tear its fixtures down, start a fresh one)
            after this many scored checks; ``None`` never does.
        max_worker_rss_mb: recycle a worker whose resident memory has grown past this many
            MiB; ``None`` never does.
    """

    def __init__(
        self,
        suite: str | Sequence[str],
        *,
        workers: int = 2,
        timeout: float = 10.0,
        pytest_args: Sequence[str] = (),
        cwd: str | os.PathLike[str] | None = None,
        start_timeout: float = 120.0,
        kill_grace: float = KILL_GRACE_S,
        max_checks_per_worker: int | None = None,
        max_worker_rss_mb: float | None = None,
    ) -> None:
        paths = [suite] if isinstance(suite, str) else list(suite)
        if not paths:
            raise RewardPoolError("give at least one suite path")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if max_checks_per_worker is not None and (
            isinstance(max_checks_per_worker, bool)
            or not isinstance(max_checks_per_worker, int)
            or max_checks_per_worker < 1
        ):
            raise ValueError(
                f"max_checks_per_worker must be an integer >= 1 or None, "
                f"got {max_checks_per_worker!r}"
            )
        if max_worker_rss_mb is not None and not (
            isinstance(max_worker_rss_mb, (int, float))
            and not isinstance(max_worker_rss_mb, bool)
            and math.isfinite(max_worker_rss_mb)
            and max_worker_rss_mb > 0
        ):
            raise ValueError(
                f"max_worker_rss_mb must be a positive number of MiB or None, "
                f"got {max_worker_rss_mb!r}"
            )
        self.cwd = str(Path(cwd or os.getcwd()).resolve())
        for path in paths:
            target = Path(self.cwd, path.split("::", 1)[0])
            if not target.exists():
                raise RewardPoolError(f"suite path {path!r} does not exist (from {self.cwd})")
        self.suite = paths
        self.timeout = float(timeout)
        self.n_workers = workers
        self.start_timeout = float(start_timeout)
        self.kill_grace = float(kill_grace)
        self.max_checks_per_worker = max_checks_per_worker
        self.max_worker_rss_mb = None if max_worker_rss_mb is None else float(max_worker_rss_mb)
        args = [*paths, *pytest_args]
        if importlib.util.find_spec("xdist") is not None:
            args += ["-n", "0"]  # the workers are the parallelism; never nest xdist
        self.args = args
        self.nodeids: list[str] = []
        self.skipped: dict[str, str] = {}
        self.stats = PoolStats()
        self._workers: list[Any] = []
        self._tasks: list[Task] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stats_lock = threading.Lock()

    # -- what a backend provides ------------------------------------------------------------

    def start(self) -> ScoringPool:
        """Start the workers and wait until each has collected the suite."""
        raise NotImplementedError

    def close(self) -> None:
        """Tear the workers' fixtures down and stop them."""
        raise NotImplementedError

    def _capture(self, index: int, nodeids: list[str]) -> dict[str, Task]:
        """The prompts of ``nodeids``, captured on worker ``index`` (``skipped`` says why not)."""
        raise NotImplementedError

    def _run_on(
        self, index: int, jobs: list[tuple[int, tuple[str, Any]]]
    ) -> list[tuple[int, Score]]:
        """Score ``(position, (nodeid, completion))`` jobs on worker ``index``, in order."""
        raise NotImplementedError

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> ScoringPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _collected(self, lists: list[list[str]]) -> None:
        """Keep the node ids the workers collected; none at all is an error."""
        self.nodeids = lists[0]
        if not self.nodeids:
            self.close()
            raise RewardPoolError(
                f"pytest collected no tests from {' '.join(self.suite)}"
                + (f" with {' '.join(self.args[len(self.suite) :])}" if self.args else "")
            )
        self._executor = ThreadPoolExecutor(self.n_workers, thread_name_prefix="teach-reward")

    def _require_started(self) -> None:
        if not self._workers or self._executor is None:
            raise RewardPoolError("the pool is not started: use it as a context manager")

    @property
    def _recycling(self) -> bool:
        return self.max_checks_per_worker is not None or self.max_worker_rss_mb is not None

    # -- prompts ----------------------------------------------------------------------------

    def tasks(self) -> list[Task]:
        """The scenarios' prompts, captured from each test's first model call.

        Tests that never call the model (or fail before it) are left out; ``skipped`` maps
        their node ids to the reason.
        """
        if self._tasks is not None:
            return self._tasks
        self._require_started()
        chunks = _split(self.nodeids, len(self._workers))
        results = list(
            self._executor.map(  # type: ignore[union-attr]
                lambda pair: self._capture(*pair), enumerate(chunks)
            )
        )
        captured: dict[str, Task] = {}
        for part in results:
            captured.update(part)
        self._tasks = [captured[n] for n in self.nodeids if n in captured]
        return self._tasks

    @staticmethod
    def _task(nodeid: str, request: dict[str, Any]) -> Task:
        """A task from the request a test's first model call made."""
        return Task(
            nodeid=nodeid,
            messages=request["messages"],
            max_tokens=request["max_tokens"],
            temperature=request["temperature"],
            valid_actions=request["valid_actions"],
        )

    # -- scoring ----------------------------------------------------------------------------

    def score(self, requests: Sequence[tuple[str, Any]]) -> list[Score]:
        """Score ``(nodeid, completion)`` pairs; the result is in the same order.

        Requests for one node id go to one worker (its fixtures are warm for it); different
        node ids spread over the workers and run in parallel.
        """
        self._require_started()
        if not requests:
            return []
        groups: dict[str, list[int]] = collections.defaultdict(list)
        for i, (nodeid, _) in enumerate(requests):
            groups[nodeid].append(i)
        plan: list[list[int]] = [[] for _ in self._workers]
        owners = {w.current: w.index for w in self._workers if w.current is not None}
        for nodeid, indices in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            least = min(range(len(plan)), key=lambda k: len(plan[k]))
            owner = owners.get(nodeid)
            target = (
                owner
                if owner is not None and len(plan[owner]) <= len(plan[least]) + len(indices)
                else least
            )
            plan[target].extend(indices)
        results: list[Score | None] = [None] * len(requests)

        def run(index: int) -> None:
            for i, score in self._run_on(index, [(i, requests[i]) for i in plan[index]]):
                results[i] = score

        busy = [k for k, indices in enumerate(plan) if indices]
        if len(busy) == 1:
            run(busy[0])
        else:
            list(self._executor.map(run, busy))  # type: ignore[union-attr]
        scores = [r for r in results if r is not None]
        assert len(scores) == len(requests)
        with self._stats_lock:
            for s in scores:
                self.stats.by_outcome[s.outcome] += 1
                if s.value is None:
                    self.stats.none += 1
                    self.stats.none_reasons[f"{s.outcome}: {s.reason}"] += 1
                else:
                    self.stats.scored += 1
        return scores

    @staticmethod
    def _scored(nodeid: str, kind: str, payload: Any) -> Score:
        """The score a worker's answer gives; a ``None`` reward is logged with its reason."""
        if kind != "ok":
            return Score(nodeid, None, "error", str(payload))
        if payload["value"] is None:
            log.info("check left out (None) for %s: %s", nodeid, payload["reason"])
        return Score(nodeid=nodeid, **payload)

    async def ascore(self, requests: Sequence[tuple[str, Any]]) -> list[Score]:
        """:meth:`score` without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.score, list(requests))

    # -- TRL --------------------------------------------------------------------------------

    def reward_func(self, name: str = "suite_checks") -> Callable[..., Any]:
        """An async TRL reward function scoring each completion with its row's test.

        Rows need a ``nodeid`` column (:meth:`Task.row` gives one). It logs, through TRL's
        ``log_metric``, each reward component's mean (``checks/<name>``), the share of
        completions left out (``checks/none``) and the share of groups with no reward variance
        (``checks/zero_variance_groups``); the groups themselves are kept in
        ``stats.zero_variance``.
        """
        pool = self

        async def reward(
            prompts: Sequence[Any],
            completions: Sequence[Any],
            nodeid: Sequence[str],
            log_metric: Callable[[str, float], None] | None = None,
            **_: Any,
        ) -> list[float | None]:
            scores = await pool.ascore(list(zip(nodeid, completions, strict=True)))
            values = [s.value for s in scores]
            groups = _groups(list(nodeid), values)
            with pool._stats_lock:
                pool.stats.groups += len(groups)
                flat = [(n, vs[0]) for n, vs in groups if len(vs) > 1 and len(set(vs)) == 1]
                pool.stats.zero_variance.extend(flat)
            if flat:
                log.warning(
                    "%d of %d groups have no reward variance (no GRPO signal): %s",
                    len(flat),
                    len(groups),
                    ", ".join(n for n, _ in flat[:3]),
                )
            if log_metric is not None:
                by_component: dict[str, list[float]] = collections.defaultdict(list)
                for s in scores:
                    if s.value is not None:
                        for key, value in s.components.items():
                            by_component[key].append(value)
                for key, vals in sorted(by_component.items()):
                    log_metric(f"checks/{key}", statistics.fmean(vals))
                log_metric("checks/none", sum(v is None for v in values) / len(values))
                if groups:
                    log_metric("checks/zero_variance_groups", len(flat) / len(groups))
            return values

        reward.__name__ = reward.__qualname__ = name
        return reward


def _groups(nodeids: list[str], values: list[float | None]) -> list[tuple[str, list[float]]]:
    """Consecutive runs of one node id (GRPO's groups), with their scored values."""
    out: list[tuple[str, list[float]]] = []
    previous = None
    for n, v in zip(nodeids, values, strict=True):
        if n != previous:
            out.append((n, []))
            previous = n
        if v is not None:
            out[-1][1].append(v)
    return out


def _split(items: list[str], n: int) -> list[list[str]]:
    size = math.ceil(len(items) / n) if items else 0
    return [items[i * size : (i + 1) * size] for i in range(n)]
