"""What a new user trips on, run through pytester: the report flag that must never replace a
user's file, test-code bugs that are not agent failures, and model specs checked before the run."""

from __future__ import annotations

import json
import re

import pytest

from pytest_teach import agents, open_store
from pytest_teach.agents import Agent, ModelSpecError, parse_model_spec
from pytest_teach.export import export

from .conftest import REPO, store_dump

CART = """
def test_checkout(episode):
    episode.step("cart", "pay")
"""


def usage_error(result: pytest.RunResult) -> str:
    """The one ``ERROR:`` line of a run that ended in a usage error."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    lines = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(lines) == 1, result.stderr.str()
    return lines[0]


# -- --teach-report never replaces a user's file ---------------------------------------------


def test_report_flag_before_a_test_path_leaves_the_test_file_untouched(
    pytester: pytest.Pytester,
) -> None:
    test_cart = pytester.makepyfile(test_cart=CART)
    before = test_cart.read_bytes()
    result = pytester.runpytest("--collect-training-data", "--teach-report", "test_cart.py")
    assert test_cart.read_bytes() == before
    line = usage_error(result)
    assert "--teach-report test_cart.py" in line and "must end in .html" in line
    assert "--teach-report=PATH.html" in line
    assert not (pytester.path / ".teach").exists(), "nothing ran, nothing was recorded"
    assert not (pytester.path / "reports").exists()


def test_report_path_refuses_foreign_files_and_directories(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cart=CART)
    notes = pytester.path / "notes.html"
    notes.write_text("<html><body>my notes</body></html>\n", encoding="utf-8")
    line = usage_error(pytester.runpytest("--teach-report", "notes.html"))
    assert "notes.html exists and is not a pytest-teach report" in line
    assert notes.read_text(encoding="utf-8") == "<html><body>my notes</body></html>\n"

    (pytester.path / "out.html").mkdir()
    line = usage_error(pytester.runpytest("--teach-report=out.html"))
    assert "out.html is a directory" in line

    blocker = pytester.path / "afile"
    blocker.write_text("data", encoding="utf-8")
    line = usage_error(pytester.runpytest("--teach-report=afile/report.html"))
    assert "afile is a file, not a directory" in line
    assert blocker.read_text(encoding="utf-8") == "data"


def test_teach_report_command_never_replaces_a_users_file(pytester: pytest.Pytester) -> None:
    from click.testing import CliRunner

    from pytest_teach.cli import cli

    pytester.makepyfile(test_cart=CART)
    pytester.runpytest("--collect-training-data").assert_outcomes(passed=1)
    db = str(pytester.path / ".teach" / "experience.db")
    notes = pytester.path / "notes.html"
    notes.write_text("<p>mine</p>", encoding="utf-8")
    runner = CliRunner()
    for output, why in (
        (notes, "exists and is not a pytest-teach report"),
        (pytester.path / "test_cart.py", "must end in .html"),
        (pytester.path, "is a directory"),
    ):
        before = output.read_bytes() if output.is_file() else None
        result = runner.invoke(cli, ["report", "--db", db, "-o", str(output)])
        assert result.exit_code != 0 and why in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
        if before is not None:
            assert output.read_bytes() == before
    written = pytester.path / "out" / "r.html"
    assert runner.invoke(cli, ["report", "--db", db, "-o", str(written)]).exit_code == 0
    again = runner.invoke(cli, ["report", "--db", db, "-o", str(written)])  # its own: replaced
    assert again.exit_code == 0, again.output


def test_report_flag_without_a_value_and_rewriting_its_own_report(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_cart=CART)
    # the bare flag after the test paths keeps writing the default report
    first = pytester.runpytest("test_cart.py", "--teach-report")
    first.assert_outcomes(passed=1)
    default = pytester.path / "reports" / "teach-report.html"
    assert default.is_file()
    # a report pytest-teach wrote is replaced on the next run
    default.write_text(default.read_text(encoding="utf-8") + "<!-- older -->", encoding="utf-8")
    again = pytester.runpytest("test_cart.py", "--teach-report")
    again.assert_outcomes(passed=1)
    assert "<!-- older -->" not in default.read_text(encoding="utf-8")
    explicit = pytester.runpytest("--teach-report=custom/run.HTML", "test_cart.py")
    explicit.assert_outcomes(passed=1)
    assert (pytester.path / "custom" / "run.HTML").is_file()


# -- a bug in the test code is not an agent failure ------------------------------------------

BODIES = """
import json
import pytest
from agentlib import AgentError, ClientError

def test_assertion(episode):
    episode.step("page", "e3")
    assert False, "clicked the cookie banner"

def test_pytest_fail(episode):
    pytest.fail("the agent gave up")

def test_name_error(episode):
    episode.step("page", "e2")
    my_agent("page")

def test_value_error(episode):
    int("not a number")

def test_ini_declared_json(episode):
    json.loads("not json")

def test_ini_declared_dotted(episode):
    raise AgentError("no plan")

@pytest.mark.scenario(agent_exceptions=(ClientError,))
def test_marker_class(episode):
    raise ClientError("bad tool call")

@pytest.mark.scenario(agent_exceptions="agentlib.ClientError")
def test_marker_name(episode):
    raise ClientError("bad tool call")

def test_undeclared_here(episode):
    raise ClientError("bad tool call")
"""

AGENTLIB = """
class AgentError(Exception):
    pass

class ClientError(RuntimeError):
    pass
"""


def test_body_exceptions_are_interventions_only_when_they_are_the_agents(
    pytester: pytest.Pytester, collect, tmp_path
) -> None:
    pytester.makepyfile(agentlib=AGENTLIB, test_bodies=BODIES)
    pytester.makeini(
        "[pytest]\nteach_agent_exceptions = json.JSONDecodeError agentlib.AgentError\n"
    )
    pytester.syspathinsert()
    result, store = collect()
    result.assert_outcomes(failed=9)
    eps = {e.nodeid.split("::")[-1]: e for e in store.episodes()}
    interventions = {
        "test_assertion": "clicked the cookie banner",
        "test_pytest_fail": "the agent gave up",
        "test_ini_declared_json": "JSONDecodeError",
        "test_ini_declared_dotted": "no plan",
        "test_marker_class": "bad tool call",
        "test_marker_name": "bad tool call",
    }
    for name, reason in interventions.items():
        ep = eps[name]
        assert (ep.outcome, ep.label, ep.reward) == ("intervention", 1, 0.0), name
        assert reason in ep.label_reason, (name, ep.label_reason)
    errors = {
        "test_name_error": "NameError: name 'my_agent' is not defined",
        "test_value_error": "ValueError: invalid literal",
        "test_undeclared_here": "ClientError: bad tool call",
    }
    for name, reason in errors.items():
        ep = eps[name]
        assert (ep.outcome, ep.label, ep.reward) == ("error", None, None), name
        assert reason in ep.label_reason, (name, ep.label_reason)
    assert "agent_exceptions" not in eps["test_marker_class"].meta
    assert eps["test_name_error"].steps[0].action == "e2", "the steps are kept for review"

    exported = export(store, "interventions", tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "interventions.json").read_text(encoding="utf-8"))
    assert exported.rows == len(rows) == len(interventions)
    assert {row["scenario"] for row in rows} == set(interventions)


def test_agent_exception_names_that_dont_resolve_are_usage_errors(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_cart=CART)
    pytester.makeini("[pytest]\nteach_agent_exceptions = json.JSONDecodeError json.NoSuchError\n")
    line = usage_error(pytester.runpytest("--collect-training-data"))
    assert "teach_agent_exceptions" in line and "json has no 'NoSuchError'" in line
    assert not (pytester.path / ".teach").exists()

    pytester.makeini("[pytest]\nteach_agent_exceptions = nosuchpkg.Error\n")
    assert "no module 'nosuchpkg'" in usage_error(pytester.runpytest("--collect-training-data"))
    pytester.makeini("[pytest]\nteach_agent_exceptions = json.dumps\n")
    assert "json.dumps is not an exception class" in usage_error(pytester.runpytest())

    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.scenario(agent_exceptions=("json.NoSuchError",))
        def test_a(episode):
            pass
        """
    )
    result = pytester.runpytest("--collect-training-data", "test_marked.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_marked.py::test_a: agent_exceptions=: *NoSuchError*"])
    store = open_store(pytester.path / ".teach" / "experience.db")
    assert store.count() == 0, "no test ran"


# -- model specs are checked before the run --------------------------------------------------


BAD_SPECS = [
    (("--model", "scripted:nonsense"), "no scenario family has a scripted agent 'nonsense'"),
    (("--model", "scripted:noisy-2"), "bad noise level '2'"),
    (("--model", "hf:/missing"), "model directory /missing does not exist"),
    (("--model", "hf:./missing"), "model directory ./missing does not exist"),
    (("--model", "replay:nowhere.txt"), "the completion file nowhere.txt does not exist"),
    (("--ab", "scripted:oracle,scripted:nonsense"), "--ab: model spec scripted:nonsense"),
    (("--ab", "hf:/missing,scripted:oracle"), "--ab: model spec hf:/missing"),
]


def test_model_specs_fail_before_the_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(5))
        def test_uses_agent(agent, episode, i):
            pass
        """
    )
    for args, message in BAD_SPECS:
        line = usage_error(pytester.runpytest("--collect-training-data", *args))
        assert message in line, (args, line)
        assert not (pytester.path / ".teach").exists(), (args, "nothing is written")
    # an existing store is left exactly as it was
    pytester.runpytest("--collect-training-data").assert_outcomes(passed=5)
    db = pytester.path / ".teach" / "experience.db"
    before = store_dump(db)
    for args, _ in BAD_SPECS[::3]:
        usage_error(pytester.runpytest("--collect-training-data", *args))
        assert store_dump(db) == before, args


def test_spec_check_accepts_what_the_families_build() -> None:
    from pytest_teach.envs import browser, minigrid, stories, tool_selection

    check_model_spec, SCRIPTED_AGENTS = agents.check_model_spec, agents.SCRIPTED_AGENTS

    task = browser.TASKS[0]
    builders = {
        "tool_selection": lambda a: tool_selection.planner_for(a),
        "browser": lambda a: browser.browser_policy_for(a, task),
        "minigrid": lambda a: minigrid.student_for(a),
        "stories": lambda a: stories.generator_for(a),
    }
    assert set(SCRIPTED_AGENTS) >= set(builders)
    assert SCRIPTED_AGENTS["tool_selection"] == tool_selection.SCRIPTED_NAMES
    assert SCRIPTED_AGENTS["stories"] == stories.SCRIPTED_NAMES
    for family, build in builders.items():
        for name in SCRIPTED_AGENTS[family]:
            spec = f"scripted:{name.replace('noisy-P', 'noisy-0.25')}"
            assert check_model_spec(spec) == parse_model_spec(spec)
            build(Agent(parse_model_spec(spec)))  # the family builds every name it registers
        with pytest.raises(ValueError):
            build(Agent(parse_model_spec("scripted:nonsense")))
    with pytest.raises(ModelSpecError, match="scripted names: accessible, div-soup, keyword"):
        check_model_spec("scripted:nonsense")
    # a hub id can't be checked offline: it passes; an existing directory must be a model
    assert str(check_model_spec("hf:Qwen/Qwen2-0.5B")) == "hf:Qwen/Qwen2-0.5B"
    with pytest.raises(ModelSpecError, match="not a transformers model directory"):
        check_model_spec(f"hf:{REPO / 'scenarios'}")


def test_a_suite_registers_its_own_scripted_names(pytester: pytest.Pytester, collect) -> None:
    pytester.makeconftest(
        """
        from pytest_teach.agents import register_scripted

        register_scripted("cart", "cheapest-first")
        """
    )
    pytester.makepyfile(
        """
        def test_uses_agent(agent, episode):
            assert agent.name == "cheapest-first"
        """
    )
    try:
        result, store = collect("--model", "scripted:cheapest-first")
        result.assert_outcomes(passed=1)
        assert [e.model for e in store.episodes()] == ["scripted:cheapest-first"]
        assert "cheapest-first" in usage_error(pytester.runpytest("--model", "scripted:cheap"))
    finally:
        agents.SCRIPTED_AGENTS.pop("cart", None)
    with pytest.raises(ValueError):
        agents.register_scripted("cart")


# -- the README's first example runs as printed ----------------------------------------------


def _readme_test_cart() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(# test_cart\.py\n.*?)```", readme, flags=re.S)
    assert len(blocks) == 1, "the README shows test_cart.py once"
    return blocks[0]


def test_readme_first_example_runs_as_printed(pytester: pytest.Pytester, collect) -> None:
    pytester.makepyfile(test_cart=_readme_test_cart())
    result, store = collect("test_cart.py")
    result.assert_outcomes(passed=1)
    result, store = collect("test_cart.py", "--model", "scripted:noisy-0.3")
    result.assert_outcomes(failed=1)
    (pytester.path / "reply.txt").write_text("e2\n", encoding="utf-8")
    result, store = collect("test_cart.py", "--model", "replay:reply.txt")
    result.assert_outcomes(passed=1)
    eps = sorted(store.episodes(), key=lambda e: e.created_at)
    assert [(e.model, e.outcome) for e in eps] == [
        ("scripted:oracle", "success"),
        ("scripted:noisy-0.3", "intervention"),
        ("replay:reply.txt", "success"),
    ]
    assert [e.category for e in eps] == ["e-commerce"] * 3
    assert eps[1].label_reason == "AssertionError: clicked e3"
    assert eps[2].steps[0].action == "e2" and "latency_ms" in eps[2].metrics
