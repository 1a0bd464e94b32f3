"""The pipeline's records and their tables in the store (schema 2): improvement jobs, training
runs and registered (specialist) models."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from ..store import Store, new_id

__all__ = [
    "JOB_STATUSES",
    "SCOPE_KEYS",
    "STRATEGIES",
    "ImprovementJob",
    "PipelineError",
    "SpecialistModel",
    "TrainingRun",
    "create_improvement_job",
    "get_improvement_job",
    "get_training_run",
    "list_improvement_jobs",
    "list_training_runs",
    "normalize_scope",
    "update_improvement_job",
]

STRATEGIES = ("from_feedback", "from_runs")
JOB_STATUSES = ("created", "data_ready", "training", "trained", "registered", "failed", "cancelled")
#: The filters of :meth:`Store.episodes` a scope may use.
SCOPE_KEYS = (
    "ids",
    "outcome",
    "label",
    "model",
    "scenario",
    "category",
    "session",
    "arm",
    "since",
    "min_quality",
    "min_reward",
)


class PipelineError(ValueError):
    """A pipeline step can't be done; the message says why and what to do."""


_T = TypeVar("_T")


@dataclass
class ImprovementJob:
    """One attempt to improve an agent: a scope of the store, a strategy, and where it got to."""

    id: str
    agent: str
    scope: dict[str, Any]
    strategy: str
    status: str
    dataset_path: str | None = None
    labeled_path: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    note: str | None = None
    error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass
class TrainingRun:
    """A run submitted to a trainer service for a job, as last seen."""

    run_id: str
    job_id: str
    trainer_url: str
    dataset_ref: str
    status: str
    backend: str | None = None
    base_model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    output_model_ref: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def done(self) -> bool:
        """``completed`` or ``failed``."""
        return self.status in ("completed", "failed")


@dataclass
class SpecialistModel:
    """A registered model: a trained specialist of one agent. ``spec`` (``hf:<path>``) is what
    ``--model`` takes; it is ``None`` for a non-loadable artifact (the ``stub`` backend's)."""

    id: str
    name: str
    agent: str
    path: str
    kind: str  # hf-adapter | hf-model | artifact
    spec: str | None
    base_model: str | None = None
    job_id: str | None = None
    run_id: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0


def normalize_scope(scope: dict[str, Any] | str | None) -> dict[str, Any]:
    """A scope as :meth:`Store.episodes` filters: ``None`` is everything, a string is a scenario
    glob, a dict may use :data:`SCOPE_KEYS` (``None`` values are dropped).

    Raises:
        PipelineError: an unknown filter name.
    """
    if scope is None:
        return {}
    if isinstance(scope, str):
        return {"scenario": scope} if scope.strip() else {}
    if not isinstance(scope, dict):
        raise PipelineError(f"scope must be a dict of episode filters or a glob, not {scope!r}")
    unknown = sorted(set(scope) - set(SCOPE_KEYS))
    if unknown:
        raise PipelineError(f"scope: unknown filter {unknown[0]!r}; use {', '.join(SCOPE_KEYS)}")
    out: dict[str, Any] = {}
    for key, value in scope.items():
        if value is None:
            continue
        out[key] = list(value) if isinstance(value, (tuple, set)) else value
    return out


def _check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise PipelineError(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    return strategy


def _resolve(store: Store, table: str, column: str, prefix: str, what: str) -> str:
    text = str(prefix).strip()
    if not text:
        raise PipelineError(f"empty {what} id")
    row = store.conn.execute(f"SELECT {column} FROM {table} WHERE {column} = ?", (text,)).fetchone()
    if row is not None:
        return row[0]
    if len(text) < 4 or not re.fullmatch(r"[\w.\-]+", text):
        raise PipelineError(f"unknown {what} {prefix!r} in {store.path}")
    rows = store.conn.execute(
        f"SELECT {column} FROM {table} WHERE {column} >= ? AND {column} < ? LIMIT 2",
        (text, text + "\U0010ffff"),
    ).fetchall()
    if not rows:
        raise PipelineError(f"unknown {what} {prefix!r} in {store.path}")
    if len(rows) > 1:
        raise PipelineError(f"{what} id {prefix!r} is ambiguous; give more characters")
    return rows[0][0]


def _from_row(cls: type[_T], r: sqlite3.Row, json_columns: tuple[str, ...]) -> _T:
    """A record dataclass from its row: columns named like its fields, some holding JSON."""
    columns = set(r.keys())
    return cls(
        **{
            f.name: json.loads(r[f.name]) if f.name in json_columns else r[f.name]
            for f in fields(cls)  # type: ignore[arg-type]
            if f.name in columns
        }
    )


def _job(r: sqlite3.Row) -> ImprovementJob:
    return _from_row(ImprovementJob, r, ("scope", "stats"))


def _run(r: sqlite3.Row) -> TrainingRun:
    return _from_row(TrainingRun, r, ("params", "metrics"))


def _model(r: sqlite3.Row) -> SpecialistModel:
    return _from_row(SpecialistModel, r, ("metrics",))


def create_improvement_job(
    store: Store,
    agent: str,
    scope: dict[str, Any] | str | None = None,
    strategy: str = "from_feedback",
    *,
    note: str | None = None,
) -> ImprovementJob:
    """Start an improvement job for ``agent`` over the episodes in ``scope``."""
    if not isinstance(agent, str) or not agent.strip():
        raise PipelineError("agent must be a non-empty name, e.g. tool-planner")
    scope_ = normalize_scope(scope)
    _check_strategy(strategy)
    job_id = new_id()
    now = time.time()
    store.conn.execute(
        "INSERT INTO improvement_jobs(id, agent, scope, strategy, status, note, created_at, "
        "updated_at) VALUES (?,?,?,?, 'created', ?,?,?)",
        (job_id, agent.strip(), json.dumps(scope_, default=str), strategy, note, now, now),
    )
    return get_improvement_job(store, job_id)


def get_improvement_job(store: Store, job_id: str) -> ImprovementJob:
    """One job by id (a unique prefix of 4+ characters works)."""
    full = _resolve(store, "improvement_jobs", "id", job_id, "improvement job")
    row = store.conn.execute("SELECT * FROM improvement_jobs WHERE id = ?", (full,)).fetchone()
    return _job(row)


def list_improvement_jobs(store: Store, agent: str | None = None) -> list[ImprovementJob]:
    """Jobs, newest first (only ``agent``'s when given)."""
    sql, args = "SELECT * FROM improvement_jobs", []
    if agent is not None:
        sql += " WHERE agent = ?"
        args.append(agent)
    rows = store.conn.execute(sql + " ORDER BY created_at DESC, rowid DESC", args).fetchall()
    return [_job(r) for r in rows]


_UNSET: Any = object()


def update_improvement_job(
    store: Store,
    job_id: str,
    *,
    status: str | None = None,
    scope: dict[str, Any] | str | None = _UNSET,
    strategy: str | None = None,
    dataset_path: str | None = _UNSET,
    labeled_path: str | None = _UNSET,
    stats: dict[str, Any] | None = None,
    note: str | None = _UNSET,
    error: str | None = _UNSET,
) -> ImprovementJob:
    """Change a job's fields; only the arguments given are written."""
    job = get_improvement_job(store, job_id)
    fields: dict[str, Any] = {}
    if status is not None:
        if status not in JOB_STATUSES:
            raise PipelineError(f"status {status!r} is not one of {', '.join(JOB_STATUSES)}")
        fields["status"] = status
    if scope is not _UNSET:
        fields["scope"] = json.dumps(normalize_scope(scope), default=str)
    if strategy is not None:
        fields["strategy"] = _check_strategy(strategy)
    if stats is not None:
        fields["stats"] = json.dumps(stats, default=str)
    for name, value in (
        ("dataset_path", dataset_path),
        ("labeled_path", labeled_path),
        ("note", note),
        ("error", error),
    ):
        if value is not _UNSET:
            fields[name] = value
    if fields:
        fields["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        store.conn.execute(
            f"UPDATE improvement_jobs SET {cols} WHERE id = ?", (*fields.values(), job.id)
        )
    return get_improvement_job(store, job.id)


def get_training_run(store: Store, run_id: str) -> TrainingRun:
    """One training run as last seen (see :func:`get_training_status` to refresh it)."""
    full = _resolve(store, "training_runs", "run_id", run_id, "training run")
    row = store.conn.execute("SELECT * FROM training_runs WHERE run_id = ?", (full,)).fetchone()
    return _run(row)


def list_training_runs(store: Store, job_id: str | None = None) -> list[TrainingRun]:
    """Training runs, newest first (only ``job_id``'s when given)."""
    sql, args = "SELECT * FROM training_runs", []
    if job_id is not None:
        sql += " WHERE job_id = ?"
        args.append(get_improvement_job(store, job_id).id)
    rows = store.conn.execute(sql + " ORDER BY created_at DESC, rowid DESC", args).fetchall()
    return [_run(r) for r in rows]


def insert_training_run(store: Store, run: TrainingRun) -> None:
    """Record a submitted run."""
    store.conn.execute(
        "INSERT INTO training_runs(run_id, job_id, trainer_url, backend, dataset_ref, base_model, "
        "params, status, output_model_ref, metrics, error, created_at, updated_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            run.run_id,
            run.job_id,
            run.trainer_url,
            run.backend,
            run.dataset_ref,
            run.base_model,
            json.dumps(run.params),
            run.status,
            run.output_model_ref,
            json.dumps(run.metrics),
            run.error,
            run.created_at,
            run.updated_at,
        ),
    )


def save_training_run(store: Store, run: TrainingRun) -> None:
    """Write a run's latest status, output, metrics and error."""
    store.conn.execute(
        "UPDATE training_runs SET status = ?, output_model_ref = ?, metrics = ?, error = ?, "
        "updated_at = ? WHERE run_id = ?",
        (
            run.status,
            run.output_model_ref,
            json.dumps(run.metrics),
            run.error,
            run.updated_at,
            run.run_id,
        ),
    )


def insert_model(store: Store, model: SpecialistModel) -> None:
    """Record a registered model."""
    store.conn.execute(
        "INSERT INTO registered_models(id, name, agent, path, kind, spec, base_model, job_id, "
        "run_id, metrics, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            model.id,
            model.name,
            model.agent,
            model.path,
            model.kind,
            model.spec,
            model.base_model,
            model.job_id,
            model.run_id,
            json.dumps(model.metrics),
            model.created_at,
        ),
    )


def list_models(store: Store, agent: str | None = None) -> list[SpecialistModel]:
    """Registered models, newest first."""
    sql, args = "SELECT * FROM registered_models", []
    if agent is not None:
        sql += " WHERE agent = ?"
        args.append(agent)
    rows = store.conn.execute(sql + " ORDER BY created_at DESC, rowid DESC", args).fetchall()
    return [_model(r) for r in rows]
