"""The ``episode`` fixture's recorder: what one scenario run saw, did and earned.

With ``--collect-training-data`` every call is validated and converted at once, so a value that
can't be stored fails the test that recorded it (as an ``error``, not an agent failure). Without
the flag the recorder is a no-op and costs next to nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import mimetypes
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from ._graded import SubtestResult, failed_subtests, graded_reward, grading_subtests
from .redaction import redact, redact_value
from .reward import Reward
from .store import Episode, EpisodeDataError, Label, Step, dumps, entropy_of, to_jsonable

__all__ = [
    "EpisodeRecorder",
    "StepScorer",
    "SubtestResult",
    "failed_subtests",
    "grading_subtests",
]


class StepScorer(Protocol):
    """Scores a run step by step (``pytest --intervention-predictor``)."""

    threshold: float

    def score(self, steps: Sequence[Step], image_of: Callable[[str], bytes | None]) -> float | None:
        """P(intervention) of the last of ``steps``; None when it could not be scored."""


_OVERRIDE_KINDS = {"success": 0, "intervention": 1}


def _media_type(data: bytes, name: str) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def _finite(value: Any, where: str) -> float:
    """A finite number (ints stay ints), or an error naming ``where``."""
    if type(value).__module__.startswith("numpy") and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EpisodeDataError(f"{where}: expected a number, got {type(value).__name__}")
    if isinstance(value, int):
        return value
    number = float(value)
    if not math.isfinite(number):
        raise EpisodeDataError(f"{where}: {value!r} is not a finite number")
    return number


class EpisodeRecorder:
    """Records one episode. Obtain it through the ``episode`` fixture."""

    def __init__(self, *, enabled: bool, scorer: StepScorer | None = None) -> None:
        self.enabled = enabled
        self.scorer = scorer if enabled else None
        self.warned_at: int | None = None
        self.steps: list[Step] = []
        self.rewards: tuple[float, dict[str, float]] | None = None
        self.metrics: dict[str, float] = {}
        self.quality_score: float | None = None
        self.labels: list[Label] = []
        self.meta_values: dict[str, Any] = {}
        self.artifacts: dict[str, str] = {}
        self.blobs: dict[str, tuple[bytes, str]] = {}
        self.model: str | None = None
        #: the test's finished subtests (``subtests`` fixture), in order: a graded reward
        self.subtests: list[SubtestResult] = []

    # -- the public API ----------------------------------------------------------------------

    def step(
        self,
        observation: Any,
        action: Any,
        *,
        messages: list[dict[str, Any]] | None = None,
        valid_actions: list[Any] | None = None,
        probs: Any = None,
        screenshot: Any = None,
        label: str | None = None,
        correction: Any = None,
        error: Any = None,
    ) -> int:
        """Record one decision point and return its index.

        ``label`` is ``"good"`` or ``"bad"``; ``correction`` is the action that should have been
        taken; ``probs`` is a list or ``{action: p}`` mapping (its entropy is stored too);
        ``screenshot`` is PNG/JPEG bytes, a file path or a PIL image; ``error`` describes a
        step that failed to execute (a dict with at least ``type``).
        """
        index = len(self.steps)
        if not self.enabled:
            self.steps.append(Step(index=index, observation=None, action=None))
            return index
        where = f"episode.step() #{index}"
        if label is not None and label not in ("good", "bad"):
            raise EpisodeDataError(f"{where} label=: expected 'good', 'bad' or None, got {label!r}")
        if messages is not None:
            messages = to_jsonable(messages, f"{where} messages=", image_sink=self._image_ref)
            if not isinstance(messages, list) or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages
            ):
                raise EpisodeDataError(
                    f"{where} messages=: expected a list of {{'role': ..., 'content': ...}} dicts"
                )
        probs_value = None if probs is None else to_jsonable(probs, f"{where} probs=")
        if error is not None and not isinstance(error, dict):
            error = {"type": type(error).__name__, "message": str(error)}
        self.steps.append(
            Step(
                index=index,
                observation=to_jsonable(
                    observation, f"{where} observation=", image_sink=self._image_ref
                ),
                action=to_jsonable(action, f"{where} action="),
                messages=messages,
                valid_actions=None
                if valid_actions is None
                else to_jsonable(list(valid_actions), f"{where} valid_actions="),
                probs=probs_value,
                entropy=None if probs_value is None else entropy_of(probs_value),
                label=label,
                correction=None
                if correction is None
                else to_jsonable(correction, f"{where} correction="),
                screenshot=None
                if screenshot is None
                else self._blob_of(screenshot, f"{where} screenshot="),
                error=None if error is None else to_jsonable(error, f"{where} error="),
            )
        )
        if self.scorer is not None:
            self._score(self.scorer)
        return index

    @property
    def intervention_p(self) -> float | None:
        """The intervention predictor's probability for the latest step, when the run is scored
        (``--intervention-predictor``); None otherwise."""
        return self.steps[-1].intervention_p if self.steps else None

    def _score(self, scorer: StepScorer) -> None:
        def image_of(sha: str) -> bytes | None:
            blob = self.blobs.get(sha)
            return blob[0] if blob else None

        p = scorer.score(self.steps, image_of)
        if p is None:
            return
        self.steps[-1].intervention_p = round(float(p), 6)
        if self.warned_at is None and p >= scorer.threshold:
            self.warned_at = self.steps[-1].index

    def warning(self) -> dict[str, Any] | None:
        """The early warning of a scored run: the threshold, the first step at or above it (None
        when no step crossed it), the highest probability and the number of steps."""
        if self.scorer is None:
            return None
        scored = [s.intervention_p for s in self.steps if s.intervention_p is not None]
        return {
            "threshold": self.scorer.threshold,
            "step": self.warned_at,
            "p": max(scored) if scored else None,
            "steps": len(self.steps),
        }

    def reward(self, value: float | Reward, **components: float) -> None:
        """Set the episode's reward, with named components (``reward(0.8, exact=1, recall=0.5)``),
        or from a :class:`~pytest_teach.Reward` (its components and weights are kept; the weights
        go to ``meta["reward_weights"]``)."""
        if isinstance(value, Reward):
            if components:
                raise EpisodeDataError(
                    "episode.reward(): give a Reward or keyword components, not both"
                )
            if not self.enabled:
                return
            self.rewards = (value.value, dict(value.components))
            self.meta_values["reward_weights"] = dict(value.weights)
            return
        if not self.enabled:
            return
        self.rewards = (
            _finite(value, "episode.reward()"),
            {k: _finite(v, f"episode.reward({k}=)") for k, v in components.items()},
        )

    def metric(self, **values: float) -> None:
        """Record numeric metrics, e.g. ``latency_ms``, ``prompt_tokens``, ``cost_usd``.

        A later value for the same name replaces the earlier one.
        """
        if not self.enabled:
            return
        for name, value in values.items():
            self.metrics[name] = _finite(value, f"episode.metric({name}=)")

    def quality(self, score: float) -> None:
        """A quality score from 0 to 5."""
        if not self.enabled:
            return
        number = _finite(score, "episode.quality()")
        if not 0 <= number <= 5:
            raise EpisodeDataError(f"episode.quality(): score must be from 0 to 5, got {score!r}")
        self.quality_score = number

    def label(self, kind: str, reason: str | None = None) -> None:
        """Label the episode. ``success``/``intervention`` override the outcome-derived label;
        any other kind (``loop``, ``timeout``...) is kept as an extra tag with its reason."""
        if not self.enabled:
            return
        if not isinstance(kind, str) or not kind.strip():
            raise EpisodeDataError(
                f"episode.label(): kind must be a non-empty string, got {kind!r}"
            )
        self.labels.append(Label(kind.strip(), None if reason is None else str(reason)))

    def meta(self, **kv: Any) -> None:
        """Attach metadata to the episode (merged; later keys win)."""
        if not self.enabled:
            return
        for key, value in kv.items():
            self.meta_values[key] = to_jsonable(value, f"episode.meta({key}=)", image_sink=None)

    def attach(self, name: str, data_or_path: Any) -> str | None:
        """Attach a file, bytes, text, JSON-able value or PIL image under ``name``.

        A ``Path`` (or a string naming an existing file) attaches that file; other strings are
        stored as text. Returns the artifact's sha256, or ``None`` when not collecting.
        """
        if not self.enabled:
            return None
        if not isinstance(name, str) or not name:
            raise EpisodeDataError(
                f"episode.attach(): name must be a non-empty string, got {name!r}"
            )
        where = f"episode.attach({name!r})"
        value = data_or_path
        if isinstance(value, str) and not (
            "\n" not in value and len(value) < 4096 and os.path.isfile(value)
        ):
            sha = self._add_blob(value.encode("utf-8"), "text/plain")
        elif isinstance(value, (dict, list)):
            sha = self._add_blob(dumps(to_jsonable(value, where)).encode(), "application/json")
        else:
            sha = self._blob_of(value, where)
        self.artifacts[name] = sha
        return sha

    def earned(self, *, passed: bool) -> tuple[float, dict[str, float]]:
        """The reward of a finished run and its components: what the test gave
        :meth:`reward` wins; then the share of its subtests passed, each a component (a failed
        body counts as one more failed one); else 1.0 when ``passed`` and 0.0 otherwise.

        ``passed`` says whether the test body passed, its subtests aside.
        """
        if self.rewards is not None:
            return self.rewards
        graded = graded_reward(self.subtests, body_failed=not passed)
        return graded if graded is not None else (1.0 if passed else 0.0, {})

    # -- building the record -----------------------------------------------------------------

    def _blob_of(self, value: Any, where: str) -> str:
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            return self._add_blob(data, _media_type(data, ""))
        if isinstance(value, (str, os.PathLike)):
            path = Path(value)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise EpisodeDataError(f"{where}: cannot read {path}: {exc.strerror}") from None
            return self._add_blob(data, _media_type(data, path.name))
        if type(value).__module__.startswith("PIL.") and hasattr(value, "save"):
            buf = io.BytesIO()
            value.save(buf, format="PNG")
            return self._add_blob(buf.getvalue(), "image/png")
        raise EpisodeDataError(
            f"{where}: expected bytes, a file path or a PIL image, got {type(value).__name__}"
        )

    def _image_ref(self, image: Any) -> dict[str, str]:
        return {"artifact": self._blob_of(image, "image"), "media_type": "image/png"}

    def _add_blob(self, data: bytes, media_type: str) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self.blobs.setdefault(sha, (data, media_type))
        return sha

    def build(
        self,
        *,
        episode_id: str,
        nodeid: str,
        scenario: str,
        outcome: str,
        reason: str | None,
        body_failed: bool = False,
        **fields: Any,
    ) -> Episode:
        """Turn what was recorded plus the test's outcome into an :class:`Episode`.

        ``body_failed``: the test body failed outside its subtests (a graded reward counts it
        as a failed component).
        """
        label = {"success": 0, "intervention": 1}.get(outcome)
        label_reason = reason
        if outcome != "error":
            for given in self.labels:
                if given.kind in _OVERRIDE_KINDS:
                    outcome = given.kind
                    label = _OVERRIDE_KINDS[given.kind]
                    label_reason = given.reason or label_reason
        graded = None if label is None else graded_reward(self.subtests, body_failed=body_failed)
        if self.rewards is not None:
            reward, components = self.rewards
        elif graded is not None:
            reward, components = graded
        else:
            reward = {0: 1.0, 1: 0.0}.get(label) if label is not None else None
            components = {}
        # secrets never reach the store: what the agent saw, did and said, and the failure
        # text, pass the redaction on the way in (key shapes, URL passwords, secret-named keys)
        for name in ("error", "params", "meta"):
            if fields.get(name) is not None:
                fields[name] = redact_value(fields[name])
        return Episode(
            id=episode_id,
            nodeid=nodeid,
            scenario=scenario,
            outcome=outcome,
            label=label,
            label_reason=None if label_reason is None else redact(label_reason),
            reward=reward,
            reward_components=components,
            quality=self.quality_score,
            metrics=dict(self.metrics),
            steps=[_redacted_step(s) for s in self.steps],
            labels=[
                Label(lb.kind, None if lb.reason is None else redact(lb.reason))
                for lb in self.labels
            ],
            artifacts=dict(self.artifacts),
            **fields,
        )


def _redacted_step(step: Step) -> Step:
    """``step`` with secrets masked in its text-bearing fields (a copy where any changed)."""
    changes = {
        name: redact_value(value)
        for name in ("observation", "action", "messages", "valid_actions", "correction", "error")
        if (value := getattr(step, name)) is not None
    }
    changed = {k: v for k, v in changes.items() if v != getattr(step, k)}
    return dataclasses.replace(step, **changed) if changed else step
