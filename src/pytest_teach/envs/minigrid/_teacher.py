"""The offline teacher for the gridworld family: the expert's action and a short hint.

Registered as the ``minigrid`` oracle of :mod:`pytest_teach.teacher` when this module is
imported (the teacher imports it on first use). The scenario passes the :class:`World` as the
``context``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._render import relative_position
from ._world import World

__all__ = ["hint_for", "hint_text"]

_GUIDANCE = {
    "left": "Turn to face the way that leads there before you move.",
    "right": "Turn to face the way that leads there before you move.",
    "forward": "The way ahead brings you closer.",
    "pickup": "What you need is right in front of you: take it.",
    "drop": "Put down what you carry first; it is in the way of the mission.",
    "toggle": "The door in front of you has to be opened.",
    "done": "The mission is complete.",
}


def hint_for(world: World, action: str | None) -> str:
    """One or two sentences that point towards ``action`` without naming it: where the
    mission's object is, and what kind of move helps."""
    return hint_text(world.target(), action)


def hint_text(target: tuple[str, int, int] | None, action: str | None) -> str:
    """:func:`hint_for` from what it reads of the world: the mission's object as ``(description,
    right, forward)`` (``None`` when unknown) and the action to point towards."""
    parts = []
    if target is not None:
        description, right, forward = target
        where = relative_position(right, forward)
        parts.append(
            f"{description[0].upper()}{description[1:]} is "
            + ("right in front of you." if (right, forward) == (0, 1) else f"{where} of you.")
        )
    if action is not None:
        parts.append(_GUIDANCE[action])
    return " ".join(parts) or "Look for the object the mission names."


def _oracle(
    world: World, observation: object, valid_actions: Sequence[object]
) -> tuple[str | None, str]:
    action = world.expert_action()
    return action, hint_for(world, action)


def _register() -> None:
    from ...teacher import register_oracle

    register_oracle("minigrid", _oracle)


_register()
