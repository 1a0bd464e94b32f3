"""The reward pool: persistent pytest workers that score completions with a suite's own tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..redaction import drain_redacted
from ._base import (
    KILL_GRACE_S,
    RewardPoolError,
    Score,
    ScoringPool,
    Task,
    _can_read_rss,
    _rss_mb,
    completion_text,
    log,
)

__all__ = ["RewardPool"]

#: Default cap on one worker's captured output, in bytes; past it the oldest output is dropped.
MAX_LOG_BYTES = 1_000_000

#: Smallest cap a pool accepts (the log keeps the last half of it, after a marker line).
MIN_LOG_BYTES = 4096

#: Seconds the pool waits for a worker whose socket closed to finish exiting.
EXIT_WAIT_S = 2.0

#: Seconds the pool waits for a stopped worker's output to be drained into its log.
DRAIN_WAIT_S = 2.0


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


class RewardPool(ScoringPool):
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
        super().__init__(
            suite,
            workers=workers,
            timeout=timeout,
            pytest_args=pytest_args,
            cwd=cwd,
            start_timeout=start_timeout,
            kill_grace=kill_grace,
            max_checks_per_worker=max_checks_per_worker,
            max_worker_rss_mb=max_worker_rss_mb,
        )
        if (
            isinstance(max_log_bytes, bool)
            or not isinstance(max_log_bytes, int)
            or max_log_bytes < MIN_LOG_BYTES
        ):
            raise ValueError(
                f"max_log_bytes must be an integer >= {MIN_LOG_BYTES}, got {max_log_bytes!r}"
            )
        if max_worker_rss_mb is not None and not _can_read_rss():
            raise RewardPoolError(
                "max_worker_rss_mb needs /proc or the psutil package to read a worker's memory"
            )
        self.max_log_bytes = max_log_bytes
        self._workers: list[_Worker] = []
        self._resources: _Resources | None = None
        self._finalizer: weakref.finalize | None = None

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> RewardPool:
        return self.start()

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
        self._collected(lists)
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
                out[nodeid] = self._task(nodeid, payload)
        return out

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
                out.append((i, self._scored(nodeid, kind, payload)))
        return out
