"""A gridworld episode in progress: observe, ask the expert, step, snapshot, restore, replay.

:class:`World` is what the ``minigrid_env`` fixture hands a scenario and what the teachable
phases snapshot. Two worlds implement it: :class:`~._babyai.BabyAIWorld` (a BabyAI level with
minigrid's ``BabyAIBot`` as the expert) and :class:`~._mock.MockWorld` (a small pure-Python
room with a planner of its own, for smoke runs). A world is reproducible from ``(level, seed)``
plus the actions taken, and its whole state (environment and expert together) pickles, so a
snapshot restores exactly.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections.abc import Sequence

from ._actions import ACTIONS
from ._levels import is_mock, resolve_level
from ._render import Seen, render_observation

__all__ = ["EpisodeOver", "SnapshotError", "Target", "World", "make_world", "replay"]

#: A pickle protocol every supported Python reads.
_PROTOCOL = 4

#: ``(description, cells to the right, cells forward)`` of what the mission is about.
Target = tuple[str, int, int]


class EpisodeOver(RuntimeError):
    """A step was asked of a world whose episode has ended."""


class SnapshotError(ValueError):
    """Snapshot bytes that don't restore to a world."""


class World(ABC):
    """One episode of a gridworld level, seeded.

    ``steps`` counts the actions taken, ``done`` is set once the mission succeeds, fails, or
    ``max_steps`` is reached, and ``success`` says whether it succeeded.
    """

    family = "minigrid"
    kind = "world"

    def __init__(self, level: str, seed: int, max_steps: int) -> None:
        self.level = level
        self.seed = int(seed)
        self.max_steps = int(max_steps)
        self.steps = 0
        self.done = False
        self.success = False
        self.last_action: str | None = None
        self.actions_taken: list[str] = []

    # -- what a world provides -------------------------------------------------------------

    @property
    @abstractmethod
    def mission(self) -> str:
        """The mission, in words (``"go to the red ball"``)."""

    @abstractmethod
    def view(self) -> tuple[list[Seen], tuple[str, str] | None, tuple[int, str]]:
        """What the agent sees: the visible objects, what it carries (``(kind, color)``) and
        the free cells ahead with what blocks them (see :func:`render_observation`)."""

    @abstractmethod
    def _advise(self) -> str | None:
        """The expert's action in the current state (``None``: it has none)."""

    @abstractmethod
    def _apply(self, action: str) -> tuple[bool, bool]:
        """Take ``action``; return ``(succeeded, ended)``."""

    @abstractmethod
    def state_hash(self) -> str:
        """A hash of the environment's state (grid, agent position and direction)."""

    def target(self) -> Target | None:
        """Where the mission's object is, relative to the agent, when the world knows."""
        return None

    expert_error: str | None = None
    expert_dropped = False

    # -- shared ----------------------------------------------------------------------------

    def expert_action(self) -> str | None:
        """The expert's action in the current state, or ``None`` when the expert has none
        (it failed to plan, or was dropped; :attr:`expert_error` says why)."""
        return None if self.expert_dropped else self._advise()

    def drop_expert(self) -> None:
        """Stop keeping the expert in step with the episode: a rollout whose student never
        asks the expert saves its planning. :meth:`expert_action` is ``None`` from then on."""
        self.expert_dropped = True
        self.expert_error = "the expert was dropped for this rollout"

    def observe(self) -> str:
        """The current observation as text."""
        seen, carrying, ahead = self.view()
        return render_observation(self.mission, seen, carrying, ahead, self.last_action)

    def step(self, action: str) -> None:
        """Take ``action`` (one of :data:`ACTIONS`).

        Raises:
            ValueError: ``action`` is not a valid action name.
            EpisodeOver: the episode has already ended.
        """
        if action not in ACTIONS:
            raise ValueError(f"{action!r} is not one of the actions {', '.join(ACTIONS)}")
        if self.done:
            raise EpisodeOver(f"{self.describe()}: the episode is over after {self.steps} steps")
        succeeded, ended = self._apply(action)
        self.steps += 1
        self.last_action = action
        self.actions_taken.append(action)
        self.success = succeeded
        self.done = succeeded or ended or self.steps >= self.max_steps

    def describe(self) -> str:
        """``GoToLocal seed 3``."""
        return f"{self.level} seed {self.seed}"

    def snapshot(self) -> bytes:
        """The whole state (environment and expert) as bytes; :func:`World.restore` them."""
        return pickle.dumps(self, protocol=_PROTOCOL)

    @staticmethod
    def restore(blob: bytes) -> World:
        """The world a :meth:`snapshot` captured (only restore snapshots you made: this is
        pickle).

        Raises:
            SnapshotError: the bytes are not a world's snapshot.
        """
        try:
            world = pickle.loads(blob)
        except Exception as exc:  # pickle raises many kinds on bad bytes
            raise SnapshotError(f"not a world snapshot ({type(exc).__name__}: {exc})") from None
        if not isinstance(world, World):
            raise SnapshotError(f"not a world snapshot (got {type(world).__name__})")
        return world


def make_world(level: str, seed: int, *, max_steps: int | None = None, mock: bool = False) -> World:
    """A fresh world for ``level`` and ``seed``: a BabyAI level, or the mock world for a
    ``Mock*`` level or with ``mock`` (see :func:`~._levels.resolve_level`).

    ``max_steps`` caps the episode (never above the level's own limit).

    Raises:
        LevelError: the level can't be run (unknown, not BabyAI, or beyond the bot).
        ValueError: ``max_steps`` below 1.
    """
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    name = resolve_level(level, mock=mock)
    if is_mock(name):
        from ._mock import MockWorld

        return MockWorld(name, seed, max_steps=max_steps)
    from ._babyai import BabyAIWorld

    return BabyAIWorld(name, seed, max_steps=max_steps)


def replay(
    level: str,
    seed: int,
    actions: Sequence[str],
    *,
    max_steps: int | None = None,
    mock: bool = False,
) -> World:
    """The world after taking ``actions`` from the start of ``(level, seed)``.

    The expert is consulted at every step, as in the episode that recorded the actions, so
    its plan is the one it had then.

    Raises:
        ValueError: an action is invalid or the episode ends before the actions do.
    """
    world = make_world(level, seed, max_steps=max_steps, mock=mock)
    for number, action in enumerate(actions):
        if world.done:
            raise ValueError(
                f"{world.describe()}: the episode ended after {world.steps} steps, before "
                f"action #{number} ({action!r}) of the prefix"
            )
        world.expert_action()
        world.step(action)
    return world
