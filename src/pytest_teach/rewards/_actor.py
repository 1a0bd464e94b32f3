"""A reward actor: one Ray actor holding a warm pytest session over the suite.

:class:`~pytest_teach.rewards.RayRewardPool` wraps :class:`CheckActor` with ``ray.remote``.
The actor runs ``pytest.main`` on a background thread; once the suite is collected, that thread
waits (the session stays open) while the actor's method calls, which Ray runs on the process's
main thread, set fixtures up and run the checks (:class:`CheckSession`), so the per-check
``SIGALRM`` timeout works as in the local pool's workers. The actor's output is redacted before
it reaches Ray's logs.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from ..redaction import drain_redacted
from ._base import _rss_mb
from ._session import CheckSession, session_args, short_error

__all__ = ["CheckActor"]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _redact_output() -> None:
    """Send this process's stdout and stderr through the redaction filter."""
    for fd in (1, 2):
        original = os.dup(fd)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, fd)
        os.close(write_fd)
        threading.Thread(
            target=drain_redacted,
            args=(read_fd, lambda data, to=original: _write_all(to, data)),
            name=f"teach-redact-{fd}",
            daemon=True,
        ).start()


class CheckActor(CheckSession):
    """Scores completions with the suite's checks inside a Ray actor (see the module doc)."""

    def __init__(self, args: list[str], cwd: str) -> None:
        super().__init__()
        self._notes: list[str] = []
        self._collected = threading.Event()
        self._stop = threading.Event()
        self._failure: str | None = None
        self._thread: threading.Thread | None = None
        _redact_output()
        try:
            os.chdir(cwd)
        except OSError as exc:
            self._failure = (
                f"the suite's folder {cwd} is not on the actor's node "
                f"({exc.strerror}): give every node the same checkout"
            )
            self._collected.set()
            return
        self._thread = threading.Thread(
            target=self._main, args=(list(args),), name="teach-pytest-session", daemon=True
        )
        self._thread.start()

    def _main(self, args: list[str]) -> None:
        try:
            code = pytest.main(session_args(args), plugins=[self])
        except BaseException as exc:  # noqa: BLE001
            self._failure = f"the actor's pytest session failed: {short_error(exc)}"
        else:
            if self.session is None:
                self._failure = f"pytest could not collect the suite (exit status {int(code)})"
        finally:
            self._collected.set()

    # -- CheckSession -----------------------------------------------------------------------

    def note(self, message: str) -> None:
        self._notes.append(message)

    def serve(self) -> None:
        self._collected.set()
        if not self.collect_error:
            self._stop.wait()  # the session stays open; checks run on the main thread

    # -- called by the pool ---------------------------------------------------------------

    def ready(self, timeout: float) -> tuple[str, Any, list[str]]:
        """``("ready", nodeids, notes)`` once the suite is collected, or ``("error", why,
        notes)``."""
        if not self._collected.wait(timeout):
            return ("error", f"pytest did not collect the suite in {timeout:g} s", self._notes)
        error = self._failure or self.collect_error
        if error:
            return ("error", error, self._notes)
        return ("ready", list(self.items), self._notes)

    def pid(self) -> int:
        """The actor's process id."""
        return os.getpid()

    def rss_mb(self) -> float | None:
        """The actor's resident memory in MiB (``None`` where it can't be read)."""
        return _rss_mb(os.getpid())

    def stop(self, timeout: float) -> None:
        """Tear the fixtures down and end the pytest session (waiting up to ``timeout``)."""
        self.teardown()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
