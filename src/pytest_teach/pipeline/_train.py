"""Training runs on a trainer service: submit a job's data, follow the run, register the result."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from ..store import Store, new_id
from ..trainer.client import TrainerClient, TrainerError
from ._records import (
    ImprovementJob,
    PipelineError,
    SpecialistModel,
    TrainingRun,
    get_improvement_job,
    get_training_run,
    insert_model,
    insert_training_run,
    list_models,
    save_training_run,
    update_improvement_job,
)

__all__ = [
    "get_training_status",
    "list_specialist_models",
    "register_trained_model",
    "trigger_training",
    "wait_for_training",
]

TOKEN_ENV = "TEACH_TRAINER_TOKEN"


def _client(url: str, token: str | None) -> TrainerClient:
    try:
        return TrainerClient(url, token=token if token is not None else os.environ.get(TOKEN_ENV))
    except ValueError as exc:
        raise PipelineError(str(exc)) from None


def _dataset_ref(job: ImprovementJob, data_dir: Path, run_id: str) -> str:
    """The job's dataset as a path relative to the trainer's data dir, copying it there first
    when it was written elsewhere (the trainer refuses paths outside its data dir)."""
    if not job.dataset_path:
        raise PipelineError(
            f"job {job.id} has no training data yet; run generate_training_data "
            f"(`teach pipeline data --job {job.id}`) first"
        )
    dataset = Path(job.dataset_path)
    if not dataset.is_file():
        raise PipelineError(f"job {job.id}'s dataset {dataset} is missing; generate it again")
    root = data_dir.resolve()
    resolved = dataset.resolve()
    if resolved.is_relative_to(root):
        return resolved.relative_to(root).as_posix()
    if not root.is_dir():
        raise PipelineError(
            f"the dataset {dataset} is outside the trainer's data dir {root}, which is not "
            "reachable from here; generate the data with trainer_url=... (or copy it there)"
        )
    target = root / "datasets" / f"{job.id}-{run_id}.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(dataset, tmp)
    os.replace(tmp, target)
    return target.relative_to(root).as_posix()


def trigger_training(
    store: Store,
    job: str | ImprovementJob,
    *,
    trainer_url: str,
    token: str | None = None,
    backend: str | None = None,
    base_model: str | None = None,
    params: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> TrainingRun:
    """Submit the job's dataset to the trainer at ``trainer_url`` (``POST /train``).

    Args:
        store: the experience store.
        job: the job (or its id); it needs data (:func:`generate_training_data`).
        trainer_url: the trainer service.
        token: its bearer token (default: env ``TEACH_TRAINER_TOKEN``).
        backend: when given, the trainer must run this backend (``stub`` or ``sft``).
        base_model: the model to fine-tune (default: the trainer's tiny local model).
        params: training parameters, e.g. ``{"max_steps": 1}``.
        run_id: the run's id (default: ``<job>-<random>``).

    Returns:
        The run (``pending``); the job moves to ``training``.

    Raises:
        PipelineError: no data, no trainer, the wrong backend, or the trainer refused the run.
    """
    current = get_improvement_job(store, job if isinstance(job, str) else job.id)
    client = _client(trainer_url, token)
    try:
        health = client.health()
    except TrainerError as exc:
        raise PipelineError(f"the trainer did not answer: {exc}") from None
    if backend is not None and health.get("backend") != backend:
        raise PipelineError(
            f"the trainer at {client.url} runs backend {health.get('backend')!r}, not {backend!r}"
        )
    rid = run_id or f"{current.id}-{new_id()[:8]}"
    ref = _dataset_ref(current, Path(str(health.get("dataDir", ""))), rid)
    try:
        status = client.train(
            job_id=current.id, dataset_ref=ref, run_id=rid, base_model=base_model, params=params
        )
    except TrainerError as exc:
        raise PipelineError(f"the trainer refused the run: {exc}") from None
    now = time.time()
    run = TrainingRun(
        run_id=rid,
        job_id=current.id,
        trainer_url=client.url,
        dataset_ref=ref,
        status=status["status"],
        backend=status.get("backend"),
        base_model=base_model,
        params=status.get("params") or dict(params or {}),
        created_at=now,
        updated_at=now,
    )
    insert_training_run(store, run)
    update_improvement_job(store, current.id, status="training", error=None)
    return run


def get_training_status(store: Store, run_id: str, *, token: str | None = None) -> TrainingRun:
    """The run's status, refreshed from its trainer unless it already finished; the job moves to
    ``trained`` or ``failed`` with it.

    Raises:
        PipelineError: unknown run, or its trainer did not answer.
    """
    run = get_training_run(store, run_id)
    if run.done:
        return run
    try:
        status = _client(run.trainer_url, token).status(run.run_id)
    except TrainerError as exc:
        raise PipelineError(f"cannot get the status of run {run.run_id}: {exc}") from None
    run.status = status["status"]
    run.output_model_ref = status.get("outputModelRef")
    run.metrics = status.get("metrics") or {}
    run.error = status.get("error")
    run.updated_at = time.time()
    save_training_run(store, run)
    if run.status == "completed":
        update_improvement_job(store, run.job_id, status="trained", error=None)
    elif run.status == "failed":
        update_improvement_job(store, run.job_id, status="failed", error=run.error)
    return run


def wait_for_training(
    store: Store,
    run_id: str,
    timeout: float = 600.0,
    *,
    poll: float = 0.2,
    token: str | None = None,
) -> TrainingRun:
    """Poll :func:`get_training_status` until the run is ``completed`` or ``failed``.

    Raises:
        PipelineError: still running after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        run = get_training_status(store, run_id, token=token)
        if run.done:
            return run
        if time.monotonic() >= deadline:
            raise PipelineError(f"run {run.run_id} is still {run.status} after {timeout:g}s")
        time.sleep(poll)


def _kind(path: Path) -> tuple[str, str | None]:
    if (path / "adapter_config.json").is_file():
        return "hf-adapter", f"hf:{path}"
    if (path / "config.json").is_file():
        return "hf-model", f"hf:{path}"
    return "artifact", None


def register_trained_model(
    store: Store,
    output_model_ref: str | None = None,
    *,
    run_id: str | None = None,
    agent: str | None = None,
    name: str | None = None,
    job_id: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> SpecialistModel:
    """Register a trained model as a specialist of ``agent``.

    Give the model directory (``output_model_ref``, as the trainer reported it), the run that
    produced it (``run_id``: the path, job, agent and metrics come from it), or both. A model or
    LoRA adapter directory gets ``spec = "hf:<path>"``, usable straight away as ``--model``.

    Raises:
        PipelineError: the run isn't completed, the directory doesn't exist, or the adapter's
            base model can't be found.
    """
    run = None
    if run_id is not None:
        run = get_training_status(store, run_id)
        if run.status != "completed":
            raise PipelineError(
                f"run {run.run_id} is {run.status}, not completed"
                + (f": {run.error}" if run.error else "")
            )
        output_model_ref = output_model_ref or run.output_model_ref
        job_id = job_id or run.job_id
    if not output_model_ref:
        raise PipelineError("register_trained_model needs output_model_ref or run_id")
    job = get_improvement_job(store, job_id) if job_id else None
    agent = agent or (job.agent if job else None)
    if not agent:
        raise PipelineError("register_trained_model needs agent= (or a run_id/job_id with one)")
    path = Path(output_model_ref).expanduser()
    if not path.is_dir():
        raise PipelineError(f"model directory {output_model_ref} does not exist")
    path = path.resolve()
    kind, spec = _kind(path)
    base_model = None
    if kind != "artifact":
        from ..agents import resolve_hf_model

        try:
            base_model = resolve_hf_model(str(path))[0]
        except ValueError as exc:
            raise PipelineError(f"cannot register {path}: {exc}") from None
    elif run is not None:
        base_model = run.base_model
    model_id = new_id()
    model = SpecialistModel(
        id=model_id,
        name=(name or f"{agent}-{model_id[:8]}").strip(),
        agent=agent,
        path=str(path),
        kind=kind,
        spec=spec,
        base_model=base_model,
        job_id=job.id if job else None,
        run_id=run.run_id if run else None,
        metrics=dict(metrics if metrics is not None else (run.metrics if run else {})),
        created_at=time.time(),
    )
    insert_model(store, model)
    if job is not None:
        update_improvement_job(store, job.id, status="registered")
    return model


def list_specialist_models(store: Store, agent: str | None = None) -> list[SpecialistModel]:
    """Registered models, newest first (only ``agent``'s when given)."""
    return list_models(store, agent)
