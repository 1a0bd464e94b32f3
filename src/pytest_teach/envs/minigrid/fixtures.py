"""The ``minigrid_env`` fixture and the options that pick a gridworld suite's tasks.

Importing this module is cheap: gymnasium and minigrid load when a world is built. The plugin
registers the fixture and the options, so any suite can use them::

    def test_goto(minigrid_env, episode):
        world = minigrid_env("GoToLocal", seed=3)
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._runner import Task
    from ._world import World

__all__ = ["MiniGridEnv", "add_minigrid_options", "minigrid_env", "minigrid_tasks"]


def add_minigrid_options(group: pytest.OptionGroup) -> None:
    """The gridworld options: which levels and seeds a suite runs, the step limit, and the
    mock world."""
    group.addoption(
        "--minigrid-levels",
        metavar="L1,L2",
        default=None,
        help="gridworld levels to run (BabyAI ids or short names; default "
        "GoToLocal,PickupLoc,OpenDoor,GoToObj)",
    )
    group.addoption(
        "--minigrid-seeds",
        metavar="N",
        type=int,
        default=5,
        help="gridworld tasks (seeds) per level (default 5)",
    )
    group.addoption(
        "--minigrid-seed-start",
        metavar="K",
        type=int,
        default=0,
        help="first gridworld seed (default 0)",
    )
    group.addoption(
        "--minigrid-max-steps",
        metavar="N",
        type=int,
        default=None,
        help="step limit of a gridworld episode (default 24, never above the level's own)",
    )
    group.addoption(
        "--minigrid-mock",
        action="store_true",
        default=False,
        help="run gridworld scenarios in the small pure-Python mock world (smoke runs)",
    )


def minigrid_tasks(config: pytest.Config) -> list[Task]:
    """The tasks the options select.

    Raises:
        pytest.UsageError: a level the family can't run, or a count below 1.
    """
    from ._levels import DEFAULT_LEVELS
    from ._runner import DEFAULT_MAX_STEPS, tasks

    raw = config.getoption("minigrid_levels", None)
    levels = [p.strip() for p in raw.split(",") if p.strip()] if raw else list(DEFAULT_LEVELS)
    try:
        return tasks(
            levels,
            seeds=config.getoption("minigrid_seeds", 5),
            seed_start=config.getoption("minigrid_seed_start", 0),
            max_steps=config.getoption("minigrid_max_steps", None) or DEFAULT_MAX_STEPS,
            mock=bool(config.getoption("minigrid_mock", False)),
        )
    except ValueError as exc:
        raise pytest.UsageError(f"--minigrid-levels: {exc}") from None


class MiniGridEnv:
    """Builds worlds for a test: ``minigrid_env(level, seed, max_steps=None)`` or
    ``minigrid_env.for_task(task)``. With ``--minigrid-mock`` every level runs in the mock
    world."""

    def __init__(self, mock: bool = False) -> None:
        self.mock = mock
        self.worlds: list[World] = []

    def __call__(self, level: str, seed: int, *, max_steps: int | None = None) -> World:
        """A fresh world for ``level`` reset with ``seed``.

        Raises:
            LevelError: a level the family can't run.
        """
        from ._world import make_world

        world = make_world(level, seed, max_steps=max_steps, mock=self.mock)
        self.worlds.append(world)
        return world

    def for_task(self, task: Task) -> World:
        """The world of a :class:`Task`."""
        return self(task.level, task.seed, max_steps=task.max_steps)

    def close(self) -> None:
        """Close the environments built."""
        for world in self.worlds:
            env = getattr(world, "env", None)
            if env is not None:
                env.close()
        self.worlds.clear()


@pytest.fixture
def minigrid_env(request: pytest.FixtureRequest) -> Iterator[MiniGridEnv]:
    """Seeded, reproducible gridworlds: ``world = minigrid_env("GoToLocal", seed=3)``.

    BabyAI levels run with minigrid's ``BabyAIBot`` as the expert (levels it can't solve are
    refused); ``--minigrid-mock`` swaps in the pure-Python mock world. Skips with the reason
    when minigrid is not installed.
    """
    mock = bool(request.config.getoption("minigrid_mock", False))
    if not mock:
        try:
            import minigrid  # noqa: F401
        except ImportError as exc:
            pytest.skip(f"minigrid is not installed ({exc}): pip install 'pytest-teach[minigrid]'")
    factory = MiniGridEnv(mock=mock)
    try:
        yield factory
    finally:
        factory.close()
