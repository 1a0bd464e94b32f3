"""The reward pool: persistent pytest workers that score completions with a suite's own tests."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
import logging
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = [
    "PoolStats",
    "RewardPool",
    "RewardPoolError",
    "Score",
    "Task",
    "completion_text",
]

log = logging.getLogger("pytest_teach.rewards")

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

    ``outcome`` is ``passed``/``failed`` (scored), or ``timeout``/``error``/``skipped`` (``None``).
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
    restarts: int = 0

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
            lines.append(f"workers restarted after a hung check: {self.restarts}")
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


class _WorkerLost(Exception):
    pass


class _Worker:
    """One worker process and its socket."""

    def __init__(self, index: int, args: list[str], cwd: str, log_dir: Path) -> None:
        self.index = index
        self.current: str | None = None
        self.lock = threading.Lock()
        self.log_path = log_dir / f"worker-{index}.log"
        parent, child = socket.socketpair()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log_path, "ab") as logfile:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pytest_teach.rewards._worker",
                    str(child.fileno()),
                    "--",
                    *args,
                ],
                pass_fds=[child.fileno()],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                env=env,
            )
        child.close()
        self.conn = Connection(parent.detach())

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def wait_ready(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.conn.poll(left):
                self.kill()
                raise RewardPoolError(
                    f"reward worker {self.index} did not collect the suite in {timeout:g} s"
                )
            try:
                kind, payload = self.conn.recv()
            except (EOFError, OSError):
                self.kill()
                tail = self.log_tail()
                raise RewardPoolError(
                    f"reward worker {self.index} exited while collecting the suite"
                    + (f":\n{tail}" if tail else "")
                ) from None
            if kind == "log":
                log.warning("%s", payload)
            elif kind == "ready":
                return list(payload)
            else:
                self.kill()
                tail = self.log_tail()
                raise RewardPoolError(f"{payload}" + (f":\n{tail}" if tail else ""))

    def call(self, request: tuple[Any, ...], timeout: float | None) -> Any:
        try:
            self.conn.send(request)
            if not self.conn.poll(timeout):
                raise _WorkerLost(f"no answer in {timeout:g} s")
            kind, payload = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            raise _WorkerLost(f"the worker exited ({type(exc).__name__})") from None
        while kind == "log":
            log.warning("%s", payload)
            kind, payload = self.conn.recv()
        return kind, payload

    def stop(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("stop",))
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.conn.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.conn.close()


class RewardPool:
    """Persistent pytest workers that score completions with a suite's own checks.

    Each worker is one in-process pytest session over ``suite`` (``pytest_args`` such as
    ``-k``/``-m`` apply) whose ``agent`` fixture answers with the candidate completion
    (``--model replay:@pool``). Fixtures stay warm between candidates, so a score costs the
    check itself plus a socket round trip, not a pytest start-up.

    Use it as a context manager::

        with RewardPool(["scenarios/tool_selection"], workers=2) as pool:
            tasks = pool.tasks()                       # the prompts the tests send
            scores = pool.score([(tasks[0].nodeid, '{"tools": ["web_search"]}')])
            reward = pool.reward_func()                # an async TRL reward function

    Args:
        suite: test paths or node ids, as on pytest's command line.
        workers: worker processes (each holds its own fixtures, e.g. one browser).
        timeout: seconds one check may run; past it the score is ``None``.
        pytest_args: extra pytest arguments (``-k``, ``-m``, ``-p``, ``-o``...).
        cwd: the directory the workers run pytest in (rootdir and conftest discovery).
        start_timeout: seconds a worker may take to collect the suite.
        kill_grace: seconds past ``timeout`` after which a worker that hasn't answered (a check
            stuck where the alarm can't interrupt it) is killed and replaced.
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
    ) -> None:
        paths = [suite] if isinstance(suite, str) else list(suite)
        if not paths:
            raise RewardPoolError("give at least one suite path")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
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
        args = [*paths, *pytest_args]
        if importlib.util.find_spec("xdist") is not None:
            args += ["-n", "0"]  # the workers are the parallelism; never nest xdist
        self.args = args
        self.nodeids: list[str] = []
        self.skipped: dict[str, str] = {}
        self.stats = PoolStats()
        self._workers: list[_Worker] = []
        self._log_dir = Path(tempfile.mkdtemp(prefix="teach-reward-pool-"))
        self._tasks: list[Task] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stats_lock = threading.Lock()

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> RewardPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> RewardPool:
        """Start the workers and wait until each has collected the suite."""
        if self._workers:
            return self
        self._workers = [self._spawn(i) for i in range(self.n_workers)]
        try:
            lists = [w.wait_ready(self.start_timeout) for w in self._workers]
        except BaseException:
            self.close()
            raise
        self.nodeids = lists[0]
        if not self.nodeids:
            self.close()
            raise RewardPoolError(
                f"pytest collected no tests from {' '.join(self.suite)}"
                + (f" with {' '.join(self.args[len(self.suite) :])}" if self.args else "")
            )
        self._executor = ThreadPoolExecutor(self.n_workers, thread_name_prefix="teach-reward")
        return self

    def _spawn(self, index: int) -> _Worker:
        return _Worker(index, self.args, self.cwd, self._log_dir)

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        with self._stats_lock:
            self.stats.restarts += 1
        fresh = self._spawn(worker.index)
        fresh.wait_ready(self.start_timeout)
        self._workers[worker.index] = fresh
        return fresh

    def close(self) -> None:
        """Tear the workers' fixtures down and stop them."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for worker in self._workers:
            worker.stop()
        self._workers = []

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

    def _capture(self, index: int, nodeids: list[str]) -> dict[str, Task]:
        out: dict[str, Task] = {}
        worker = self._workers[index]
        with worker.lock:
            for nodeid in nodeids:
                try:
                    kind, payload = worker.call(("prompt", nodeid), self.timeout + self.kill_grace)
                except _WorkerLost as exc:
                    self.skipped[nodeid] = f"the worker was lost capturing the prompt: {exc}"
                    worker = self._replace(worker)
                    continue
                worker.current = nodeid
                if kind != "ok":
                    self.skipped[nodeid] = str(payload)
                    continue
                out[nodeid] = Task(
                    nodeid=nodeid,
                    messages=payload["messages"],
                    max_tokens=payload["max_tokens"],
                    temperature=payload["temperature"],
                    valid_actions=payload["valid_actions"],
                )
        return out

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

    def _run_on(
        self, index: int, jobs: list[tuple[int, tuple[str, Any]]]
    ) -> list[tuple[int, Score]]:
        out = []
        worker = self._workers[index]
        with worker.lock:
            for i, (nodeid, completion) in jobs:
                text = completion_text(completion)
                try:
                    kind, payload = worker.call(
                        ("score", nodeid, text, self.timeout), self.timeout + self.kill_grace
                    )
                except _WorkerLost as exc:
                    out.append(
                        (
                            i,
                            Score(
                                nodeid, None, "timeout", f"the worker hung and was replaced: {exc}"
                            ),
                        )
                    )
                    log.warning("reward worker %d lost on %s: %s", index, nodeid, exc)
                    worker = self._replace(worker)
                    continue
                worker.current = nodeid
                if kind != "ok":
                    out.append((i, Score(nodeid, None, "error", str(payload))))
                    continue
                if payload["value"] is None:
                    log.info("check left out (None) for %s: %s", nodeid, payload["reason"])
                out.append((i, Score(nodeid=nodeid, **payload)))
        return out

    async def ascore(self, requests: Sequence[tuple[str, Any]]) -> list[Score]:
        """:meth:`score` without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.score, list(requests))

    def _require_started(self) -> None:
        if not self._workers or self._executor is None:
            raise RewardPoolError("the pool is not started: use it as a context manager")

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
