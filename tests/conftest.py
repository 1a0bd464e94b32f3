"""Shared helpers for pytest-teach's own tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_teach import Store, open_store
from pytest_teach.envs import browser as _browser

REPO = Path(__file__).resolve().parents[1]

# imported here on purpose: pytester unloads modules a test imports in its body
try:
    import playwright.sync_api  # noqa: F401
except ImportError:  # pragma: no cover - the browser extra is missing
    HAVE_PLAYWRIGHT = False
else:
    HAVE_PLAYWRIGHT = True

#: Debian's Chromium (or ``TEACH_CHROMIUM``), ``None`` when there is none.
CHROMIUM = _browser.find_chromium()
#: Why browser tests skip here, or ``None`` when they can run.
NO_BROWSER = (
    _browser.NO_CHROMIUM
    if CHROMIUM is None
    else None
    if HAVE_PLAYWRIGHT
    else "playwright is not installed: pip install 'pytest-teach[browser]'"
)
#: Marks a test that drives Chromium through Playwright.
needs_chromium = pytest.mark.skipif(NO_BROWSER is not None, reason=NO_BROWSER or "")


def store_dump(path: Path) -> list[str]:
    """A logical dump of a store, to check that a failed command changed nothing."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture
def collect(pytester: pytest.Pytester):
    """Run pytester's suite with collection on; return (result, open store)."""

    def run(*args: str, subprocess: bool = False) -> tuple[pytest.RunResult, Store]:
        db = pytester.path / ".teach" / "experience.db"
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        result = runner("--collect-training-data", "-p", "no:cacheprovider", *args)
        return result, open_store(db)

    return run


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make a file or folder read-only: ``chattr +i`` as root, permission bits otherwise."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("root ignores permission bits, and there is no chattr for the immutable flag")
    done = subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"root ignores permission bits, and chattr +i fails here: {done.stderr}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)
