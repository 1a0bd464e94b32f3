"""Rollouts from a snapshot: restore the world, make (or force) the first decision, and let the
student play on, sampling from its distribution, until the episode ends.

Rollout ``i`` of a snapshot draws from the same random stream in every arm (forced expert,
forced student, each patch), so the arms differ by the first decision only and their
outcomes pair up.

:func:`play` is evaluation's counterpart: the student plays its most likely action at every
step (deterministic), and the outcome says how the episode ended (success, the step limit, a
loop, an unparseable reply).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from ..envs.minigrid import ExpertUnavailable, Patch, Student, World

__all__ = ["LOOP_VISITS", "Outcome", "play", "rollout", "rollout_rng"]

#: A state seen this many times in one episode makes it a loop.
LOOP_VISITS = 3


def rollout_rng(seed: int, snapshot_id: str, index: int) -> random.Random:
    """The random stream of rollout ``index`` of a snapshot."""
    return random.Random(f"{seed}|{snapshot_id}|{index}")


def rollout(
    blob: bytes,
    student: Student,
    rng: random.Random,
    *,
    first: str | None = None,
    patch: Patch | None = None,
) -> bool:
    """Whether the student completes the mission from the snapshot ``blob``.

    ``first`` forces the first action; otherwise the student makes it, with ``patch`` in its
    prompt at that decision only. A reply that doesn't parse, or a state where a scripted
    student's expert can't plan, ends the rollout as a failure. The expert is dropped for a
    student that never consults it (no planning at every step).
    """
    world = World.restore(blob)
    if not student.consults_expert:
        world.drop_expert()
    try:
        if first is not None:
            world.step(first)
            rng.random()  # keep the stream aligned with the arms where the student decides
        while not world.done:
            decision = student.act(world, world.observe(), rng, patch=patch, explore=True)
            patch = None
            if decision.action is None:
                return False
            world.step(decision.action)
    except ExpertUnavailable:
        return False
    return world.success


@dataclass(frozen=True)
class Outcome:
    """How a played episode ended: ``success``; ``steps`` taken; ``timeout`` when the step
    limit ended it; ``loop`` when some state came back :data:`LOOP_VISITS` times; ``invalid``
    when a reply didn't parse (or a scripted student's expert couldn't plan)."""

    success: bool
    steps: int
    timeout: bool
    loop: bool
    invalid: bool


def play(world: World, student: Student) -> Outcome:
    """Play ``world`` to its end with the student's greedy action at every step."""
    if not student.consults_expert:
        world.drop_expert()
    start = world.steps
    visits: Counter[str] = Counter()
    invalid = False
    try:
        while not world.done:
            visits[world.state_hash()] += 1
            decision = student.greedy(world, world.observe())
            if decision.action is None:
                invalid = True
                break
            world.step(decision.action)
    except ExpertUnavailable:
        invalid = True
    timeout = not world.success and not invalid and world.steps >= world.max_steps
    loop = bool(visits) and max(visits.values()) >= LOOP_VISITS
    return Outcome(world.success, world.steps - start, timeout, loop, invalid)
