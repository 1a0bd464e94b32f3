"""The pytest plugin: options, markers, fixtures, and turning outcomes into labeled episodes.

This module is imported at pytest start-up, so it stays light: SQLite and the standard library.
"""

from __future__ import annotations

import os
import subprocess
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from . import __version__
from .agents import Agent, ModelSpecError, parse_model_spec
from .recorder import EpisodeRecorder
from .store import (
    ArtifactRef,
    Episode,
    EpisodeDataError,
    Journal,
    Store,
    StoreError,
    new_id,
    replay,
    to_jsonable,
)

DEFAULT_DB = ".teach/experience.db"
DEFAULT_MODEL = "scripted:oracle"
RECORDER_KEY = pytest.StashKey[EpisodeRecorder]()
PHASES_KEY = pytest.StashKey[dict]()
MODEL_KEY = pytest.StashKey[str]()
COLLECTOR_NAME = "teach-collector"
MARKERS = ("scenario", "story")
_BATCH_EPISODES = 256
_BATCH_SECONDS = 2.0
_REASON_LIMIT = 500
_ERROR_LIMIT = 20_000


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("teach", "pytest-teach: labeled training data from agent scenarios")
    group.addoption(
        "--collect-training-data",
        action="store_true",
        default=False,
        help="record every test that uses `episode` or has a scenario/story marker into the store",
    )
    group.addoption(
        "--teach-db",
        metavar="PATH",
        default=None,
        help=f"the experience store (default: {DEFAULT_DB} under the rootdir; ini: teach_db)",
    )
    group.addoption(
        "--model",
        metavar="SPEC",
        default=None,
        help="model behind the `agent` fixture: scripted:NAME, openai:MODEL or hf:PATH "
        f"(default: {DEFAULT_MODEL}; ini: teach_model)",
    )
    parser.addini("teach_db", "pytest-teach experience store path, relative to the rootdir")
    parser.addini("teach_model", "default model spec for the `agent` fixture")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "scenario(name=None, category=None, **meta): an agent scenario recorded as a training "
        "example under --collect-training-data",
    )
    config.addinivalue_line(
        "markers", "story(intent, **meta): a UI-generation story recorded as a training example"
    )
    config.addinivalue_line(
        "markers",
        "e2e_trainer: end-to-end test against the trainer service; skipped when none answers",
    )
    try:
        spec = parse_model_spec(model_spec(config))
    except ModelSpecError as exc:
        raise pytest.UsageError(f"--model: {exc}") from None
    config.stash[MODEL_KEY] = str(spec)
    if config.getoption("collect_training_data"):
        collector = Collector(config)
        config.pluginmanager.register(collector, COLLECTOR_NAME)


def model_spec(config: pytest.Config) -> str:
    """The model spec in force: ``--model``, then the ini key ``teach_model``, then the default."""
    return config.getoption("model") or config.getini("teach_model") or DEFAULT_MODEL


def db_path(config: pytest.Config) -> Path:
    """The store's path: ``--teach-db`` (relative to the cwd), ini ``teach_db`` or the default
    (relative to the rootdir)."""
    option = config.getoption("teach_db")
    if option:
        return Path(option).expanduser().resolve()
    ini = config.getini("teach_db") or DEFAULT_DB
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
    if scenario is not None:
        kwargs = dict(scenario.kwargs)
        name = (scenario.args[0] if scenario.args else kwargs.pop("name", None)) or name
        kwargs.pop("name", None)
        category = kwargs.pop("category", None) or category
        meta.update(kwargs)
    params: dict[str, Any] = {}
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        name = f"{name}[{callspec.id}]"
        for key, value in callspec.params.items():
            try:
                params[key] = to_jsonable(value, f"parameter {key}")
            except EpisodeDataError:
                params[key] = repr(value)
    return {"scenario": name, "category": category, "params": params, "meta": meta}


def _short_reason(call: pytest.CallInfo[Any]) -> str | None:
    if call.excinfo is None:
        return None
    text = call.excinfo.exconly().strip()
    first = text.splitlines()[0] if text else call.excinfo.typename
    return first[:_REASON_LIMIT]


class Collector:
    """Writes one episode per recorded test. Registered only with ``--collect-training-data``.

    Each finished episode is appended to this process's journal at once (so a killed worker
    loses at most the test in flight) and committed to SQLite in batches (so recording costs a
    test next to nothing). The controller replays what killed workers left behind.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.path = db_path(config)
        self.counts: Counter[str] = Counter()
        self.write_failures = 0
        self.store: Store | None = None
        self.journal: Journal | None = None
        self.pending: list[tuple[Episode, list[ArtifactRef]]] = []
        self.last_flush = time.monotonic()
        workerinput = getattr(config, "workerinput", None)
        self.is_worker = workerinput is not None
        self.worker = os.environ.get("PYTEST_XDIST_WORKER")
        if self.is_worker:
            self.session_id = workerinput.get("teach_session_id") or new_id()
        else:
            self.session_id = new_id()
        try:
            self.store = Store.open(self.path, create=True)
            if not self.is_worker:
                self.store.start_session(
                    self.session_id,
                    argv=[str(a) for a in config.invocation_params.args],
                    version=__version__,
                    git_commit=_git_commit(config.rootpath),
                    rootdir=str(config.rootpath),
                )
            if not self.is_worker:
                replay(self.store)  # journals of earlier runs that were killed
            self.journal = Journal(self.store, self.session_id, self.worker)
        except StoreError as exc:
            raise pytest.UsageError(f"--teach-db: {exc}") from None
        except OSError as exc:
            raise pytest.UsageError(f"--teach-db: cannot write beside {self.path}: {exc}") from None

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
                f"pytest-teach could not commit {len(episodes)} episodes to {self.path} ({exc}); "
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

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if is_recorded(item):
            item.stash[RECORDER_KEY] = EpisodeRecorder(enabled=True)
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
        return report

    def _finish(self, item: pytest.Item, phases: dict[str, Any]) -> dict[str, Any] | None:
        outcome, reason, error = self._outcome(phases)
        if outcome is None:
            return None
        recorder = item.stash[RECORDER_KEY]
        described = describe(item)
        call_report = phases.get("call", (None, None))[0]
        episode = recorder.build(
            episode_id=new_id(),
            nodeid=item.nodeid,
            scenario=described["scenario"],
            outcome=outcome,
            reason=reason,
            session_id=self.session_id,
            category=described["category"],
            model=recorder.model or item.stash.get(MODEL_KEY, None),
            params=described["params"],
            meta={**described["meta"], **recorder.meta_values},
            duration_s=call_report.duration if call_report is not None else None,
            error=error,
            worker=self.worker,
            created_at=time.time(),
        )
        assert self.store is not None and self.journal is not None
        try:
            refs = [self.store.save_artifact_file(d, m) for d, m in recorder.blobs.values()]
            self.journal.append(episode, refs)
        except OSError as exc:  # the run goes on; the summary reports the loss
            self.write_failures += 1
            warnings.warn(
                f"pytest-teach could not record {item.nodeid} into {self.path}: {exc}",
                stacklevel=1,
            )
            return None
        self.pending.append((episode, refs))
        if (
            len(self.pending) >= _BATCH_EPISODES
            or time.monotonic() - self.last_flush > _BATCH_SECONDS
        ):
            self.flush()
        return {
            "episode_id": episode.id,
            "outcome": episode.outcome,
            "scenario": episode.scenario,
            "model": episode.model,
            "reward": episode.reward,
        }

    @staticmethod
    def _outcome(phases: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
        """(outcome, reason, error text) from the setup/call/teardown reports; None = skipped."""
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
            if call_call.excinfo is not None and call_call.excinfo.errisinstance(EpisodeDataError):
                return "error", _short_reason(call_call), text
            return "intervention", _short_reason(call_call), text
        return "success", None, None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker or report.when != "teardown":
            return
        summary = getattr(report, "teach", None)
        if summary:
            self.counts[summary["outcome"]] += 1

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.store is None or self.journal is None:
            return
        self.flush()
        if not self.write_failures:
            self.journal.close()
        if not self.is_worker:
            try:
                replay(self.store, session_id=self.session_id)  # workers that were killed
                self.store.finish_session(self.session_id, int(exitstatus))
            except Exception as exc:
                warnings.warn(f"pytest-teach could not close the session: {exc}", stacklevel=1)
        self.store.close()
        self.store = None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        total = sum(self.counts.values())
        labeled = self.counts["success"] + self.counts["intervention"]
        parts = ", ".join(f"{self.counts[k]} {k}" for k in ("success", "intervention", "error"))
        share = f"{100 * self.counts['intervention'] / labeled:.1f}%" if labeled else "n/a"
        line = (
            f"pytest-teach: {total} episodes recorded ({parts}); "
            f"interventions {share} -> {self.path}"
        )
        if self.write_failures:
            line += f"; {self.write_failures} could not be written (see warnings)"
        terminalreporter.write_sep("-", "training data")
        terminalreporter.write_line(line)


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def episode(request: pytest.FixtureRequest) -> EpisodeRecorder:
    """The episode recorder: ``step``, ``reward``, ``metric``, ``quality``, ``label``, ``meta``,
    ``attach``. A no-op unless ``--collect-training-data`` is given."""
    node = request.node
    recorder = node.stash.get(RECORDER_KEY, None)
    if recorder is None:
        recorder = EpisodeRecorder(enabled=False)
        node.stash[RECORDER_KEY] = recorder
    return recorder


@pytest.fixture
def agent(request: pytest.FixtureRequest) -> Agent:
    """The agent under test, built from ``--model`` (ini ``teach_model``)."""
    spec = request.config.stash[MODEL_KEY]
    request.node.stash[MODEL_KEY] = spec
    return Agent(parse_model_spec(spec))
