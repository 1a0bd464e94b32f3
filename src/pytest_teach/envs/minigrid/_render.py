"""The text observation: what the agent sees, described from where it stands.

Both worlds (BabyAI and the mock) reduce their view to :class:`Seen` objects with egocentric
offsets (cells to the right, cells forward) and render them with :func:`render_observation`, so
a student sees one format whichever world it plays in::

    Mission: go to the red ball
    You carry: nothing
    You see:
    - a red ball 2 steps left and 1 forward
    - a closed yellow door 3 steps forward
    Ahead: 2 free steps, then a wall
    Last action: left
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Seen", "describe_thing", "relative_position", "render_observation"]


@dataclass(frozen=True)
class Seen:
    """One visible object: its kind (``ball``, ``key``, ``box``, ``door``, ``goal``...), colour,
    state (``open``/``closed``/``locked`` for doors, else empty), and where it is relative to
    the agent: ``right`` cells to the right (negative: left), ``forward`` cells ahead."""

    kind: str
    color: str
    right: int
    forward: int
    state: str = ""

    @property
    def distance(self) -> int:
        """Manhattan distance from the agent."""
        return abs(self.right) + abs(self.forward)


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def relative_position(right: int, forward: int) -> str:
    """``"2 steps left and 1 forward"``, ``"3 steps forward"``, ``"1 step right"``, ``"here"``."""
    side = "left" if right < 0 else "right"
    if right and forward:
        return (
            f"{_steps(abs(right))} {side} and {abs(forward)} {'forward' if forward > 0 else 'back'}"
        )
    if right:
        return f"{_steps(abs(right))} {side}"
    if forward:
        return f"{_steps(abs(forward))} {'forward' if forward > 0 else 'back'}"
    return "here"


def describe_thing(kind: str, color: str, state: str = "") -> str:
    """``"a red ball"``, ``"a locked yellow door"``, ``"the goal"``."""
    if kind == "goal":
        return "the goal"
    words = " ".join(w for w in (state, color, kind) if w)
    return f"an {words}" if words[:1] in "aeiou" else f"a {words}"


def render_observation(
    mission: str,
    seen: list[Seen],
    carrying: tuple[str, str] | None,
    ahead: tuple[int, str],
    last_action: str | None,
) -> str:
    """The observation text: the mission, what is carried, the visible objects nearest first,
    the free cells ahead and what stops them, and the last action taken.

    ``carrying`` is ``(kind, color)`` or ``None``; ``ahead`` is ``(free cells, what blocks)``
    where what blocks is a description (``"a wall"``) or ``""`` when the view ends first.
    """
    lines = [f"Mission: {mission}"]
    lines.append(f"You carry: {describe_thing(*carrying) if carrying else 'nothing'}")
    ordered = sorted(seen, key=lambda s: (s.distance, s.forward, s.right, s.kind, s.color))
    if ordered:
        lines.append("You see:")
        lines += [
            f"- {describe_thing(s.kind, s.color, s.state)} {relative_position(s.right, s.forward)}"
            for s in ordered
        ]
    else:
        lines.append("You see: no objects")
    free, blocker = ahead
    if blocker:
        lines.append(
            f"Ahead: {blocker} right in front of you"
            if free == 0
            else f"Ahead: {_steps(free).replace('step', 'free step')}, then {blocker}"
        )
    else:
        lines.append(f"Ahead: {_steps(free).replace('step', 'free step')}")
    lines.append(f"Last action: {last_action or 'none'}")
    return "\n".join(lines)
