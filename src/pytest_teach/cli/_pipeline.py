"""``teach pipeline ...``: feedback → training data → a trainer run → a registered specialist.

teach pipeline create --agent tool-planner --scenario 'tool_selection[*'
teach pipeline data --job JOB --trainer-url URL            # from_feedback by default
teach pipeline train --job JOB --trainer-url URL --max-steps 1 --wait 300
teach pipeline register --run RUN
teach models list --agent tool-planner
teach pipeline run --agent tool-planner --trainer-url URL   # all of the above
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import click

from ..pipeline import describe_run
from ..store import Store
from ._common import DB_OPTION, TeachGroup

__all__ = ["pipeline"]

URL_OPTION = click.option(
    "--trainer-url",
    envvar="TEACH_TRAINER_URL",
    metavar="URL",
    help="the trainer service (env TEACH_TRAINER_URL; token in env TEACH_TRAINER_TOKEN)",
)


def _stacked(*options: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One decorator applying ``options`` as if listed in this order above a command."""

    def decorate(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


_scope_options = _stacked(
    click.option("--scenario", metavar="GLOB", help="only scenarios matching this glob"),
    click.option(
        "--model",
        "models",
        multiple=True,
        metavar="SPEC",
        help="only these models (repeatable)",
    ),
    click.option("--category", help="only this category"),
    click.option("--label", type=click.Choice(["success", "intervention"]), help="only this label"),
    click.option("--session", "sessions", multiple=True, metavar="ID", help="only these sessions"),
    click.option("--since", metavar="WHEN", help="only since an ISO date or a span (7d)"),
)

#: The agent, the episodes in scope and the strategy of a new improvement job.
_job_options = _stacked(
    click.option("--agent", required=True, metavar="NAME", help="the agent to improve"),
    _scope_options,
    click.option(
        "--strategy",
        type=click.Choice(["from_feedback", "from_runs"]),
        default="from_feedback",
        show_default=True,
    ),
)

#: What a training run asks of the trainer (see :func:`_params`).
_training_options = _stacked(
    click.option("--backend", type=click.Choice(["stub", "sft"]), help="require this backend"),
    click.option("--base-model", metavar="DIR|HUB_ID", help="default: the trainer's tiny model"),
    click.option("--max-steps", type=click.IntRange(min=1), help="optimiser steps (default 1)"),
    click.option("--param", "param_pairs", multiple=True, metavar="NAME=VALUE", help="a parameter"),
)


def _scope(kw: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in {
            "scenario": kw.pop("scenario", None),
            "model": list(kw.pop("models", ()) or ()) or None,
            "category": kw.pop("category", None),
            "label": kw.pop("label", None),
            "session": list(kw.pop("sessions", ()) or ()) or None,
            "since": kw.pop("since", None),
        }.items()
        if v is not None
    }


def _params(max_steps: int | None, pairs: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if max_steps is not None:
        params["max_steps"] = max_steps
    for raw in pairs:
        name, sep, value = raw.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{raw!r} is not NAME=VALUE", param_hint="--param")
        try:
            params[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[name.strip()] = value
    return params


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _need_url(url: str | None) -> str:
    if not url:
        raise click.UsageError("--trainer-url is required (or env TEACH_TRAINER_URL)")
    return url


@click.group("pipeline", cls=TeachGroup)
def pipeline() -> None:
    """Improve an agent: training data from feedback or runs, a trainer run, a registered model."""


@pipeline.command("create")
@DB_OPTION
@_job_options
@click.option("--note", help="free text")
def create_cmd(db: str, agent: str, strategy: str, note: str | None, **kw: Any) -> None:
    """Create an improvement job over the episodes in scope; prints its id."""
    from ..pipeline import create_improvement_job

    with Store.open(db) as store:
        job = create_improvement_job(store, agent, _scope(kw), strategy, note=note)
    click.echo(job.id)


@pipeline.command("data")
@DB_OPTION
@click.option("--job", metavar="ID", help="the job (default: a new one for --agent)")
@click.option("--agent", metavar="NAME", help="the agent a new job is for")
@_scope_options
@click.option("--strategy", type=click.Choice(["from_feedback", "from_runs"]))
@click.option("--slice", "slice_", is_flag=True, help="from_runs: one row per decision")
@click.option("-o", "--output", metavar="PATH", help="the SFT JSONL (default: in the data dir)")
@URL_OPTION
def data_cmd(
    db: str,
    job: str | None,
    agent: str | None,
    strategy: str | None,
    slice_: bool,
    output: str | None,
    trainer_url: str | None,
    **kw: Any,
) -> None:
    """Write the labeled decisions and the SFT rows of the good ones.

    The SFT file goes into the trainer's data dir (--trainer-url), or to -o, or beside the
    store; the labeled rows go next to it as NAME.labeled.jsonl.
    """
    from ..pipeline import generate_training_data

    scope = _scope(kw)
    with Store.open(db) as store:
        data = generate_training_data(
            store,
            scope or None,
            strategy,
            output,
            job=job,
            agent=agent,
            slice_decisions=slice_,
            trainer_url=trainer_url,
        )
    click.echo(
        f"job {data.job_id}: {data.rows} SFT rows to {data.path} ({data.good} good, {data.bad} bad "
        f"of {data.labeled} labeled rows from {data.episodes} episodes, {data.strategy}); "
        f"labeled rows in {data.labeled_path}"
    )


@pipeline.command("train")
@DB_OPTION
@click.option("--job", required=True, metavar="ID", help="the job whose data to train on")
@URL_OPTION
@_training_options
@click.option("--run-id", metavar="ID", help="the run's id (default: JOB-random)")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    metavar="SECONDS",
    help="wait this long for the run to finish (0: return at once)",
)
def train_cmd(
    db: str,
    job: str,
    trainer_url: str | None,
    backend: str | None,
    base_model: str | None,
    max_steps: int | None,
    param_pairs: tuple[str, ...],
    run_id: str | None,
    wait: float,
) -> None:
    """Submit the job's data to the trainer; with --wait, follow the run to its end."""
    from ..pipeline import trigger_training, wait_for_training

    url = _need_url(trainer_url)
    params = _params(max_steps, param_pairs)
    with Store.open(db) as store:
        run = trigger_training(
            store,
            job,
            trainer_url=url,
            backend=backend,
            base_model=base_model,
            params=params or None,
            run_id=run_id,
        )
        if wait:
            run = wait_for_training(store, run.run_id, timeout=wait)
    click.echo(describe_run(run))
    if run.status == "failed":
        raise SystemExit(1)


@pipeline.command("status")
@DB_OPTION
@click.argument("run_id", metavar="RUN")
@click.option("--wait", type=click.FloatRange(min=0), default=0, metavar="SECONDS")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def status_cmd(db: str, run_id: str, wait: float, as_json: bool) -> None:
    """A training run's status, refreshed from its trainer."""
    from ..pipeline import get_training_status, wait_for_training

    with Store.open(db) as store:
        if wait:
            run = wait_for_training(store, run_id, timeout=wait)
        else:
            run = get_training_status(store, run_id)
    click.echo(json.dumps(vars(run), indent=2) if as_json else describe_run(run))


@pipeline.command("register")
@DB_OPTION
@click.option("--run", "run_id", metavar="RUN", help="the completed run whose model to register")
@click.option("--path", metavar="DIR", help="the model directory (default: the run's output)")
@click.option("--agent", metavar="NAME", help="default: the job's agent")
@click.option("--name", metavar="NAME", help="default: AGENT-<id>")
def register_cmd(
    db: str, run_id: str | None, path: str | None, agent: str | None, name: str | None
) -> None:
    """Register a trained model as a specialist; prints the --model spec to use it."""
    from ..pipeline import register_trained_model

    if not run_id and not path:
        raise click.UsageError("give --run RUN or --path DIR")
    with Store.open(db) as store:
        model = register_trained_model(store, path, run_id=run_id, agent=agent, name=name)
    use = f"--model {model.spec}" if model.spec else f"(a {model.kind}, not loadable as hf:)"
    click.echo(f"registered {model.name} for agent {model.agent}: {use}")


@pipeline.command("jobs")
@DB_OPTION
@click.option("--agent", metavar="NAME", help="only this agent's jobs")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def jobs_cmd(db: str, agent: str | None, as_json: bool) -> None:
    """Improvement jobs, newest first, with their runs."""
    from ..pipeline import list_improvement_jobs, list_training_runs

    with Store.open(db) as store:
        jobs = list_improvement_jobs(store, agent)
        runs = {j.id: list_training_runs(store, j.id) for j in jobs}
    if as_json:
        data = [{**vars(j), "runs": [vars(r) for r in runs[j.id]]} for j in jobs]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if not jobs:
        click.echo("no improvement jobs yet; start one with `teach pipeline create --agent NAME`")
        return
    for job in jobs:
        rows = job.stats.get("sft_rows")
        click.echo(
            f"{job.id}  {_when(job.created_at)}  {job.agent}  {job.strategy}  {job.status}"
            + (f"  rows={rows}" if rows is not None else "")
            + (f"  error: {job.error}" if job.error else "")
        )
        for run in runs[job.id]:
            click.echo(f"  {describe_run(run)}")


@pipeline.command("run")
@DB_OPTION
@_job_options
@click.option("--slice", "slice_", is_flag=True, help="from_runs: one row per decision")
@URL_OPTION
@_training_options
@click.option("--name", metavar="NAME", help="the registered model's name")
@click.option(
    "--timeout", type=click.FloatRange(min=1), default=600, show_default=True, metavar="SECONDS"
)
def run_cmd(
    db: str,
    agent: str,
    strategy: str,
    slice_: bool,
    trainer_url: str | None,
    backend: str | None,
    base_model: str | None,
    max_steps: int | None,
    param_pairs: tuple[str, ...],
    name: str | None,
    timeout: float,
    **kw: Any,
) -> None:
    """All steps: create a job, write its data, train, wait, register. Prints the --model spec."""
    from ..pipeline import run_pipeline

    url = _need_url(trainer_url)
    params = _params(max_steps, param_pairs)
    with Store.open(db) as store:
        done = run_pipeline(
            store,
            agent,
            _scope(kw),
            strategy,
            trainer_url=url,
            slice_decisions=slice_,
            backend=backend,
            base_model=base_model,
            params=params,
            name=name,
            timeout=timeout,
            echo=click.echo,
        )
    model = done.model
    if model is None:
        raise SystemExit(1)
    click.echo(
        f"registered {model.name}: "
        + (f"--model {model.spec}" if model.spec else f"{model.path} ({model.kind})")
    )
