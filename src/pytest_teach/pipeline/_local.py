"""Train here, from the store: export → validate → train → register, in one call.

:func:`train_from_store` is what ``teach train sft|dpo|grpo``, ``teach loop`` and the teachable
student run. It works unchanged under ``torchrun``/``accelerate launch``: rank 0 alone opens the
store and exports, and hands the rows to the other ranks; every rank trains on its shard of each
batch (accelerate's distributed sampler); only rank 0 prints, writes the model and registers it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._progress import Echo, Progress, no_progress_bars
from ..redaction import redact_url
from ..store import Store
from ..train import (
    BaseModel,
    StepCallback,
    TrainPlan,
    TrainSettings,
    dist_timeout,
    share_from_main,
    train_model,
)
from ..train import ranks as launched_ranks
from ._records import PipelineError, SpecialistModel
from ._suite import SuiteSource
from ._train import register_trained_model

__all__ = ["NothingToTrain", "TrainedModel", "is_main_process", "train_from_store"]


class NothingToTrain(PipelineError):
    """The store holds no rows of the method's format for the filters; nothing was trained."""


@dataclass
class TrainedModel:
    """What :func:`train_from_store` trained, and where it was registered."""

    plan: TrainPlan
    output: Path  # the model directory, absolute; loads as ``hf:<output>``
    metrics: dict[str, Any]
    source: dict[str, Any]  # where the rows came from (the registered ``data`` metrics)
    registered: SpecialistModel | None = None
    main_process: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        """The ``--model`` spec of the trained model."""
        return f"hf:{self.output}"


def is_main_process() -> bool:
    """Whether this is the main process (``accelerate launch``/``torchrun`` set ``RANK``).

    Raises:
        LaunchError: the launcher's environment is half set, or ``accelerate launch`` started
            one process where several were asked (see :func:`pytest_teach.train.ranks`).
    """
    return launched_ranks().main


def _opened(store: Store | str | os.PathLike[str], create: bool = False) -> Any:
    if isinstance(store, Store):
        return contextlib.nullcontext(store)
    return Store.open(store, create=create)


def _export(
    store: Store | str | os.PathLike[str],
    method: str,
    target: Path,
    filters: Mapping[str, Any] | None,
    used: Mapping[str, Any],
) -> tuple[str, dict[str, Any]]:
    """Export the store's ``method`` rows to ``target``: the file and where the rows came from.

    Raises:
        NothingToTrain: no row.
    """
    from ..export import export

    with _opened(store) as opened:
        result = export(opened, method, target, **(filters or {}))
        db = opened.location if opened.path is None else str(opened.path.resolve())
    if result.rows == 0:
        where = store.location if isinstance(store, Store) else redact_url(str(store))
        raise NothingToTrain(
            f"no {method} rows in the store {where}"
            + (" match the filters" if used else "")
            + "; check with `teach stats`"
        )
    source = {"db": db, "format": method, "filters": {k: str(v) for k, v in used.items()}}
    return str(result.path), source


def train_from_store(
    method: str,
    output: str | os.PathLike[str],
    settings: TrainSettings | None = None,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    filters: Mapping[str, Any] | None = None,
    data: str | os.PathLike[str] | None = None,
    suite: SuiteSource | None = None,
    export_to: str | os.PathLike[str] | None = None,
    base_model: BaseModel = None,
    register: bool | None = None,
    agent: str = "default",
    name: str | None = None,
    details: Mapping[str, Any] | None = None,
    announce: Callable[[TrainPlan], None] | None = None,
    echo: Echo | None = None,
    progress: Callable[[int], Progress] | None = None,
    on_step: StepCallback | None = None,
    **method_args: Any,
) -> TrainedModel:
    """Export the store's ``method`` rows, validate them, train, and register the model.

    The rows come from one of: the store's export in ``method``'s format (``sft``, ``dpo`` or
    ``grpo``) of the episodes matching ``filters`` (``label``, ``model``, ``scenario``,
    ``since``, ``session``... as :meth:`Store.episodes` takes them); a prepared JSONL file
    (``data``); or, for ``grpo``, a pytest suite's prompts and rewards (``suite``).

    Args:
        method: ``sft``, ``dpo`` or ``grpo``.
        output: the model directory to write.
        settings: how long and how to train (:class:`~pytest_teach.train.TrainSettings`).
        store: the experience store, or its path (opened read-only for the export; a suite run
            creates it to register).
        filters: which episodes to export.
        data: train on this JSONL file instead of the export.
        suite: take GRPO's prompts and rewards from this suite.
        export_to: where the export is written (default: a temporary file, removed after).
        base_model: a model directory or hub id; ``None`` for the tiny offline base in the user
            cache directory; or a callable that builds a base from the validated rows.
        register: register the model in ``store`` (default: unless trained from ``data``).
        agent: the agent the registered model specialises.
        name: the registered model's name (default ``AGENT-<id>``).
        details: extra keys of the registered metrics; a ``data`` mapping among them is added
            to the source's.
        announce: called with the plan (rows, steps, base) just before training.
        echo: progress and notes (the default base, a suite's prompts and checks); only the
            main process echoes.
        progress: makes the step progress display (default: a bar or plain lines via echo).
        on_step: called after each step with ``(step, loss)``.
        method_args: the method's own arguments (``beta``, ``num_generations``,
            ``max_completion_length``, ``reward_funcs``...).

    Returns:
        The trained model, its metrics, where its rows came from, and its registry entry
        (``None`` when not registered, and in every process but the main one).

    Raises:
        NothingToTrain: the export is empty.
        PipelineError: contradicting sources, or a suite that gave no prompt.
        ValueError: an unusable dataset (file and line named) or base model.
    """
    used = {k: v for k, v in (filters or {}).items() if v}
    given = [label for label, on in (("data", data), ("suite", suite)) if on]
    if len(given) > 1:
        raise PipelineError("data and suite exclude each other: give one")
    if given and used:
        raise PipelineError(f"{given[0]} excludes the store filters ({', '.join(used)})")
    if not given and store is None:
        raise PipelineError("train_from_store needs store=, data= or suite=")
    if register is None:
        register = data is None
    if register and store is None:
        raise PipelineError("registering the model needs store=")
    here = launched_ranks()
    dist_timeout()  # a bad TEACH_DIST_TIMEOUT is refused before anything runs
    main = here.main
    say = echo if main else None
    extra = dict(method_args)
    details = dict(details or {})
    with (
        tempfile.TemporaryDirectory(prefix="teach-train-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        if not main:  # one set of progress bars: rank 0's
            stack.enter_context(no_progress_bars())
        if suite is not None:
            path, source = suite.prepare(Path(tmp), stack, echo=say)
            extra["reward_funcs"] = [suite.reward_func()]
        elif data is not None:
            path = str(data)
            source = {"file": str(Path(path).resolve())}
        else:
            target = Path(export_to) if export_to is not None else Path(tmp) / f"{method}.jsonl"

            def exported() -> tuple[str, str, dict[str, Any]]:
                path, source = _export(store, method, target, filters, used)  # type: ignore[arg-type]
                text = Path(path).read_text(encoding="utf-8") if here.distributed else ""
                return path, text, source

            # several processes: rank 0 alone opens the store; the others get its rows
            path, text, source = share_from_main(exported, "export of the store", here)
            if not main:
                path = str(Path(tmp) / f"{method}.jsonl")
                Path(path).write_text(text, encoding="utf-8")
        run = train_model(
            method,
            path,
            output,
            settings,
            base_model=base_model,
            announce=announce if main else None,
            echo=say,
            progress=progress if main else None,
            on_step=on_step,
            **extra,
        )
        source["rows"] = len(run.plan.rows)
        metrics = run.metrics
        if here.distributed:
            metrics["processes"] = here.world_size
        if suite is not None:
            metrics["checks"] = suite.report(echo=say)
    source.update(details.pop("data", None) or {})
    trained = TrainedModel(
        plan=run.plan,
        output=Path(output).resolve(),
        metrics=metrics,
        source=source,
        main_process=main,
        details=details,
    )
    if main and register:
        # a suite run may have no store yet: the registry lives in it, so create it
        with _opened(store, create=suite is not None) as opened:  # type: ignore[arg-type]
            trained.registered = register_trained_model(
                opened,
                str(trained.output),
                agent=agent,
                name=name,
                metrics={**metrics, "method": method, "data": source, **details},
            )
    return trained
