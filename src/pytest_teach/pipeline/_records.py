"""The pipeline's records and their tables in the store (schema 2): improvement jobs, training
runs and registered (specialist) models."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from ..store import EpisodeFilter, Store, new_id

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
#: The filters of :meth:`Store.episodes` a scope may use (:class:`EpisodeFilter`'s, but for
#: ``include_errors``, which each step sets for itself).
SCOPE_KEYS = tuple(name for name in EpisodeFilter.names() if name != "include_errors")


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


def _resolve(store: Store, table: str, prefix: str, what: str) -> str:
    """The full id of a record given its id or a unique prefix of 4+ characters."""
    text = str(prefix).strip()
    if not text:
        raise PipelineError(f"empty {what} id")
    prefixed = len(text) >= 4 and re.fullmatch(r"[\w.\-]+", text)
    found = store.match_record_ids(table, text)
    if found and (found[0] == text or prefixed):
        if len(found) > 1:
            raise PipelineError(f"{what} id {prefix!r} is ambiguous; give more characters")
        return found[0]
    raise PipelineError(f"unknown {what} {prefix!r} in {store.location}")


def _from_row(cls: type[_T], r: dict[str, Any], json_columns: tuple[str, ...]) -> _T:
    """A record dataclass from its row: columns named like its fields, some holding JSON."""
    columns = set(r)
    return cls(
        **{
            f.name: json.loads(r[f.name]) if f.name in json_columns else r[f.name]
            for f in fields(cls)  # type: ignore[arg-type]
            if f.name in columns
        }
    )


def _columns(record: Any, json_columns: tuple[str, ...]) -> dict[str, Any]:
    """A record dataclass as its row: a column per field, some holding JSON."""
    return {
        f.name: json.dumps(getattr(record, f.name))
        if f.name in json_columns
        else getattr(record, f.name)
        for f in fields(record)
    }


def _found(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:  # resolved a moment ago: another process deleted it since
        raise PipelineError("the record was deleted while it was being read")
    return row


def _job(r: dict[str, Any]) -> ImprovementJob:
    return _from_row(ImprovementJob, r, ("scope", "stats"))


def _run(r: dict[str, Any]) -> TrainingRun:
    return _from_row(TrainingRun, r, ("params", "metrics"))


def _model(r: dict[str, Any]) -> SpecialistModel:
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
    store.insert_record(
        "improvement_jobs",
        {
            "id": job_id,
            "agent": agent.strip(),
            "scope": json.dumps(scope_, default=str),
            "strategy": strategy,
            "status": "created",
            "note": note,
            "created_at": now,
            "updated_at": now,
        },
    )
    return get_improvement_job(store, job_id)


def get_improvement_job(store: Store, job_id: str) -> ImprovementJob:
    """One job by id (a unique prefix of 4+ characters works)."""
    full = _resolve(store, "improvement_jobs", job_id, "improvement job")
    return _job(_found(store.get_record("improvement_jobs", full)))


def list_improvement_jobs(store: Store, agent: str | None = None) -> list[ImprovementJob]:
    """Jobs, newest first (only ``agent``'s when given)."""
    where = {} if agent is None else {"agent": agent}
    return [_job(r) for r in store.list_records("improvement_jobs", **where)]


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
        store.update_record("improvement_jobs", job.id, fields)
    return get_improvement_job(store, job.id)


def get_training_run(store: Store, run_id: str) -> TrainingRun:
    """One training run as last seen (see :func:`get_training_status` to refresh it)."""
    full = _resolve(store, "training_runs", run_id, "training run")
    return _run(_found(store.get_record("training_runs", full)))


def list_training_runs(store: Store, job_id: str | None = None) -> list[TrainingRun]:
    """Training runs, newest first (only ``job_id``'s when given)."""
    where = {} if job_id is None else {"job_id": get_improvement_job(store, job_id).id}
    return [_run(r) for r in store.list_records("training_runs", **where)]


def insert_training_run(store: Store, run: TrainingRun) -> None:
    """Record a submitted run."""
    store.insert_record("training_runs", _columns(run, ("params", "metrics")))


def save_training_run(store: Store, run: TrainingRun) -> None:
    """Write a run's latest status, output, metrics and error."""
    store.update_record(
        "training_runs",
        run.run_id,
        {
            "status": run.status,
            "output_model_ref": run.output_model_ref,
            "metrics": json.dumps(run.metrics),
            "error": run.error,
            "updated_at": run.updated_at,
        },
    )


def insert_model(store: Store, model: SpecialistModel) -> None:
    """Record a registered model."""
    store.insert_record("registered_models", _columns(model, ("metrics",)))


def list_models(store: Store, agent: str | None = None) -> list[SpecialistModel]:
    """Registered models, newest first."""
    where = {} if agent is None else {"agent": agent}
    return [_model(r) for r in store.list_records("registered_models", **where)]
