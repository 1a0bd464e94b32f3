"""``generate_training_data``: labeled decisions (or trajectories) from the store, and the SFT
rows of the good ones, written where the trainer reads them.

Two strategies:

- ``from_feedback``: per-decision rows judged by people: a step's own ``good``/``bad`` label, a
  step correction (the action taken is bad, the correction a good row), or the run's rating
  (4-5 good, 1-2 bad). Episodes nobody judged are left out.
- ``from_runs``: every labeled episode in scope as a whole trajectory, judged by its rating when
  it has one, else by its outcome (success good, intervention bad). With ``slice_decisions``
  each step becomes its own decision row, judged as :func:`~pytest_teach.export.verdict` does.

Each decision row has ``input`` (the task, the observation such as a page snapshot, and the chat
context the agent saw), ``output`` (the action), ``reply`` (its text), ``label`` (``good`` or
``bad``) and ``source`` (why). The trainer gets ``{"messages": [...]}`` rows for the good
decisions (and corrections); the labeled rows go beside them in ``<name>.labeled.jsonl``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util import WriteError, atomic_write_lines, json_line
from ..export import (
    BAD_RATING,
    EXPORTERS,
    GOOD_RATING,
    corrections,
    prompt_of,
    reply_of,
    run_rating,
    text_of,
    verdict,
)
from ..store import Episode, Step, Store
from ._records import (
    ImprovementJob,
    PipelineError,
    create_improvement_job,
    get_improvement_job,
    normalize_scope,
    update_improvement_job,
)

__all__ = [
    "TrainingData",
    "decisions_from_feedback",
    "generate_training_data",
    "sft_rows",
    "trajectories_from_runs",
]


@dataclass
class TrainingData:
    """What :func:`generate_training_data` wrote."""

    job_id: str
    strategy: str
    path: Path  # the SFT rows the trainer consumes
    labeled_path: Path  # every labeled decision or trajectory
    rows: int  # SFT rows
    labeled: int  # labeled rows
    good: int
    bad: int
    episodes: int  # episodes that contributed a labeled row
    stats: dict[str, Any] = field(default_factory=dict)


def _task_of(episode: Episode) -> str:
    for key in ("goal", "intent", "task"):
        value = episode.meta.get(key)
        if isinstance(value, str) and value:
            return value
    return episode.scenario


def _decision(
    episode: Episode, step: Step, label: str, source: str, output: Any = None, *, corrected=False
) -> dict[str, Any]:
    action = output if corrected else step.action
    return {
        "kind": "decision",
        "episode_id": episode.id,
        "step": step.index,
        "scenario": episode.scenario,
        "model": episode.model,
        "input": {
            "task": _task_of(episode),
            "observation": step.observation,
            "messages": prompt_of(episode, step),
        },
        "output": action,
        "reply": text_of(output) if corrected else reply_of(step),
        "label": label,
        "source": source,
    }


def _step_corrections(episode: Episode) -> dict[int, Any]:
    found: dict[int, Any] = {}
    for step in episode.steps:
        if step.correction is not None:
            found[step.index] = step.correction
    for fb in episode.feedback:
        if fb.step is not None and fb.correct_action is not None:
            found[fb.step] = fb.correct_action
    return found


def decisions_from_feedback(episodes: Iterable[Episode]) -> Iterator[dict[str, Any]]:
    """Per-decision rows judged by people (see the module docstring), in episode order."""
    for episode in episodes:
        rating = run_rating(episode)
        corrections = _step_corrections(episode)
        for step in episode.steps:
            if step.error is not None and step.action is None:
                continue  # the model call failed: there is no decision to judge
            if step.label in ("good", "bad"):
                yield _decision(episode, step, step.label, "step_label")
            elif step.index in corrections:
                yield _decision(episode, step, "bad", "correction")
            elif rating is not None and rating >= GOOD_RATING:
                yield _decision(episode, step, "good", f"rating:{rating}")
            elif rating is not None and rating <= BAD_RATING:
                yield _decision(episode, step, "bad", f"rating:{rating}")
            if step.index in corrections:
                yield _decision(
                    episode, step, "good", "correction", corrections[step.index], corrected=True
                )


def _episode_verdict(episode: Episode) -> tuple[str | None, str]:
    rating = run_rating(episode)
    if rating is not None and rating >= GOOD_RATING:
        return "good", f"rating:{rating}"
    if rating is not None and rating <= BAD_RATING:
        return "bad", f"rating:{rating}"
    if episode.label == 0:
        return "good", "outcome"
    if episode.label == 1:
        return "bad", "outcome"
    return None, "unlabeled"


def trajectories_from_runs(
    episodes: Iterable[Episode], *, slice_decisions: bool = False
) -> Iterator[tuple[Episode, dict[str, Any]]]:
    """``(episode, row)`` for every judged episode: one trajectory row each, or with
    ``slice_decisions`` one decision row per judged step."""
    for episode in episodes:
        label, source = _episode_verdict(episode)
        if label is None or not episode.steps:
            continue
        if slice_decisions:
            corrections = _step_corrections(episode)
            for step in episode.steps:
                kind = verdict(episode, step)
                if kind is not None:
                    origin = "step_label" if step.label in ("good", "bad") else source
                    yield episode, _decision(episode, step, kind, origin)
                if step.index in corrections:
                    yield (
                        episode,
                        _decision(
                            episode,
                            step,
                            "good",
                            "correction",
                            corrections[step.index],
                            corrected=True,
                        ),
                    )
            continue
        yield (
            episode,
            {
                "kind": "trajectory",
                "episode_id": episode.id,
                "scenario": episode.scenario,
                "model": episode.model,
                "task": _task_of(episode),
                "label": label,
                "source": source,
                "reward": episode.reward,
                "steps": [
                    {
                        "index": s.index,
                        "observation": s.observation,
                        "action": s.action,
                        "reply": reply_of(s),
                        "label": verdict(episode, s),
                    }
                    for s in episode.steps
                ],
            },
        )


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def sft_rows(decisions: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``{"messages": [...]}`` rows for the good decision rows: the context, then the reply."""
    for row in decisions:
        if row.get("kind") == "decision" and row["label"] == "good":
            yield {
                "messages": [
                    *row["input"]["messages"],
                    {"role": "assistant", "content": row["reply"]},
                ]
            }


def _default_out(store: Store, job_id: str, trainer_url: str | None, token: str | None) -> Path:
    if trainer_url:
        from ..trainer.client import TrainerClient, TrainerError

        try:
            health = TrainerClient(trainer_url, token=token).health()
        except (TrainerError, ValueError) as exc:
            raise PipelineError(f"cannot ask the trainer for its data dir: {exc}") from None
        data_dir = Path(health["dataDir"])
        if not data_dir.is_dir():
            raise PipelineError(
                f"the trainer's data dir {data_dir} is not reachable from here; pass out=PATH "
                "and copy the file there"
            )
        return data_dir / "datasets" / f"{job_id}.jsonl"
    return store.local_dir / "datasets" / f"{job_id}.jsonl"


def generate_training_data(
    store: Store,
    scope: dict[str, Any] | str | None = None,
    strategy: str | None = None,
    out: str | Path | None = None,
    *,
    job: str | ImprovementJob | None = None,
    agent: str | None = None,
    slice_decisions: bool = False,
    trainer_url: str | None = None,
    token: str | None = None,
) -> TrainingData:
    """Build training data for an improvement job and write it.

    Args:
        store: the experience store.
        scope: which episodes (filters of :meth:`Store.episodes`, or a scenario glob); default:
            the job's scope.
        strategy: ``from_feedback`` or ``from_runs``; default: the job's.
        out: the SFT JSONL to write. Default: ``<trainer data dir>/datasets/<job>.jsonl`` when
            ``trainer_url`` is given, else ``datasets/<job>.jsonl`` beside the store.
        job: the job (or its id); a new one is created for ``agent`` when omitted.
        agent: the agent a new job is for (default: the scope's model, else ``agent``).
        slice_decisions: ``from_runs`` only: one decision row per step instead of trajectories.
        trainer_url: the trainer whose data dir receives the file.
        token: its bearer token (not needed for ``/health``).

    Returns:
        What was written; the job is updated to ``data_ready`` with the paths and counts.

    Raises:
        PipelineError: an unknown strategy or scope key, or no good decision to train on.
    """
    if job is None:
        scope_ = normalize_scope(scope)
        model = scope_.get("model")
        name = agent or (model if isinstance(model, str) else None) or "agent"
        current = create_improvement_job(store, name, scope_, strategy or "from_feedback")
    else:
        current = get_improvement_job(store, job if isinstance(job, str) else job.id)
        changes: dict[str, Any] = {}
        if scope is not None:
            changes["scope"] = scope
        if strategy is not None:
            changes["strategy"] = strategy
        if changes:
            current = update_improvement_job(store, current.id, **changes)
    filters = {**current.scope}
    filters.setdefault("include_errors", False)
    episodes = list(store.episodes(**filters))

    labeled: list[dict[str, Any]] = []
    sft: list[dict[str, Any]] = []
    contributing: set[str] = set()
    if current.strategy == "from_feedback":
        labeled = list(decisions_from_feedback(episodes))
        sft = list(sft_rows(labeled))
        contributing = {r["episode_id"] for r in labeled}
    else:
        chat = EXPORTERS["sft"]()
        for episode, row in trajectories_from_runs(episodes, slice_decisions=slice_decisions):
            labeled.append(row)
            contributing.add(episode.id)
            if row["kind"] != "trajectory":
                continue
            if row["label"] == "good":
                sft.extend(chat.rows([episode]))  # its good steps and its corrections
            else:
                sft.extend(
                    {"messages": [*prompt_of(episode, step), _assistant(text_of(fix))]}
                    for step, fix in corrections(episode)
                )
        if slice_decisions:
            sft = list(sft_rows(labeled))
    good = sum(1 for r in labeled if r["label"] == "good")
    bad = sum(1 for r in labeled if r["label"] == "bad")
    stats = {
        "strategy": current.strategy,
        "episodes_in_scope": len(episodes),
        "episodes": len(contributing),
        "labeled": len(labeled),
        "good": good,
        "bad": bad,
        "sft_rows": len(sft),
        "sliced": bool(slice_decisions) if current.strategy == "from_runs" else True,
    }
    if not sft:
        hint = (
            "rate episodes (`teach feedback add --example ID --rating 5`) or correct steps"
            if current.strategy == "from_feedback"
            else "record passing runs or rate some 4-5"
        )
        update_improvement_job(store, current.id, stats=stats, error="no good decisions in scope")
        raise PipelineError(
            f"no good decisions to train on: {len(episodes)} episode(s) in scope "
            f"{current.scope or 'all'}, {len(labeled)} labeled row(s) ({bad} bad); {hint}"
        )
    target = Path(out) if out is not None else _default_out(store, current.id, trainer_url, token)
    labeled_target = target.with_name(f"{target.stem}.labeled.jsonl")
    try:
        atomic_write_lines(labeled_target, (json_line(r, default=str) for r in labeled))
        atomic_write_lines(target, (json_line(r, default=str) for r in sft))
    except WriteError as exc:
        raise PipelineError(str(exc)) from None
    update_improvement_job(
        store,
        current.id,
        status="data_ready",
        dataset_path=str(target.resolve()),
        labeled_path=str(labeled_target.resolve()),
        stats=stats,
        error=None,
    )
    return TrainingData(
        job_id=current.id,
        strategy=current.strategy,
        path=target.resolve(),
        labeled_path=labeled_target.resolve(),
        rows=len(sft),
        labeled=len(labeled),
        good=good,
        bad=bad,
        episodes=len(contributing),
        stats=stats,
    )
