"""The mock world: a small pure-Python room for smoke runs (``--mock-env``).

One walled room of 4x4 to 6x6 free cells holds the mission's object and two distractors
(balls, keys, boxes in six colours). ``MockGoTo`` succeeds when the agent faces the object,
``MockPickup`` when it picks it up (picking up another object fails the mission), as in
BabyAI. The agent sees the 7x7 square ahead of it, like BabyAI's, without occlusion. The expert
is a breadth-first planner over (cell, direction) that replans from scratch in every state.
Everything is seeded by ``(level, seed)``.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque

from ._render import Seen, describe_thing
from ._world import Target, World

__all__ = ["MockWorld"]

_KINDS = ("ball", "key", "box")
_COLORS = ("red", "green", "blue", "purple", "yellow", "grey")
_DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # east, south, west, north (y grows down)
_VIEW = 7
#: The mock world's step limit (BabyAI's small levels allow 64).
MAX_STEPS = 64

Obj = tuple[str, str]  # (kind, color)


class MockWorld(World):
    """A seeded mock room: ``MockGoTo`` or ``MockPickup``."""

    kind = "mock"

    def __init__(self, level: str, seed: int, *, max_steps: int | None = None) -> None:
        super().__init__(level, seed, min(max_steps or MAX_STEPS, MAX_STEPS))
        rng = random.Random(f"{level}|{seed}")
        self.pickup = level == "MockPickup"
        self.carrying: Obj | None = None
        while True:  # like BabyAI, reject rooms whose mission is solved or unsolvable at start
            self.width = rng.randint(4, 6)
            self.height = rng.randint(4, 6)
            cells = [(x, y) for x in range(1, self.width + 1) for y in range(1, self.height + 1)]
            picked = rng.sample(cells, 4)
            self.agent = picked[0]
            self.direction = rng.randrange(4)
            kinds = rng.sample([(k, c) for k in _KINDS for c in _COLORS], 3)
            self.objects: dict[tuple[int, int], Obj] = dict(zip(picked[1:], kinds, strict=True))
            self.goal: Obj = kinds[0]
            if not self._facing_goal() and self._plan():
                break

    # -- geometry ----------------------------------------------------------------------------

    def _free(self, cell: tuple[int, int]) -> bool:
        x, y = cell
        return 1 <= x <= self.width and 1 <= y <= self.height and cell not in self.objects

    def _front(self, cell: tuple[int, int] | None = None, direction: int | None = None):
        x, y = self.agent if cell is None else cell
        dx, dy = _DIRS[self.direction if direction is None else direction]
        return (x + dx, y + dy)

    def _relative(self, at: tuple[int, int]) -> tuple[int, int]:
        dx, dy = at[0] - self.agent[0], at[1] - self.agent[1]
        fx, fy = _DIRS[self.direction]
        rx, ry = -fy, fx
        return dx * rx + dy * ry, dx * fx + dy * fy

    def _facing_goal(self) -> bool:
        return self.objects.get(self._front()) == self.goal

    # -- World -------------------------------------------------------------------------------

    @property
    def mission(self) -> str:
        """``go to the red ball`` or ``pick up the red ball``."""
        verb = "pick up" if self.pickup else "go to"
        return f"{verb} the {self.goal[1]} {self.goal[0]}"

    def view(self) -> tuple[list[Seen], tuple[str, str] | None, tuple[int, str]]:
        """The objects in the 7x7 square ahead, what is carried, and the free cells ahead."""
        seen = []
        for at, (kind, color) in self.objects.items():
            right, forward = self._relative(at)
            if 0 <= forward < _VIEW and abs(right) <= _VIEW // 2 and (right, forward) != (0, 0):
                seen.append(Seen(kind, color, right, forward))
        free, cell = 0, self._front()
        while self._free(cell) and free < _VIEW - 1:
            free += 1
            cell = self._front(cell)
        blocker = ""
        if free < _VIEW - 1:
            obj = self.objects.get(cell)
            blocker = describe_thing(*obj) if obj else "a wall"
        carrying = None if self.carrying is None else self.carrying
        return seen, carrying, (free, blocker)

    def _advise(self) -> str | None:
        """The planner's action: reach a cell facing the object, then pick it up if asked."""
        if self.carrying is not None and self.carrying != self.goal:
            return "drop" if self._free(self._front()) else "left"
        if self.carrying == self.goal:  # a go-to mission whose object was picked up
            return "drop" if self._free(self._front()) else "left"
        if self._facing_goal():
            return "pickup" if self.pickup else "left"  # go-to: already done
        path = self._plan()
        return path[0] if path else None

    def _plan(self) -> list[str]:
        start = (self.agent, self.direction)
        queue: deque[tuple[tuple[tuple[int, int], int], list[str]]] = deque([(start, [])])
        seen = {start}
        while queue:
            (cell, direction), path = queue.popleft()
            if self.objects.get(self._front(cell, direction)) == self.goal:
                return path
            ahead = self._front(cell, direction)
            moves = (
                ("forward", (ahead, direction)),
                ("left", (cell, (direction - 1) % 4)),
                ("right", (cell, (direction + 1) % 4)),
            )
            for action, state in moves:
                if action == "forward" and not self._free(ahead):
                    continue
                if state not in seen:
                    seen.add(state)
                    queue.append((state, [*path, action]))
        return []

    def _apply(self, action: str) -> tuple[bool, bool]:
        front = self._front()
        if action == "left":
            self.direction = (self.direction - 1) % 4
        elif action == "right":
            self.direction = (self.direction + 1) % 4
        elif action == "forward" and self._free(front):
            self.agent = front
        elif action == "pickup" and self.carrying is None and front in self.objects:
            self.carrying = self.objects.pop(front)
            if self.pickup:
                return self.carrying == self.goal, True  # a wrong pickup fails the mission
        elif action == "drop" and self.carrying is not None and self._free(front):
            self.objects[front] = self.carrying
            self.carrying = None
        return (not self.pickup and self._facing_goal()), False

    def state_hash(self) -> str:
        """A hash of the room, the objects, the agent and what it carries."""
        state = (
            self.width,
            self.height,
            sorted(self.objects.items()),
            self.agent,
            self.direction,
            self.carrying,
        )
        return hashlib.sha256(repr(state).encode()).hexdigest()[:16]

    def target(self) -> Target | None:
        """The mission's object, relative to the agent (``None`` while it is carried)."""
        for at, obj in self.objects.items():
            if obj == self.goal:
                return (describe_thing(*obj), *self._relative(at))
        return None
