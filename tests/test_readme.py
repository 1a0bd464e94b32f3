"""The README's runnable shell blocks run as printed.

Marker convention: the line ``<!-- runnable -->`` right before a fenced ```` ```bash ```` block
in README.md marks that block. Every command in it (one line, ``\\`` continuations joined,
comment-only lines skipped) runs through bash, exactly as printed, and must exit 0, or with the
status its trailing comment names as ``exit N`` (``pytest ... --model scripted:keyword   # exit 1:
...``, where failing scenarios are the data being recorded).

All marked blocks share one scratch directory and run in README order, as a reader following the
README would run them: a copy of the bundled ``scenarios/`` and an empty ``pytest.ini``, so pytest's
rootdir is the scratch directory and its default store (``.teach/experience.db`` under the
rootdir) is the one ``TEACH_DB`` names for ``teach``. ``PATH`` starts with this interpreter's
``bin`` directory, so ``pytest`` and ``teach`` are this checkout's; the user cache directory is
a scratch one too.

Mark only blocks that run in seconds (no training, no browser, no server): the whole file stays
well under a minute.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import REPO

README = REPO / "README.md"
MARKER = "<!-- runnable -->"
#: The fewest marked blocks the README should hold (a guard against markers lost in an edit).
MIN_BLOCKS = 2
_EXIT = re.compile(r"#.*\bexit (\d+)\b")


@dataclass(frozen=True)
class Command:
    """One command of a runnable block, where it is in the README, and the exit it expects."""

    line: int
    text: str
    exit: int


def runnable_blocks(text: str) -> list[list[Command]]:
    """The commands of each block marked runnable in ``text`` (Markdown), in order.

    Raises:
        ValueError: a marker is not followed by a ```` ```bash ```` block, or the block is
            never closed; the message names the line.
    """
    lines = text.splitlines()
    blocks: list[list[Command]] = []
    for number, line in enumerate(lines, start=1):
        if line.strip() != MARKER:
            continue
        if number >= len(lines) or lines[number].strip() != "```bash":
            raise ValueError(f"README.md:{number}: {MARKER} must come right before a ```bash block")
        commands: list[Command] = []
        pending: list[str] = []
        start = 0
        for offset, body in enumerate(lines[number + 1 :], start=number + 2):
            if body.strip() == "```":
                break
            if not pending and (not body.strip() or body.lstrip().startswith("#")):
                continue
            if not pending:
                start = offset
            if body.rstrip().endswith("\\"):
                pending.append(body.rstrip()[:-1])
                continue
            command = " ".join(part.strip() for part in [*pending, body])
            pending = []
            found = _EXIT.search(command)
            commands.append(Command(start, command, int(found.group(1)) if found else 0))
        else:
            raise ValueError(f"README.md:{number}: the runnable block is never closed")
        blocks.append(commands)
    return blocks


def test_the_marker_convention() -> None:
    text = "\n".join(
        [
            "intro",
            MARKER,
            "```bash",
            "# a comment line",
            "teach stats                      # by outcome",
            "pytest x --model m \\",
            "    --collect-training-data      # exit 1: two scenarios fail",
            "```",
            "```bash",
            "not marked",
            "```",
        ]
    )
    assert runnable_blocks(text) == [
        [
            Command(5, "teach stats                      # by outcome", 0),
            Command(
                6, "pytest x --model m --collect-training-data      # exit 1: two scenarios fail", 1
            ),
        ]
    ]
    with pytest.raises(ValueError, match="README.md:1: .* right before a ```bash block"):
        runnable_blocks(f"{MARKER}\n```python\nx = 1\n```")
    with pytest.raises(ValueError, match="README.md:1: the runnable block is never closed"):
        runnable_blocks(f"{MARKER}\n```bash\nteach stats\n")


@pytest.fixture
def scratch(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh project directory with the bundled suites, and the environment to run in it."""
    shutil.copytree(
        REPO / "scenarios",
        tmp_path / "scenarios",
        ignore=shutil.ignore_patterns("__pycache__", ".teach", ".pytest_cache"),
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI_", "TEACH_", "PYTEST_"))
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        TEACH_DB=str(tmp_path / ".teach" / "experience.db"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        # start-up only: the dev extras' schemathesis plugin adds seconds to every pytest run
        PYTEST_ADDOPTS="-p no:schemathesis",
    )
    return tmp_path, env


def test_readme_runnable_blocks_run_as_printed(scratch: tuple[Path, dict[str, str]]) -> None:
    cwd, env = scratch
    blocks = runnable_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= MIN_BLOCKS, f"only {len(blocks)} blocks in README.md carry {MARKER}"
    for command in (command for block in blocks for command in block):
        done = subprocess.run(
            ["bash", "-c", command.text],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == command.exit, (
            f"README.md:{command.line}: `{command.text}` exited {done.returncode}, "
            f"expected {command.exit}\n--- stdout\n{done.stdout[-3000:]}\n"
            f"--- stderr\n{done.stderr[-3000:]}"
        )
