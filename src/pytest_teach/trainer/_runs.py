"""The trainer's persisted run table: one SQLite file (``trainer.db``) in the data dir.

Every state change is one committed statement, so a service that is killed leaves each run as it
last was; :meth:`RunTable.recover` turns the runs that were in flight into ``failed`` with the
reason when the service starts again. Completed runs stay queryable forever.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["DuplicateRunError", "Run", "RunTable", "STATUSES", "iso"]

STATUSES = ("pending", "running", "completed", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    dataset_ref TEXT NOT NULL,
    dataset_path TEXT NOT NULL,
    base_model TEXT,
    backend TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    output_model_ref TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    updated_at REAL NOT NULL
)
"""


class DuplicateRunError(Exception):
    """A run with this ``runId`` exists already."""


def iso(ts: float | None) -> str | None:
    """An epoch as an ISO 8601 UTC timestamp (``None`` stays ``None``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Run:
    """One training run as the service keeps it."""

    run_id: str
    job_id: str
    dataset_ref: str
    dataset_path: str
    backend: str
    status: str
    base_model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    output_model_ref: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float = 0.0

    def to_api(self) -> dict[str, Any]:
        """The JSON body of ``GET /status/{runId}``."""
        return {
            "runId": self.run_id,
            "jobId": self.job_id,
            "status": self.status,
            "backend": self.backend,
            "datasetRef": self.dataset_ref,
            "baseModel": self.base_model,
            "params": self.params,
            "outputModelRef": self.output_model_ref,
            "metrics": self.metrics,
            "error": self.error,
            "createdAt": iso(self.created_at),
            "startedAt": iso(self.started_at),
            "finishedAt": iso(self.finished_at),
            "updatedAt": iso(self.updated_at),
        }


def _run_from_row(r: sqlite3.Row) -> Run:
    return Run(
        run_id=r["run_id"],
        job_id=r["job_id"],
        dataset_ref=r["dataset_ref"],
        dataset_path=r["dataset_path"],
        backend=r["backend"],
        status=r["status"],
        base_model=r["base_model"],
        params=json.loads(r["params"]),
        output_model_ref=r["output_model_ref"],
        metrics=json.loads(r["metrics"]),
        error=r["error"],
        created_at=r["created_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        updated_at=r["updated_at"],
    )


class RunTable:
    """Thread-safe access to ``trainer.db``. Runs are queued in the order they were created."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("PRAGMA busy_timeout = 30000")
        self._conn.execute(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()

    def add(
        self,
        *,
        run_id: str,
        job_id: str,
        dataset_ref: str,
        dataset_path: str,
        backend: str,
        base_model: str | None,
        params: dict[str, Any],
    ) -> Run:
        """Queue a new run as ``pending``.

        Raises:
            DuplicateRunError: ``run_id`` is taken.
        """
        now = time.time()
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO runs(run_id, job_id, dataset_ref, dataset_path, base_model, "
                    "backend, params, status, created_at, updated_at) "
                    "VALUES (?,?,?,?,?,?,?, 'pending', ?, ?)",
                    (
                        run_id,
                        job_id,
                        dataset_ref,
                        dataset_path,
                        base_model,
                        backend,
                        json.dumps(params),
                        now,
                        now,
                    ),
                )
            except sqlite3.IntegrityError:
                raise DuplicateRunError(run_id) from None
        run = self.get(run_id)
        assert run is not None
        return run

    def get(self, run_id: str) -> Run | None:
        """The run, or ``None``."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else _run_from_row(row)

    def list(self, status: str | None = None, limit: int = 100) -> list[Run]:
        """Runs, newest first."""
        sql = "SELECT * FROM runs"
        args: list[Any] = []
        if status is not None:
            sql += " WHERE status = ?"
            args.append(status)
        sql += " ORDER BY rowid DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [_run_from_row(r) for r in rows]

    def next_pending(self) -> Run | None:
        """The oldest pending run."""
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM runs WHERE status = 'pending' ORDER BY rowid LIMIT 1"
            ).fetchone()
        return None if row is None else _run_from_row(row)

    def counts(self) -> dict[str, int]:
        """How many runs are in each status."""
        with self._lock:
            rows = self._conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status")
            found = dict(rows.fetchall())
        return {s: int(found.get(s, 0)) for s in STATUSES}

    def _update(self, run_id: str, where_status: tuple[str, ...], **fields: Any) -> bool:
        fields["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        marks = ",".join("?" * len(where_status))
        values = [json.dumps(v) if k in ("metrics", "params") else v for k, v in fields.items()]
        with self._lock:
            cur = self._conn.execute(
                f"UPDATE runs SET {cols} WHERE run_id = ? AND status IN ({marks})",
                (*values, run_id, *where_status),
            )
        return cur.rowcount == 1

    def start(self, run_id: str) -> bool:
        """``pending`` → ``running``."""
        return self._update(run_id, ("pending",), status="running", started_at=time.time())

    def progress(self, run_id: str, metrics: dict[str, Any]) -> bool:
        """Live metrics of a running run."""
        return self._update(run_id, ("running",), metrics=metrics)

    def complete(self, run_id: str, output_model_ref: str, metrics: dict[str, Any]) -> bool:
        """``running`` → ``completed`` with its output and metrics."""
        return self._update(
            run_id,
            ("running",),
            status="completed",
            output_model_ref=output_model_ref,
            metrics=metrics,
            finished_at=time.time(),
        )

    def fail(self, run_id: str, error: str, metrics: dict[str, Any] | None = None) -> bool:
        """``pending``/``running`` → ``failed`` with the reason."""
        fields: dict[str, Any] = {"status": "failed", "error": error, "finished_at": time.time()}
        if metrics is not None:
            fields["metrics"] = metrics
        return self._update(run_id, ("pending", "running"), **fields)

    def recover(self, reason: str) -> list[str]:
        """Fail every run left ``running`` by a service that stopped; return their ids."""
        now = time.time()
        with self._lock:
            ids = [
                r[0] for r in self._conn.execute("SELECT run_id FROM runs WHERE status = 'running'")
            ]
            self._conn.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished_at = ?, updated_at = ? "
                "WHERE status = 'running'",
                (reason, now, now),
            )
        return ids
