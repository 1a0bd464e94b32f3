"""The predictor's training, evaluation and selection results as terminal text (``teach train
encoder|predictor``, ``teach evaluate``, ``teach select-for-labeling``)."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..pipeline import SpecialistModel
    from ._select import Candidate

__all__ = [
    "render_encoder_training",
    "render_evaluation",
    "render_predictor_training",
    "render_selection",
]


def _trained_line(metrics: dict[str, Any]) -> str:
    episodes, steps = metrics["episodes"], metrics["steps"]
    return (
        f"trained on {episodes['train']} episodes ({steps['train']} steps, "
        f"{steps['train_positive']} needing intervention)"
    )


def render_encoder_training(metrics: dict[str, Any], output: str | os.PathLike[str]) -> str:
    """What :func:`train_encoder` trained on, where it is, and how to train the classifier."""
    episodes = metrics["episodes"]
    return (
        f"{_trained_line(metrics)}; {episodes['val']} for validation and {episodes['test']} "
        f"held out; {metrics['seconds']:.1f} s on {metrics['device']}\n"
        f"saved to {Path(output).resolve()}; train the classifier on it with "
        f"`teach train predictor --encoder {shlex.quote(str(output))}`"
    )


def render_predictor_training(
    metrics: dict[str, Any], output: str | os.PathLike[str], registered: SpecialistModel
) -> str:
    """What the predictor trained on, its threshold, where it is and how it was registered."""
    episodes = metrics["episodes"]
    return (
        f"{_trained_line(metrics)}, threshold {metrics['threshold']:.3f} chosen on "
        f"{episodes['val']}; {episodes['test']} held out for `teach evaluate`; "
        f"{metrics['seconds']:.1f} s on {metrics['device']}\n"
        f"saved to {Path(output).resolve()}; use it as --intervention-predictor\n"
        f"registered {registered.name} ({registered.id}) for agent {registered.agent}"
    )


def render_evaluation(metrics: dict[str, Any], output: str | os.PathLike[str]) -> str:
    """:func:`evaluate_predictor`'s metrics: the held-out set, the encoder beside the baseline,
    the early warnings, and the files written to ``output``."""
    lines = [
        f"held out: {metrics['test_episodes']} episodes, {metrics['test_steps']} steps "
        f"({metrics['test_positive_steps']} needing intervention)",
        f"{'':<22}{'ROC AUC':>9}{'F1':>8}{'precision':>11}{'recall':>8}{'threshold':>11}",
    ]
    for title, key in (
        ("experience encoder", "encoder"),
        ("logistic regression", "baseline_logistic_regression"),
    ):
        r = metrics[key]
        lines.append(
            f"{title:<22}{r['roc_auc']:>9.3f}{r['f1']:>8.3f}{r['precision']:>11.3f}"
            f"{r['recall']:>8.3f}{r['threshold']:>11.3f}"
        )
    for title, key in (("encoder", "encoder"), ("baseline", "baseline_logistic_regression")):
        w = metrics[key]["early_warning"]
        lines.append(
            f"early warning ({title}): {w['failing_warned']} of {w['failing_episodes']} failing "
            f"episodes warned, median lead time {w['median_lead_time_steps']} steps; "
            f"{w['false_alarms']} false alarms in {w['passing_episodes']} passing episodes "
            f"({w['false_alarms_after_a_detour']} of them after a mistake the run recovered from)"
        )
    lines.append(
        f"wrote {Path(output) / 'evaluation_metrics.json'}, confusion_matrix.png, roc_curve.png"
    )
    return "\n".join(lines)


def render_selection(
    picked: Sequence[Candidate], threshold: float, db: str | os.PathLike[str] | None = None
) -> str:
    """The steps :func:`select_for_labeling` picked, each with the ``teach feedback add`` line
    that labels it (with ``--db db`` when a store other than the default is meant)."""
    if not picked:
        return "no unlabelled steps to choose from"
    lines = [
        f"{len(picked)} steps the predictor is least sure of (threshold "
        f"{threshold:.3f}); keep the action to confirm a step, change it to correct one:"
    ]
    db_part = "" if db is None else f" --db {shlex.quote(str(db))}"
    for c in picked:
        action = json.dumps(c.action, ensure_ascii=False)
        target = f" on {c.target}" if c.target else ""
        same = f"  (+{c.identical} identical)" if c.identical else ""
        lines.append(
            f"  {c.episode_id[:12]}  step {c.step}  p={c.p:.3f}  {c.scenario}  "
            f"[{c.model or '-'}]  {action[:100]}{target}{same}"
        )
        lines.append(
            f"    teach feedback add{db_part} --example {c.episode_id[:12]} --step {c.step} "
            f"--correct-action {shlex.quote(action)}"
        )
    return "\n".join(lines)
