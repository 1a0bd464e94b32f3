"""Phase 0's snapshots: the failure states of the recorded gridworld episodes.

A *failure snapshot* is a decision in an episode that needed intervention where the student's
action differed from the expert's (the step the runner labeled ``bad``, with the expert's
action as its correction). Each episode is replayed from its seed with its recorded actions
(the replay must reproduce every recorded observation), and the world is snapshot whole at the
chosen decisions.

``snapshots.jsonl``, one row per snapshot (schema :data:`SNAPSHOT_SCHEMA`):

==================  ========================================================================
``id``              ``<episode id>-t<step>``, unique
``schema``          ``teach.snapshot/1``
``episode_id``      the episode in the store; ``scenario``, ``model`` as recorded
``level``           the level (a BabyAI id or a mock level); ``seed``; ``max_steps``
``world``           ``babyai`` or ``mock``
``step``            the decision's index; ``prefix`` the actions before it (replay)
``env_hash``        the world's state hash at the decision
``observation``     the text the student saw; ``mission``
``student_action``  what the student did; ``expert_action`` what the expert would have
``probs``           the student's distribution over the actions (``null`` when not recorded)
``target``          what the mission is about, from the agent: ``{"object": "a red ball",
                    "right": -2, "forward": 1}`` (``null`` when the world can't tell)
``state``           the pickled world (environment and expert), base64; ``state_sha256``
==================  ========================================================================
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..envs import minigrid as mg
from ._files import TeachableError, write_rows

__all__ = ["SNAPSHOT_SCHEMA", "MineResult", "decode_state", "mine", "spread", "walk"]

SNAPSHOT_SCHEMA = "teach.snapshot/1"
_META = ("level", "seed", "max_steps", "world")

Echo = Callable[[str], None]


@dataclass(frozen=True)
class MineResult:
    """What mining found and wrote."""

    path: Path
    episodes: int
    failed: int
    snapshots: int


def spread(items: list[Any], k: int | None) -> list[Any]:
    """At most ``k`` of ``items``, evenly spaced, first and last included (all when ``k`` is
    ``None`` or at least ``len(items)``)."""
    if k is None or len(items) <= k:
        return list(items)
    if k == 1:
        return [items[0]]
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def decode_state(row: dict[str, Any], where: str) -> bytes:
    """The pickled world of a snapshot row, checked against its ``state_sha256``."""
    try:
        blob = base64.b64decode(row["state"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise TeachableError(f"{where}: field 'state' is not base64 snapshot bytes") from None
    if hashlib.sha256(blob).hexdigest() != row.get("state_sha256"):
        raise TeachableError(f"{where}: field 'state' does not match its state_sha256")
    return blob


def walk(episode: Any) -> Iterator[tuple[Any, mg.World]]:
    """``(step, world)`` for each recorded step of a gridworld episode, the world replayed from
    the episode's seed to the state the step was decided in (the expert consulted, as when it
    was recorded); the world takes the step's action once the caller resumes.

    Raises:
        TeachableError: the episode lacks the runner's meta, or the replay renders another
            observation than the recorded one.
    """
    meta = episode.meta
    missing = [k for k in (*_META, "actions") if k not in meta]
    if missing:
        raise TeachableError(
            f"episode {episode.id} ({episode.scenario}): meta has no {', '.join(missing)}; "
            "use episodes recorded by the gridworld runner (scenarios/minigrid)"
        )
    world = mg.make_world(
        meta["level"], meta["seed"], max_steps=meta["max_steps"], mock=meta["world"] == "mock"
    )
    for step in episode.steps:
        if world.observe() != step.observation:
            raise TeachableError(
                f"episode {episode.id} step {step.index}: replaying from seed {meta['seed']} "
                "gives another observation than the one recorded"
            )
        world.expert_action()
        yield step, world
        if step.action not in mg.ACTIONS or world.done:
            return  # an unparseable reply ended the episode here
        world.step(step.action)


def _snapshots_of(episode: Any, per_episode: int | None) -> list[dict[str, Any]]:
    mistakes = [s.index for s in episode.steps if s.label == "bad" and s.correction is not None]
    chosen = set(spread(mistakes, per_episode))
    if not chosen:
        return []
    rows = []
    for step, world in walk(episode):
        if step.index not in chosen:
            continue
        blob = world.snapshot()
        target = world.target()
        rows.append(
            {
                "id": f"{episode.id}-t{step.index}",
                "schema": SNAPSHOT_SCHEMA,
                "episode_id": episode.id,
                "scenario": episode.scenario,
                "model": episode.model,
                "level": world.level,
                "seed": world.seed,
                "max_steps": world.max_steps,
                "world": world.kind,
                "step": step.index,
                "prefix": list(world.actions_taken),
                "env_hash": world.state_hash(),
                "observation": step.observation,
                "mission": world.mission,
                "student_action": step.action,
                "expert_action": world.expert_action(),
                "probs": step.probs if isinstance(step.probs, dict) else None,
                "target": None
                if target is None
                else {"object": target[0], "right": target[1], "forward": target[2]},
                "state": base64.b64encode(blob).decode("ascii"),
                "state_sha256": hashlib.sha256(blob).hexdigest(),
            }
        )
    return rows


def mine(
    db: Path | str,
    output: Path,
    *,
    session: str | None = None,
    model: str | None = None,
    scenario: str = "minigrid[*",
    per_episode: int | None = 4,
    echo: Echo = lambda line: None,
) -> MineResult:
    """Write the failure snapshots of the matching episodes to ``output`` (atomically).

    Raises:
        TeachableError: no failure snapshot, or an episode that doesn't replay.
    """
    from ..store import Store

    rows: list[dict[str, Any]] = []
    episodes = failed = 0
    with Store.open(db, create=False) as store:
        for episode in store.episodes(session=session, model=model, scenario=scenario):
            episodes += 1
            if episode.outcome != "intervention":
                continue
            failed += 1
            rows += _snapshots_of(episode, per_episode)
            if failed % 25 == 0:
                echo(f"[mine] {failed} failed episodes replayed, {len(rows)} snapshots")
    if not rows:
        raise TeachableError(
            f"{db}: no failure snapshot in {episodes} episodes ({failed} failed) matching "
            f"scenario {scenario!r}" + (f", session {session}" if session else "")
        )
    write_rows(output, rows)
    return MineResult(output, episodes, failed, len(rows))
