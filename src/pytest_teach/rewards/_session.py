"""The checks of one collected pytest session: what every reward backend runs its scoring on.

:class:`CheckSession` is a pytest plugin. Run ``pytest.main(session_args(args),
plugins=[session])``: pytest collects the suite as usual (parametrization, markers, ``-k`` and
``-m`` apply) and fixtures are set up the usual way; instead of running the tests once, its
``pytest_runtestloop`` calls :meth:`CheckSession.serve`, which the backend overrides to answer
requests (the local pool's worker from a socket, the Ray backend's actor from method calls):

- :meth:`CheckSession.prompt`: run the test in capture mode; the ``agent``'s first model call
  records the prompt and stops the test.
- :meth:`CheckSession.score`: run the test with the ``agent`` answering the completion; the
  reward is what the test gave ``episode.reward()`` (its default: 1.0 on pass, 0.0 on fail). An
  exception other than an assertion, a skip, or a timeout gives ``None``; so does
  ``sys.exit(N)`` in the check (``crashed (exit N)``), after which the session goes on. A check
  that ends the process (``os._exit``, a signal) is seen by the pool.

Fixtures stay warm: an item's fixtures are set up once and reused for every candidate of that
item (module- and session-scoped ones across items); only ``episode`` is fresh per candidate.
"""

from __future__ import annotations

import signal
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from ..agents import POOL_SLOT, PromptCaptured
from ..errors import InfrastructureError
from ..recorder import EpisodeRecorder, failed_subtests, grading_subtests

__all__ = ["CheckSession", "CheckTimeout", "session_args"]


class CheckTimeout(BaseException):  # noqa: N818 - raised into the test by the alarm
    """The check ran past its timeout."""


def session_args(args: Sequence[str]) -> list[str]:
    """The pytest command line of a scoring session over ``args`` (the suite and its options):
    the ``agent`` answers from the pool's slot, and nothing is cached, shuffled or captured."""
    return [
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


def short_error(exc: BaseException) -> str:
    """``Type: first line of the message``, at most 300 characters of it."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


class CheckSession:
    """Scores and prompts from inside a collected pytest session (a pytest plugin).

    Checks run on the thread that calls :meth:`score` and :meth:`prompt`, which must be the
    process's main thread: the per-check timeout is a ``SIGALRM``.
    """

    def __init__(self) -> None:
        self.items: dict[str, pytest.Item] = {}
        self.current: pytest.Item | None = None
        self.setup_error: str | None = None
        self.session: pytest.Session | None = None
        self.collect_error: str | None = None

    # -- pytest hooks -----------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        self.session = session
        self.items = {item.nodeid: item for item in session.items}
        if session.testsfailed:  # collection errors: report them, serve nothing
            self.collect_error = f"{session.testsfailed} error(s) while collecting the suite"
        try:
            self.serve()
        finally:
            self.teardown()
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            text = str(report.longrepr).strip().splitlines()
            self.note(f"collection error in {report.nodeid}: {text[-1] if text else ''}")

    # -- what a backend provides --------------------------------------------------------------

    def serve(self) -> None:
        """Answer the pool's requests until it stops the session (then the fixtures are torn
        down). Called once the suite is collected (``collect_error`` says if it could not be)."""
        raise NotImplementedError

    def note(self, message: str) -> None:
        """Pass a warning (a collection error) on to the pool."""
        raise NotImplementedError

    # -- the checks ---------------------------------------------------------------------------

    def teardown(self) -> None:
        """Tear down the fixtures of the item set up last (and the module/session ones)."""
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
            self.setup_error = f"setup failed: {short_error(exc)}"
            raise _SetupFailed(self.setup_error) from None

    def _run(self, item: pytest.Item, recorder: EpisodeRecorder) -> None:
        funcargs = item.funcargs  # type: ignore[attr-defined]
        had_episode = "episode" in funcargs
        previous = funcargs.get("episode")
        if had_episode:
            funcargs["episode"] = recorder
        try:
            with grading_subtests(item, recorder):
                item.runtest()
        finally:
            if had_episode:
                funcargs["episode"] = previous

    def prompt(self, nodeid: str) -> tuple[str, Any]:
        """``("ok", request)`` with the prompt the test sends, or ``("none", reason)``."""
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
            return ("none", f"the test stopped before calling the model: {short_error(exc)}")
        finally:
            POOL_SLOT.arm(None)
        return ("none", "the test never called the model (does it use the `agent` fixture?)")

    def score(self, nodeid: str, completion: str, timeout: float | None) -> tuple[str, Any]:
        """``("ok", result)``: the reward ``completion`` earns in test ``nodeid``, its outcome,
        reason, components, weights and milliseconds (the fields of a ``Score``)."""
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
            outcome, reason = "failed", short_error(exc)
        except pytest.skip.Exception as exc:
            return ("ok", _result(None, "skipped", short_error(exc), start))
        except InfrastructureError as exc:
            return ("ok", _result(None, "error", short_error(exc), start))
        except Exception as exc:  # noqa: BLE001 - a check's exception gives None, not 0
            return ("ok", _result(None, "error", short_error(exc), start))
        finally:
            POOL_SLOT.arm(None)
        # graded: the share of its subtests passed, unless the test gave episode.reward()
        value, components = recorder.earned(passed=outcome == "passed")
        failed = failed_subtests(recorder.subtests, (AssertionError, pytest.fail.Exception))
        if failed is not None and outcome == "passed":
            if failed[0] == "error":
                return ("ok", _result(None, "error", failed[1], start))
            outcome, reason = "failed", failed[1]
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
