"""Building one episode per recorded test, and persisting it when collection is on.

Runs in every process (the controller and each xdist worker). The finished episode travels to
the controller on the test's teardown report (``report.teach``), which is how the A/B comparison
and the HTML report are aggregated without merging files on disk.
"""

from __future__ import annotations

import base64
import builtins
import importlib
import os
import subprocess
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from . import __version__
from ._graded import SubtestGrader, failed_subtests
from .errors import InfrastructureError
from .predictor import WARNING_KEY
from .recorder import EpisodeRecorder
from .redaction import redact, redact_argv, redact_url
from .store import (
    ArtifactRef,
    Episode,
    EpisodeDataError,
    Journal,
    Label,
    Step,
    Store,
    StoreError,
    is_url,
    new_id,
    replay,
    to_jsonable,
)

DEFAULT_DB = ".teach/experience.db"
RECORDER_KEY = pytest.StashKey[EpisodeRecorder]()
PHASES_KEY = pytest.StashKey[dict]()
MODEL_KEY = pytest.StashKey[str]()
ARM_KEY = pytest.StashKey[str]()
AB_KEY = pytest.StashKey[tuple]()
#: Exceptions the ini key ``teach_agent_exceptions`` declares to be the agent's failures.
AGENT_EXCEPTIONS_KEY = pytest.StashKey[tuple]()
_DECLARED_KEY = pytest.StashKey[tuple]()
MARKERS = ("scenario", "story")
#: The marker argument that declares more agent failures: ``scenario(agent_exceptions=(E,))``.
AGENT_EXCEPTIONS_ARG = "agent_exceptions"
#: A test that fails with one of these in its body needed intervention: an ``assert`` or
#: ``pytest.fail``. Any other exception is a bug in the test code or its harness (``error``)
#: unless the ini key or the marker declares it an agent failure.
AGENT_FAILURES: tuple[type[BaseException], ...] = (AssertionError, pytest.fail.Exception)
_BATCH_EPISODES = 256
_BATCH_SECONDS = 2.0
_REASON_LIMIT = 500
_ERROR_LIMIT = 20_000
_REPORT_STEPS = 3
_INLINE_IMAGE_LIMIT = 512 * 1024


def db_path(config: pytest.Config) -> Path | str:
    """The store: ``--teach-db`` (a path relative to the cwd), ini ``teach_db`` or the default
    (relative to the rootdir); a ``postgresql://`` URL in either is a team store, as given."""
    option = config.getoption("teach_db")
    if option:
        return option.strip() if is_url(option) else Path(option).expanduser().resolve()
    ini = config.getini("teach_db") or DEFAULT_DB
    if is_url(ini):
        return ini.strip()
    return (Path(config.rootpath) / Path(ini).expanduser()).resolve()


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def is_recorded(item: pytest.Item) -> bool:
    """Whether a test becomes an episode: it uses ``episode`` or has a scenario/story marker."""
    if "episode" in getattr(item, "fixturenames", ()):
        return True
    return any(item.get_closest_marker(m) is not None for m in MARKERS)


def describe(item: pytest.Item) -> dict[str, Any]:
    """Scenario name, category, parameters and marker metadata for a test."""
    name = getattr(item, "originalname", None) or item.name
    category = None
    meta: dict[str, Any] = {}
    story = item.get_closest_marker("story")
    scenario = item.get_closest_marker("scenario")
    if story is not None:
        intent = story.args[0] if story.args else story.kwargs.get("intent")
        meta.update({k: v for k, v in story.kwargs.items() if k != "intent"})
        meta["intent"] = intent
        category = "story"
    meta.pop(AGENT_EXCEPTIONS_ARG, None)
    if scenario is not None:
        kwargs = dict(scenario.kwargs)
        kwargs.pop(AGENT_EXCEPTIONS_ARG, None)
        name = (scenario.args[0] if scenario.args else kwargs.pop("name", None)) or name
        kwargs.pop("name", None)
        category = kwargs.pop("category", None) or category
        meta.update(kwargs)
    params: dict[str, Any] = {}
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        case_id = _without_arm(callspec.id, callspec.params.get("agent"))
        if case_id:
            name = f"{name}[{case_id}]"
        for key, value in callspec.params.items():
            if key == "agent":
                continue  # the A/B arm: recorded as the episode's model and arm
            try:
                params[key] = to_jsonable(value, f"parameter {key}")
            except EpisodeDataError:
                params[key] = repr(value)
    return {"scenario": name, "category": category, "params": params, "meta": meta}


def resolve_exception(name: str) -> type[BaseException]:
    """The exception class a dotted name such as ``json.JSONDecodeError`` or
    ``mypkg.errors.AgentError`` names (a bare name is a builtin, such as ``TimeoutError``).

    Raises:
        ValueError: the module doesn't import, has no such attribute, or it is not an exception
            class; the message names what is missing.
    """
    text = name.strip()
    parts = text.split(".")
    if not text or not all(p.isidentifier() for p in parts):
        raise ValueError(f"{name!r} is not a dotted name such as json.JSONDecodeError")
    if len(parts) == 1:
        found = getattr(builtins, text, None)
        if found is None:
            raise ValueError(f"{text!r} is not a builtin; give its module, as in mypkg.{text}")
    else:
        found = None
        for cut in range(len(parts) - 1, 0, -1):  # the longest importable module prefix
            module_name = ".".join(parts[:cut])
            try:
                found = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                missing = exc.name or ""
                if module_name != missing and not module_name.startswith(missing + "."):
                    raise ValueError(f"{text}: importing {module_name} failed: {exc}") from None
                continue
            except Exception as exc:
                raise ValueError(f"{text}: importing {module_name} failed: {exc}") from None
            for attr in parts[cut:]:
                if not hasattr(found, attr):
                    raise ValueError(f"{text}: {'.'.join(parts[:cut])} has no {attr!r}")
                found = getattr(found, attr)
            break
        else:
            raise ValueError(f"{text}: no module {parts[0]!r} can be imported")
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise ValueError(f"{text} is not an exception class")
    return found


def exception_classes(value: Any) -> tuple[type[BaseException], ...]:
    """Exception classes from a class, a dotted name, or an iterable of either.

    Raises:
        ValueError: a name that doesn't resolve, or a value that is no exception class.
    """
    items: Iterable[Any] = (
        [value] if isinstance(value, (str, type)) else value if value is not None else []
    )
    try:
        items = list(items)
    except TypeError:
        raise ValueError(f"{value!r} is not an exception class, a dotted name or a tuple") from None
    classes: list[type[BaseException]] = []
    for item in items:
        if isinstance(item, str):
            classes.append(resolve_exception(item))
        elif isinstance(item, type) and issubclass(item, BaseException):
            classes.append(item)
        else:
            raise ValueError(f"{item!r} is not an exception class or a dotted name")
    return tuple(classes)


def configured_agent_exceptions(config: pytest.Config) -> tuple[type[BaseException], ...]:
    """The ini key ``teach_agent_exceptions`` resolved to classes.

    Raises:
        pytest.UsageError: one line naming the name that doesn't resolve.
    """
    names = config.getini("teach_agent_exceptions") or []
    try:
        return exception_classes(list(names))
    except ValueError as exc:
        raise pytest.UsageError(f"ini teach_agent_exceptions: {exc}") from None


def marked_agent_exceptions(item: pytest.Item) -> tuple[type[BaseException], ...]:
    """The exceptions a test's ``scenario``/``story`` markers declare agent failures
    (``agent_exceptions=``), from the closest marker outwards.

    Raises:
        ValueError: a name that doesn't resolve, or a value that is no exception class.
    """
    classes: list[type[BaseException]] = []
    for marker in item.iter_markers():
        if marker.name in MARKERS and AGENT_EXCEPTIONS_ARG in marker.kwargs:
            classes.extend(exception_classes(marker.kwargs[AGENT_EXCEPTIONS_ARG]))
    return tuple(classes)


def _without_arm(case_id: str, arm: Any) -> str:
    """The parametrization id without the ``--ab`` model spec, so both arms share a scenario."""
    if not isinstance(arm, str) or arm not in case_id:
        return case_id
    for candidate in (f"-{arm}", f"{arm}-", arm):
        if case_id.endswith(candidate) or case_id.startswith(candidate):
            return case_id.replace(candidate, "", 1)
    return case_id


def _short_reason(call: pytest.CallInfo[Any]) -> str | None:
    if call.excinfo is None:
        return None
    text = call.excinfo.exconly().strip()
    first = text.splitlines()[0] if text else call.excinfo.typename
    return first[:_REASON_LIMIT]


class Collector:
    """Builds one episode per recorded test, in every process.

    With ``persist`` (``--collect-training-data``) each finished episode is appended to this
    process's journal at once (so a killed worker loses at most the test in flight) and committed
    to SQLite in batches (so recording costs a test next to nothing). The controller replays what
    killed workers left behind.
    """

    def __init__(self, config: pytest.Config, *, persist: bool, scorer: Any = None) -> None:
        self.config = config
        self.persist = persist
        self.scorer = scorer  # --intervention-predictor: scores each step as it is recorded
        self.path = db_path(config)
        #: The store's name in messages (a URL's password masked).
        self.location = redact_url(self.path) if isinstance(self.path, str) else str(self.path)
        self.write_failures = 0
        self.store: Store | None = None
        self.journal: Journal | None = None
        self.pending: list[tuple[Episode, list[ArtifactRef]]] = []
        self.last_flush = time.monotonic()
        #: hears each recorded test's subtests (a graded reward) where the test runs
        self.grader = SubtestGrader()
        config.pluginmanager.register(self.grader)
        workerinput = getattr(config, "workerinput", None)
        self.is_worker = workerinput is not None
        self.worker = os.environ.get("PYTEST_XDIST_WORKER")
        if self.is_worker:
            self.session_id = workerinput.get("teach_session_id") or new_id()
        else:
            self.session_id = new_id()
        if not persist:
            return
        try:
            self.store = Store.open(self.path, create=True)
            if not self.is_worker:
                self.store.start_session(
                    self.session_id,
                    argv=redact_argv(config.invocation_params.args),
                    version=__version__,
                    git_commit=_git_commit(config.rootpath),
                    rootdir=str(config.rootpath),
                )
                replay(self.store)  # journals of earlier runs that were killed
            self.journal = Journal(self.store, self.session_id, self.worker)
        except StoreError as exc:
            raise pytest.UsageError(f"--teach-db: {exc}") from None
        except OSError as exc:
            raise pytest.UsageError(
                f"--teach-db: cannot write beside {self.location}: {exc}"
            ) from None

    def flush(self) -> None:
        """Commit the pending episodes in one transaction, then empty the journal."""
        if not self.pending or self.store is None or self.journal is None:
            return
        episodes = [e for e, _ in self.pending]
        refs = [r for _, rs in self.pending for r in rs]
        try:
            self.store.write_episodes(episodes, refs)
        except Exception as exc:  # the journal keeps them; the next session replays it
            self.write_failures += len(episodes)
            warnings.warn(
                f"pytest-teach could not commit {len(episodes)} episodes to {self.location} "
                f"({redact(str(exc))}); "
                f"they stay in {self.journal.path} and are replayed by the next run",
                stacklevel=1,
            )
        else:
            self.journal.clear()
        self.pending.clear()
        self.last_flush = time.monotonic()

    # xdist: hand the session id to every worker
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["teach_session_id"] = self.session_id

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Resolve each recorded test's ``agent_exceptions=`` before any test runs."""
        for item in items:
            if not is_recorded(item):
                continue
            try:
                item.stash[_DECLARED_KEY] = marked_agent_exceptions(item)
            except ValueError as exc:
                raise pytest.UsageError(f"{item.nodeid}: {AGENT_EXCEPTIONS_ARG}=: {exc}") from None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if is_recorded(item):
            item.stash[RECORDER_KEY] = EpisodeRecorder(enabled=True, scorer=self.scorer)
            self.grader.watch(item.nodeid, item.stash[RECORDER_KEY])
            item.stash[PHASES_KEY] = {"started": time.time()}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
        report = yield
        phases = item.stash.get(PHASES_KEY, None)
        if phases is None:
            return report
        phases[call.when] = (report, call)
        if call.when == "teardown":
            summary = self._finish(item, phases)
            if summary is not None:
                report.teach = summary
            # items live for the whole session: drop the reports, tracebacks and recorder
            del item.stash[PHASES_KEY]
            del item.stash[RECORDER_KEY]
            self.grader.forget(item.nodeid)
        return report

    def _finish(self, item: pytest.Item, phases: dict[str, Any]) -> dict[str, Any] | None:
        declared = self.config.stash.get(AGENT_EXCEPTIONS_KEY, ()) + item.stash.get(
            _DECLARED_KEY, ()
        )
        outcome, reason, error = self._outcome(phases, declared)
        if outcome is None:
            return None
        recorder = item.stash[RECORDER_KEY]
        described = describe(item)
        call_report, call_info = phases.get("call", (None, None))
        body_failed = call_info is not None and call_info.excinfo is not None
        if outcome in ("success", "intervention") and not body_failed:
            # the body passed: its failed subtests decide (pytest fails the test for them)
            graded = failed_subtests(
                recorder.subtests,
                AGENT_FAILURES + declared,
                never=(EpisodeDataError, InfrastructureError),
            )
            if graded is not None:
                outcome, reason, error = graded
        meta = {**described["meta"], **recorder.meta_values}
        warning = recorder.warning()
        if warning is not None:
            meta[WARNING_KEY] = warning
        episode = recorder.build(
            episode_id=new_id(),
            nodeid=item.nodeid,
            scenario=described["scenario"],
            outcome=outcome,
            reason=reason,
            body_failed=body_failed,
            session_id=self.session_id,
            category=described["category"],
            model=recorder.model or item.stash.get(MODEL_KEY, None),
            arm=item.stash.get(ARM_KEY, None),
            params=described["params"],
            meta=meta,
            duration_s=call_report.duration if call_report is not None else None,
            error=error,
            worker=self.worker,
            created_at=time.time(),
        )
        if self.persist and not self._persist(item, episode, recorder):
            return None
        return episode_to_wire(episode, recorder.blobs)

    def _persist(self, item: pytest.Item, episode: Episode, recorder: EpisodeRecorder) -> bool:
        assert self.store is not None and self.journal is not None
        try:
            refs = [self.store.save_artifact_file(d, m) for d, m in recorder.blobs.values()]
            self.journal.append(episode, refs)
        except OSError as exc:  # the run goes on; the summary reports the loss
            self.write_failures += 1
            warnings.warn(
                f"pytest-teach could not record {item.nodeid} into {self.location}: {exc}",
                stacklevel=1,
            )
            return False
        self.pending.append((episode, refs))
        if (
            len(self.pending) >= _BATCH_EPISODES
            or time.monotonic() - self.last_flush > _BATCH_SECONDS
        ):
            self.flush()
        return True

    @staticmethod
    def _outcome(
        phases: dict[str, Any], declared: tuple[type[BaseException], ...] = ()
    ) -> tuple[str | None, str | None, str | None]:
        """(outcome, reason, error text) from the setup/call/teardown reports; None = skipped.

        A failure in the body is an ``intervention`` when it is an assertion, ``pytest.fail``
        or one of the ``declared`` agent exceptions; any other exception is ``error``, with its
        type in the reason: a bug in the test code is not the agent's failure.
        """
        setup_report, setup_call = phases.get("setup", (None, None))
        call_report, call_call = phases.get("call", (None, None))
        teardown_report, teardown_call = phases.get("teardown", (None, None))
        if setup_report is not None and setup_report.failed:
            return "error", _short_reason(setup_call), setup_report.longreprtext[:_ERROR_LIMIT]
        if setup_report is not None and setup_report.skipped:
            return None, None, None
        if call_report is None or call_report.skipped:
            return None, None, None
        if teardown_report is not None and teardown_report.failed:
            reason = _short_reason(teardown_call)
            return "error", reason, teardown_report.longreprtext[:_ERROR_LIMIT]
        if call_report.failed:
            text = call_report.longreprtext[:_ERROR_LIMIT]
            excinfo = call_call.excinfo
            if excinfo is None:  # a failure pytest reported without an exception
                return "intervention", None, text
            if not excinfo.errisinstance((EpisodeDataError, InfrastructureError)) and (
                excinfo.errisinstance(AGENT_FAILURES + declared)
            ):
                return "intervention", _short_reason(call_call), text
            return "error", _short_reason(call_call), text
        return "success", None, None

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.store is None or self.journal is None:
            return
        self.flush()
        if not self.write_failures:
            self.journal.close()
        if not self.is_worker:
            try:
                replay(self.store, session_id=self.session_id)  # workers that were killed
                # session.exitstatus: the A/B gate may have decided it
                self.store.finish_session(self.session_id, int(session.exitstatus))
            except Exception as exc:
                warnings.warn(f"pytest-teach could not close the session: {exc}", stacklevel=1)
        self.store.close()
        self.store = None


def episode_to_wire(episode: Episode, blobs: dict[str, tuple[bytes, str]]) -> dict[str, Any]:
    """The episode as plain JSON for the teardown report: its last steps only, and the
    screenshots of a failure's last steps inlined (base64) for the HTML report."""
    data = dict(vars(episode))
    steps = episode.steps[-_REPORT_STEPS:]
    data["steps"] = [vars(s) for s in steps]
    data["labels"] = [vars(lb) for lb in episode.labels]
    data["feedback"] = []
    data["n_steps"] = len(episode.steps)
    images: dict[str, str] = {}
    if episode.outcome != "success":
        for s in steps:
            blob = blobs.get(s.screenshot) if s.screenshot else None
            if blob is not None and len(blob[0]) <= _INLINE_IMAGE_LIMIT:
                images[s.screenshot] = base64.b64encode(blob[0]).decode("ascii")
    data["images"] = images
    return data


def episode_from_wire(data: dict[str, Any]) -> tuple[Episode, dict[str, bytes]]:
    """Inverse of :func:`episode_to_wire`: the episode and its inlined images by sha256."""
    fields = dict(data)
    images = {k: base64.b64decode(v) for k, v in fields.pop("images", {}).items()}
    fields.pop("n_steps", None)
    fields["steps"] = [Step(**s) for s in fields.get("steps", [])]
    fields["labels"] = [Label(**lb) for lb in fields.get("labels", [])]
    fields["feedback"] = []
    return Episode(**fields), images
