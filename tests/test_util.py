"""The shared private helpers: atomic writes, the JSON Lines row writer, pytest in a subprocess
with its timings, phase timings, and ``noisy-P`` parsing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pytest_teach import _util
from pytest_teach._util import (
    NothingWritten,
    PhaseTimer,
    WriteError,
    atomic_write_dir,
    atomic_write_lines,
    atomic_write_text,
    json_line,
    noise_level,
    run_pytest,
)


@pytest.mark.parametrize("char", ["\u0085", "\u2028", "\u2029"])
def test_json_line_is_one_line_whatever_the_text(char: str) -> None:
    row = {"text": f"a{char}b", "ok": "é"}
    line = json_line(row)
    assert line.endswith("\n") and len(line.splitlines()) == 1
    assert char not in line and "é" in line
    assert json.loads(line) == row


def test_json_line_sorts_keys_and_takes_a_default() -> None:
    assert json_line({"b": 1, "a": 2}, sort_keys=True) == '{"a":2,"b":1}\n'
    assert json_line({"p": Path("x")}, default=str) == '{"p":"x"}\n'


def test_atomic_write_lines_counts_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "rows.jsonl"
    assert atomic_write_lines(target, ["a\n", "b\n"]) == 2
    assert target.read_text() == "a\nb\n"
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["rows.jsonl"]


def test_atomic_write_lines_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "rows.jsonl"
    target.write_text("old\n")

    def rows():
        yield "half\n"
        raise RuntimeError("the producer broke")

    with pytest.raises(RuntimeError, match="producer broke"):
        atomic_write_lines(target, rows())
    with pytest.raises(NothingWritten, match="nothing written"):
        atomic_write_lines(target, [], allow_empty=False)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]
    with pytest.raises(WriteError, match="is a directory"):
        atomic_write_text(tmp_path, "x")


def test_atomic_write_names_an_unwritable_folder(tmp_path: Path) -> None:
    from .conftest import read_only

    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder), pytest.raises(WriteError, match=f"cannot write {folder / 'x.txt'}"):
        atomic_write_text(folder / "x.txt", "x")


def test_atomic_write_dir_swaps_the_whole_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    atomic_write_dir(out, {"a.txt": "1", "b.txt": "2"})
    atomic_write_dir(out, {"c.txt": "3"})
    assert sorted(p.name for p in out.iterdir()) == ["c.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (tmp_path / "file").write_text("keep")
    with pytest.raises(WriteError, match="not a directory"):
        atomic_write_dir(tmp_path / "file", {"a": "b"})
    assert (tmp_path / "file").read_text() == "keep"


def test_export_keeps_its_names_for_the_shared_writers() -> None:
    from pytest_teach import export

    assert export.atomic_write_text is atomic_write_text


@pytest.mark.parametrize(
    ("name", "level"),
    [("noisy-0.3", 0.3), ("noisy-0", 0.0), ("noisy-1", 1.0), ("oracle", None), ("keyword", None)],
)
def test_noise_level(name: str, level: float | None) -> None:
    assert noise_level(name) == level


@pytest.mark.parametrize("name", ["noisy-2", "noisy-x", "noisy-", "noisy-nan", "noisy--0.1"])
def test_noise_level_names_the_bad_value(name: str) -> None:
    raw = name[len("noisy-") :]
    with pytest.raises(ValueError, match=rf"scripted:{name}: bad noise level '{raw}'"):
        noise_level(name)


def test_every_family_parses_noisy_p_the_same_way() -> None:
    """One parser behind the tool-selection, browser and gridworld families and the spec
    check: the same bad level gets the same message everywhere."""
    from pytest_teach.agents import Agent, ModelSpecError, check_model_spec, parse_model_spec
    from pytest_teach.envs import minigrid, tool_selection
    from pytest_teach.envs.browser import TASKS, browser_policy_for

    expected = "scripted:noisy-1.5: bad noise level '1.5'; P must be a number in [0, 1]"
    agent = Agent(parse_model_spec("scripted:noisy-1.5"))
    calls = [
        lambda: tool_selection.scripted_planner("noisy-1.5"),
        lambda: browser_policy_for(agent, TASKS[0]),
        lambda: minigrid.student_for(agent),
    ]
    for call in calls:
        with pytest.raises(ValueError) as caught:
            call()
        assert str(caught.value).startswith(expected)
    with pytest.raises(ModelSpecError) as caught:
        check_model_spec("scripted:noisy-1.5")
    assert str(caught.value).startswith(f"model spec {expected}")
    assert tool_selection.scripted_planner("noisy-0.25").p == 0.25
    assert browser_policy_for(Agent(parse_model_spec("scripted:noisy-0.25")), TASKS[0]).p == 0.25


def test_run_pytest_reports_code_output_timings_and_lines(tmp_path: Path) -> None:
    (tmp_path / "test_two.py").write_text(
        "def test_a():\n    pass\n\ndef test_b():\n    assert 0\n"
    )
    seen: list[str] = []
    log = tmp_path / "run.log"
    run = run_pytest(
        ["-q", "-p", "no:cacheprovider", "test_two.py"],
        cwd=tmp_path,
        log=log,
        on_line=seen.append,
    )
    assert run.returncode == 1
    assert run.command[:3] == (sys.executable, "-m", "pytest")
    assert "1 failed, 1 passed" in run.output
    assert "".join(seen) == run.output
    assert run.seconds > 0 and run.cpu_seconds >= 0
    assert run.last_line().startswith("E ")
    assert log.read_text().startswith("$ " + sys.executable)
    quiet = run_pytest(["--version"], cwd=tmp_path)
    assert quiet.returncode == 0 and "pytest" in quiet.output


def test_phase_timer_records_each_phase_and_the_total() -> None:
    timer = PhaseTimer(digits=3)
    first = timer.lap("split")
    second = timer.lap("train")
    assert list(timer.seconds) == ["split", "train"]
    assert timer.total() == round(first + second, 3)
    assert list(timer.seconds) == ["split", "train", "total"]


def test_util_imports_only_the_standard_library() -> None:
    import subprocess

    code = (
        "import sys; before = set(sys.modules); import pytest_teach._util; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(new - set(sys.stdlib_module_names) - {'pytest_teach'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert set(_util.__all__) <= set(dir(_util))
