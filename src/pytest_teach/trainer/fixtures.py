"""pytest wiring for the trainer: ``--trainer-url``, the ``trainer`` fixture, the ``e2e_trainer``
marker's skip, and ``--trainer-url auto`` (a local ``sft`` trainer for the session).

The plugin imports this module at start-up, so it stays light: the standard library and pytest.
The plugin calls :func:`add_trainer_options` from ``pytest_addoption`` and
:func:`configure_trainer` from ``pytest_configure``, and re-exports the :func:`trainer` fixture.

- ``--trainer-url URL`` (env ``TEACH_TRAINER_URL``): the trainer; ``TEACH_TRAINER_TOKEN`` is its
  bearer token. ``GET URL/health`` is checked once per session; when nothing answers, every test
  marked ``e2e_trainer`` is skipped with the reason.
- ``--trainer-url auto`` (or ``auto:stub``): start ``teach trainer serve --backend sft`` on a free
  127.0.0.1 port with a temporary data dir and a random token, as pytest starts (its worker warms
  up during collection); it is stopped (and the data dir removed) when the session ends, and it
  stops itself if the pytest process dies. If it can't start, ``e2e_trainer`` tests error with
  the reason instead of skipping: the trainer was asked for.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .client import TrainerClient

__all__ = [
    "AUTO",
    "LocalTrainer",
    "TrainerPlugin",
    "add_trainer_options",
    "check_health",
    "configure_trainer",
    "free_port",
    "trainer",
]

AUTO = "auto"
URL_ENV = "TEACH_TRAINER_URL"
TOKEN_ENV = "TEACH_TRAINER_TOKEN"
PARENT_ENV = "TEACH_TRAINER_PARENT_PID"
MARKER = "e2e_trainer"
PLUGIN_NAME = "teach-trainer"
#: Environment for a trainer subprocess: nothing is fetched from the Hub.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
_PLUGIN_KEY = pytest.StashKey["TrainerPlugin"]()


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_health(url: str, timeout: float = 3.0) -> str | None:
    """``None`` when a trainer answers ``GET URL/health`` with 200 and ``status: ok``; otherwise
    a short reason (connection refused, HTTP 500, not a trainer...)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))
    except ValueError:
        return "the answer is not JSON"
    if not isinstance(body, dict) or body.get("status") != "ok" or "backend" not in body:
        return "the answer is not a pytest-teach trainer's health"
    return None


class LocalTrainer:
    """A ``teach trainer serve`` subprocess on a free 127.0.0.1 port (``python -m
    pytest_teach.trainer serve``), for ``--trainer-url auto`` and for tests.

    :meth:`start` waits until ``/health`` answers (the worker keeps warming up in the
    background); :meth:`stop` terminates it (SIGTERM: a clean shutdown), :meth:`kill` SIGKILLs it.
    It exits by itself when the process that started it dies.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        backend: str = "sft",
        *,
        token: str | None = None,
        env: Mapping[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.backend = backend
        self.token = token
        self.env = dict(env or {})
        self.log_path = (
            Path(log_path)
            if log_path
            else self.data_dir.parent / (f"{self.data_dir.name}.trainer.log")
        )
        self.args = list(args)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> TrainerClient:
        """A client for this trainer, with its token."""
        return TrainerClient(self.url, token=self.token)

    def log(self) -> str:
        """The subprocess's output so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def launch(self) -> LocalTrainer:
        """Start the process on a free port without waiting for it (see :meth:`wait_ready`)."""
        self.port = free_port()
        env = {**os.environ, **OFFLINE_ENV, **self.env, PARENT_ENV: str(os.getpid())}
        env.pop(TOKEN_ENV, None)
        if self.token:
            env[TOKEN_ENV] = self.token
        command = [
            sys.executable, "-m", "pytest_teach.trainer", "serve",
            "--backend", self.backend, "--data-dir", str(self.data_dir),
            "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
            *self.args,
        ]  # fmt: skip
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def wait_ready(self, timeout: float = 60.0) -> str | None:
        """Wait for ``/health``; ``None`` when it answers, else why not (it exited: its log)."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                return f"teach trainer serve exited with {code}:\n{self.log()[-4000:]}"
            if check_health(self.url, timeout=1.0) is None:
                return None
            if time.monotonic() > deadline:
                self.stop()
                return (
                    f"teach trainer serve did not answer {self.url}/health in {timeout:g}s:\n"
                    f"{self.log()[-4000:]}"
                )
            time.sleep(0.05)

    def start(self, timeout: float = 60.0) -> LocalTrainer:
        """Start it and wait for ``/health``; a port taken in between is retried on another.

        Raises:
            RuntimeError: it exited or did not answer within ``timeout`` (its log is included).
        """
        problem = ""
        for _ in range(3):
            problem = self.launch().wait_ready(timeout) or ""
            if not problem:
                return self
            if "already in use" not in problem.lower():
                break
        raise RuntimeError(problem)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait, SIGKILL if it hangs; returns the exit status."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        return process.returncode

    def kill(self) -> None:
        """SIGKILL: the service gets no chance to clean up (its worker notices and exits)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(15)


# -- the plugin part ---------------------------------------------------------------------------


def add_trainer_options(group: Any) -> None:
    """Add ``--trainer-url`` to the plugin's option group (call from ``pytest_addoption``)."""
    group.addoption(
        "--trainer-url",
        metavar="URL",
        default=None,
        help=f"the trainer service for `trainer` and `{MARKER}` tests (env {URL_ENV}; token in "
        f"env {TOKEN_ENV}); 'auto' starts a local sft trainer for the session",
    )


def configure_trainer(config: pytest.Config) -> TrainerPlugin:
    """Register the session's :class:`TrainerPlugin` (call from ``pytest_configure``)."""
    plugin = TrainerPlugin(config)
    config.stash[_PLUGIN_KEY] = plugin
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    return plugin


class TrainerPlugin:
    """Resolves the trainer URL once per session, skips ``e2e_trainer`` tests when no trainer
    answers, and owns the ``auto`` trainer's lifetime."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        raw = config.getoption("trainer_url", None) or os.environ.get(URL_ENV) or None
        self.raw = raw.strip() if raw else None
        self.token: str | None = os.environ.get(TOKEN_ENV) or None
        self.url: str | None = None
        self.auto_backend: str | None = None
        self.local: LocalTrainer | None = None
        self._tmp: str | None = None
        self._problem: str | None = None
        self._checked = False
        workerinput = getattr(config, "workerinput", None)
        if self.raw and (self.raw == AUTO or self.raw.startswith(f"{AUTO}:")):
            backend = self.raw.partition(":")[2] or "sft"
            if backend not in ("sft", "stub"):
                raise pytest.UsageError(
                    f"--trainer-url {self.raw}: use auto, auto:sft or auto:stub"
                )
            self.auto_backend = backend
            if workerinput is not None:  # an xdist worker: the controller started it
                self.url = workerinput.get("teach_trainer_url")
                self.token = workerinput.get("teach_trainer_token")
                self._problem = workerinput.get("teach_trainer_problem")
                self._checked = self._problem is not None
            else:
                self._launch_auto()
        elif self.raw:
            try:
                self.url = TrainerClient(self.raw).url
            except ValueError as exc:
                raise pytest.UsageError(f"--trainer-url: {exc}") from None

    # -- availability ------------------------------------------------------------------------

    def unavailable(self) -> str | None:
        """``None`` when a trainer answers; otherwise the skip reason (checked once)."""
        if self._checked:
            return self._problem
        self._checked = True
        if self.auto_backend is not None and self.url is None:
            self._start_auto()
        if self.url is None and self._problem is None:
            self._problem = (
                f"no --trainer-url given (env {URL_ENV}); start one with `teach trainer serve` "
                "and pass its URL, or use --trainer-url auto"
            )
        elif self.url is not None and self._problem is None:
            detail = check_health(self.url)
            if detail is not None:
                self._problem = (
                    f"no trainer answered GET {self.url}/health ({detail}); "
                    "start one with `teach trainer serve`"
                )
        return self._problem

    def _launch_auto(self) -> None:
        """Start the ``auto`` trainer now, without waiting: its worker warms up (imports torch
        and TRL, builds the tiny model) while pytest collects."""
        try:
            self._tmp = tempfile.mkdtemp(prefix="teach-trainer-")
            self.local = LocalTrainer(
                Path(self._tmp) / "data",
                self.auto_backend or "sft",
                token=secrets.token_hex(16),
                log_path=Path(self._tmp) / "trainer.log",
            )
            self.local.launch()
        except OSError as exc:
            self._problem = f"--trainer-url auto: the local trainer did not start ({exc})"
            self._checked = True

    def _start_auto(self) -> None:
        local = self.local
        if local is None or local.process is None:
            return
        problem = local.wait_ready()
        if problem and "already in use" in problem.lower():
            try:
                local.start()
                problem = None
            except (RuntimeError, OSError) as exc:
                problem = str(exc)
        if problem:
            lines = [line for line in problem.strip().splitlines() if line.strip()] or ["no answer"]
            detail = lines[0].rstrip(":") + (f": {lines[-1].strip()}" if len(lines) > 1 else "")
            self._problem = f"--trainer-url auto: the local trainer did not start ({detail})"
            return
        self.url, self.token = local.url, local.token

    # -- hooks -------------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist controller: start the ``auto`` trainer once and hand it to every worker."""
        if self.auto_backend is None:
            return
        problem = self.unavailable()
        node.workerinput["teach_trainer_url"] = self.url
        node.workerinput["teach_trainer_token"] = self.token
        node.workerinput["teach_trainer_problem"] = problem

    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Skip every ``e2e_trainer`` test, with the reason, when no trainer answers. With
        ``auto`` they error instead (see :meth:`pytest_runtest_setup`): the trainer was asked
        for, so a trainer that can't start is a failure, not a reason to skip."""
        marked = [item for item in items if item.get_closest_marker(MARKER) is not None]
        if not marked:
            return
        reason = self.unavailable()
        if reason is None or self.auto_backend is not None:
            return
        skip = pytest.mark.skip(reason=reason)
        for item in marked:
            item.add_marker(skip)

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """With ``auto``: an ``e2e_trainer`` test errors when the local trainer did not start."""
        if self.auto_backend is not None and item.get_closest_marker(MARKER) is not None:
            reason = self.unavailable()
            if reason is not None:
                pytest.fail(reason, pytrace=False)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Stop the ``auto`` trainer and remove its data dir."""
        if self.local is not None:
            with contextlib.suppress(OSError):
                self.local.stop()
            self.local = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


@pytest.fixture(scope="session")
def trainer(request: pytest.FixtureRequest) -> Iterator[TrainerClient]:
    """A :class:`~pytest_teach.trainer.TrainerClient` for ``--trainer-url`` (with
    ``TEACH_TRAINER_TOKEN``); the test is skipped, with the reason, when no trainer answers."""
    plugin = request.config.stash.get(_PLUGIN_KEY, None)
    if plugin is None:
        pytest.skip("the pytest-teach trainer plugin is not active")
    reason = plugin.unavailable()
    if reason is not None and plugin.auto_backend is not None:
        pytest.fail(reason, pytrace=False)
    if reason is not None or plugin.url is None:
        pytest.skip(reason or "no trainer")
    yield TrainerClient(plugin.url, token=plugin.token)
