"""The reward pool: persistent pytest workers that score completions with a suite's own tests."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
import logging
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..redaction import drain_redacted, redact_logs

__all__ = [
    "PoolStats",
    "RewardPool",
    "RewardPoolError",
    "Score",
    "Task",
    "completion_text",
]

log = logging.getLogger("pytest_teach.rewards")
redact_logs(log)

#: Extra seconds the pool waits past a check's timeout before it kills the worker.
KILL_GRACE_S = 5.0

#: Default cap on one worker's captured output, in bytes; past it the oldest output is dropped.
MAX_LOG_BYTES = 1_000_000

#: Smallest cap a pool accepts (the log keeps the last half of it, after a marker line).
MIN_LOG_BYTES = 4096

#: Seconds the pool waits for a worker whose socket closed to finish exiting.
EXIT_WAIT_S = 2.0

#: Seconds the pool waits for a stopped worker's output to be drained into its log.
DRAIN_WAIT_S = 2.0


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


class _WorkerLost(Exception):
    """The worker stopped answering: it hung (``exit`` is ``None``) or exited (``exit`` set)."""

    def __init__(self, message: str, exit: str | None = None) -> None:
        super().__init__(message)
        self.exit = exit


def _describe_exit(returncode: int) -> str:
    """How a process ended, from its return code: ``exit 3`` or ``killed by SIGSEGV``."""
    if returncode >= 0:
        return f"exit {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"killed by {name}"


class _BoundedLog:
    """A worker's captured output, kept under ``limit`` bytes.

    Output is appended until the file would pass ``limit``; then only the newest half of it is
    kept, after a marker line saying how many bytes were dropped, so the log always ends with the
    newest output (what explains a crash) and never grows without bound.
    """

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.total = 0  # bytes of output received
        self.dropped = 0  # bytes of output no longer in the file
        self._size = 0  # bytes in the file, marker included
        self._lock = threading.Lock()
        self._fh: Any = open(path, "w+b")  # noqa: SIM115 - open for the pool's life

    def write(self, data: bytes) -> None:
        """Append ``data``, dropping the oldest output past the cap."""
        with self._lock:
            if self._fh is None:
                return
            self.total += len(data)
            if self._size + len(data) <= self.limit:
                self._fh.write(data)
                self._fh.flush()
                self._size += len(data)
                return
            keep = self.limit // 2
            if len(data) >= keep:
                tail = data[-keep:]
            else:
                self._fh.seek(max(self._size - (keep - len(data)), 0))
                tail = self._fh.read() + data
            newline = tail.find(b"\n", 0, 4096)
            if 0 <= newline < len(tail) - 1:
                tail = tail[newline + 1 :]  # start the kept output on a whole line
            self.dropped = self.total - len(tail)
            marker = (
                f"[pytest-teach: {self.dropped} earlier bytes of this worker's output were "
                f"dropped; its log keeps at most {self.limit} bytes]\n"
            ).encode()
            self._fh.seek(0)
            self._fh.truncate()
            self._fh.write(marker + tail)
            self._fh.flush()
            self._size = len(marker) + len(tail)

    def close(self) -> None:
        """Close the file; later output is discarded."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


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


class _Worker:
    """One worker process, its socket, and the thread copying its output into its log.

    The worker leads its own process group (a new session), so what a check starts (a server,
    a browser, ``sleep 600``) is in that group and goes when the worker is stopped or killed.
    """

    def __init__(self, index: int, args: list[str], cwd: str, sink: _BoundedLog) -> None:
        self.index = index
        self.current: str | None = None
        self.checks = 0
        self.lock = threading.Lock()
        self._killed = False
        self.sink = sink
        self.log_path = sink.path
        parent, child = socket.socketpair()
        read_fd, write_fd = os.pipe()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
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
                stdout=write_fd,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
            child.close()
        self.conn = Connection(parent.detach())
        self.reader = threading.Thread(
            target=drain_redacted,
            args=(read_fd, sink.write),
            name=f"teach-reward-log-{index}",
            daemon=True,
        )
        self.reader.start()

    @property
    def pid(self) -> int:
        """The worker's process id (also its process group's id)."""
        return self.proc.pid

    def log_tail(self, lines: int = 8) -> str:
        self.reader.join(DRAIN_WAIT_S if self.proc.returncode is not None else 0)
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
                how = self.exit_status(EXIT_WAIT_S)
                self.kill()
                tail = self.log_tail()
                raise RewardPoolError(
                    f"reward worker {self.index} exited"
                    + (f" ({how})" if how else "")
                    + " while collecting the suite"
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
            while kind == "log":
                log.warning("%s", payload)
                kind, payload = self.conn.recv()
        except (EOFError, OSError) as exc:
            how = self.exit_status(EXIT_WAIT_S)
            if how is None:
                raise _WorkerLost(f"the worker closed its socket ({type(exc).__name__})") from None
            raise _WorkerLost(f"the worker exited ({how})", exit=how) from None
        return kind, payload

    def exit_status(self, timeout: float) -> str | None:
        """Wait up to ``timeout`` for the worker to end; say how it ended (``exit 3``).

        The worker is left unreaped, so its pid (its group's id) can't be reused before
        :meth:`kill` signals the group.
        """
        if self.proc.returncode is not None:
            return _describe_exit(self.proc.returncode)
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return None
            if info is not None and info.si_pid:
                code = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
                return _describe_exit(code)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the worker to tear its fixtures down and end; then end its process group."""
        with contextlib.suppress(OSError):
            self.conn.send(("stop",))
        self.exit_status(timeout)
        self.kill()

    def kill(self) -> None:
        """Kill the worker's process group (the worker and what its checks started)."""
        if self._killed:
            return
        self._killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            self.proc.wait()
        self.reader.join(DRAIN_WAIT_S)
        self.conn.close()


class _Resources:
    """What a started pool holds outside Python: its workers' process groups and its log
    folder. Released by :meth:`RewardPool.close`, and by a finalizer when the pool is garbage
    collected without it or the interpreter exits."""

    def __init__(self, log_dir: Path, log_limit: int) -> None:
        self.owner = os.getpid()  # a forked child inherits the finalizer; it must not run there
        self.log_dir = log_dir
        self.log_limit = log_limit
        self.workers: list[_Worker] = []
        self.sinks: dict[int, _BoundedLog] = {}

    def sink(self, index: int) -> _BoundedLog:
        if index not in self.sinks:
            self.sinks[index] = _BoundedLog(self.log_dir / f"worker-{index}.log", self.log_limit)
        return self.sinks[index]

    def release(self) -> None:
        """Kill every worker's process group, then remove the log folder."""
        if os.getpid() != self.owner:
            return
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.kill()
        self.workers.clear()
        for sink in self.sinks.values():
            sink.close()
        shutil.rmtree(self.log_dir, ignore_errors=True)


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
        max_log_bytes: cap on each worker's captured output (``worker-N.log`` in
            :attr:`log_dir`); past it the oldest output is dropped behind a marker line.
        max_checks_per_worker: recycle a worker (tear its fixtures down, start a fresh one)
            after this many scored checks; ``None`` never does.
        max_worker_rss_mb: recycle a worker whose resident memory has grown past this many
            MiB (read before each check from ``/proc``, or with psutil where there is no
            ``/proc``); ``None`` never does.

    Workers lead their own process groups: a worker that is killed (a hung check) or stopped
    takes what its checks started with it. A check that exits the worker is reported as
    ``crashed`` and the worker is replaced. The log folder is removed on :meth:`close`, and
    everything is released when the pool is garbage collected or the interpreter exits
    without it.
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
        max_log_bytes: int = MAX_LOG_BYTES,
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
        if (
            isinstance(max_log_bytes, bool)
            or not isinstance(max_log_bytes, int)
            or max_log_bytes < MIN_LOG_BYTES
        ):
            raise ValueError(
                f"max_log_bytes must be an integer >= {MIN_LOG_BYTES}, got {max_log_bytes!r}"
            )
        if max_checks_per_worker is not None and (
            isinstance(max_checks_per_worker, bool)
            or not isinstance(max_checks_per_worker, int)
            or max_checks_per_worker < 1
        ):
            raise ValueError(
                f"max_checks_per_worker must be an integer >= 1 or None, "
                f"got {max_checks_per_worker!r}"
            )
        if max_worker_rss_mb is not None:
            if not (
                isinstance(max_worker_rss_mb, (int, float))
                and not isinstance(max_worker_rss_mb, bool)
                and math.isfinite(max_worker_rss_mb)
                and max_worker_rss_mb > 0
            ):
                raise ValueError(
                    f"max_worker_rss_mb must be a positive number of MiB or None, "
                    f"got {max_worker_rss_mb!r}"
                )
            if not _can_read_rss():
                raise RewardPoolError(
                    "max_worker_rss_mb needs /proc or the psutil package to read a worker's memory"
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
        self.max_log_bytes = max_log_bytes
        self.max_checks_per_worker = max_checks_per_worker
        self.max_worker_rss_mb = None if max_worker_rss_mb is None else float(max_worker_rss_mb)
        args = [*paths, *pytest_args]
        if importlib.util.find_spec("xdist") is not None:
            args += ["-n", "0"]  # the workers are the parallelism; never nest xdist
        self.args = args
        self.nodeids: list[str] = []
        self.skipped: dict[str, str] = {}
        self.stats = PoolStats()
        self._workers: list[_Worker] = []
        self._resources: _Resources | None = None
        self._finalizer: weakref.finalize | None = None
        self._tasks: list[Task] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stats_lock = threading.Lock()

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> RewardPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def log_dir(self) -> Path | None:
        """The folder holding each worker's output (``worker-N.log``) while the pool runs."""
        return None if self._resources is None else self._resources.log_dir

    def start(self) -> RewardPool:
        """Start the workers and wait until each has collected the suite."""
        if self._workers:
            return self
        resources = _Resources(
            Path(tempfile.mkdtemp(prefix="teach-reward-pool-")), self.max_log_bytes
        )
        self._resources = resources
        self._workers = resources.workers
        # the callback holds the resources, not the pool: it runs on close, when the pool is
        # garbage collected, or at interpreter exit, whichever comes first
        self._finalizer = weakref.finalize(self, resources.release)
        try:
            for i in range(self.n_workers):
                self._workers.append(self._spawn(i))
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
        assert self._resources is not None
        return _Worker(index, self.args, self.cwd, self._resources.sink(index))

    def _replace(self, worker: _Worker, *, recycle: bool = False) -> _Worker:
        """A fresh worker in ``worker``'s place: killed (it hung or crashed) or, to recycle it,
        stopped with its fixtures torn down."""
        if recycle:
            worker.stop()
        else:
            worker.kill()
        with self._stats_lock:
            if recycle:
                self.stats.recycled += 1
            else:
                self.stats.restarts += 1
        fresh = self._spawn(worker.index)
        self._workers[worker.index] = fresh
        fresh.wait_ready(self.start_timeout)
        return fresh

    def _recycle_reason(self, worker: _Worker) -> str | None:
        """Why ``worker`` is due to be recycled before its next check, or ``None``."""
        limit = self.max_checks_per_worker
        if limit is not None and worker.checks >= limit:
            return f"after {worker.checks} checks"
        if self.max_worker_rss_mb is not None:
            rss = _rss_mb(worker.pid)
            if rss is not None and rss > self.max_worker_rss_mb:
                return f"at {rss:.0f} MiB resident (limit {self.max_worker_rss_mb:g})"
        return None

    def close(self) -> None:
        """Tear the workers' fixtures down, stop them and their process groups, and remove the
        log folder."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for worker in self._workers:
            worker.stop()
        self._workers.clear()
        if self._finalizer is not None:
            self._finalizer()  # kills what is left, removes the log folder
            self._finalizer = None
        self._resources = None

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
                    self.skipped[nodeid] = (
                        f"crashed ({exc.exit}) capturing the prompt; the worker was replaced"
                        if exc.exit
                        else f"the worker was lost capturing the prompt: {exc}"
                    )
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
                if self._recycling and (why := self._recycle_reason(worker)):
                    log.info("reward worker %d recycled %s", index, why)
                    worker = self._replace(worker, recycle=True)
                worker.checks += 1
                started = time.perf_counter()
                try:
                    kind, payload = worker.call(
                        ("score", nodeid, text, self.timeout), self.timeout + self.kill_grace
                    )
                except _WorkerLost as exc:
                    ms = (time.perf_counter() - started) * 1000.0
                    if exc.exit:
                        score = Score(
                            nodeid,
                            None,
                            "crashed",
                            f"crashed ({exc.exit}): the check ended the worker, which was replaced",
                            ms=ms,
                        )
                    else:
                        score = Score(
                            nodeid,
                            None,
                            "timeout",
                            f"the worker hung and was replaced: {exc}",
                            ms=ms,
                        )
                    out.append((i, score))
                    tail = worker.log_tail() if exc.exit else ""
                    log.warning(
                        "reward worker %d lost on %s: %s%s",
                        index,
                        nodeid,
                        exc,
                        f"; its last output:\n{tail}" if tail else "",
                    )
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

    @property
    def _recycling(self) -> bool:
        return self.max_checks_per_worker is not None or self.max_worker_rss_mb is not None

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
