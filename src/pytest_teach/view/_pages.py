"""What each page shows, as plain values for its template: sessions, an episode list, one
episode's timeline and the A/B pairs. No web framework here; the app renders these."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..compare import (
    Comparison,
    Thresholds,
    compare,
    pair_scenarios,
    render_comparison,
    resolve_side,
)
from ..report import as_text, clip
from ..store import (
    Episode,
    EpisodeFilter,
    EpisodeRow,
    Step,
    Store,
    entropy_of,
    episode_page,
    session_counts,
)

__all__ = [
    "SHA256",
    "AbView",
    "ab_view",
    "default_sides",
    "episode_view",
    "gate_of",
    "row_view",
    "session_views",
    "when",
]

#: An artifact id: a sha256 in hex, nothing else reaches the store.
SHA256 = re.compile(r"[0-9a-f]{64}")
_TEXT_CHARS = 20_000
_ERROR_CHARS = 8_000
#: A step whose text is longer than this (characters or lines) starts collapsed.
_LONG_CHARS = 1_500
_LONG_LINES = 30
_AB_PAGE = 100


def when(ts: Any) -> str:
    """An epoch as ``YYYY-MM-DD HH:MM:SS UTC`` (empty when it is not a time)."""
    if not isinstance(ts, (int, float)) or not math.isfinite(ts):
        return ""
    try:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return ""


def _num(value: Any, spec: str = ".3f") -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return format(value, spec)


def gate_of(argv: list[str], exit_status: int | None) -> str:
    """A session's gate verdict: with ``--ab-gate`` its exit status is the verdict (0 APPROVE,
    1 REJECT); empty for a session without the gate or still running."""
    if "--ab-gate" not in argv or exit_status is None:
        return ""
    return {0: "APPROVE", 1: "REJECT"}.get(exit_status, f"exit {exit_status}")


def session_views(store: Store) -> list[dict[str, Any]]:
    """Every session, newest first, with its command line (redacted when rendered), commit,
    counts by outcome, exit status and gate verdict."""
    from ..redaction import redact_argv

    sessions = list(reversed(store.sessions()))
    counts = session_counts(store, [s["id"] for s in sessions])
    out = []
    for s in sessions:
        argv = [str(a) for a in s.get("argv") or []]
        by_outcome = counts.get(s["id"], {})
        started, finished = s.get("started_at"), s.get("finished_at")
        out.append(
            {
                "id": s["id"],
                "started": when(started),
                "duration": _num(finished - started, ".1f")
                if isinstance(started, (int, float)) and isinstance(finished, (int, float))
                else "",
                "running": finished is None,
                "commit": str(s.get("git_commit") or "")[:12],
                "argv": clip(" ".join(redact_argv(argv)), 400),
                "counts": by_outcome,
                "total": sum(by_outcome.values()),
                "exit_status": s.get("exit_status"),
                "gate": gate_of(argv, s.get("exit_status")),
            }
        )
    return out


def row_view(r: EpisodeRow) -> dict[str, Any]:
    """One row of the episode list, as its template and the live endpoint show it."""
    return {
        "rowid": r.rowid,
        "id": r.id,
        "session": r.session_id or "",
        "scenario": r.scenario,
        "model": r.model or "",
        "arm": r.arm or "",
        "outcome": r.outcome,
        "reward": _num(r.reward),
        "duration": _num(r.duration_s, ".2f"),
        "steps": r.steps,
        "feedback": r.feedback,
        "created": when(r.created_at),
        "reason": clip(r.label_reason or "", 200),
    }


def _probabilities(step: Step) -> list[dict[str, Any]]:
    """The valid actions with their probabilities (``None`` when not recorded), as bars."""
    actions = list(step.valid_actions or [])
    probs = step.probs
    pairs: list[tuple[Any, Any]] = []
    if isinstance(probs, dict):
        known = {as_text(a): p for a, p in probs.items()}
        pairs = [(a, known.pop(as_text(a), None)) for a in actions]
        pairs += list(known.items())
    elif isinstance(probs, list) and len(probs) == len(actions):
        pairs = list(zip(actions, probs, strict=True))
    else:
        pairs = [(a, None) for a in actions]
    out = []
    for action, p in pairs:
        value = float(p) if isinstance(p, (int, float)) and not isinstance(p, bool) else None
        if value is not None and not (math.isfinite(value) and 0 <= value <= 1):
            value = None
        out.append({"action": clip(as_text(action), 300), "p": value, "p_text": _num(value)})
    return out


def _messages(step: Step) -> list[dict[str, str]]:
    return [
        {
            "role": str(m.get("role", "")) if isinstance(m, dict) else "",
            "content": clip(as_text(m.get("content") if isinstance(m, dict) else m), _TEXT_CHARS),
        }
        for m in step.messages or []
    ]


def _pairs(mapping: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (str(k), _num(v, ".4g") if isinstance(v, (int, float)) else clip(as_text(v), 500))
        for k, v in sorted(mapping.items())
    ]


def _step_view(episode: Episode, step: Step, position: int) -> dict[str, Any]:
    observation = clip(as_text(step.observation), _TEXT_CHARS)
    action = clip(as_text(step.action), _TEXT_CHARS)
    messages = _messages(step)
    error = clip(as_text(step.error), _ERROR_CHARS)
    size = len(observation) + sum(len(m["content"]) for m in messages) + len(error)
    lines = observation.count("\n") + sum(m["content"].count("\n") for m in messages)
    entropy = step.entropy if step.entropy is not None else entropy_of(step.probs)
    notes = [
        {
            "id": fb.id,
            "verdict": (
                "good"
                if fb.correct_action is not None and fb.correct_action == step.action
                else "bad"
                if fb.correct_action is not None
                else ""
            ),
            "correction": clip(as_text(fb.correct_action), 500)
            if fb.correct_action is not None and fb.correct_action != step.action
            else "",
            "rating": fb.rating,
            "comment": clip(fb.comment or "", 2000),
            "created": when(fb.created_at),
        }
        for fb in episode.feedback
        if fb.step == step.index
    ]
    return {
        "index": step.index,
        "position": position,
        "observation": observation,
        "action": action,
        "choices": _probabilities(step),
        "entropy": _num(entropy, ".3f"),
        "messages": messages,
        "screenshot": step.screenshot
        if step.screenshot and SHA256.fullmatch(step.screenshot)
        else "",
        "error": error,
        "label": step.label or "",
        "correction": clip(as_text(step.correction), 500) if step.correction is not None else "",
        "intervention_p": _num(step.intervention_p),
        "long": size > _LONG_CHARS or lines > _LONG_LINES,
        "notes": notes,
    }


def episode_view(episode: Episode) -> dict[str, Any]:
    """One episode as a timeline: its header, steps, rewards, metrics, failure and feedback."""
    return {
        "id": episode.id,
        "nodeid": episode.nodeid,
        "scenario": episode.scenario,
        "category": episode.category or "",
        "model": episode.model or "",
        "arm": episode.arm or "",
        "session": episode.session_id or "",
        "outcome": episode.outcome,
        "label": "" if episode.label is None else str(episode.label),
        "reward": _num(episode.reward),
        "quality": _num(episode.quality, ".2f"),
        "duration": _num(episode.duration_s, ".3f"),
        "created": when(episode.created_at),
        "components": _pairs(episode.reward_components),
        "metrics": _pairs(episode.metrics),
        "meta": clip(as_text(episode.meta), 4000) if episode.meta else "",
        "params": clip(as_text(episode.params), 4000) if episode.params else "",
        "reason": clip(episode.label_reason or "", _ERROR_CHARS),
        "traceback": clip(episode.error or "", _ERROR_CHARS),
        "labels": [(lb.kind, clip(lb.reason or "", 500)) for lb in episode.labels],
        "artifacts": [
            (name, sha) for name, sha in sorted(episode.artifacts.items()) if SHA256.fullmatch(sha)
        ],
        "steps": [_step_view(episode, s, i) for i, s in enumerate(episode.steps)],
        "run_feedback": [
            {
                "rating": fb.rating,
                "comment": clip(fb.comment or "", 2000),
                "created": when(fb.created_at),
            }
            for fb in episode.feedback
            if fb.step is None
        ],
    }


def default_sides(store: Store) -> tuple[str, str, str | None] | None:
    """The models of the newest A/B run (arm A's, then B's) and its session, or ``None``
    without one."""
    newest_b = episode_page(store, EpisodeFilter(arm="B"), limit=1).rows
    if not newest_b:
        return None
    session = newest_b[0].session_id
    a_rows = episode_page(
        store,
        EpisodeFilter(arm="A", session=session) if session else EpisodeFilter(arm="A"),
        limit=1,
    ).rows
    if not a_rows or not a_rows[0].model or not newest_b[0].model:
        return None
    return a_rows[0].model, newest_b[0].model, session


@dataclass
class AbView:
    """The A/B page: the comparison, its terminal text, and one page of per-scenario pairs."""

    comparison: Comparison
    text: str
    rows: list[dict[str, Any]]
    total: int
    offset: int
    limit: int


def ab_view(
    store: Store,
    a: str,
    b: str,
    *,
    only_differences: bool = False,
    offset: int = 0,
    session: str | None = None,
) -> AbView:
    """Compare ``b`` (candidate) with ``a`` (baseline), each a model spec or a session id, as
    ``teach compare`` does; pair their episodes by scenario, regressions first, then
    improvements, then by the reward difference (B - A, lowest first). With ``session``, only
    that run's episodes of each side count (one ``--ab`` run, not every run of the models).

    Raises:
        StoreError: a side that is neither a model nor a session in the store.
    """
    a_name, a_eps = resolve_side(store, a, "a")
    b_name, b_eps = resolve_side(store, b, "b")
    if session:
        a_eps = [e for e in a_eps if e.session_id == session]
        b_eps = [e for e in b_eps if e.session_id == session]
    comparison = compare(
        a_eps, b_eps, baseline_name=a_name, candidate_name=b_name, thresholds=Thresholds()
    )
    rows = []
    for pair in pair_scenarios(a_eps, b_eps):
        if only_differences and pair.status == "same":
            continue
        ea, eb = pair.a, pair.b
        rows.append(
            {
                "scenario": pair.scenario,
                "status": pair.status,
                "a_id": ea.id if ea else "",
                "a_outcome": ea.outcome if ea else "",
                "a_reward": _num(ea.reward if ea else None),
                "b_id": eb.id if eb else "",
                "b_outcome": eb.outcome if eb else "",
                "b_reward": _num(eb.reward if eb else None),
                "diff": _num(pair.diff, "+.3f"),
            }
        )
    start = max(int(offset), 0)
    return AbView(
        comparison=comparison,
        text=render_comparison(comparison),
        rows=rows[start : start + _AB_PAGE],
        total=len(rows),
        offset=start,
        limit=_AB_PAGE,
    )
