"""The plugin, run on small suites through pytester: outcomes, labels, options, markers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_teach import open_store

OUTCOMES_SUITE = """
import pytest

@pytest.fixture
def broken_setup():
    raise RuntimeError("database down")

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("cleanup failed")

def test_pass(episode):
    episode.step("obs", "act")

def test_fail(episode):
    episode.step("obs", "wrong")
    assert 1 == 2, "picked the cookie banner"

def test_setup_error(episode, broken_setup):
    pass

def test_teardown_error(episode, broken_teardown):
    episode.step("obs", "act")

def test_skipped(episode):
    pytest.skip("not today")

@pytest.mark.xfail(reason="known")
def test_xfail(episode):
    assert False

@pytest.mark.scenario(name="marked", category="demo", level=3)
def test_marker_only():
    pass

def test_plain():
    pass
"""


def by_name(store):
    return {e.nodeid.split("::")[-1]: e for e in store.episodes()}


def test_outcomes_map_to_labels(pytester: pytest.Pytester, collect) -> None:
    pytester.makepyfile(test_outcomes=OUTCOMES_SUITE)
    result, store = collect()
    # the teardown-error test counts as passed and errored, as pytest reports it
    result.assert_outcomes(passed=4, failed=1, skipped=1, xfailed=1, errors=2)
    eps = by_name(store)
    assert set(eps) == {
        "test_pass",
        "test_fail",
        "test_setup_error",
        "test_teardown_error",
        "test_marker_only",
    }
    assert (eps["test_pass"].outcome, eps["test_pass"].label, eps["test_pass"].reward) == (
        "success",
        0,
        1.0,
    )
    fail = eps["test_fail"]
    assert (fail.outcome, fail.label, fail.reward) == ("intervention", 1, 0.0)
    assert "picked the cookie banner" in fail.label_reason
    assert "assert 1 == 2" in fail.error
    for name, cause in (("test_setup_error", "database down"), ("test_teardown_error", "cleanup")):
        ep = eps[name]
        assert (ep.outcome, ep.label, ep.reward) == ("error", None, None)
        assert cause in ep.label_reason
    marked = eps["test_marker_only"]
    assert (marked.scenario, marked.category, marked.meta) == ("marked", "demo", {"level": 3})
    assert marked.steps == []


def test_recorded_fields_round_trip(pytester: pytest.Pytester, collect) -> None:
    pytester.makepyfile(
        """
        import dataclasses
        import pytest

        @dataclasses.dataclass
        class Obs:
            url: str
            items: tuple

        @pytest.mark.story("a toggle switch", framework="html")
        def test_full(episode):
            episode.step(
                Obs("http://127.0.0.1/x", (1, 2)),
                {"click": "e12"},
                messages=[{"role": "user", "content": "go"}],
                valid_actions=["click", "fill"],
                probs={"click": 0.75, "fill": 0.25},
                label="good",
            )
            episode.step("page 2", "fill", correction="click", label="bad")
            episode.reward(0.5, a11y=1.0, keyboard=0.0)
            episode.metric(latency_ms=12.5, prompt_tokens=30)
            episode.quality(4)
            episode.label("loop", "same action twice")
            episode.meta(run="r1")
            episode.attach("notes", "plain text")
        """
    )
    result, store = collect()
    result.assert_outcomes(passed=1)
    (ep,) = store.episodes()
    assert (ep.scenario, ep.category) == ("test_full", "story")
    assert ep.meta == {"intent": "a toggle switch", "framework": "html", "run": "r1"}
    assert ep.reward == 0.5 and ep.reward_components == {"a11y": 1.0, "keyboard": 0.0}
    assert ep.metrics == {"latency_ms": 12.5, "prompt_tokens": 30}
    assert ep.quality == 4 and ep.outcome == "success"
    assert [(lb.kind, lb.reason) for lb in ep.labels] == [("loop", "same action twice")]
    first, second = ep.steps
    assert first.observation == {"url": "http://127.0.0.1/x", "items": [1, 2]}
    assert first.action == {"click": "e12"}
    assert first.valid_actions == ["click", "fill"]
    assert first.probs == {"click": 0.75, "fill": 0.25}
    assert first.entropy == pytest.approx(0.5623351446)
    assert (second.label, second.correction) == ("bad", "click")
    assert store.read_artifact(ep.artifacts["notes"]) == b"plain text"


def test_label_override_and_explicit_reward(pytester: pytest.Pytester, collect) -> None:
    pytester.makepyfile(
        """
        def test_passes_but_needed_help(episode):
            episode.label("intervention", "teacher had to step in")

        def test_fails_with_reward(episode):
            episode.reward(0.25)
            assert False
        """
    )
    _, store = collect()
    eps = by_name(store)
    helped = eps["test_passes_but_needed_help"]
    assert (helped.outcome, helped.label, helped.reward) == ("intervention", 1, 0.0)
    assert helped.label_reason == "teacher had to step in"
    assert eps["test_fails_with_reward"].reward == 0.25


def test_conversions_and_bad_values(pytester: pytest.Pytester, collect) -> None:
    pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    pytester.makepyfile(
        """
        import numpy as np
        from PIL import Image

        def test_numpy(episode):
            episode.step({"grid": np.arange(4).reshape(2, 2), "p": np.float32(0.5)}, np.int64(3))
            episode.metric(score=np.float64(2.5))

        def test_pil_screenshot(episode):
            episode.step("page", "click", screenshot=Image.new("RGB", (8, 8), "red"))

        def test_bytes(episode):
            episode.step(b"raw bytes", "act")

        def test_nan_reward(episode):
            episode.reward(float("nan"))

        def test_object(episode):
            episode.step(object(), "act")

        def test_quality_range(episode):
            episode.quality(7)
        """
    )
    # numpy is imported in a subprocess: pytester's in-process runs unload modules afterwards
    result, store = collect(subprocess=True)
    result.assert_outcomes(passed=2, failed=4)
    eps = by_name(store)
    assert eps["test_numpy"].steps[0].observation == {"grid": [[0, 1], [2, 3]], "p": 0.5}
    assert eps["test_numpy"].steps[0].action == 3
    shot = eps["test_pil_screenshot"].steps[0].screenshot
    assert store.read_artifact(shot).startswith(b"\x89PNG")
    expected = {
        "test_bytes": "observation=: bytes cannot be stored",
        "test_nan_reward": "episode.reward(): nan is not a finite number",
        "test_object": "object is not JSON-serialisable",
        "test_quality_range": "score must be from 0 to 5",
    }
    for name, message in expected.items():
        ep = eps[name]
        assert (ep.outcome, ep.label) == ("error", None), name
        assert message in ep.label_reason, (name, ep.label_reason)
    result.stdout.fnmatch_lines(["*EpisodeDataError: episode.step() #0 observation=: bytes*"])
    assert store.integrity_check() == "ok"


def test_without_flag_nothing_is_recorded(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_a(episode):
            episode.step(b"even bad values are ignored", "act")
            episode.reward(1.0)
            assert not episode.enabled
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / ".teach").exists()
    assert "training data" not in result.stdout.str()


def test_strict_markers_are_clean(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.scenario(category="x")
        @pytest.mark.story("a card")
        def test_a():
            pass

        @pytest.mark.e2e_trainer
        def test_b():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)  # no trainer answers: e2e_trainer skips


def test_summary_line_and_store_path_options(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nteach_db = data/from-ini.db\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_a(episode, i):
            assert i != 3
        """
    )
    result = pytester.runpytest("--collect-training-data", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [
            "*pytest-teach: 4 episodes recorded (3 success, 1 intervention, 0 error); "
            "interventions 25.0% -> *data?from-ini.db"
        ]
    )
    assert open_store(pytester.path / "data" / "from-ini.db").count() == 4
    explicit = pytester.path / "explicit.db"
    pytester.runpytest("--collect-training-data", "--teach-db", str(explicit))
    pytester.runpytest("--collect-training-data", "--teach-db", str(explicit))
    store = open_store(explicit)
    assert store.count() == 8, "re-runs append"
    sessions = store.sessions()
    assert len(sessions) == 2
    assert all(s["finished_at"] and s["exit_status"] == 1 for s in sessions)
    assert "--collect-training-data" in sessions[0]["argv"]
    assert sessions[0]["version"]


def test_model_option(pytester: pytest.Pytester, collect) -> None:
    pytester.makepyfile(
        """
        def test_uses_agent(agent, episode):
            assert agent.provider == "scripted"

        def test_no_agent(episode):
            pass
        """
    )
    _, store = collect("--model", "scripted:keyword")
    eps = by_name(store)
    assert eps["test_uses_agent"].model == "scripted:keyword"
    assert eps["test_no_agent"].model is None
    bad = pytester.runpytest("--model", "gpt-4")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--model: model spec 'gpt-4' is not PROVIDER:NAME*"])


def test_foreign_store_is_a_usage_error(pytester: pytest.Pytester) -> None:
    import sqlite3

    foreign = pytester.path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.commit()
    conn.close()
    pytester.makepyfile("def test_a(episode): pass")
    result = pytester.runpytest("--collect-training-data", "--teach-db", str(foreign))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*is a SQLite file but not a pytest-teach store*"])


def test_plugin_import_is_light() -> None:
    code = (
        "import sys, pytest, pytest_teach.plugin, pytest_teach.cli;"
        "heavy = [m for m in ('torch', 'transformers', 'playwright', 'trl', 'datasets', 'numpy')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
