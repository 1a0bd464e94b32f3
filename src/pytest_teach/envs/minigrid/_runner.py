"""Gridworld tasks, and one episode of a student on a task, recorded step by step.

Each step records the observation text, the action, the prompt and reply, the valid actions,
the student's action distribution (so its entropy is stored), and the expert's verdict: a step
that agrees with the expert is ``good``; one that doesn't is ``bad`` with the expert's action as
its ``correction``. The episode's meta holds what replays it exactly: the level, the seed, the
step limit, the world kind and the actions taken, with the state hash at the start.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._actions import ACTIONS
from ._levels import DEFAULT_LEVELS, resolve_level, short_name
from ._students import Student
from ._world import World

__all__ = ["DEFAULT_MAX_STEPS", "EpisodeResult", "Task", "run_episode", "tasks"]

#: The step limit of a task unless told otherwise.
DEFAULT_MAX_STEPS = 24


@dataclass(frozen=True)
class Task:
    """One seeded level: ``level`` is a BabyAI id or a mock level's name."""

    level: str
    seed: int
    max_steps: int = DEFAULT_MAX_STEPS

    @property
    def id(self) -> str:
        """``GoToLocal-s3``."""
        return f"{short_name(self.level)}-s{self.seed}"


def tasks(
    levels: Sequence[str] = DEFAULT_LEVELS,
    *,
    seeds: int = 5,
    seed_start: int = 0,
    max_steps: int = DEFAULT_MAX_STEPS,
    mock: bool = False,
) -> list[Task]:
    """``seeds`` tasks per level, seeds ``seed_start`` onwards.

    Raises:
        LevelError: a level the family can't run.
        ValueError: ``seeds`` or ``max_steps`` below 1.
    """
    if seeds < 1 or max_steps < 1:
        raise ValueError(f"seeds and max_steps must be >= 1, got {seeds} and {max_steps}")
    resolved = list(dict.fromkeys(resolve_level(level, mock=mock) for level in levels))
    return [
        Task(level, seed, max_steps)
        for level in resolved
        for seed in range(seed_start, seed_start + seeds)
    ]


@dataclass
class EpisodeResult:
    """How an episode ended."""

    success: bool
    steps: int
    reason: str
    agreement: float


def _rng(world: World, student: Student, seed: int) -> random.Random:
    return random.Random(f"{world.level}|{world.seed}|{student.spec}|{seed}")


def run_episode(world: World, student: Student, episode: Any, *, seed: int = 0) -> EpisodeResult:
    """Run ``student`` in ``world`` until the mission succeeds, fails, or the step limit is
    reached, recording each step on ``episode`` (an ``EpisodeRecorder``).

    An unparseable reply ends the episode as a failure (``unparseable_output``). A model call
    that fails raises its ``ModelCallError``, and an expert that can't plan in a state the
    oracle student needs raises ``ExpertUnavailable``: both are infrastructure errors.
    """
    rng = _rng(world, student, seed)
    episode.meta(
        level=world.level,
        seed=world.seed,
        max_steps=world.max_steps,
        world=world.kind,
        mission=world.mission,
        start_hash=world.state_hash(),
    )
    agreed = judged = 0
    latency = prompt_tokens = completion_tokens = 0.0
    cost = 0.0
    reason = ""
    while not world.done:
        observation = world.observe()
        expert = world.expert_action()
        decision = student.act(world, observation, rng)
        latency += decision.latency_ms
        prompt_tokens += decision.prompt_tokens
        completion_tokens += decision.completion_tokens
        cost += decision.cost_usd
        verdict = None if expert is None or decision.action is None else decision.action == expert
        episode.step(
            observation,
            decision.action if decision.action is not None else decision.text,
            messages=decision.messages,
            valid_actions=list(ACTIONS),
            probs=decision.probs,
            label=None if verdict is None else ("good" if verdict else "bad"),
            correction=expert if verdict is False else None,
            error=decision.error,
        )
        if decision.action is None:
            reason = f"step {world.steps}: {decision.error['message'] if decision.error else ''}"
            break
        if verdict is not None:
            judged += 1
            agreed += verdict
        world.step(decision.action)
    if not reason:
        reason = (
            f"completed {world.mission!r} in {world.steps} steps"
            if world.success
            else f"did not complete {world.mission!r}: "
            + ("the mission failed" if world.steps < world.max_steps else "out of steps")
            + f" after {world.steps} steps"
        )
    agreement = agreed / judged if judged else 0.0
    episode.meta(actions=list(world.actions_taken), end_hash=world.state_hash())
    episode.metric(
        latency_ms=latency,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=cost,
        steps=world.steps,
    )
    episode.reward(1.0 if world.success else 0.0, success=float(world.success), agreement=agreement)
    return EpisodeResult(world.success, world.steps, reason, agreement)
