"""``teach evaluate``: the predictor on the episodes it never saw, beside the baseline.

The test episodes are the ones the predictor's checkpoint held out (the split is saved with
it). Both the encoder's classifier and the logistic-regression baseline are scored on the same
test steps at their own thresholds (each chosen on the validation episodes), and the early
warnings are measured on the test episodes as they would have fired live.

Writes ``evaluation_metrics.json``, ``confusion_matrix.png`` and ``roc_curve.png``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..export import atomic_write_text
from ..store import Episode, Store
from ._baseline import LogisticBaseline
from ._dataset import Example, PredictorError, examples_of, split_members
from ._labels import LABELING, known_paths, trajectory
from ._warning import EpisodeWarning, summarize_warnings

__all__ = ["METRICS_FILE", "evaluate_predictor", "scores"]

METRICS_FILE = "evaluation_metrics.json"
CONFUSION_FILE = "confusion_matrix.png"
ROC_FILE = "roc_curve.png"


def scores(labels: Sequence[int], probabilities: Sequence[float], threshold: float) -> dict:
    """Accuracy, precision, recall, F1, ROC AUC and the confusion matrix at ``threshold``."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    predicted = [int(p >= threshold) for p in probabilities]
    matrix = confusion_matrix(labels, predicted, labels=[0, 1])
    return {
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        "confusion_matrix": {
            "layout": "rows: true label (0 success, 1 intervention); columns: predicted",
            "matrix": matrix.tolist(),
            "tn": int(matrix[0, 0]),
            "fp": int(matrix[0, 1]),
            "fn": int(matrix[1, 0]),
            "tp": int(matrix[1, 1]),
        },
    }


def _warnings(
    examples: Sequence[Example], probabilities: Sequence[float], threshold: float
) -> list[EpisodeWarning]:
    by_episode: dict[str, tuple[Episode, list[float]]] = {}
    for ex, p in zip(examples, probabilities, strict=True):
        by_episode.setdefault(ex.episode.id, (ex.episode, []))[1].append(p)
    return [
        EpisodeWarning.from_probabilities(episode, probs, threshold)
        for episode, probs in by_episode.values()
    ]


def _detours(episodes: Sequence[Episode], split: Any) -> set[str]:
    """The passing test episodes that left every clean path of their scenario (made a mistake
    and recovered by themselves): a warning there is a false alarm, but not an idle one."""
    paths = known_paths(e for e in episodes if e.id in set(split.train) | set(split.val))
    return {
        e.id
        for e in episodes
        if e.id in set(split.test)
        and e.label == 0
        and trajectory(e) not in paths.get(e.scenario, set())
    }


def _novel(
    episodes: Sequence[Episode],
    split: Any,
    test: Sequence[Example],
    labels: Sequence[int],
    encoder_p: Sequence[float],
    baseline_p: Sequence[float],
    threshold: float,
    baseline: LogisticBaseline,
) -> dict[str, Any]:
    """The same scores on the test episodes whose whole trajectory no training or validation
    episode took (scripted agents repeat clean runs verbatim, which are easy to score)."""
    trained = set(split.train) | set(split.val)
    seen = {trajectory(e) for e in episodes if e.id in trained}
    novel = {e.id for e in episodes if e.id in set(split.test) and trajectory(e) not in seen}
    keep = [i for i, ex in enumerate(test) if ex.episode.id in novel]
    part = [labels[i] for i in keep]
    result: dict[str, Any] = {"episodes": len(novel), "steps": len(keep)}
    if len(set(part)) < 2:
        result["note"] = "too few novel episodes of both labels to score"
        return result
    result["encoder"] = scores(part, [encoder_p[i] for i in keep], threshold)
    result["baseline_logistic_regression"] = scores(
        part, [baseline_p[i] for i in keep], baseline.threshold
    )
    return result


def _save(fig: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def _plot_confusion(path: Path, results: dict[str, dict[str, Any]]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.9 * len(results), 4.0), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (name, result) in zip(axes, results.items(), strict=True):
        matrix = result["confusion_matrix"]["matrix"]
        image = ax.imshow(matrix, cmap="Blues")
        peak = max(max(row) for row in matrix) or 1
        for i in range(2):
            for j in range(2):
                value = matrix[i][j]
                ax.text(
                    j,
                    i,
                    f"{value:,}",
                    ha="center",
                    va="center",
                    fontsize=13,
                    color="white" if value > peak / 2 else "black",
                )
        ax.set_xticks([0, 1], ["fine (0)", "needs\nintervention (1)"])
        ax.set_yticks([0, 1], ["fine (0)", "needs\nintervention (1)"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true label")
        ax.set_title(f"{name}\nF1 {result['f1']:.3f} at threshold {result['threshold']:.3f}")
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle("Held-out steps: confusion matrices")
    _save(fig, path)


def _plot_roc(
    path: Path,
    labels: Sequence[int],
    curves: dict[str, tuple[Sequence[float], dict[str, Any]]],
) -> None:
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    fig = Figure(figsize=(5.6, 5.0), layout="constrained")
    ax = fig.subplots()
    for name, (probabilities, result) in curves.items():
        fpr, tpr, _ = roc_curve(labels, probabilities)
        line = ax.plot(fpr, tpr, linewidth=2, label=f"{name} (AUC {result['roc_auc']:.3f})")[0]
        cm = result["confusion_matrix"]
        point_fpr = cm["fp"] / max(cm["fp"] + cm["tn"], 1)
        point_tpr = cm["tp"] / max(cm["tp"] + cm["fn"], 1)
        ax.plot([point_fpr], [point_tpr], "o", color=line.get_color(), markersize=7)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC on {len(labels):,} held-out steps (dots: chosen thresholds)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    _save(fig, path)


def evaluate_predictor(
    store: Store, predictor: Any, output: str | os.PathLike[str]
) -> dict[str, Any]:
    """Score ``predictor`` (a loaded :class:`~pytest_teach.predictor.Predictor`) and the
    baseline on its held-out episodes in ``store``; write the metrics file and the two plots to
    ``output``; return the metrics."""
    from ._model import image_source

    trained_with = predictor.config.get("labeling")
    if trained_with != LABELING:
        raise PredictorError(
            f"{predictor.path} was trained on {trained_with!r} labels and this pytest-teach "
            f"labels steps by {LABELING!r}; retrain with `teach train predictor`"
        )
    split = predictor.split
    episodes = split_members(store, split, predictor.config.get("db"))
    test = examples_of(episodes, split, split.test)
    fit = examples_of(episodes, split, split.train)
    val = examples_of(episodes, split, split.val)
    labels = [int(ex.label or 0) for ex in test]
    if len(set(labels)) < 2:
        raise PredictorError("the held-out steps are all of one label; ROC AUC is undefined")
    image_of = image_source(store)
    encoder_p = predictor.probabilities([ex.features for ex in test], image_of)
    baseline = LogisticBaseline(seed=int(split.seed)).fit(
        [ex.features for ex in fit],
        [int(ex.label or 0) for ex in fit],
        [ex.features for ex in val],
        [int(ex.label or 0) for ex in val],
    )
    baseline_p = baseline.probabilities([ex.features for ex in test])
    encoder = scores(labels, encoder_p, predictor.threshold)
    logistic = scores(labels, baseline_p, baseline.threshold)
    detours = _detours(episodes, split)
    for result, probs, threshold in (
        (encoder, encoder_p, predictor.threshold),
        (logistic, baseline_p, baseline.threshold),
    ):
        warnings = _warnings(test, probs, threshold)
        result["early_warning"] = summarize_warnings(warnings).as_dict()
        result["early_warning"]["passing_with_a_detour"] = len(detours)
        result["early_warning"]["false_alarms_after_a_detour"] = sum(
            w.warned for w in warnings if w.episode_id in detours
        )
    metrics = {
        "model": str(predictor.path),
        "db": store.location,
        "labeling": predictor.config.get("labeling"),
        "test_episodes": len(split.test),
        "test_steps": len(labels),
        "test_positive_steps": sum(labels),
        "train_episodes": len(split.train),
        "val_episodes": len(split.val),
        "split": "by episode, stratified by episode label; test episodes unseen in training",
        **{k: encoder[k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc")},
        "threshold": encoder["threshold"],
        "confusion_matrix": encoder["confusion_matrix"],
        "early_warning": encoder["early_warning"],
        "encoder": encoder,
        "baseline_logistic_regression": logistic,
        "encoder_beats_baseline": {
            "roc_auc": encoder["roc_auc"] > logistic["roc_auc"],
            "f1": encoder["f1"] > logistic["f1"],
        },
        "novel_test_episodes": _novel(
            episodes, split, test, labels, encoder_p, baseline_p, predictor.threshold, baseline
        ),
    }
    out = Path(output).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    results = {"experience encoder": encoder, "logistic regression": logistic}
    _plot_confusion(out / CONFUSION_FILE, results)
    _plot_roc(
        out / ROC_FILE,
        labels,
        {"experience encoder": (encoder_p, encoder), "logistic regression": (baseline_p, logistic)},
    )
    return metrics
