"""A reward worker: one pytest session that scores candidate completions with the suite's tests.

Started by :class:`~pytest_teach.rewards.RewardPool` as
``python -m pytest_teach.rewards._worker FD -- PYTEST_ARGS...``. It runs ``pytest.main`` with
``--model replay:@pool``, so pytest collects the suite as usual (parametrization, markers, ``-k``
and ``-m`` apply) and fixtures are set up the usual way. Instead of running the tests once, its
``pytest_runtestloop`` serves the pool over the socket ``FD``:

- ``("prompt", nodeid)``: run the test in capture mode; the ``agent``'s first model call records
  the prompt and stops the test.
- ``("score", nodeid, completion, timeout)``: run the test with the ``agent`` answering
  ``completion``; the reward is what the test gave ``episode.reward()`` (its default: 1.0 on
  pass, 0.0 on fail). An exception other than an assertion, a skip, or a timeout gives
  ``None``; so does ``sys.exit(N)`` in the check (``crashed (exit N)``), after which the worker
  goes on serving. A check that ends the process (``os._exit``, a signal) is seen by the pool.
- ``("stop",)``: tear the fixtures down and end the session.

Fixtures stay warm: an item's fixtures are set up once and reused for every candidate of that
item (module- and session-scoped ones across items); only ``episode`` is fresh per candidate.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection
from typing import Any

import pytest

from ..agents import POOL_SLOT, PromptCaptured
from ..errors import InfrastructureError
from ..recorder import EpisodeRecorder

__all__ = ["CheckTimeout", "main"]


class CheckTimeout(BaseException):  # noqa: N818 - raised into the test by the alarm
    """The check ran past its timeout."""


def _raise_timeout(signum: int, frame: Any) -> None:
    raise CheckTimeout


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    if not seconds:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _exit_code(exc: SystemExit) -> int:
    """The status ``sys.exit(arg)`` would give the process."""
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


class ServePlugin:
    """Serves score and prompt requests from inside a collected pytest session."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.items: dict[str, pytest.Item] = {}
        self.current: pytest.Item | None = None
        self.setup_error: str | None = None
        self.session: pytest.Session | None = None

    # -- pytest hooks -----------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        self.session = session
        self.items = {item.nodeid: item for item in session.items}
        if session.testsfailed:  # collection errors: report them, serve nothing
            self.conn.send(("error", f"{session.testsfailed} error(s) while collecting the suite"))
            return True
        self.conn.send(("ready", list(self.items)))
        try:
            self._serve()
        finally:
            self._teardown()
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            text = str(report.longrepr).strip().splitlines()
            self.conn.send(
                ("log", f"collection error in {report.nodeid}: {text[-1] if text else ''}")
            )

    # -- serving ----------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            try:
                request = self.conn.recv()
            except (EOFError, OSError):
                return
            kind = request[0]
            if kind == "stop":
                return
            if kind == "prompt":
                self.conn.send(self._prompt(request[1]))
            elif kind == "score":
                _, nodeid, completion, timeout = request
                self.conn.send(self._score(nodeid, completion, timeout))
            else:
                self.conn.send(("error", f"unknown request {kind!r}"))

    def _teardown(self) -> None:
        if self.session is None or self.current is None:
            return
        try:
            self.session._setupstate.teardown_exact(None)
        except Exception:  # noqa: BLE001 - a fixture's teardown failing must not hang the pool
            traceback.print_exc()
        self.current = None

    def _activate(self, item: pytest.Item) -> None:
        """Set ``item``'s fixtures up (tearing down what the previous item alone needed)."""
        if self.current is item:
            if self.setup_error:
                raise _SetupFailed(self.setup_error)
            return
        assert self.session is not None
        state = self.session._setupstate
        if self.current is not None:
            try:
                state.teardown_exact(item)
            except Exception:  # noqa: BLE001
                traceback.print_exc()
            self.current._request = False  # type: ignore[attr-defined]
            self.current.funcargs = None  # type: ignore[attr-defined]
        self.current = item
        self.setup_error = None
        if not getattr(item, "_request", None):
            item._initrequest()  # type: ignore[attr-defined]
        try:
            state.setup(item)
        except BaseException as exc:  # noqa: BLE001 - includes pytest's skip/fail outcomes
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self.setup_error = f"setup failed: {_short(exc)}"
            raise _SetupFailed(self.setup_error) from None

    def _run(self, item: pytest.Item, recorder: EpisodeRecorder) -> None:
        funcargs = item.funcargs  # type: ignore[attr-defined]
        had_episode = "episode" in funcargs
        previous = funcargs.get("episode")
        if had_episode:
            funcargs["episode"] = recorder
        try:
            item.runtest()
        finally:
            if had_episode:
                funcargs["episode"] = previous

    def _prompt(self, nodeid: str) -> tuple[str, Any]:
        item = self.items.get(nodeid)
        if item is None:
            return ("none", f"{nodeid}: not collected")
        try:
            self._activate(item)
        except _SetupFailed as exc:
            return ("none", str(exc))
        POOL_SLOT.arm(None, capture=True)
        try:
            self._run(item, EpisodeRecorder(enabled=True))
        except PromptCaptured:
            return ("ok", POOL_SLOT.request)
        except SystemExit as exc:
            return ("none", f"crashed (exit {_exit_code(exc)}) before calling the model")
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            return ("none", f"the test stopped before calling the model: {_short(exc)}")
        finally:
            POOL_SLOT.arm(None)
        return ("none", "the test never called the model (does it use the `agent` fixture?)")

    def _score(self, nodeid: str, completion: str, timeout: float | None) -> tuple[str, Any]:
        start = time.perf_counter()
        item = self.items.get(nodeid)
        if item is None:
            return ("ok", _result(None, "error", f"{nodeid}: not collected", start))
        try:
            self._activate(item)
        except _SetupFailed as exc:
            return ("ok", _result(None, "error", str(exc), start))
        recorder = EpisodeRecorder(enabled=True)
        POOL_SLOT.arm(completion)
        outcome, reason = "passed", None
        try:
            with _deadline(timeout):
                self._run(item, recorder)
        except CheckTimeout:
            return ("ok", _result(None, "timeout", f"the check ran past {timeout:g} s", start))
        except SystemExit as exc:
            reason = f"crashed (exit {_exit_code(exc)}): the check called sys.exit"
            return ("ok", _result(None, "crashed", reason, start))
        except (AssertionError, pytest.fail.Exception) as exc:
            outcome, reason = "failed", _short(exc)
        except pytest.skip.Exception as exc:
            return ("ok", _result(None, "skipped", _short(exc), start))
        except InfrastructureError as exc:
            return ("ok", _result(None, "error", _short(exc), start))
        except Exception as exc:  # noqa: BLE001 - a check's exception gives None, not 0
            return ("ok", _result(None, "error", _short(exc), start))
        finally:
            POOL_SLOT.arm(None)
        if recorder.rewards is not None:
            value, components = recorder.rewards
        else:
            value, components = (1.0 if outcome == "passed" else 0.0), {}
        weights = recorder.meta_values.get("reward_weights") or {}
        return (
            "ok",
            _result(float(value), outcome, reason, start, components=components, weights=weights),
        )


class _SetupFailed(Exception):
    pass


def _result(
    value: float | None,
    outcome: str,
    reason: str | None,
    start: float,
    *,
    components: dict[str, float] | None = None,
    weights: dict[str, float] | None = None,
) -> dict[str, Any]:
    return {
        "value": value,
        "outcome": outcome,
        "reason": reason,
        "components": dict(components or {}),
        "weights": dict(weights or {}),
        "ms": (time.perf_counter() - start) * 1000.0,
    }


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    fd = int(args.pop(0))
    if args and args[0] == "--":
        args.pop(0)
    conn = Connection(fd)
    plugin = ServePlugin(conn)
    pytest_args = [
        *args,
        "--model",
        "replay:@pool",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--capture=no",
        "-q",
        "--no-header",
    ]
    try:
        code = pytest.main(pytest_args, plugins=[plugin])
    except BaseException as exc:  # noqa: BLE001
        with suppress(OSError):
            conn.send(("error", f"the worker's pytest session failed: {_short(exc)}"))
        return 1
    if plugin.session is None:  # usage error or nothing collected: the pool learns why
        with suppress(OSError):
            conn.send(("error", f"pytest could not collect the suite (exit status {int(code)})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
