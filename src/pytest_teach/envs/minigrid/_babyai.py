"""A BabyAI level with minigrid's ``BabyAIBot`` as the expert.

The bot keeps a plan (a stack of subgoals) and must see every action the agent takes, its own
or not, to keep that plan right: the world consults it before each step and hands it the
action taken at the next one (``bot.replan(action_taken)``), the bot's advising mode.
``gymnasium`` and ``minigrid`` are imported when a world is built.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from ._actions import ACTIONS
from ._render import Seen, describe_thing
from ._world import Target, World

__all__ = ["BabyAIWorld"]

_UNSET: Any = object()
_INVISIBLE = ("wall", "empty", "floor")


def _state(cell: Any) -> str:
    if cell.type != "door":
        return ""
    return "locked" if cell.is_locked else "open" if cell.is_open else "closed"


def _blocker(cell: Any) -> str:
    if cell.type == "wall":
        return "a wall"
    return describe_thing(cell.type, cell.color, _state(cell))


class BabyAIWorld(World):
    """A BabyAI level (``BabyAI-GoToLocal-v0``...) reset with ``seed``."""

    kind = "babyai"

    def __init__(self, level: str, seed: int, *, max_steps: int | None = None) -> None:
        import gymnasium
        import minigrid  # noqa: F401  (registers the BabyAI ids)
        from minigrid.utils.baby_ai_bot import BabyAIBot

        env = gymnasium.make(level)
        with contextlib.redirect_stdout(io.StringIO()):  # BabyAI prints rejected samples
            env.reset(seed=int(seed))
        limit = int(env.unwrapped.max_steps)
        super().__init__(level, seed, min(max_steps or limit, limit))
        self.env = env
        self.bot = BabyAIBot(env)
        self._advice: Any = _UNSET
        self._taken: int | None = None  # the action the bot has yet to hear about
        self.expert_error = None

    @property
    def mission(self) -> str:
        """The level's mission."""
        return str(self.env.unwrapped.mission)

    def view(self) -> tuple[list[Seen], tuple[str, str] | None, tuple[int, str]]:
        """The agent's partial view (``gen_obs_grid``: walls occlude, the view is
        ``agent_view_size`` square ahead of the agent)."""
        u = self.env.unwrapped
        grid, visible = u.gen_obs_grid()
        size = u.agent_view_size
        ax, ay = size // 2, size - 1  # the agent's cell in its own view, facing "up"
        seen = []
        for i in range(size):
            for j in range(size):
                if not visible[i, j] or (i, j) == (ax, ay):
                    continue
                cell = grid.get(i, j)
                if cell is None or cell.type in _INVISIBLE:
                    continue
                seen.append(Seen(cell.type, cell.color, i - ax, ay - j, _state(cell)))
        free, blocker = 0, ""
        for k in range(1, size):
            if not visible[ax, ay - k]:
                break
            cell = grid.get(ax, ay - k)
            if cell is None or (cell.type == "door" and cell.is_open):
                free += 1
                continue
            blocker = _blocker(cell)
            break
        carried = u.carrying
        carrying = (carried.type, carried.color) if carried is not None else None
        return seen, carrying, (free, blocker)

    def _advise(self) -> str | None:
        """The bot's suggestion for the current state (planned once per state)."""
        if self._advice is _UNSET:
            if self.expert_error is not None:
                self._advice = None  # a bot that failed once has lost its plan
            else:
                try:
                    action = self.bot.replan(self._taken)
                    self._advice = ACTIONS[int(action)]
                except Exception as exc:  # the bot asserts on states it can't plan from
                    self._advice = None
                    self.expert_error = f"the BabyAI bot failed: {type(exc).__name__}: {exc}"
            self._taken = None
        return self._advice

    def _apply(self, action: str) -> tuple[bool, bool]:
        self.expert_action()  # the bot sees every state, so its plan stays in step
        _, reward, terminated, truncated, _ = self.env.step(ACTIONS.index(action))
        self._taken = ACTIONS.index(action)
        self._advice = _UNSET
        return float(reward) > 0, bool(terminated or truncated)

    def state_hash(self) -> str:
        """minigrid's own state hash (grid, agent position and direction)."""
        return str(self.env.unwrapped.hash())

    def target(self) -> Target | None:
        """The nearest object the current instruction is about."""
        from minigrid.envs.babyai.core.verifier import ActionInstr, PutNextInstr

        u = self.env.unwrapped
        instr = u.instrs
        while not isinstance(instr, ActionInstr) and hasattr(instr, "instr_a"):
            instr = instr.instr_a  # a sequence: its first part
        if isinstance(instr, PutNextInstr):
            desc = instr.desc_fixed if u.carrying is not None else instr.desc_move
        else:
            desc = getattr(instr, "desc", None)
        if desc is None:
            return None
        pos = u.agent_pos
        fwd, right = u.dir_vec, u.right_vec
        best: Target | None = None
        for obj in desc.obj_set:
            at = getattr(obj, "cur_pos", None)
            if at is None or at[0] < 0 or obj is u.carrying:
                continue
            dx, dy = int(at[0] - pos[0]), int(at[1] - pos[1])
            r = dx * int(right[0]) + dy * int(right[1])
            f = dx * int(fwd[0]) + dy * int(fwd[1])
            if best is None or abs(r) + abs(f) < abs(best[1]) + abs(best[2]):
                best = (describe_thing(obj.type, obj.color, _state(obj)), r, f)
        return best
