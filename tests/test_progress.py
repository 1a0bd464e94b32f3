"""Progress on long work: one bar with the count, the loss and an ETA on a terminal; plain lines
(no carriage return, no bar) in a log. Checked on the helper, on a real pytest collection run
as `teach loop` and the teachable phases run it, and on a real `teach train sft` under a
pseudo-terminal."""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from pytest_teach._progress import Progress, clock, stream_of
from pytest_teach.loop import run_suite

ETA = re.compile(r"ETA \d+:\d\d")


class Terminal:
    """A pseudo-terminal: ``stream`` is its writing end (``isatty()`` is True), ``read()``
    returns what was written to it."""

    def __init__(self, columns: int = 120) -> None:
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        self.stream = os.fdopen(self.slave, "w", buffering=1, encoding="utf-8", closefd=False)

        def echo(line: str) -> None:
            self.stream.write(line + "\n")

        echo.stream = self.stream  # type: ignore[attr-defined]
        #: an echo that says where it writes, so progress knows it is a terminal
        self.echo = echo

    def read(self) -> str:
        """Everything written since the last read (the pty turns \\n into \\r\\n)."""
        self.stream.flush()
        os.set_blocking(self.master, False)
        chunks = []
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")

    def close(self) -> None:
        self.stream.close()
        os.close(self.slave)
        os.close(self.master)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal()
    try:
        yield term
    finally:
        term.close()


# -- the helper --------------------------------------------------------------------------------


def test_plain_lines_without_a_terminal() -> None:
    lines: list[str] = []
    with Progress(10, echo=lines.append, every=4) as progress:
        assert not progress.is_bar
        for step in range(1, 11):
            progress.update(step, loss=1.0 / step)
    # every 4th step and the last one, each a whole line with the loss and an ETA
    assert [line.split()[:2] for line in lines] == [["step", "4/10"], ["step", "8/10"], ["step", "10/10"]]  # fmt: skip
    assert "loss 0.2500" in lines[0] and "loss 0.1000" in lines[2]
    assert all(ETA.search(line) for line in lines)
    assert lines[-1].endswith(", ETA 0:00)")
    assert not any("\r" in line or "|" in line or "%" in line for line in lines)


def test_plain_lines_label_note_resume_and_unknown_total() -> None:
    lines: list[str] = []
    progress = Progress(20, unit="snapshot", label="", echo=lines.append, prefix="[label] ",
                        every=None, initial=15)  # fmt: skip
    for done in range(16, 21):
        progress.update(done, note="labeled")
    # about ten lines a run (every 2nd of 20), counted from where the resumed work started
    assert [line.split()[1] for line in lines] == ["17/20", "19/20", "20/20"]
    assert lines[0].startswith("[label] 17/20  labeled  (0:")
    later: list[str] = []
    unknown = Progress(None, unit="test", echo=later.append)
    unknown.update(1)
    unknown.update(2, total=2)
    assert later[0].startswith("test 1/?") and "ETA ?" in later[0]
    assert later[1].startswith("test 2/2") and later[1].endswith("ETA 0:00)")


def test_eta_is_the_pace_since_the_first_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start-up (loading a model, starting pytest) before the first unit doesn't count."""
    now = [1000.0]
    monkeypatch.setattr("pytest_teach._progress.time.perf_counter", lambda: now[0])
    lines: list[str] = []
    progress = Progress(5, echo=lines.append)
    now[0] += 100  # 100 s of start-up, then the first step
    progress.update(1, loss=2.0)
    now[0] += 10
    progress.update(2, loss=1.5)
    now[0] += 10
    progress.update(3, loss=1.0)
    assert progress.eta() == 20.0  # 10 s a step since the first, two to go
    assert lines == [
        "step 1/5  loss 2.0000  (1:40, ETA 6:40)",  # one data point: start-up counted
        "step 2/5  loss 1.5000  (1:50, ETA 0:30)",
        "step 3/5  loss 1.0000  (2:00, ETA 0:20)",
    ]


def test_silent_without_echo() -> None:
    progress = Progress(3)
    progress.update(3, loss=0.5)  # nowhere to write: nothing happens, nothing raises
    assert not progress.is_bar and progress.eta() == 0.0


def test_a_bar_on_a_terminal(terminal: Terminal) -> None:
    with Progress(5, echo=terminal.echo, prefix="[2/4 train] ") as progress:
        assert progress.is_bar
        for step in range(1, 6):
            progress.update(step, loss=0.5 / step)
    shown = terminal.read()
    assert "\r" in shown  # redrawn in place
    last = shown.split("\r")[-1]
    assert "[2/4 train]" in last and "5/5 steps" in last and "loss 0.1000" in last
    assert "100%|" in last and ETA.search(last)
    assert shown.endswith("\n") and shown.count("\n") == 1  # one bar, finished on its own line


def test_where_the_output_goes() -> None:
    assert stream_of(click.echo) is sys.stdout
    assert stream_of(print) is None and stream_of(None) is None

    def echo(line: str) -> None: ...

    echo.stream = sys.stderr  # type: ignore[attr-defined]
    assert stream_of(echo) is sys.stderr
    assert clock(59.6) == "1:00" and clock(3725) == "1:02:05"


# -- collection (`teach loop`, the teachable rollouts) --------------------------------------------

SUITE = """
import pytest

@pytest.mark.parametrize("n", range(12))
def test_case(n):
    assert n != 5
"""


def test_collection_run_reports_each_test(tmp_path: Path, terminal: Terminal) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    args = [str(tmp_path / "test_suite.py"), "-q", "--tb=no", "-p", "no:cacheprovider"]

    lines: list[str] = []
    with Progress(None, unit="test", echo=lines.append, prefix="[2/4 collect] ", every=None) as p:  # fmt: skip
        run = run_suite(args, tmp_path / "collect.log", p)
    assert run.returncode == 1 and "1 failed, 11 passed" in run.output
    assert [line.split()[3] for line in lines] == [f"{n}/12" for n in range(1, 13)]
    assert all(line.startswith("[2/4 collect] test ") and ETA.search(line) for line in lines[1:])
    assert "1 failed, 11 passed" in (tmp_path / "collect.log").read_text()

    with Progress(None, unit="test", echo=terminal.echo, every=None) as p:
        run_suite(args, tmp_path / "collect.log", p)
    last = terminal.read().split("\r")[-1]
    assert "12/12 tests" in last and ETA.search(last)


# -- `teach train sft` under a pseudo-terminal -------------------------------------------------

ROWS = [
    {"messages": [{"role": "user", "content": f"add {a} and {b}"},
                  {"role": "assistant", "content": str(a + b)}]}
    for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]
]  # fmt: skip


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("trl")
    from pytest_teach.train.sft import ensure_tiny_base

    root = tmp_path_factory.mktemp("sft")
    data = root / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return data, ensure_tiny_base(root / "cache")


def _train_argv(data: Path, base: Path, out: Path) -> list[str]:
    return ["train", "sft", "--data", str(data), "--base-model", str(base), "--max-steps", "3",
            "--batch-size", "2", "--full", "-o", str(out)]  # fmt: skip


def _offline_env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    env.pop("RANK", None)
    return env


def test_train_prints_plain_step_lines_into_a_pipe(sft_data: tuple[Path, Path], tmp_path: Path) -> None:  # fmt: skip
    data, base = sft_data
    cmd = [sys.executable, "-m", "pytest_teach.cli", *_train_argv(data, base, tmp_path / "out")]
    done = subprocess.run(cmd, env=_offline_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    steps = [line for line in done.stdout.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == ["1/3", "2/3", "3/3"]
    assert all("loss " in line and ETA.search(line) for line in steps)
    assert "\r" not in done.stdout


def test_train_shows_one_bar_on_a_terminal(sft_data: tuple[Path, Path], tmp_path: Path, terminal: Terminal) -> None:  # fmt: skip
    data, base = sft_data
    cmd = [sys.executable, "-m", "pytest_teach.cli", *_train_argv(data, base, tmp_path / "out")]
    proc = subprocess.Popen(cmd, env=_offline_env(), stdin=subprocess.DEVNULL,
                            stdout=terminal.slave, stderr=subprocess.PIPE)  # fmt: skip
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    shown = terminal.read()
    bar = [line for line in shown.split("\n") if "steps" in line and "|" in line]
    assert len(bar) == 1, shown  # one bar for the run, redrawn in place
    last = bar[0].split("\r")[-1]
    assert "3/3 steps" in last and re.search(r"loss \d+\.\d{4}", last) and ETA.search(last)
    assert not re.search(r"^step \d", shown, re.MULTILINE)  # no plain step lines
    assert "saved to " in shown and "metrics " in shown
