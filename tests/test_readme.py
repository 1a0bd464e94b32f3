"""The README and the manual (``docs/``): their runnable shell blocks run as printed, the README
stays a short front door whose links resolve, and the manual builds without a warning.

Marker convention: the line ``<!-- runnable -->`` right before a fenced ```` ```bash ```` block
in README.md or in a page under docs/ marks that block. Every command in it (one line, ``\\``
continuations joined, comment-only lines skipped) runs through bash, exactly as printed, and
must exit 0, or with the status its trailing comment names as ``exit N`` (``pytest ... --model
scripted:keyword   # exit 1: ...``, where failing scenarios are the data being recorded).

Each file's marked blocks share one scratch directory and run in the file's order, as a reader
following that page would run them: a copy of the bundled ``scenarios/``, an empty
``pytest.ini`` (so pytest's rootdir is the scratch directory and its default store,
``.teach/experience.db`` under the rootdir, is the one ``TEACH_DB`` names for ``teach``), and
every Python block of the file whose first line is ``# NAME.py`` written to ``NAME.py``, so the
README's ``test_cart.py`` is there for the commands that run it. ``PATH`` starts with this
interpreter's ``bin`` directory, so ``pytest`` and ``teach`` are this checkout's; the user cache
directory is a scratch one too.

Mark only blocks that run in seconds (no training, no browser, no server): all of them together
stay well under a minute.
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
DOCS = REPO / "docs"
MARKER = "<!-- runnable -->"
#: The fewest marked blocks the README and the manual should each hold (a guard against markers
#: lost in an edit).
MIN_BLOCKS = 2
#: The README is the front door; the manual is in docs/.
README_MAX_BYTES = 12 * 1024
_EXIT = re.compile(r"#.*\bexit (\d+)\b")
_FILE_BLOCK = re.compile(r"^```python\n# ([\w.-]+\.py)\n(.*?)^```$", flags=re.M | re.S)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class Command:
    """One command of a runnable block, where it is in its file, and the exit it expects."""

    line: int
    text: str
    exit: int


def runnable_blocks(text: str, name: str = "README.md") -> list[list[Command]]:
    """The commands of each block marked runnable in ``text`` (Markdown from file ``name``).

    Raises:
        ValueError: a marker is not followed by a ```` ```bash ```` block, or the block is
            never closed; the message names the file and line.
    """
    lines = text.splitlines()
    blocks: list[list[Command]] = []
    for number, line in enumerate(lines, start=1):
        if line.strip() != MARKER:
            continue
        if number >= len(lines) or lines[number].strip() != "```bash":
            raise ValueError(f"{name}:{number}: {MARKER} must come right before a ```bash block")
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
            raise ValueError(f"{name}:{number}: the runnable block is never closed")
        blocks.append(commands)
    return blocks


def example_files(text: str) -> dict[str, str]:
    """The Python blocks of ``text`` whose first line is ``# NAME.py``, by file name (the
    comment line included, as a reader copying the block would save it)."""
    return {m.group(1): f"# {m.group(1)}\n{m.group(2)}" for m in _FILE_BLOCK.finditer(text)}


def doc_pages() -> list[Path]:
    """The manual's Markdown pages (not the build output)."""
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.relative_to(DOCS).parts)


def _name(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


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
    with pytest.raises(ValueError, match="docs/store.md:1: the runnable block is never closed"):
        runnable_blocks(f"{MARKER}\n```bash\nteach stats\n", "docs/store.md")


def test_example_files_are_the_python_blocks_named_by_their_first_line() -> None:
    text = "\n".join(
        [
            "```python",
            "# test_cart.py",
            "import pytest",
            "```",
            "```python",
            "from pytest_teach import open_store  # not a file",
            "```",
        ]
    )
    assert example_files(text) == {"test_cart.py": "# test_cart.py\nimport pytest\n"}


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


def _run_blocks(path: Path, cwd: Path, env: dict[str, str]) -> None:
    text = path.read_text(encoding="utf-8")
    for name, source in example_files(text).items():
        (cwd / name).write_text(source, encoding="utf-8")
    for command in (c for block in runnable_blocks(text, _name(path)) for c in block):
        done = subprocess.run(
            ["bash", "-c", command.text],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == command.exit, (
            f"{_name(path)}:{command.line}: `{command.text}` exited {done.returncode}, "
            f"expected {command.exit}\n--- stdout\n{done.stdout[-3000:]}\n"
            f"--- stderr\n{done.stderr[-3000:]}"
        )


def test_readme_runnable_blocks_run_as_printed(scratch: tuple[Path, dict[str, str]]) -> None:
    cwd, env = scratch
    blocks = runnable_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= MIN_BLOCKS, f"only {len(blocks)} blocks in README.md carry {MARKER}"
    _run_blocks(README, cwd, env)


def _marked_pages() -> list[Path]:
    return [p for p in doc_pages() if runnable_blocks(p.read_text(encoding="utf-8"), _name(p))]


def test_the_manual_holds_runnable_blocks() -> None:
    count = sum(len(runnable_blocks(p.read_text(encoding="utf-8"), _name(p))) for p in doc_pages())
    assert count >= MIN_BLOCKS, f"only {count} blocks in docs/ carry {MARKER}"


@pytest.mark.parametrize("page", _marked_pages(), ids=_name)
def test_docs_runnable_blocks_run_as_printed(
    page: Path, scratch: tuple[Path, dict[str, str]]
) -> None:
    cwd, env = scratch
    _run_blocks(page, cwd, env)


# -- the README is the front door ----------------------------------------------------------


def test_the_readme_is_a_short_front_door() -> None:
    text = README.read_text(encoding="utf-8")
    size = len(text.encode("utf-8"))
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; the manual belongs in docs/"
    commands = re.search(r"## Two commands\n\n```bash\n(.*?)```", text, flags=re.S)
    assert commands, "README.md shows its two commands in a bash block under '## Two commands'"
    assert [line.split()[:2] for line in commands.group(1).splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    demo_model = re.search(r"^DEMO_MODEL \?= (\S+)$", makefile, flags=re.M)
    assert demo_model and f"`{demo_model.group(1)}`" in text, (
        "the demo's model as the Makefile has it"
    )


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_links_into_the_manual_and_every_link_resolves() -> None:
    text = README.read_text(encoding="utf-8")
    headings = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    local = [link for link in _LINK.findall(text) if "://" not in link]
    for link in local:
        path, _, anchor = link.partition("#")
        if not path:
            assert anchor in headings, f"README.md links to {link}, a heading it does not have"
            continue
        assert (REPO / path).is_file(), f"README.md links to {link}, which does not exist"
    linked = {
        (REPO / link.split("#", 1)[0]).resolve() for link in local if not link.startswith("#")
    }
    for page in ("research/intervention-predictor.md", "research/teachable-moments.md", "cli.md"):
        assert (DOCS / page).resolve() in linked, f"README.md does not link to docs/{page}"


def test_the_readme_layout_names_every_package() -> None:
    text = README.read_text(encoding="utf-8")
    assert "## Layout" in text, "README.md has no '## Layout' section"
    layout = text[text.index("## Layout") :]
    packages = sorted(
        p.name for p in (REPO / "src" / "pytest_teach").iterdir() if (p / "__init__.py").is_file()
    )
    missing = [name for name in packages if f"`{name}/`" not in layout]
    assert not missing, f"the README's layout does not name {missing}"


# -- the manual builds -----------------------------------------------------------------------


def _command_ids(command, path: tuple[str, ...]) -> list[str]:
    ids = ["-".join(path)]
    for name, sub in getattr(command, "commands", {}).items():
        ids += _command_ids(sub, (*path, name))
    return ids


def test_the_manual_builds_without_warnings_and_lists_every_command(tmp_path: Path) -> None:
    pytest.importorskip("sphinx_click", reason="the docs extra is not installed")
    from pytest_teach.cli import cli

    out = tmp_path / "html"
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    reference = (out / "cli.html").read_text(encoding="utf-8")
    missing = [i for i in _command_ids(cli, ("teach",)) if f'id="{i}"' not in reference]
    assert not missing, f"the command reference lacks {missing}"
    for page in doc_pages():
        built = out / page.relative_to(DOCS).with_suffix(".html")
        assert built.is_file(), f"{_name(page)} was not built"
    api = (out / "api.html").read_text(encoding="utf-8")
    assert 'id="pytest_teach.open_store"' in api
