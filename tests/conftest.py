"""Shared helpers for pytest-teach's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_teach import Store, open_store

REPO = Path(__file__).resolve().parents[1]


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
