"""Rollouts from a snapshot: restore the world, make (or force) the first decision, and let the
student play on, sampling from its distribution, until the episode ends.

Rollout ``i`` of a snapshot draws from the same random stream in every arm (forced expert,
forced student, each patch), so the arms differ by the first decision only and their
outcomes pair up.
"""

from __future__ import annotations

import random

from ..envs.minigrid import ExpertUnavailable, Patch, Student, World

__all__ = ["rollout", "rollout_rng"]


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
