"""`teach loop`: the held-out split, the `--teach-ids` selector, and the whole loop end to end at
a tiny budget (real pytest runs, a real TRL step, a real A/B with the report)."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("datasets")

# imported at module level on purpose: pytester restores sys.modules after each test, and torch
# can't be imported twice in one process
import datasets  # noqa: E402,F401
import peft  # noqa: E402,F401
import transformers.trainer_utils  # noqa: E402,F401
import trl  # noqa: E402,F401
from transformers import AutoModelForCausalLM  # noqa: E402,F401
from trl import SFTConfig, SFTTrainer  # noqa: E402,F401

from pytest_teach import open_store  # noqa: E402
from pytest_teach.cli import cli  # noqa: E402
from pytest_teach.envs import tool_selection as ts  # noqa: E402
from pytest_teach.loop import (  # noqa: E402
    LoopError,
    TinyShape,
    read_ids,
    scenario_id,
    split_tests,
)
from pytest_teach.pipeline import list_specialist_models  # noqa: E402

from .conftest import REPO  # noqa: E402

#: The small suite the end-to-end test runs: two families of the bundled scenarios.
FAMILIES = ("calc-", "translate-")

SUITE_CONFTEST = (REPO / "scenarios" / "tool_selection" / "conftest.py").read_text()

SUITE_TEST = textwrap.dedent(
    f"""
    import pytest

    from pytest_teach.envs import tool_selection as ts

    CASES = [
        pytest.param(case, id=case.id, marks=pytest.mark.scenario("tool_selection"))
        for case in ts.SCENARIOS
        if case.id.startswith({FAMILIES!r})
    ]


    @pytest.mark.parametrize("case", CASES)
    def test_tool_selection(case, planner, episode):
        plan = planner.plan(case)
        episode.step(case.query, {{"tools": plan.tools}}, messages=plan.messages, error=plan.error)
        episode.metric(latency_ms=plan.latency_ms)
        result = ts.check(case, plan.tools)
        episode.reward(result.to_reward())
        assert result.passed, result.message
    """
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("TEACH_DB", raising=False)


# -- the split ---------------------------------------------------------------------------------


def test_split_is_deterministic_disjoint_and_taught() -> None:
    train, held = ts.split_scenarios()
    again_train, again_held = ts.split_scenarios(list(reversed(ts.SCENARIOS)))
    assert {s.id for s in held} == {s.id for s in again_held}
    assert {s.id for s in train} == {s.id for s in again_train}
    assert not {s.id for s in train} & {s.id for s in held}
    assert len(train) + len(held) == len(ts.SCENARIOS)
    assert 0.2 <= len(held) / len(ts.SCENARIOS) <= 0.3
    # every held-out plan is taught by some training scenario (never for that query)
    assert {s.expected for s in held} <= {s.expected for s in train}
    assert not {s.query for s in held} & {s.query for s in train}
    # membership depends on the id only: a subset splits the same way
    subset = [s for s in ts.SCENARIOS if s.id.startswith("weather-")]
    _, sub_held = ts.split_scenarios(subset)
    assert {s.id for s in sub_held} <= {s.id for s in held}
    other = {s.id for s in ts.split_scenarios(seed=1)[1]}
    assert other != {s.id for s in held}


def test_split_of_node_ids_and_its_errors() -> None:
    nodeids = [f"suite/test_x.py::test_tool_selection[{s.id}]" for s in ts.SCENARIOS]
    split = split_tests(nodeids)
    assert split == split_tests(nodeids)
    assert set(split.train).isdisjoint(split.held_out)
    assert len(split.train) + len(split.held_out) == len(nodeids)
    _, held = ts.split_scenarios()
    assert [scenario_id(n) for n in split.held_out] == [s.id for s in held]
    with pytest.raises(LoopError, match=r"test_x.py::test_other is not a tool-selection scenario"):
        split_tests([*nodeids, "suite/test_x.py::test_other"])
    with pytest.raises(LoopError, match="held_out must be in"):
        split_tests(nodeids, held_out=1.0)
    with pytest.raises(LoopError, match="1 training and 0 held-out"):
        split_tests(nodeids[:1], held_out=0.01)


# -- the selector plugin -----------------------------------------------------------------------


def test_teach_ids_selects_listed_tests_under_ab_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sel="""
        import pytest

        @pytest.mark.parametrize("n", ["a-1", "a-2", "b-1"])
        def test_case(n, agent, episode):
            episode.step(n, n)
        """
    )
    ids = pytester.path / "ids.txt"
    ids.write_text("# chosen\ntest_sel.py::test_case[a-1]\n\ntest_sel.py::test_case[b-1]\n")
    plugin = ("-p", "pytest_teach.loop.select", "--teach-ids", str(ids))
    result = pytester.runpytest(*plugin, "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=2, deselected=1)
    result.stdout.fnmatch_lines(["*test_case[[]a-1[]] PASSED*", "*test_case[[]b-1[]] PASSED*"])
    result = pytester.runpytest(
        *plugin, "-p", "no:cacheprovider", "-v", "--ab", "scripted:oracle,scripted:keyword"
    )
    result.assert_outcomes(passed=4, deselected=2)
    result.stdout.fnmatch_lines(["*test_case[[]b-1-scripted:keyword[]] PASSED*"])
    ids.write_text("test_sel.py::test_case[a-1]\ntest_sel.py::test_case[gone]\n")
    result = pytester.runpytest(*plugin, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*1 listed test(s) were not collected, e.g. *test_case[[]gone[]]*"]
    )


# -- the loop, end to end ----------------------------------------------------------------------


def _suite(root: Path) -> Path:
    suite = root / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(SUITE_CONFTEST)
    (suite / "test_tool_selection.py").write_text(SUITE_TEST)
    return suite


def test_loop_end_to_end_at_a_tiny_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    suite = _suite(tmp_path)
    out, db = tmp_path / "run", tmp_path / "experience.db"
    args = ["loop", "--suite", str(suite), "--output", str(out), "--db", str(db)]
    result = CliRunner().invoke(cli, [*args, "--epochs", "1", "--batch-size", "8", "--json"])
    assert result.exit_code == 0, result.output
    text = result.output
    for phase in ("[1/4 split]", "[2/4 collect]", "[3/4 train]", "[4/4 a/b]"):
        assert phase in text
    summary = json.loads(text.strip().splitlines()[-1])

    # the split: disjoint, what the env's split says, written to files
    train_ids, held_ids = read_ids(out / "train-ids.txt"), read_ids(out / "held-out-ids.txt")
    ours = [s for s in ts.SCENARIOS if s.id.startswith(FAMILIES)]
    want_train, want_held = ts.split_scenarios(ours)
    assert [scenario_id(n) for n in train_ids] == [s.id for s in want_train]
    assert [scenario_id(n) for n in held_ids] == [s.id for s in want_held]
    assert summary["train"] == len(train_ids) and summary["held_out"] == len(held_ids)

    store = open_store(db)
    try:
        # collect: oracle episodes for the training ids only
        collected = list(store.episodes(session=summary["collect_session"]))
        assert sorted(e.nodeid for e in collected) == sorted(train_ids)
        assert {e.model for e in collected} == {"scripted:oracle"}
        assert {e.outcome for e in collected} == {"success"}

        # train: a full model was written and registered for the tool_selection agent
        model_dir = out / "model"
        assert (model_dir / "config.json").is_file()
        assert (model_dir / "model.safetensors").is_file()
        assert summary["model"] == str(model_dir.resolve())
        registered = list_specialist_models(store, agent="tool_selection")
        assert [m.id for m in registered] == [summary["registered"]]
        assert registered[0].path == str(model_dir.resolve())
        assert registered[0].spec == f"hf:{model_dir.resolve()}"
        assert registered[0].metrics["data"]["session"] == summary["collect_session"]
        assert registered[0].metrics["data"]["rows"] == len(train_ids)
        config = json.loads((out / "base" / "config.json").read_text())
        shape = TinyShape()
        assert config["sliding_window"] == shape.sliding_window
        assert config["num_hidden_layers"] == shape.num_layers

        # a/b: both arms on exactly the held-out ids, never on a training one
        ab = list(store.episodes(session=summary["ab_session"]))
        base_spec, trained_spec = f"hf:{(out / 'base').resolve()}", f"hf:{model_dir.resolve()}"
        for arm, spec in (("A", base_spec), ("B", trained_spec)):
            mine = [e for e in ab if e.arm == arm]
            assert {e.model for e in mine} == {spec}
            got = sorted(re.sub(rf"-{re.escape(spec)}\]$", "]", e.nodeid) for e in mine)
            assert got == sorted(held_ids)
        # the printed rates are the store's
        for arm, key in (("A", "before"), ("B", "after")):
            mine = [e for e in ab if e.arm == arm]
            passed = sum(e.outcome == "success" for e in mine)
            assert summary[key]["passed"] == passed and summary[key]["total"] == len(mine)
            pct = f"{100 * passed / len(mine):.1f}%"
            assert f"{key} {passed}/{len(mine)} ({pct})" in text
    finally:
        store.close()
    assert summary["verdict"] in ("APPROVE", "REJECT")
    assert f"verdict {summary['verdict']}" in text
    report = Path(summary["report"])
    assert report == (out / "report.html").resolve() and report.is_file()
    assert "<html" in report.read_text()[:500].lower()

    # the same --output again needs --force
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2
    assert "is not empty; pass --force" in again.output


def test_loop_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["loop", "--suite", "nope", "--db", "x.db"])
    assert result.exit_code == 2
    assert result.output.strip() == "teach loop: error: --suite nope does not exist"
    result = runner.invoke(cli, ["loop", "--suite", ".", "--base", "./missing"])
    assert result.exit_code == 2
    assert "--base ./missing: not 'tiny' nor a model directory" in result.output
    other = tmp_path / "other"
    other.mkdir()
    (other / "test_other.py").write_text("def test_plain():\n    pass\n")
    result = runner.invoke(cli, ["loop", "--suite", str(other), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if ": error: " in line]
    assert len(lines) == 1
    assert "test_other.py::test_plain is not a tool-selection scenario" in lines[0]


def test_tiny_model_with_a_sliding_window(tmp_path: Path) -> None:
    from pytest_teach.agents._hf import HFChat
    from pytest_teach.train.tiny import build_tiny_model

    path = build_tiny_model(tmp_path / "m", hidden_size=32, num_layers=2, sliding_window=8)
    config = json.loads((path / "config.json").read_text())
    assert config["sliding_window"] == 8
    assert config["layer_types"] == ["sliding_attention", "sliding_attention"]
    reply = HFChat(str(path)).load().generate(ts.planner_messages("weather?"), max_tokens=4)
    assert reply.completion_tokens >= 1
    plain = json.loads((build_tiny_model(tmp_path / "p") / "config.json").read_text())
    assert plain.get("sliding_window") is None
    assert set(plain["layer_types"]) == {"full_attention"}
    with pytest.raises(ValueError, match="sliding_window must be >= 1"):
        build_tiny_model(tmp_path / "x", sliding_window=0)
    with pytest.raises(ValueError, match="sliding_window needs arch='qwen2'"):
        build_tiny_model(tmp_path / "x", arch="llama", sliding_window=8)
