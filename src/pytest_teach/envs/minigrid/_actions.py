"""The gridworld's actions, named, and the strict parser for an agent's reply."""

from __future__ import annotations

__all__ = ["ACTIONS", "ActionParseError", "parse_action"]

#: The valid actions, in MiniGrid's order (``Actions.left`` is 0 ... ``Actions.done`` is 6).
ACTIONS: tuple[str, ...] = ("left", "right", "forward", "pickup", "drop", "toggle", "done")


class ActionParseError(ValueError):
    """A reply that is not exactly one action name."""


def parse_action(text: str) -> str:
    """The action a reply names. The reply must be one action name and nothing else
    (surrounding whitespace aside); anything else raises :class:`ActionParseError`."""
    if not isinstance(text, str):
        raise ActionParseError(f"expected text, got {type(text).__name__}")
    reply = text.strip()
    if reply in ACTIONS:
        return reply
    shown = reply if len(reply) <= 60 else reply[:57] + "..."
    raise ActionParseError(f"{shown!r} is not one of the actions {', '.join(ACTIONS)}")
