"""`--trainer-url`, the `trainer` fixture and the `e2e_trainer` marker: a clean skip with the
reason when no trainer answers, a client when one does, and `--trainer-url auto` starting and
stopping a local trainer for the session (once, under xdist too)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_teach.trainer.fixtures import LocalTrainer, check_health, free_port

SUITE = """
import json, os
import pytest

@pytest.mark.e2e_trainer
def test_needs_a_trainer(trainer):
    health = trainer.health()
    out = os.environ.get("TRAINER_SEEN")
    if out:
        with open(out, "a") as fh:
            fh.write(json.dumps({"url": trainer.url, "token": trainer.token,
                                 "dataDir": health["dataDir"], "backend": health["backend"]}) + "\\n")

@pytest.mark.e2e_trainer
def test_marked_without_the_fixture():
    pass

def test_plain():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("TEACH_TRAINER_URL", raising=False)
    monkeypatch.delenv("TEACH_TRAINER_TOKEN", raising=False)
    pytester.makepyfile(test_suite=SUITE)
    return pytester


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTrainer]:
    pytest.importorskip("fastapi")
    local = LocalTrainer(tmp_path_factory.mktemp("live") / "data", "stub", token="sekret").start()
    yield local
    local.stop()


def test_no_url_skips_marked_tests_with_the_reason(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        ["*SKIPPED*no --trainer-url given (env TEACH_TRAINER_URL); start one with "
         "`teach trainer serve`*"]
    )  # fmt: skip
    assert result.ret == 0


def test_nothing_answering_skips_with_the_url(suite: pytest.Pytester) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = suite.runpytest("-rs", "--trainer-url", url, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [f"*no trainer answered GET {url}/health (*); start one with `teach trainer serve`*"]
    )
    # only marked tests are skipped; `-m e2e_trainer` alone still exits 0
    result = suite.runpytest("-m", "e2e_trainer", "--trainer-url", url, "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    assert result.ret == 0


def test_live_trainer_from_the_environment(
    suite: pytest.Pytester, live: LocalTrainer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = tmp_path / "seen.jsonl"
    monkeypatch.setenv("TEACH_TRAINER_URL", live.url + "/")
    monkeypatch.setenv("TEACH_TRAINER_TOKEN", "sekret")
    monkeypatch.setenv("TRAINER_SEEN", str(seen))
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    (row,) = [json.loads(line) for line in seen.read_text().splitlines()]
    assert row["url"] == live.url and row["token"] == "sekret" and row["backend"] == "stub"


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_auto_starts_one_trainer_and_stops_it(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, workers: list[str]
) -> None:
    pytest.importorskip("fastapi")
    if workers:
        pytest.importorskip("xdist")
    seen = tmp_path / "seen.jsonl"
    monkeypatch.setenv("TRAINER_SEEN", str(seen))
    suite.makepyfile(
        test_more="""
        import pytest
        from test_suite import test_needs_a_trainer as test_again
        test_again = pytest.mark.e2e_trainer(test_again)
        """
    )
    result = suite.runpytest_subprocess(
        "--trainer-url", "auto:stub", "-p", "no:cacheprovider", *workers
    )
    result.assert_outcomes(passed=4)
    rows = [json.loads(line) for line in seen.read_text().splitlines()]
    assert len(rows) == 2 and len({r["url"] for r in rows}) == 1, rows  # one trainer
    assert rows[0]["backend"] == "stub" and rows[0]["token"]  # a random token protects it
    assert check_health(rows[0]["url"], timeout=1.0) is not None, "the trainer is still up"
    assert not Path(rows[0]["dataDir"]).exists(), "its data dir was left behind"


def test_auto_that_cannot_start_errors_instead_of_skipping(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: LocalTrainer) -> LocalTrainer:
        raise OSError("no room for a trainer")

    monkeypatch.setattr(LocalTrainer, "launch", broken)
    result = suite.runpytest("--trainer-url", "auto", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        ["*--trainer-url auto: the local trainer did not start (no room for a trainer)*"]
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://example.org", "--trainer-url: trainer URL 'ftp://example.org' is not http(s)"),
        ("auto:gpu", "--trainer-url auto:gpu: use auto, auto:sft or auto:stub"),
    ],
)
def test_bad_url_is_a_usage_error(suite: pytest.Pytester, value: str, message: str) -> None:
    result = suite.runpytest("--trainer-url", value, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_plugin_module_stays_light() -> None:
    code = (
        "import sys, pytest_teach.trainer.fixtures, pytest_teach.trainer; "
        "heavy = [m for m in ('fastapi', 'uvicorn', 'torch', 'transformers', 'httpx', "
        "'pydantic', 'trl', 'pytest_teach.trainer._app') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_trainer_entry_point_does_not_load_the_cli() -> None:
    """`python -m pytest_teach.trainer serve` runs the trainer package's own command: the
    library never imports pytest_teach.cli, and `teach trainer serve` is that same command."""
    code = (
        "import runpy, sys; sys.argv = ['trainer', 'serve', '--help']\n"
        "try:\n"
        "    runpy.run_module('pytest_teach.trainer', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('pytest_teach.cli')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Usage: teach trainer serve" in done.stdout and "--data-dir" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"

    from pytest_teach.cli import cli
    from pytest_teach.trainer import serve_command

    assert cli.commands["trainer"].commands["serve"] is serve_command
