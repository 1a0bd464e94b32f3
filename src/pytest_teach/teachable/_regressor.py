"""Phase 4: the teachability predictor, a cheap stand-in for the rollouts of phase 1.

Each labeled snapshot becomes a text (its observation, the student's and the expert's actions,
the steps left and where the mission's object is; :func:`snapshot_text`) embedded by
:mod:`._embed`, plus a few numbers about the state (:func:`state_features`: the steps left,
the distance to the mission's object, and whether the steps left cover it). One MLP regressor
per target predicts U, ``L_local`` and ``ELP_net`` (each standardised), and an MLP classifier
the quadrant (scikit-learn, full-batch L-BFGS, on ``threads`` BLAS threads). They are evaluated
out of fold: k-fold cross-validation grouped by episode, so no episode has snapshots on both
sides of a split. The figures:

- R² of U, of L and of ELP; quadrant accuracy (with the majority class's for comparison);
- Precision@K and NDCG@K of ranking the snapshots by predicted ELP, against ranking by the
  student's entropy U alone (the baseline), with ``ELP_net`` as the relevance.

``training_result.json`` (schema :data:`REGRESSOR_SCHEMA`) holds them with the settings;
``predictions.jsonl`` the out-of-fold predictions per snapshot (``id``, ``fold``, each target
and its ``*_pred``, ``quadrant`` and ``quadrant_pred``); ``predictor.pkl`` the models refit on
every snapshot with the embedder's name (pickle: load only files you made).
"""

from __future__ import annotations

import pickle
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._embed import Embedder, make_embedder
from ._files import TeachableError, read_rows, require, write_json, write_rows
from ._ranking import ndcg_at_k, precision_at_k

__all__ = [
    "REGRESSOR_SCHEMA",
    "SEED_TARGETS",
    "RegressorSettings",
    "snapshot_text",
    "state_features",
    "train_teachability_regressor",
]

REGRESSOR_SCHEMA = "teach.teachability_predictor/1"
#: The seed's targets the figures are held against.
SEED_TARGETS = {"U_r2": 0.6, "L_r2": 0.5, "quadrant_accuracy": 0.7}

Echo = Callable[[str], None]


@dataclass(frozen=True)
class RegressorSettings:
    """How the predictor is trained and evaluated."""

    output: Path
    embedder: str = "hashing"
    folds: int = 5
    hidden: tuple[int, ...] = (128,)
    alpha: float = 3.0  # strong L2: a few hundred rows, hundreds of features
    k: tuple[int, ...] = ()  # default: 10% of the snapshots
    seed: int = 0
    threads: int = 1


def _steps_left(row: dict[str, Any]) -> int:
    return int(row.get("max_steps", 0)) - int(row.get("step", 0))


def snapshot_text(row: dict[str, Any]) -> str:
    """What the predictor reads of a snapshot: the observation, both actions, the steps left,
    and where the mission's object is (when the snapshot says)."""
    from ..envs.minigrid import relative_position

    target = row.get("target")
    where = (
        f"{target['object']} {relative_position(target['right'], target['forward'])}"
        if target
        else "unknown"
    )
    return (
        f"{row['observation']}\nStudent action: {row['student_action']}\n"
        f"Expert action: {row['expert_action']}\nSteps left: {_steps_left(row)}\n"
        f"Target: {where}"
    )


#: The scale of the step counts in :func:`state_features` (BabyAI's small levels allow 64).
_STEP_SCALE = 16.0


def state_features(row: dict[str, Any]) -> list[float]:
    """Numbers about the snapshot's state, scaled to about [-1, 1]: the steps left and taken,
    the distance to the mission's object and its offsets, the steps to spare beyond that
    distance, and whether the object's place is known."""
    left = _steps_left(row)
    target = row.get("target")
    right, forward = (target["right"], target["forward"]) if target else (0, 0)
    distance = abs(right) + abs(forward) if target else _STEP_SCALE
    return [
        left / _STEP_SCALE,
        int(row.get("step", 0)) / _STEP_SCALE,
        distance / _STEP_SCALE,
        (left - distance) / _STEP_SCALE,
        right / 8.0,
        forward / 8.0,
        1.0 if target else 0.0,
    ]


def _load(path: Path) -> list[dict[str, Any]]:
    rows = []
    for where, row in read_rows(path, what="labeled snapshots"):
        for field, kind in (
            ("id", str),
            ("episode_id", str),
            ("observation", str),
            ("student_action", str),
            ("expert_action", str),
        ):
            require(row, field, kind, where)
        require(row, "U", (int, float), where)
        leverage = row.get("leverage")
        if leverage is not None:
            require(leverage, "L_local", (int, float), f"{where} leverage")
        cpt = row.get("cpt")
        if cpt is not None:
            require(cpt, "ELP_net", (int, float), f"{where} cpt")
        rows.append(row)
    return rows


def _folds(groups: Sequence[str], folds: int) -> list[tuple[list[int], list[int]]] | None:
    """Grouped folds, or ``None`` when there are too few episodes to cross-validate."""
    distinct = sorted(set(groups))
    if len(distinct) < 2:
        return None
    from sklearn.model_selection import GroupKFold

    splitter = GroupKFold(n_splits=min(folds, len(distinct)))
    index = list(range(len(groups)))
    return [(list(a), list(b)) for a, b in splitter.split(index, groups=list(groups))]


#: Which view of a snapshot each model reads. U is the entropy of the student's reply to what
#: it saw, so its regressor reads the observation alone; the rest depend on the state as a
#: whole (the actions, the steps left, where the object is).
READS = {"U": "observation", "L": "snapshot", "ELP": "snapshot", "quadrant": "snapshot"}

Features = dict[str, Any]  # view name -> (rows, dims) array


def _rows_of(features: Features, index: Any) -> Features:
    return {view: x[index] for view, x in features.items()}


class _Models:
    """One regressor per target (standardised) and the quadrant classifier."""

    def __init__(self, s: RegressorSettings, names: list[str]) -> None:
        self.s = s
        self.names = names
        self.regressors: list[Any] = []
        self.classifier: Any = None
        self.constant_class: str | None = None
        self.mean: Any = None
        self.scale: Any = None

    def _mlp(self, kind: Any) -> Any:
        return kind(
            hidden_layer_sizes=self.s.hidden,
            alpha=self.s.alpha,
            solver="lbfgs",  # full-batch: quick and steady on a few hundred rows
            max_iter=300,
            random_state=self.s.seed,
        )

    def fit(self, features: Features, y: Any, classes: list[str | None]) -> _Models:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():  # a few hundred rows: stopping at max_iter is fine
            warnings.simplefilter("ignore", ConvergenceWarning)
            return self._fit(features, y, classes)

    def _fit(self, features: Features, y: Any, classes: list[str | None]) -> _Models:
        import numpy as np
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        self.mean, self.scale = y.mean(axis=0), y.std(axis=0)
        self.scale[self.scale == 0] = 1.0
        standard = (y - self.mean) / self.scale
        self.regressors = [
            self._mlp(MLPRegressor).fit(features[READS[name]], standard[:, j])
            for j, name in enumerate(self.names)
        ]
        known = [i for i, c in enumerate(classes) if c is not None]
        labels = sorted({classes[i] for i in known})
        if len(labels) >= 2:
            x = features[READS["quadrant"]]
            self.classifier = self._mlp(MLPClassifier).fit(
                x[np.array(known)], [classes[i] for i in known]
            )
        elif labels:
            self.constant_class = labels[0]
        return self

    def predict(self, features: Features) -> tuple[Any, list[str | None]]:
        import numpy as np

        pairs = zip(self.regressors, self.names, strict=True)
        standard = np.column_stack([r.predict(features[READS[n]]) for r, n in pairs])
        values = standard * self.scale + self.mean
        if self.classifier is not None:
            return values, [str(c) for c in self.classifier.predict(features[READS["quadrant"]])]
        return values, [self.constant_class] * len(standard)


def _r2(truth: Sequence[float], predicted: Sequence[float]) -> float | None:
    from sklearn.metrics import r2_score

    return float(r2_score(truth, predicted)) if len(set(truth)) > 1 else None


def _scores(
    columns: dict[str, list[float]],
    predicted: Any,
    classes: list[str | None],
    predicted_class: list[str | None],
    s: RegressorSettings,
) -> dict[str, Any]:
    """R² and MAE per target, quadrant accuracy, and the ranking figures against entropy."""
    import numpy as np

    names = [n for n in ("U", "L", "ELP") if columns[n]]
    y = np.column_stack([columns[n] for n in names])
    has_elp = "ELP" in names
    targets = {
        n: {
            "r2": _r2(columns[n], predicted[:, j].tolist()),
            "mae": float(np.mean(np.abs(predicted[:, j] - y[:, j]))),
        }
        for j, n in enumerate(names)
    }
    known = [i for i, c in enumerate(classes) if c is not None]
    quadrant = None
    if known:
        majority = Counter(classes[i] for i in known).most_common(1)[0]
        quadrant = {
            "accuracy": sum(predicted_class[i] == classes[i] for i in known) / len(known),
            "majority_baseline": majority[1] / len(known),
            "counts": dict(Counter(classes[i] for i in known)),
        }
    ranking = None
    if has_elp:
        ks = list(s.k) or [max(1, round(0.1 * len(classes)))]
        elp = columns["ELP"]
        by = {"predictor": predicted[:, names.index("ELP")].tolist(), "entropy": columns["U"]}
        ranking = {
            "relevance": "ELP_net",
            "k": ks,
            **{
                name: {
                    **{f"P@{k}": precision_at_k(score, elp, k) for k in ks},
                    **{f"NDCG@{k}": ndcg_at_k(score, elp, k) for k in ks},
                }
                for name, score in by.items()
            },
        }
        first = f"P@{ks[0]}"
        ranking["predictor_beats_entropy"] = (ranking["predictor"][first] or 0) > (
            ranking["entropy"][first] or 0
        )
    return {"targets": targets, "quadrant": quadrant, "ranking": ranking}


def _met(scores: dict[str, Any]) -> dict[str, bool]:
    """Which of the seed's targets the figures beat."""
    targets, quadrant, ranking = scores["targets"], scores["quadrant"], scores["ranking"]
    return {
        "U_r2": (targets["U"]["r2"] or 0) > SEED_TARGETS["U_r2"],
        "L_r2": "L" in targets and (targets["L"]["r2"] or 0) > SEED_TARGETS["L_r2"],
        "quadrant_accuracy": quadrant is not None
        and quadrant["accuracy"] > SEED_TARGETS["quadrant_accuracy"],
        "beats_entropy_P@K": bool(ranking and ranking["predictor_beats_entropy"]),
    }


def train_teachability_regressor(
    labeled: Path, s: RegressorSettings, echo: Echo = lambda line: None
) -> dict[str, Any]:
    """Train and evaluate the predictor on ``labeled``; write its files; return the result.

    Raises:
        TeachableError: bad rows, or fewer than 2 labeled snapshots.
    """
    import sklearn.neural_network  # noqa: F401  (loads the BLAS libraries the limit covers)
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    rows = _load(labeled)
    if len(rows) < 2:
        raise TeachableError(f"{labeled}: {len(rows)} labeled snapshot; the predictor needs 2")
    embedder = make_embedder(s.embedder)
    with threadpool_limits(limits=s.threads):  # more threads than cores crawl on a shared CPU
        trained = _train(rows, embedder, s, echo)
    trained.result.update(labeled=str(labeled), seconds=round(time.perf_counter() - started, 2))
    trained.write(s.output)
    return trained.result


def _train(
    rows: list[dict[str, Any]], embedder: Embedder, s: RegressorSettings, echo: Echo
) -> _Trained:
    import numpy as np

    features = {
        "observation": np.asarray(embedder.embed([r["observation"] for r in rows]), dtype=float),
        "snapshot": np.hstack(
            [
                np.asarray(embedder.embed([snapshot_text(r) for r in rows]), dtype=float),
                np.asarray([state_features(r) for r in rows], dtype=float),
            ]
        ),
    }
    has_l = all(r.get("leverage") for r in rows)
    has_elp = all(r.get("cpt") for r in rows)
    names = ["U", *(["L"] if has_l else []), *(["ELP"] if has_elp else [])]
    columns = {
        "U": [float(r["U"]) for r in rows],
        "L": [float(r["leverage"]["L_local"]) for r in rows] if has_l else [],
        "ELP": [float(r["cpt"]["ELP_net"]) for r in rows] if has_elp else [],
    }
    y = np.column_stack([columns[n] for n in names])
    classes = [r.get("quadrant") for r in rows]
    groups = [r["episode_id"] for r in rows]
    folds = _folds(groups, s.folds)
    echo(
        f"[predictor] {len(rows)} snapshots from {len(set(groups))} episodes, {s.embedder} "
        f"embedder ({embedder.dim}-d), targets {', '.join(names)} + quadrant; "
        + (f"{len(folds)}-fold cross-validation by episode" if folds else "in-sample (1 episode)")
    )
    predicted = np.zeros_like(y)
    predicted_class: list[str | None] = [None] * len(rows)
    fold_of = [0] * len(rows)
    for number, (train, test) in enumerate(folds or [(list(range(len(rows))),) * 2]):
        models = _Models(s, names).fit(
            _rows_of(features, train), y[train], [classes[i] for i in train]
        )
        values, labels = models.predict(_rows_of(features, test))
        for j, i in enumerate(test):
            predicted[i] = values[j]
            predicted_class[i] = labels[j]
            fold_of[i] = number
    final = _Models(s, names).fit(features, y, classes)

    scores = _scores(columns, predicted, classes, predicted_class, s)
    result = {
        "schema": REGRESSOR_SCHEMA,
        "n": len(rows),
        "episodes": len(set(groups)),
        "embedder": {"name": embedder.name, "dim": embedder.dim},
        "features": {
            "observation": f"{embedder.name} embedding of the observation ({embedder.dim})",
            "snapshot": f"{embedder.name} embedding of the snapshot text ({embedder.dim}) + "
            f"{features['snapshot'].shape[1] - embedder.dim} state features",
            "reads": READS,
        },
        "evaluation": f"{len(folds)}-fold cross-validation grouped by episode"
        if folds
        else "in-sample (too few episodes to cross-validate)",
        "model": {"hidden": list(s.hidden), "alpha": s.alpha, "seed": s.seed},
        **scores,
        "seed_targets": SEED_TARGETS,
        "met": _met(scores),
    }
    predictions = [
        {
            "id": r["id"],
            "fold": fold_of[i],
            **{n: columns[n][i] for n in names},
            **{f"{n}_pred": float(predicted[i, j]) for j, n in enumerate(names)},
            "quadrant": classes[i],
            "quadrant_pred": predicted_class[i],
        }
        for i, r in enumerate(rows)
    ]
    model = {"embedder": s.embedder, "targets": names, "models": final}
    return _Trained(result, predictions, model)


@dataclass
class _Trained:
    """What training made: the figures, the out-of-fold predictions and the refit models."""

    result: dict[str, Any]
    predictions: list[dict[str, Any]]
    model: dict[str, Any]

    def write(self, out: Path) -> None:
        """``predictions.jsonl``, ``predictor.pkl`` and ``training_result.json``, each
        written atomically."""
        out.mkdir(parents=True, exist_ok=True)
        write_rows(out / "predictions.jsonl", self.predictions)
        tmp = out / ".predictor.pkl.tmp"
        tmp.write_bytes(pickle.dumps(self.model))
        tmp.replace(out / "predictor.pkl")
        write_json(out / "training_result.json", self.result)
