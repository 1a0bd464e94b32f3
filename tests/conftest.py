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

from ._postgres import PgServer, running_server, store_backend, unavailable

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
#: Why the PostgreSQL tests skip here (no server binaries, no psycopg), or ``None``.
NO_POSTGRES = unavailable()


def pytest_configure(config: pytest.Config) -> None:
    """Refuse an unknown ``TEACH_TEST_STORE`` before any test runs."""
    try:
        store_backend()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


#: The fixtures whose store follows ``TEACH_TEST_STORE``.
STORE_FIXTURES = frozenset({"collect", "store_target"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``TEACH_TEST_STORE=postgresql``, run only the tests whose store that moves (the
    others would run on SQLite exactly as in the first pass)."""
    if store_backend() != "postgresql":
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        moves = STORE_FIXTURES & set(getattr(item, "fixturenames", ()))
        (keep if moves else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def store_dump(path: Path) -> list[str]:
    """A logical dump of a store, to check that a failed command changed nothing."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A throwaway PostgreSQL server for the session (one per xdist worker), always stopped.

    Skips with the reason when no server binaries (or no psycopg) can be had.
    """
    if NO_POSTGRES is not None:
        pytest.skip(NO_POSTGRES)
    with running_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database on the test server, as a ``postgresql://`` URL; dropped after."""
    with pg_server.database() as url:
        yield url


@pytest.fixture
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's store lives: a SQLite file, or a fresh PostgreSQL database's URL.

    The backend is ``TEACH_TEST_STORE`` (``sqlite`` by default, or ``postgresql``), or the
    parameter of ``@pytest.mark.parametrize("store_target", [...], indirect=True)``.
    """
    backend = getattr(request, "param", None) or store_backend()
    if backend == "postgresql":
        return request.getfixturevalue("pg_url")
    if backend == "sqlite":
        return tmp_path / "experience.db"
    raise ValueError(f"store_target: unknown backend {backend!r} (sqlite or postgresql)")


@pytest.fixture
def collect(pytester: pytest.Pytester, request: pytest.FixtureRequest):
    """Run pytester's suite with collection on; return (result, open store).

    The store is ``.teach/experience.db`` in pytester's folder, or under
    ``TEACH_TEST_STORE=postgresql`` a fresh PostgreSQL database passed as ``--teach-db``
    (unless the test names its own ``--teach-db``).
    """
    pg = request.getfixturevalue("pg_url") if store_backend() == "postgresql" else None

    def run(*args: str, subprocess: bool = False) -> tuple[pytest.RunResult, Store]:
        db: Path | str = pytester.path / ".teach" / "experience.db"
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        own_db = any(arg == "--teach-db" or arg.startswith("--teach-db=") for arg in args)
        extra: tuple[str, ...] = ()
        if pg is not None and not own_db:
            db, extra = pg, ("--teach-db", pg)
        result = runner("--collect-training-data", "-p", "no:cacheprovider", *extra, *args)
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
