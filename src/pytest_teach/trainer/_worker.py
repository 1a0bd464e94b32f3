"""The worker process and the dispatcher that feeds it, one run at a time.

The service process never trains. A :class:`Dispatcher` thread takes the oldest pending run from
the run table, hands it to a worker process (``multiprocessing`` spawn) over a pipe, records the
progress and the outcome the worker sends back, and watches the process: if it dies mid-run (a
segfault, ``os._exit``, the OOM killer) the run is marked ``failed`` with the exit status and a
fresh worker is started for the next one, so the service keeps serving.

The worker warms its backend up when it starts (the ``sft`` backend imports torch/TRL and builds
the tiny base model), so the first run doesn't pay for it. It exits on its own when the service
process goes away.

With ``processes`` of 2 or more there is no worker: each run is launched on that many processes
through torchrun or accelerate launch (:mod:`._launch`), in a process group of its own, and the
run records ``processes`` and ``launcher`` in its metrics. A rank that fails fails the run with
that rank's error; the run timeout and the service's shutdown stop the whole group.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..redaction import drain_redacted
from ._backends import BACKENDS, RunSpec
from ._launch import check_launcher, launch_command, rank_error
from ._runs import Run, RunTable

__all__ = ["Dispatcher", "worker_main"]

#: Error recorded for a run that was in flight when the service shut down.
SHUTDOWN_REASON = (
    "the trainer service shut down while this run was in flight; submit it again with a new runId"
)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _watch_parent(parent_pid: int) -> None:
    """Exit the worker as soon as the service process is gone (it may have been SIGKILLed)."""
    while True:
        if os.getppid() != parent_pid:
            os._exit(0)
        time.sleep(0.25)


def worker_main(
    conn: Connection, backend_name: str, data_dir: str, log_path: str, parent: int
) -> None:
    """The worker process: warm the backend up, then run what the dispatcher sends.

    Messages in: ``("run", RunSpec fields)``, ``("stop",)``. Messages out: ``("ready", info)``,
    ``("progress", run_id, metrics)``, ``("done", run_id, output_dir, metrics)``,
    ``("failed", run_id, error)``.
    """
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    with contextlib.suppress(OSError):  # library chatter goes to the worker log, redacted
        log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the process
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        threading.Thread(
            target=drain_redacted, args=(read_fd, log.write), name="teach-worker-log", daemon=True
        ).start()
    backend = BACKENDS[backend_name](data_dir)
    started = time.perf_counter()
    try:
        backend.warm()
        conn.send(("ready", {"warm_seconds": round(time.perf_counter() - started, 3)}))
    except Exception as exc:  # runs will report their own failure; keep serving
        traceback.print_exc()
        conn.send(("ready", {"warm_error": _one_line(exc)}))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        spec = RunSpec(**message[1])
        _run_one(conn, backend, spec)


def _run_one(conn: Connection, backend: Any, spec: RunSpec) -> None:
    crash = spec.params.get("crash")

    def on_step(step: int, loss: float | None) -> None:
        conn.send(("progress", spec.run_id, {"steps": step, "loss": loss}))
        if crash == "exit":  # fault injection: the process dies mid-training
            os._exit(70)
        if crash == "raise":
            raise RuntimeError(f"injected crash at step {step} (params.crash='raise')")

    final = Path(spec.output_dir)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    started = time.perf_counter()
    print(f"== run {spec.run_id} ({backend.name})", flush=True)
    try:
        metrics = backend.train(RunSpec(**{**asdict(spec), "output_dir": str(tmp)}), on_step)
        if not tmp.is_dir():
            raise RuntimeError(f"backend {backend.name} wrote no output directory")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except Exception as exc:
        traceback.print_exc()
        shutil.rmtree(tmp, ignore_errors=True)
        conn.send(("failed", spec.run_id, _one_line(exc)))
        return
    metrics = dict(metrics)
    metrics.setdefault("seconds", round(time.perf_counter() - started, 3))
    conn.send(("done", spec.run_id, str(final.resolve()), metrics))


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "was lost"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class _Worker:
    """One worker process and our end of its pipe."""

    def __init__(self, backend: str, data_dir: Path, log_path: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=worker_main,
            args=(child, backend, str(data_dir), str(log_path), os.getpid()),
            name=f"teach-trainer-worker-{backend}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.ready = False
        self.info: dict[str, Any] = {}

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(("stop",))
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        with contextlib.suppress(OSError):
            self.conn.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5.0)
        with contextlib.suppress(OSError):
            self.conn.close()


class Dispatcher:
    """Runs pending runs one at a time in a worker process (see the module docstring)."""

    def __init__(
        self,
        runs: RunTable,
        backend: str,
        data_dir: Path,
        *,
        run_timeout: float | None = None,
        processes: int = 1,
        launcher: str = "torchrun",
        accelerate_config: str | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if processes != 1 or accelerate_config is not None:
            check_launcher(launcher, processes, accelerate_config)
        self.processes = processes
        self.launcher = launcher
        self.accelerate_config = accelerate_config
        self.runs = runs
        self.backend = backend
        self.data_dir = Path(data_dir)
        self.run_timeout = run_timeout
        self.log_path = self.data_dir / "logs" / "worker.log"
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._current: str | None = None
        self._thread = threading.Thread(
            target=self._loop, name="teach-trainer-dispatch", daemon=True
        )
        self.restarts = 0
        self._shutdown_reason = SHUTDOWN_REASON

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker (it warms up in the background) and the dispatch loop."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.processes == 1:
            with self._lock:
                self._worker = _Worker(self.backend, self.data_dir, self.log_path)
        self._thread.start()

    def notify(self) -> None:
        """A run was queued: look now rather than at the next tick."""
        self._wake.set()

    def stop(self, reason: str = SHUTDOWN_REASON) -> None:
        """Stop dispatching; fail the run in flight with ``reason``; stop the worker."""
        self._shutdown_reason = reason
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(15.0)
        with self._lock:
            current, worker = self._current, self._worker
            self._current, self._worker = None, None
        if current is not None:  # the loop did not get to it
            self.runs.fail(current, reason)
        if worker is not None:
            worker.stop()

    @property
    def state(self) -> str:
        """``starting`` (warming up), ``ready``, ``busy`` or ``down``."""
        with self._lock:
            worker, current = self._worker, self._current
        if self.processes > 1:
            return "down" if not self._thread.is_alive() else "busy" if current else "ready"
        if worker is None or not worker.alive():
            return "down"
        if current is not None:
            return "busy"
        return "ready" if worker.ready else "starting"

    @property
    def current(self) -> str | None:
        """The run in flight, if any."""
        return self._current

    # -- the loop ------------------------------------------------------------------------------

    def _ensure_worker(self) -> _Worker:
        with self._lock:
            worker = self._worker
            if worker is None or not worker.alive():
                if worker is not None:
                    worker.kill()
                    self.restarts += 1
                worker = self._worker = _Worker(self.backend, self.data_dir, self.log_path)
        return worker

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception:  # never let the loop die; the next tick retries
                traceback.print_exc(file=sys.stderr)
                time.sleep(0.5)

    def _drain_idle(self) -> None:
        worker = self._worker
        if worker is None:
            return
        try:
            while worker.conn.poll(0):
                message = worker.conn.recv()
                if message[0] == "ready":
                    worker.ready, worker.info = True, message[1]
        except (EOFError, OSError):
            pass

    def _tick(self) -> None:
        run = self.runs.next_pending()
        if run is None:
            self._drain_idle()
            self._wake.wait(0.2)
            self._wake.clear()
            return
        worker = self._ensure_worker() if self.processes == 1 else None
        if not self.runs.start(run.run_id):
            return
        with self._lock:
            self._current = run.run_id
        try:
            if worker is None:
                self._supervise_launch(run)
            else:
                self._supervise(worker, run)
        finally:
            with self._lock:
                self._current = None

    def _supervise(self, worker: _Worker, run: Run) -> None:
        spec = RunSpec(
            run_id=run.run_id,
            job_id=run.job_id,
            dataset_path=run.dataset_path,
            output_dir=str(self.data_dir / "runs" / run.run_id / "model"),
            data_dir=str(self.data_dir),
            base_model=run.base_model,
            params=run.params,
        )
        Path(spec.output_dir).parent.mkdir(parents=True, exist_ok=True)
        try:
            worker.conn.send(("run", asdict(spec)))
        except (OSError, ValueError) as exc:
            self.runs.fail(run.run_id, f"could not hand the run to the worker: {exc}")
            return
        started = time.monotonic()
        metrics: dict[str, Any] = {}
        while True:
            if self._stopping.is_set():
                worker.kill()
                self.runs.fail(run.run_id, self._shutdown_reason, metrics or None)
                return
            try:
                has_message = worker.conn.poll(0.1)
                message = worker.conn.recv() if has_message else None
            except (EOFError, OSError):
                message, has_message = None, False
                worker.process.join(2.0)
            if message is not None:
                kind = message[0]
                if kind == "ready":
                    worker.ready, worker.info = True, message[1]
                elif kind == "progress" and message[1] == run.run_id:
                    metrics = {**metrics, **message[2]}
                    self.runs.progress(run.run_id, metrics)
                elif kind == "done" and message[1] == run.run_id:
                    self.runs.complete(run.run_id, message[2], message[3])
                    return
                elif kind == "failed" and message[1] == run.run_id:
                    self.runs.fail(run.run_id, message[2], metrics or None)
                    return
                continue
            if not worker.alive():
                code = worker.process.exitcode
                self.runs.fail(
                    run.run_id,
                    f"the worker process {_describe_exit(code)} during training; "
                    f"the service restarted it (log: {self.log_path})",
                    metrics or None,
                )
                return
            if self.run_timeout is not None and time.monotonic() - started > self.run_timeout:
                worker.kill()
                self.runs.fail(
                    run.run_id,
                    f"the run exceeded the service's run timeout of {self.run_timeout:g}s "
                    "and was stopped",
                    metrics or None,
                )
                return

    # -- a run on several processes ------------------------------------------------------------

    def _supervise_launch(self, run: Run) -> None:
        """Launch the run on ``processes`` ranks and follow it to the end (module docstring)."""
        run_dir = self.data_dir / "runs" / run.run_id
        folder = run_dir / "launch"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        final = run_dir / "model"
        tmp = run_dir / ".model.tmp-launch"
        shutil.rmtree(tmp, ignore_errors=True)
        spec = RunSpec(
            run_id=run.run_id,
            job_id=run.job_id,
            dataset_path=run.dataset_path,
            output_dir=str(tmp),
            data_dir=str(self.data_dir),
            base_model=run.base_model,
            params=run.params,
        )
        spec_path = folder / "spec.json"
        spec_path.write_text(json.dumps({"backend": self.backend, "spec": asdict(spec)}))
        metrics: dict[str, Any] = {"processes": self.processes, "launcher": self.launcher}
        self.runs.progress(run.run_id, metrics)
        log_path = self.data_dir / "logs" / f"run-{run.run_id}.log"
        command = launch_command(spec_path, self.processes, self.launcher, self.accelerate_config)
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_TELEMETRY": "1"}
        env.setdefault("OMP_NUM_THREADS", "1")
        with open(log_path, "ab", buffering=0) as log:
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=str(self.data_dir),
                    start_new_session=True,  # its own group: stopping it stops every rank
                )
            except OSError as exc:
                self.runs.fail(run.run_id, f"could not launch {self.launcher}: {exc}", metrics)
                return
            assert process.stdout is not None
            fd = os.dup(process.stdout.fileno())  # the drain closes its own copy when done
            process.stdout.close()
            drain = threading.Thread(
                target=drain_redacted,
                args=(fd, log.write),
                name="teach-launch-log",
                daemon=True,
            )
            drain.start()
            error = self._follow(process, run, folder, metrics)
            drain.join(5.0)
        if error is None and process.returncode == 0 and (folder / "result.json").is_file():
            result = json.loads((folder / "result.json").read_text())
            if not tmp.is_dir():
                error = f"backend {self.backend} wrote no output directory"
            else:
                shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)
                self.runs.complete(
                    run.run_id, str(final.resolve()), {**metrics, **result["metrics"]}
                )
                return
        shutil.rmtree(tmp, ignore_errors=True)
        if error is None:
            text = log_path.read_text(encoding="utf-8", errors="replace")[-20000:]
            found = rank_error(folder, text)
            error = (
                f"{found} (of {self.processes} processes launched by {self.launcher}; "
                f"log: {log_path})"
                if found
                else f"{self.launcher} {_describe_exit(process.returncode)} (log: {log_path})"
            )
        self.runs.fail(run.run_id, error, metrics)

    def _follow(
        self, process: subprocess.Popen[bytes], run: Run, folder: Path, metrics: dict[str, Any]
    ) -> str | None:
        """Wait for the launched run, recording rank 0's progress; stop the whole process group
        on shutdown or past the run timeout and return why, else ``None``."""
        started = time.monotonic()
        progress = folder / "progress.jsonl"
        seen = 0
        reason = None
        while process.poll() is None:
            if self._stopping.is_set():
                reason = self._shutdown_reason
            elif self.run_timeout is not None and time.monotonic() - started > self.run_timeout:
                reason = (
                    f"the run exceeded the service's run timeout of {self.run_timeout:g}s "
                    f"and its {self.processes} processes were stopped"
                )
            if reason is not None:
                _stop_group(process)
                return reason
            seen = self._read_progress(progress, seen, run, metrics)
            time.sleep(0.1)
        self._read_progress(progress, seen, run, metrics)
        return None

    def _read_progress(self, path: Path, seen: int, run: Run, metrics: dict[str, Any]) -> int:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            return seen
        lines = text.splitlines()
        complete = lines if text.endswith("\n") else lines[:-1]  # a line being written waits
        for line in complete[seen:]:
            with contextlib.suppress(ValueError):
                metrics.update(json.loads(line))
        if len(complete) > seen:
            self.runs.progress(run.run_id, metrics)
        return max(seen, len(complete))


def _stop_group(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the launched process group, SIGKILL it after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
