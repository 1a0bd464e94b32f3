"""The reward pool cleans up after itself: bounded logs, its temporary folder, the processes its
checks start, crashed checks, and workers recycled by check count or memory."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_teach.cli import cli as teach
from pytest_teach.rewards import RewardPool

NODE = "test_hygiene.py::test_check"

# A one-test suite whose check does what the candidate completion says.
SUITE = """
import os
import signal
import subprocess
import sys
import time

from pytest_teach.agents import chat_model

HELD = []


def test_check(agent):
    reply = chat_model(agent.spec).complete([{"role": "user", "content": "go"}]).text
    with open("pids.txt", "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    verb, _, arg = reply.partition(" ")
    if verb == "print":  # print ARG kB, then a line naming the candidate
        kb, token = arg.split()
        for _ in range(int(kb)):
            sys.stdout.write("x" * 1023 + "\\n")
        sys.stdout.write(f"end of {token}\\n")
    elif verb in ("spawn", "spawn-stuck"):  # start a long-lived child and note its pid
        child = subprocess.Popen(["sleep", "600"])
        with open("children.txt", "a") as fh:
            fh.write(f"{child.pid}\\n")
        if verb == "spawn-stuck":  # then hang where the alarm can't interrupt the check
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(60)
    elif verb == "secret":  # a key printed in two flushed halves, then a closing line
        sys.stdout.write("calling api --api-key " + arg[:9])
        sys.stdout.flush()
        time.sleep(0.2)
        sys.stdout.write(arg[9:] + " with Authorization: Bearer " + arg + "\\n")
        sys.stdout.write("end of secret\\n")
    elif verb == "sys.exit":
        sys.exit(int(arg))
    elif verb == "os._exit":
        os._exit(int(arg))
    elif verb == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif verb == "grow":  # hold ARG more MiB, written so the pages are resident
        HELD.append(b"\\x01" * (int(arg) * 2**20))
    assert verb != "fail"
"""


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    root = tmp_path / "suite"
    root.mkdir()
    (root / "test_hygiene.py").write_text(textwrap.dedent(SUITE))
    return root


@pytest.fixture
def pool_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private system temp dir, so the pool's folders can be found (and counted) in it."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def pool_dirs(folder: Path) -> list[Path]:
    return sorted(folder.glob("teach-reward-pool-*"))


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a parent that will never reap it doesn't)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pids: list[int], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def numbers(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


@contextlib.contextmanager
def reaped_children(suite: Path) -> Iterator[None]:
    """Kill what the checks started if the pool didn't, so a failing test leaves nothing."""
    try:
        yield
    finally:
        for pid in numbers(suite / "children.txt"):
            if alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


# -- the worker's captured output is bounded --------------------------------------------------


def wait_for(text: str, path: Path, within: float = 10.0) -> str:
    """The log's content once ``text`` has been copied into it (the copy is asynchronous)."""
    deadline = time.monotonic() + within
    while True:
        content = path.read_text(errors="replace")
        if text in content or time.monotonic() > deadline:
            return content
        time.sleep(0.05)


def test_a_chatty_check_cannot_grow_its_worker_log_past_the_default_cap(
    suite: Path, pool_tmp: Path
) -> None:
    with RewardPool([NODE], workers=1, cwd=suite) as pool:
        scores = pool.score([(NODE, f"print 1200 candidate-{i}") for i in range(3)])
        assert [s.value for s in scores] == [1.0] * 3
        (folder,) = pool_dirs(pool_tmp)
        path = folder / "worker-0.log"
        content = wait_for("end of candidate-2", path)
        size = path.stat().st_size
    assert size <= 1_000_000 + 200  # 3.6 MB printed; the cap plus the marker line
    assert "end of candidate-2" in content  # the newest output is kept
    assert "end of candidate-0" not in content
    first = content.splitlines()[0]
    assert "bytes of this worker's output were dropped" in first
    assert "at most 1000000 bytes" in first


def test_a_worker_log_never_holds_a_secret_a_check_printed(suite: Path) -> None:
    key = "Zq8vX2kLmN4pQ7rT1uW9"
    with RewardPool([NODE], workers=1, cwd=suite) as pool:
        pool.score([(NODE, f"secret {key}")])
        assert pool.log_dir is not None
        content = wait_for("end of secret", pool.log_dir / "worker-0.log")
    assert "end of secret" in content
    assert "--api-key [REDACTED]" in content
    assert key not in content and key[:9] not in content and key[9:] not in content


def test_the_log_cap_is_an_option_and_bad_caps_are_refused(suite: Path) -> None:
    with RewardPool([NODE], workers=1, cwd=suite, max_log_bytes=20_000) as pool:
        pool.score([(NODE, f"print 30 candidate-{i}") for i in range(4)])
        assert pool.log_dir is not None
        path = pool.log_dir / "worker-0.log"
        content = wait_for("end of candidate-3", path)
        assert path.stat().st_size <= 20_000 + 200
        assert "end of candidate-3" in content
        # whole lines are kept after the marker
        assert all(line in ("x" * 1023, "end of candidate-3") for line in content.splitlines()[1:])
    with pytest.raises(ValueError, match="max_log_bytes must be an integer >= 4096"):
        RewardPool([NODE], cwd=suite, max_log_bytes=100)


# -- the temporary folder goes with the pool ----------------------------------------------------


def test_the_log_folder_is_removed_on_close(suite: Path, pool_tmp: Path) -> None:
    with RewardPool([NODE], workers=1, cwd=suite) as pool:
        (folder,) = pool_dirs(pool_tmp)
        assert pool.log_dir == folder
        assert (folder / "worker-0.log").exists()
    assert pool_dirs(pool_tmp) == []
    assert pool.log_dir is None


def test_a_pool_dropped_without_close_releases_its_folder_and_processes(
    suite: Path, pool_tmp: Path
) -> None:
    pool = RewardPool([NODE], workers=1, cwd=suite).start()
    with reaped_children(suite):
        pool.score([(NODE, "spawn")])
        worker = numbers(suite / "pids.txt")
        assert pool_dirs(pool_tmp) and alive(worker[0])
        del pool
        gc.collect()
        assert pool_dirs(pool_tmp) == []
        assert gone(worker + numbers(suite / "children.txt"))


def test_a_pool_left_open_at_exit_releases_its_folder_and_processes(suite: Path) -> None:
    folder = suite.parent / "exit-tmp"
    folder.mkdir()
    script = textwrap.dedent(
        f"""
        from pytest_teach.rewards import RewardPool

        pool = RewardPool([{NODE!r}], workers=1).start()
        print(pool.score([({NODE!r}, "spawn")])[0].outcome)
        """
    )
    with reaped_children(suite):
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=suite,
            env=dict(os.environ, TMPDIR=str(folder)),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["passed"]
        assert numbers(suite / "children.txt")
        assert pool_dirs(folder) == []
        assert gone(numbers(suite / "pids.txt") + numbers(suite / "children.txt"))


# -- what a check starts goes with its worker ---------------------------------------------------


def test_what_a_check_started_does_not_outlive_the_pool(suite: Path) -> None:
    with reaped_children(suite):
        with RewardPool([NODE], workers=1, cwd=suite) as pool:
            (score,) = pool.score([(NODE, "spawn")])
            assert score.outcome == "passed"
            (child,) = numbers(suite / "children.txt")
            assert alive(child)  # the check's child runs as long as its worker does
        assert gone([child])


def test_a_killed_worker_takes_its_process_group_with_it(suite: Path) -> None:
    with (
        reaped_children(suite),
        RewardPool([NODE], workers=1, timeout=0.5, kill_grace=0.5, cwd=suite) as pool,
    ):
        stuck, after = pool.score([(NODE, "spawn-stuck"), (NODE, "pass")])
        assert (stuck.value, stuck.outcome) == (None, "timeout")
        assert "hung and was replaced" in stuck.reason
        assert after.value == 1.0
        assert pool.stats.restarts == 1
        (child,) = numbers(suite / "children.txt")
        # killed with the hung worker, while the pool goes on
        assert gone([child])


# -- a check that exits is a crash, not a hang --------------------------------------------------


def test_a_check_that_exits_is_reported_as_crashed_and_the_pool_goes_on(suite: Path) -> None:
    with RewardPool([NODE], workers=1, timeout=30.0, cwd=suite) as pool:
        scores = pool.score(
            [
                (NODE, "sys.exit 3"),
                (NODE, "pass"),
                (NODE, "os._exit 3"),
                (NODE, "pass"),
                (NODE, "sigkill"),
                (NODE, "fail"),
            ]
        )
        assert [s.outcome for s in scores] == [
            "crashed",
            "passed",
            "crashed",
            "passed",
            "crashed",
            "failed",
        ]
        assert [s.value for s in scores] == [None, 1.0, None, 1.0, None, 0.0]
        assert scores[0].reason.startswith("crashed (exit 3)")
        assert scores[2].reason.startswith("crashed (exit 3)")
        assert "replaced" in scores[2].reason
        assert scores[4].reason.startswith("crashed (killed by SIGKILL)")
        # sys.exit is caught in the worker; os._exit and the signal end it and it is replaced
        assert pool.stats.restarts == 2
        assert pool.stats.by_outcome["crashed"] == 3
        assert "timeout" not in pool.stats.by_outcome
        assert len(set(numbers(suite / "pids.txt"))) == 3


# -- workers are recycled by check count or memory ----------------------------------------------


def test_a_worker_is_recycled_after_n_checks(suite: Path) -> None:
    with RewardPool([NODE], workers=1, cwd=suite, max_checks_per_worker=2) as pool:
        scores = pool.score([(NODE, "pass")] * 5)
        assert [s.value for s in scores] == [1.0] * 5
        assert pool.stats.recycled == 2
        assert pool.stats.restarts == 0
        assert "recycled" in pool.stats.summary()
    a, b, c = dict.fromkeys(numbers(suite / "pids.txt"))
    assert numbers(suite / "pids.txt") == [a, a, b, b, c]


def test_a_worker_is_recycled_past_its_memory_limit(suite: Path) -> None:
    # each "grow" holds 256 MiB more; a worker starts far below 400 MiB, so the first grow
    # stays under the limit and the second passes it: the third check runs in a fresh worker
    with RewardPool([NODE], workers=1, cwd=suite, max_worker_rss_mb=400) as pool:
        scores = pool.score([(NODE, "grow 256")] * 3 + [(NODE, "pass")])
        assert [s.value for s in scores] == [1.0] * 4
        assert pool.stats.recycled == 1
    pids = numbers(suite / "pids.txt")
    assert pids[0] == pids[1] != pids[2] == pids[3]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("max_checks_per_worker", 0, "max_checks_per_worker must be an integer >= 1"),
        ("max_checks_per_worker", 2.5, "max_checks_per_worker must be an integer >= 1"),
        ("max_worker_rss_mb", -1, "max_worker_rss_mb must be a positive number"),
        ("max_worker_rss_mb", float("inf"), "max_worker_rss_mb must be a positive number"),
    ],
)
def test_bad_recycling_limits_are_refused(suite: Path, option, value, message) -> None:
    with pytest.raises(ValueError, match=message):
        RewardPool([NODE], cwd=suite, **{option: value})


def test_teach_train_grpo_offers_the_recycling_options(tmp_path: Path) -> None:
    runner = CliRunner()
    out = ["-o", str(tmp_path / "model")]
    shown = runner.invoke(teach, ["train", "grpo", "--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "--reward-recycle-after" in shown.output
    assert "--reward-max-rss-mb" in shown.output
    refused = runner.invoke(
        teach, ["train", "grpo", *out, "--suite", ".", "--reward-recycle-after", "0"]
    )
    assert refused.exit_code == 2
    assert "--reward-recycle-after" in refused.output
    alone = runner.invoke(teach, ["train", "grpo", *out, "--reward-max-rss-mb", "500"])
    assert alone.exit_code != 0
    assert "--reward-max-rss-mb needs --suite" in alone.output
