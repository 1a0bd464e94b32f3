"""The pytest plugin: options, markers and fixtures. The work lives in ``_collector`` (building
and persisting episodes, in every process) and ``_run`` (the controller's A/B verdict, summary
and report).

This module is imported at pytest start-up, so it stays light: SQLite and the standard library.
"""

from __future__ import annotations

from typing import Any

import pytest

from ._collector import (
    AB_KEY,
    AGENT_EXCEPTIONS_KEY,
    ARM_KEY,
    DEFAULT_DB,
    MODEL_KEY,
    RECORDER_KEY,
    Collector,
    configured_agent_exceptions,
)
from ._run import DEFAULT_REPORT, RunResults, report_path
from .agents import Agent, ModelSpecError, check_model_spec, parse_model_spec
from .envs.browser.fixtures import browser, browser_page, site
from .envs.minigrid.fixtures import add_minigrid_options, minigrid_env
from .recorder import EpisodeRecorder
from .redaction import redact
from .trainer.fixtures import add_trainer_options, configure_trainer, trainer

__all__ = [
    "agent",
    "browser",
    "browser_page",
    "episode",
    "minigrid_env",
    "site",
    "teacher",
    "trainer",
]

DEFAULT_MODEL = "scripted:oracle"
COLLECTOR_NAME = "teach-collector"
RESULTS_NAME = "teach-results"


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
        metavar="PATH|URL",
        default=None,
        help=f"the experience store: a SQLite file or a postgresql:// URL (default: {DEFAULT_DB} "
        "under the rootdir; ini: teach_db)",
    )
    group.addoption(
        "--model",
        metavar="SPEC",
        default=None,
        help="model behind the `agent` fixture: scripted:NAME, openai:MODEL or hf:PATH "
        f"(default: {DEFAULT_MODEL}; ini: teach_model)",
    )
    group.addoption(
        "--ab",
        metavar="SPEC_A,SPEC_B",
        default=None,
        help="run every test that uses `agent` under both models and compare them "
        "(A is the baseline, B the candidate)",
    )
    group.addoption(
        "--ab-gate",
        action="store_true",
        default=False,
        help="with --ab: the exit status is the verdict (0 APPROVE, 1 REJECT)",
    )
    group.addoption(
        "--teach-report",
        metavar="PATH",
        nargs="?",
        const=DEFAULT_REPORT,
        default=None,
        help=f"write the HTML report (default: {DEFAULT_REPORT}); a PATH ends in .html, "
        "replaces only an earlier report, and is best given as --teach-report=PATH",
    )
    group.addoption(
        "--teach-cache",
        choices=("off", "record", "replay"),
        default="off",
        help="record model calls keyed on model, messages and parameters, or replay them "
        "(deterministic, free reruns); stored under .teach/cache (ini: teach_cache_dir)",
    )
    group.addoption(
        "--teacher",
        metavar="SPEC",
        default=None,
        help="the `teacher` fixture: oracle (the family's expert, default) or a model spec "
        "(openai:MODEL, hf:PATH); ini: teach_teacher",
    )
    group.addoption(
        "--intervention-predictor",
        metavar="PATH",
        default=None,
        help="score every step with this intervention predictor (a directory from `teach train "
        "predictor`, or its intervention_predictor.pt); warnings go to the summary and report",
    )
    add_trainer_options(group)
    add_minigrid_options(group)
    parser.addini(
        "teach_db",
        "pytest-teach experience store: a path relative to the rootdir, or a postgresql:// URL",
    )
    parser.addini("teach_teacher", "the `teacher` fixture's spec (oracle)")
    parser.addini("teach_cache_dir", "where --teach-cache keeps model calls (.teach/cache)")
    parser.addini("teach_chromium", "the Chromium executable for browser scenarios")
    parser.addini("teach_model", "default model spec for the `agent` fixture")
    parser.addini(
        "teach_agent_exceptions",
        "exceptions that count as the agent's failure (intervention) when a recorded test "
        "raises them, as dotted names (mypkg.AgentError json.JSONDecodeError); any other "
        "exception but an assertion or pytest.fail is recorded as error",
        type="args",
    )
    parser.addini("teach_ab_min_quality_ratio", "A/B gate: B's quality >= this x A's (0.95)")
    parser.addini("teach_ab_max_latency_ratio", "A/B gate: B's p50 latency < this x A's (1.10)")
    parser.addini("teach_ab_max_cost_ratio", "A/B gate: B's cost per episode < this x A's (1.20)")
    parser.addini(
        "teach_ab_latency_floor_ms",
        "A/B gate: latency differences under this many ms don't count (5)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Any:
    """Mask secrets in the usage errors pytest prints (``ERROR: --trainer-url ...: ...``)."""
    try:
        return (yield)
    except pytest.UsageError as exc:
        masked = [redact(str(arg)) for arg in exc.args]
        if masked == [str(arg) for arg in exc.args]:
            raise
        raise pytest.UsageError(*masked) from None


def _parse_ab(value: str) -> tuple[str, str]:
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(parts):
        raise pytest.UsageError(f"--ab {value!r}: give two model specs, SPEC_A,SPEC_B")
    try:
        specs = tuple(str(check_model_spec(p)) for p in parts)
    except ModelSpecError as exc:
        raise pytest.UsageError(f"--ab: {exc}") from None
    if specs[0] == specs[1]:
        raise pytest.UsageError(f"--ab {value!r}: the two models must differ")
    return specs[0], specs[1]


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
    configure_trainer(config)
    try:
        spec = check_model_spec(model_spec(config))
    except ModelSpecError as exc:
        raise pytest.UsageError(f"--model: {exc}") from None
    config.stash[AGENT_EXCEPTIONS_KEY] = configured_agent_exceptions(config)
    config.stash[MODEL_KEY] = str(spec)
    ab_value = config.getoption("ab")
    ab = _parse_ab(ab_value) if ab_value else None
    if ab is not None:
        config.stash[AB_KEY] = ab
    elif config.getoption("ab_gate"):
        raise pytest.UsageError("--ab-gate needs --ab SPEC_A,SPEC_B")
    persist = bool(config.getoption("collect_training_data"))
    report = report_path(config)
    scorer = _load_predictor(config)
    if not (persist or ab or report or scorer):
        return
    collector = Collector(config, persist=persist, scorer=scorer)
    config.pluginmanager.register(collector, COLLECTOR_NAME)
    if not hasattr(config, "workerinput"):
        results = RunResults(
            config,
            db=collector.path if persist else None,
            session_id=collector.session_id,
            ab=ab,
            gate=bool(config.getoption("ab_gate")),
            report_path=report,
            scorer=scorer,
        )
        results.collector = collector
        config.pluginmanager.register(results, RESULTS_NAME)


def _load_predictor(config: pytest.Config) -> Any:
    """The live scorer behind ``--intervention-predictor`` (loads torch), or None."""
    path = config.getoption("intervention_predictor")
    if not path:
        return None
    from .predictor import LiveScorer, PredictorError

    # an xdist controller runs no test: it reports the warnings, its workers score
    scores = hasattr(config, "workerinput") or config.getoption("dist", "no") == "no"
    try:
        return LiveScorer.load(path, scores=scores)
    except PredictorError as exc:
        raise pytest.UsageError(f"--intervention-predictor: {exc}") from None


def model_spec(config: pytest.Config) -> str:
    """The model spec in force: ``--model``, then the ini key ``teach_model``, then the default."""
    return config.getoption("model") or config.getini("teach_model") or DEFAULT_MODEL


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    ab = metafunc.config.stash.get(AB_KEY, None)
    if ab is not None and "agent" in metafunc.fixturenames:
        metafunc.parametrize("agent", list(ab), indirect=True, ids=list(ab))


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def episode(request: pytest.FixtureRequest) -> EpisodeRecorder:
    """The episode recorder: ``step``, ``reward``, ``metric``, ``quality``, ``label``, ``meta``,
    ``attach``. A no-op unless ``--collect-training-data`` (or ``--ab``/``--teach-report``)."""
    node = request.node
    recorder = node.stash.get(RECORDER_KEY, None)
    if recorder is None:
        recorder = EpisodeRecorder(enabled=False)
        node.stash[RECORDER_KEY] = recorder
    return recorder


@pytest.fixture
def agent(request: pytest.FixtureRequest) -> Agent:
    """The agent under test, built from ``--model`` (ini ``teach_model``), or each ``--ab`` arm."""
    spec: str = getattr(request, "param", None) or request.config.stash[MODEL_KEY]
    request.node.stash[MODEL_KEY] = spec
    ab: Any = request.config.stash.get(AB_KEY, None)
    if ab is not None and spec in ab:
        request.node.stash[ARM_KEY] = "A" if spec == ab[0] else "B"
    cache_dir = request.config.getini("teach_cache_dir") or ".teach/cache"
    return Agent(
        parse_model_spec(spec),
        cache=request.config.getoption("teach_cache"),
        cache_dir=str(request.config.rootpath / cache_dir),
    )


@pytest.fixture
def teacher(request: pytest.FixtureRequest, agent: Agent) -> Any:
    """The teacher (``--teacher``): ``advise(observation, valid_actions, student_action,
    family=..., context=...)`` returns a validated suggestion and a diagnosis."""
    from .teacher import make_teacher

    spec = request.config.getoption("teacher") or request.config.getini("teach_teacher") or "oracle"
    try:
        return make_teacher(spec, cache=agent.cache, cache_dir=agent.cache_dir)
    except ValueError as exc:
        raise pytest.UsageError(f"--teacher: {exc}") from None
