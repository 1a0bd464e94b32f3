"""The gridworld family as a TRL environment: one tool, ``act(action)``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ._env import ActionError, ScenarioEnv

__all__ = ["GRIDWORLD_INSTRUCTIONS", "GridworldEnv", "gridworld_task_ids"]

GRIDWORLD_INSTRUCTIONS = (
    "You steer an agent in a grid world to complete its mission. Call the act tool with one "
    "action at a time until the mission is complete."
)

#: How the end of an episode is announced after the last observation.
_OVER = "\nThe episode is over: {how}."

_TASK_ID = re.compile(r"^(?P<level>.+)-s(?P<seed>\d+)$")


def gridworld_task_ids(levels: Sequence[str], seeds: Sequence[int]) -> list[str]:
    """The task ids (``MockGoTo-s3``) of ``seeds`` on each of ``levels``, level by level."""
    from ..envs import minigrid as mg

    return [f"{mg.short_name(level)}-s{seed}" for level in levels for seed in seeds]


class GridworldEnv(ScenarioEnv):
    """A gridworld task (``MockGoTo-s3``: a level and a seed) driven by the ``act`` tool.

    The world is built as the scenario's test builds it (``minigrid_env.for_task``), with the
    step limit in the context's ``max_steps`` option (the suite's ``--minigrid-max-steps``), so
    replaying the executed actions in the test reproduces the rollout exactly.
    """

    family = "minigrid"
    instructions = GRIDWORLD_INSTRUCTIONS
    suite = "scenarios/minigrid"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.world: Any = None

    def act(self, action: str) -> str:
        """Take one action in the grid world and see what happens.

        Args:
            action: One of left, right, forward, pickup, drop, toggle, done.

        Returns:
            What the agent sees after the action.
        """
        return self._step(str(action).strip(), tool="act", arguments={"action": action})

    # -- the family's protocol -------------------------------------------------------------

    def _begin(self, task: str) -> str:
        from ..envs import minigrid as mg

        match = _TASK_ID.match(task)
        if match is None:
            raise ValueError(
                f"gridworld task ids look like MockGoTo-s3 (level-sSEED), got {task!r}"
            )
        self.world = mg.make_world(
            match["level"],
            int(match["seed"]),
            max_steps=self.context.options.get("max_steps") or mg.DEFAULT_MAX_STEPS,
            mock=bool(self.context.options.get("mock", False)),
        )
        if not self.context.options.get("oracle"):
            self.world.drop_expert()  # the policy never asks it; the test consults its own
        return self.world.observe()

    def _apply(self, reply: str) -> str:
        from ..envs import minigrid as mg

        try:
            action = mg.parse_action(reply)
        except mg.ActionParseError as exc:
            raise ActionError(str(exc)) from None
        self.world.step(action)
        observation = self.world.observe()
        if self.world.done:
            how = (
                "mission complete"
                if self.world.success
                else "out of steps"
                if self.world.steps >= self.world.max_steps
                else "the mission failed"
            )
            observation += _OVER.format(how=how)
        return observation

    def _finished(self) -> bool:
        return self.world is None or bool(self.world.done)

    def _succeeded(self) -> bool:
        return self.world is not None and bool(self.world.success)

    def _oracle(self) -> tuple[str, dict[str, Any]] | None:
        """The BabyAI bot's next action, as an ``act`` call."""
        action = self.world.expert_action()
        return None if action is None else ("act", {"action": action})

    def _close(self) -> None:
        env = getattr(self.world, "env", None)
        if env is not None:
            env.close()
        self.world = None

    @classmethod
    def _suite_args(cls, tasks: list[str], options: dict[str, Any]) -> list[str]:
        """``--minigrid-levels/-seed-start/-seeds/-max-steps`` covering ``tasks``."""
        from ..envs import minigrid as mg

        parsed = [m for m in (_TASK_ID.match(t) for t in tasks) if m is not None]
        if not parsed:
            return []
        levels = list(dict.fromkeys(m["level"] for m in parsed))
        seeds = [int(m["seed"]) for m in parsed]
        args = [
            "--minigrid-levels",
            ",".join(levels),
            "--minigrid-seed-start",
            str(min(seeds)),
            "--minigrid-seeds",
            str(max(seeds) - min(seeds) + 1),
            "--minigrid-max-steps",
            str(options.get("max_steps") or mg.DEFAULT_MAX_STEPS),
        ]
        return args + (["--minigrid-mock"] if options.get("mock") else [])

    @classmethod
    def _seed_tasks(cls, seeds: list[int], options: dict[str, Any]) -> list[str]:
        """``seeds`` on each of the ``levels`` option (default ``MockGoTo``)."""
        return gridworld_task_ids(options.get("levels") or ["MockGoTo"], seeds)

    def _valid_actions(self) -> list[str] | None:
        from ..envs import minigrid as mg

        return list(mg.ACTIONS)
