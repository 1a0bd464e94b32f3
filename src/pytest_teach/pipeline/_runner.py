"""The whole pipeline in one call: a job, its data, a trainer run, the registered specialist."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..store import Store
from ._data import TrainingData, generate_training_data
from ._records import ImprovementJob, SpecialistModel, TrainingRun, create_improvement_job
from ._train import register_trained_model, trigger_training, wait_for_training

__all__ = ["PipelineRun", "describe_run", "run_pipeline"]


@dataclass
class PipelineRun:
    """What :func:`run_pipeline` did; ``model`` is ``None`` when the run did not complete."""

    job: ImprovementJob
    data: TrainingData
    run: TrainingRun
    model: SpecialistModel | None


def describe_run(run: TrainingRun) -> str:
    """One line for a training run: its status, main metrics, output and error."""
    text = f"run {run.run_id}: {run.status}"
    metrics = run.metrics or {}
    parts = [f"{k}={metrics[k]:.4g}" for k in ("loss", "steps", "seconds") if k in metrics]
    if parts:
        text += " (" + ", ".join(parts) + ")"
    if run.output_model_ref:
        text += f" -> {run.output_model_ref}"
    if run.error:
        text += f": {run.error}"
    return text


def run_pipeline(
    store: Store,
    agent: str,
    scope: dict[str, Any] | None = None,
    strategy: str = "from_feedback",
    *,
    trainer_url: str,
    slice_decisions: bool = False,
    token: str | None = None,
    backend: str | None = None,
    base_model: str | None = None,
    params: dict[str, Any] | None = None,
    name: str | None = None,
    timeout: float = 600.0,
    echo: Callable[[str], None] = lambda line: None,
) -> PipelineRun:
    """Create a job for ``agent`` over ``scope``, write its data into the trainer's data dir,
    train on the trainer at ``trainer_url``, wait for the run, and register the model.

    ``echo`` gets one line once the data is written and one when the run ends
    (:func:`describe_run`).

    Raises:
        PipelineError: no data to train on, no trainer, or a run still going after ``timeout``.
    """
    job = create_improvement_job(store, agent, scope or {}, strategy)
    data = generate_training_data(
        store, job=job, slice_decisions=slice_decisions, trainer_url=trainer_url, token=token
    )
    echo(f"job {job.id}: {data.rows} SFT rows ({data.good} good, {data.bad} bad)")
    run = trigger_training(
        store,
        job,
        trainer_url=trainer_url,
        token=token,
        backend=backend,
        base_model=base_model,
        params=params,
    )
    run = wait_for_training(store, run.run_id, timeout=timeout, token=token)
    echo(describe_run(run))
    model = None
    if run.status == "completed":
        model = register_trained_model(store, run_id=run.run_id, name=name)
    return PipelineRun(job, data, run, model)
