"""The improvement pipeline: feedback → training data → a trainer run → a registered specialist.

    from pytest_teach import open_store
    from pytest_teach import pipeline as p

    store = open_store(".teach/experience.db")
    job = p.create_improvement_job(store, "tool-planner", {"scenario": "tool_selection[*"})
    data = p.generate_training_data(store, job=job, trainer_url=url)        # from_feedback
    run = p.trigger_training(store, job, trainer_url=url, params={"max_steps": 1})
    run = p.wait_for_training(store, run.run_id, timeout=120)
    model = p.register_trained_model(store, run_id=run.run_id)
    p.list_specialist_models(store, agent="tool-planner")   # model.spec == "hf:<path>"

Jobs, runs and registered models live in the store (schema 2). :func:`run_pipeline` does all of
the above in one call. Nothing here imports torch; the trainer service trains.

To train here instead, :func:`train_from_store` exports the store, validates the rows, trains
with TRL (SFT, DPO or GRPO) and registers the result:

    trained = p.train_from_store("sft", "models/planner", store=store, agent="tool-planner")
    trained.registered.spec                  # "hf:<abs path of models/planner>"
"""

from ._data import (
    TrainingData,
    decisions_from_feedback,
    generate_training_data,
    sft_rows,
    trajectories_from_runs,
)
from ._local import NothingToTrain, TrainedModel, is_main_process, train_from_store
from ._records import (
    JOB_STATUSES,
    SCOPE_KEYS,
    STRATEGIES,
    ImprovementJob,
    PipelineError,
    SpecialistModel,
    TrainingRun,
    create_improvement_job,
    get_improvement_job,
    get_training_run,
    list_improvement_jobs,
    list_training_runs,
    normalize_scope,
    update_improvement_job,
)
from ._runner import PipelineRun, describe_run, run_pipeline
from ._suite import SuiteSource
from ._train import (
    get_training_status,
    list_specialist_models,
    register_trained_model,
    trigger_training,
    wait_for_training,
)

__all__ = [
    "JOB_STATUSES",
    "SCOPE_KEYS",
    "STRATEGIES",
    "ImprovementJob",
    "NothingToTrain",
    "PipelineError",
    "PipelineRun",
    "SpecialistModel",
    "SuiteSource",
    "TrainedModel",
    "TrainingData",
    "TrainingRun",
    "create_improvement_job",
    "decisions_from_feedback",
    "describe_run",
    "generate_training_data",
    "get_improvement_job",
    "get_training_run",
    "get_training_status",
    "is_main_process",
    "list_improvement_jobs",
    "list_specialist_models",
    "list_training_runs",
    "normalize_scope",
    "register_trained_model",
    "run_pipeline",
    "sft_rows",
    "train_from_store",
    "trajectories_from_runs",
    "trigger_training",
    "update_improvement_job",
    "wait_for_training",
]
