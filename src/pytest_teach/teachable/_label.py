"""Phase 1: labeling each failure snapshot with U, leverage, the contextual patch test, and a
quadrant.

- ``U``: the entropy (nats) of the student's action distribution at the snapshot: the recorded
  one, else the labeling policy's, else estimated from sampled decisions.
- ``leverage.L_local``: the success rate over ``n`` rollouts when the expert's action is
  forced for one step and the student plays on, minus the rate when the student's own action
  is forced.
- ``cpt``: ``n`` rollouts where the student decides at the snapshot with each patch in its
  prompt (demo, hint, contrast; see :mod:`._patches`) and with none. Rollouts pair up across
  arms (one random stream per rollout index), so for each patch ``helped`` counts rollouts it
  turned into a success and ``harmed`` the successes it lost; ``net = (helped - harmed) / n``.
  ``ELP_net`` is the best patch's net gain (0 when none gains), ``route_net`` that patch
  (``none`` when no patch gains), ``ELP_gross`` the best ``helped / n``.
- ``quadrant``: see :mod:`._quadrants`.

Each finished snapshot is appended to ``labels.partial.jsonl`` (made durable before the next
one starts), so an interrupted run resumes where it stopped; the settings that shape a label
are kept in ``label_config.json`` and a resume with other settings is refused.
``labeled_snapshots.jsonl`` (every snapshot field except ``state``, plus the labels) and the
thresholds are written at the end, atomically.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._progress import Progress
from ..envs import minigrid as mg
from ..teacher import Teacher, make_teacher
from ._files import (
    TeachableError,
    append_checkpoint,
    read_json,
    read_rows,
    require,
    resume_checkpoint,
    write_json,
    write_rows,
)
from ._mine import SNAPSHOT_SCHEMA, decode_state
from ._patches import PATCH_KINDS, contrast_patch, demo_patch, hint_patch
from ._quadrants import assign_quadrant, auto_thresholds, counts
from ._rollout import rollout, rollout_rng

__all__ = [
    "CHECKPOINT",
    "LABELED",
    "LABELED_SCHEMA",
    "THRESHOLDS",
    "LabelSettings",
    "apply_quadrants",
    "label_snapshots",
    "read_snapshots",
    "resolve_teacher",
]

LABELED_SCHEMA = "teach.labeled_snapshot/1"
LABELED = "labeled_snapshots.jsonl"
CHECKPOINT = "labels.partial.jsonl"
CONFIG = "label_config.json"
THRESHOLDS = "quadrant_thresholds_auto.json"
SUMMARY = "label_summary.json"
#: The teacher model ``auto`` picks when an OpenAI key is set.
OPENAI_TEACHER = "openai:gpt-4o-mini"

Echo = Callable[[str], None]


@dataclass(frozen=True)
class LabelSettings:
    """How snapshots are labeled (the fields before ``output`` shape the labels)."""

    rollouts: int = 16
    student: str | None = None  # the labeling policy; default: each snapshot's own model
    mock_policy: bool = False  # a seeded scripted:noisy-P instead of the student
    noise: float = 0.3
    teacher: str = "auto"
    skip_api: bool = False
    skip_leverage: bool = False
    skip_cpt: bool = False
    seed: int = 0
    u_samples: int = 16
    output: Path = Path(".")
    restart: bool = False
    u_threshold: float | None = None
    l_threshold: float | None = None
    thresholds_file: Path | None = None
    quantile: float = 0.5


def resolve_teacher(spec: str, *, skip_api: bool) -> str:
    """``auto`` is the OpenAI teacher where a key is set (and the API allowed), else the
    oracle; ``mock`` is the oracle (the expert's action and a canned hint).

    Raises:
        TeachableError: an ``openai:`` teacher with ``skip_api``.
    """
    if spec in ("mock", "oracle"):
        return "oracle"
    if spec == "auto":
        return OPENAI_TEACHER if os.environ.get("OPENAI_API_KEY") and not skip_api else "oracle"
    if skip_api and spec.startswith("openai:"):
        raise TeachableError(f"--teacher {spec} calls the OpenAI API, which --skip-api forbids")
    return spec


def read_snapshots(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The snapshot rows of ``path``, each checked field by field.

    Raises:
        TeachableError: a row that is not a snapshot (file, line and field named), or an id
            that repeats.
    """
    rows, seen = [], set()
    for where, row in read_rows(path, what="snapshots"):
        if row.get("schema") != SNAPSHOT_SCHEMA:
            raise TeachableError(f"{where}: field 'schema' must be {SNAPSHOT_SCHEMA!r}")
        for field, kind in (
            ("id", str),
            ("episode_id", str),
            ("observation", str),
            ("env_hash", str),
            ("level", str),
            ("seed", int),
            ("step", int),
            ("prefix", list),
        ):
            require(row, field, kind, where)
        for field in ("student_action", "expert_action"):
            if require(row, field, str, where) not in mg.ACTIONS:
                raise TeachableError(f"{where}: field {field!r} is not one of {mg.ACTIONS}")
        probs = row.get("probs")
        if probs is not None and not (
            isinstance(probs, dict)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in probs.values())
        ):
            raise TeachableError(f"{where}: field 'probs' must be an {{action: p}} object or null")
        if row["id"] in seen:
            raise TeachableError(f"{where}: snapshot id {row['id']!r} appears twice")
        seen.add(row["id"])
        decode_state(row, where)
        rows.append((where, row))
    return rows


def _entropy(probs: dict[str, float]) -> float:
    total = sum(probs.values())
    return -sum((p / total) * math.log(p / total) for p in probs.values() if p > 0)


class _Labeler:
    """Labels one snapshot at a time with one policy source and one teacher."""

    def __init__(self, s: LabelSettings, teacher_spec: str) -> None:
        self.s = s
        self.teacher_spec = teacher_spec
        self.teacher: Teacher | None = None
        self.policies: dict[str, mg.Student] = {}

    def policy_spec(self, row: dict[str, Any]) -> str:
        if self.s.mock_policy:
            return f"scripted:noisy-{self.s.noise:g}"
        spec = self.s.student or row.get("model")
        if not spec:
            raise TeachableError(f"snapshot {row['id']}: no model recorded; pass --student SPEC")
        if self.s.skip_api and spec.startswith("openai:"):
            raise TeachableError(f"snapshot {row['id']}: student {spec} needs the API (--skip-api)")
        return spec

    def policy(self, spec: str) -> mg.Student:
        if spec not in self.policies:
            self.policies[spec] = mg.student_for(spec, seed=self.s.seed)
        return self.policies[spec]

    def uncertainty(
        self, row: dict[str, Any], world: mg.World, student: mg.Student
    ) -> tuple[float, str]:
        if row.get("probs") and not self.s.mock_policy:
            return _entropy(row["probs"]), "recorded"
        rng = rollout_rng(self.s.seed, row["id"], -1)
        decision = student.act(world, row["observation"], rng, explore=True)
        if decision.probs:
            return _entropy(decision.probs), "policy"
        picks = Counter(
            student.act(world, row["observation"], rng, explore=True).action
            for _ in range(self.s.u_samples)
        )
        return _entropy({str(k): float(v) for k, v in picks.items()}), "sampled"

    def leverage(self, row: dict[str, Any], blob: bytes, student: mg.Student) -> dict[str, Any]:
        n = self.s.rollouts
        arms = {}
        for arm, first in (("expert", row["expert_action"]), ("student", row["student_action"])):
            wins = sum(
                rollout(blob, student, rollout_rng(self.s.seed, row["id"], i), first=first)
                for i in range(n)
            )
            arms[arm] = wins / n
        return {
            "L_local": arms["expert"] - arms["student"],
            "expert_success": arms["expert"],
            "student_success": arms["student"],
            "rollouts": n,
        }

    def patches(self, row: dict[str, Any], world: mg.World) -> tuple[dict[str, Any], dict]:
        if self.teacher is None:
            self.teacher = make_teacher(self.teacher_spec)
        advice = self.teacher.advise(
            row["observation"],
            list(mg.ACTIONS),
            row["student_action"],
            family="minigrid",
            context=world,
        )
        made: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        if advice.ok:
            made["demo"] = demo_patch(advice.action)
            if advice.action != row["student_action"]:
                made["contrast"] = contrast_patch(row["student_action"], advice.action)
            else:
                skipped["contrast"] = "the teacher's action is the student's own"
        else:
            skipped["demo"] = skipped["contrast"] = advice.reason or "no valid action"
        if advice.diagnosis.strip():
            made["hint"] = hint_patch(advice.diagnosis, advice.action)
        else:
            skipped["hint"] = advice.reason or "the teacher gave no diagnosis"
        return {k: made[k] for k in PATCH_KINDS if k in made}, skipped

    def cpt(
        self, row: dict[str, Any], blob: bytes, world: mg.World, student: mg.Student
    ) -> dict[str, Any]:
        n = self.s.rollouts
        patches, skipped = self.patches(row, world)
        rngs = range(n)
        base = [rollout(blob, student, rollout_rng(self.s.seed, row["id"], i)) for i in rngs]
        results: dict[str, Any] = {"none": {"success": sum(base) / n}}
        for kind, patch in patches.items():
            wins = [
                rollout(blob, student, rollout_rng(self.s.seed, row["id"], i), patch=patch)
                for i in rngs
            ]
            helped = sum(w and not b for w, b in zip(wins, base, strict=True))
            harmed = sum(b and not w for w, b in zip(wins, base, strict=True))
            results[kind] = {
                "text": patch.text,
                "action": patch.action,
                "success": sum(wins) / n,
                "helped": helped,
                "harmed": harmed,
                "net": (helped - harmed) / n,
            }
        tried = [k for k in PATCH_KINDS if k in patches]
        best = max(tried, key=lambda k: results[k]["net"], default=None)  # ties: list order
        best_net = results[best]["net"] if best else 0.0
        return {
            "ELP_net": max(0.0, best_net),
            "ELP_gross": max((results[k]["helped"] / n for k in tried), default=0.0),
            "route_net": best if best is not None and best_net > 0 else "none",
            "rollouts": n,
            "teacher": self.teacher_spec,
            "patches": results,
            "skipped": skipped,
        }

    def label(self, where: str, row: dict[str, Any]) -> dict[str, Any]:
        blob = decode_state(row, where)
        world = mg.World.restore(blob)
        if world.state_hash() != row["env_hash"]:
            raise TeachableError(f"{where}: the restored state's hash differs from env_hash")
        if world.observe() != row["observation"]:
            raise TeachableError(f"{where}: the restored state renders another observation")
        spec = self.policy_spec(row)
        student = self.policy(spec)
        u, source = self.uncertainty(row, world, student)
        out = {k: v for k, v in row.items() if k not in ("state", "state_sha256", "schema")}
        out.update(
            schema=LABELED_SCHEMA,
            U=u,
            U_source=source,
            leverage=None if self.s.skip_leverage else self.leverage(row, blob, student),
            cpt=None if self.s.skip_cpt else self.cpt(row, blob, world, student),
            labeled_by={"policy": spec, "teacher": self.teacher_spec},
        )
        return out


def _fingerprint(s: LabelSettings, snapshots: Path, teacher: str) -> dict[str, Any]:
    shaping = {k: v for k, v in asdict(s).items() if k in _SHAPING}
    digest = hashlib.sha256(snapshots.read_bytes()).hexdigest()
    return {**shaping, "teacher": teacher, "snapshots_sha256": digest}


_SHAPING = (
    "rollouts",
    "student",
    "mock_policy",
    "noise",
    "skip_leverage",
    "skip_cpt",
    "seed",
    "u_samples",
)


def _resume(s: LabelSettings, config: dict[str, Any]) -> list[dict[str, Any]]:
    return resume_checkpoint(
        s.output / CHECKPOINT, s.output / CONFIG, config, restart=s.restart, what="labels"
    )


def apply_quadrants(rows: list[dict[str, Any]], s: LabelSettings) -> dict[str, Any]:
    """Give each labeled row its quadrant; return the thresholds used.

    From ``--U-threshold``/``--L-threshold`` where given, else from ``--thresholds FILE``,
    else the auto quantiles of these rows (written to ``quadrant_thresholds_auto.json``).
    """
    auto = auto_thresholds(rows, s.quantile)
    write_json(s.output / THRESHOLDS, auto)
    chosen = dict(auto)
    if s.thresholds_file is not None:
        given = read_json(s.thresholds_file)
        for key in ("U", "L"):
            if not isinstance(given, dict) or not isinstance(given.get(key), (int, float)):
                raise TeachableError(f"{s.thresholds_file}: field {key!r} must be a number")
            chosen[key] = float(given[key])
        chosen["source"] = str(s.thresholds_file)
    if s.u_threshold is not None:
        chosen.update(U=s.u_threshold, source="flags")
    if s.l_threshold is not None:
        chosen.update(L=s.l_threshold, source="flags")
    for row in rows:
        if chosen["U"] is None or chosen["L"] is None:
            row["quadrant"] = None
            continue
        leverage = row["leverage"]["L_local"] if row.get("leverage") else None
        row["quadrant"] = assign_quadrant(row.get("U"), leverage, chosen["U"], chosen["L"])
    return chosen


def label_snapshots(
    snapshots: Path, s: LabelSettings, echo: Echo = lambda line: None
) -> dict[str, Any]:
    """Label every snapshot of ``snapshots`` into ``s.output`` (resuming a checkpoint);
    return the summary written to ``label_summary.json``.

    Raises:
        TeachableError: bad snapshots, a snapshot that doesn't restore, or a checkpoint made
            with other settings.
    """
    rows = read_snapshots(snapshots)
    teacher = resolve_teacher(s.teacher, skip_api=s.skip_api)
    s.output.mkdir(parents=True, exist_ok=True)
    done = _resume(s, _fingerprint(s, snapshots, teacher))
    finished = {r["id"] for r in done}
    todo = [(w, r) for w, r in rows if r["id"] not in finished]
    labeler = _Labeler(s, teacher)
    echo(
        f"[label] {len(rows)} snapshots, {len(finished)} already labeled, {len(todo)} to go; "
        f"{s.rollouts} rollouts per arm, teacher {teacher}"
        + (", no leverage" if s.skip_leverage else "")
        + (", no CPT" if s.skip_cpt else "")
    )
    started = time.perf_counter()
    with Progress(len(rows), unit="snapshot", label="", echo=echo, prefix="[label] ",
                  every=None, initial=len(rows) - len(todo)) as progress:  # fmt: skip
        for number, (where, row) in enumerate(todo, 1):
            labeled = labeler.label(where, row)
            append_checkpoint(s.output / CHECKPOINT, labeled)
            done.append(labeled)
            progress.update(len(rows) - len(todo) + number, note="labeled")
    order = {r["id"]: i for i, (_, r) in enumerate(rows)}
    labeled_rows = sorted((r for r in done if r["id"] in order), key=lambda r: order[r["id"]])
    thresholds = apply_quadrants(labeled_rows, s)
    write_rows(s.output / LABELED, labeled_rows)
    summary = {
        "snapshots": len(labeled_rows),
        "snapshots_file": str(snapshots.resolve()),
        "quadrants": counts(labeled_rows),
        "thresholds": thresholds,
        "routes": dict(Counter((r["cpt"] or {}).get("route_net") for r in labeled_rows)),
        "seconds": round(time.perf_counter() - started, 1),
        "labeled_now": len(todo),
    }
    write_json(s.output / SUMMARY, summary)
    return summary
