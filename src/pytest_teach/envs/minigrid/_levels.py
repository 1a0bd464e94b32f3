"""Which levels the family runs: BabyAI levels the bot solves, and the mock world's levels.

A level is named by its BabyAI id (``BabyAI-GoToLocal-v0``) or its short name (``GoToLocal``).
The expert is ``minigrid.utils.baby_ai_bot.BabyAIBot``, which plans for BabyAI missions only,
so MiniGrid levels without a BabyAI mission are refused, and so are the BabyAI levels its
authors list as beyond it. ``Mock*`` levels are the pure-Python world of :mod:`._mock`.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_LEVELS",
    "MOCK_LEVELS",
    "UNSOLVABLE",
    "LevelError",
    "is_mock",
    "resolve_level",
    "short_name",
]

#: The levels a run uses unless told otherwise (all solved by the bot on every seed tried).
DEFAULT_LEVELS: tuple[str, ...] = ("GoToLocal", "PickupLoc", "OpenDoor", "GoToObj")

#: The mock world's levels.
MOCK_LEVELS: tuple[str, ...] = ("MockGoTo", "MockPickup")

#: BabyAI levels the bot does not solve (from ``BabyAIBot``'s docstring).
UNSOLVABLE: frozenset[str] = frozenset(
    {
        "BabyAI-PutNextS5N2Carrying-v0",
        "BabyAI-PutNextS6N3Carrying-v0",
        "BabyAI-PutNextS7N4Carrying-v0",
        "BabyAI-KeyInBox-v0",
    }
)


class LevelError(ValueError):
    """A level the family can't run."""


def is_mock(level: str) -> bool:
    """Whether ``level`` names a mock-world level."""
    return level in MOCK_LEVELS


def short_name(level: str) -> str:
    """``BabyAI-GoToLocal-v0`` -> ``GoToLocal`` (other names unchanged)."""
    if level.startswith("BabyAI-") and "-v" in level:
        return level[len("BabyAI-") : level.rindex("-v")]
    return level


def resolve_level(level: str, *, mock: bool = False) -> str:
    """The canonical name of ``level``: a ``Mock*`` name, or a registered BabyAI id.

    With ``mock`` a BabyAI name maps onto the mock level of the same kind of mission
    (``PickupLoc`` -> ``MockPickup``, anything else -> ``MockGoTo``), so a suite can be smoke-run
    in the mock world unchanged.

    Raises:
        LevelError: an unknown level, a level without a BabyAI mission, or one the bot can't
            solve; the message says which and what to use instead.
    """
    name = (level or "").strip()
    if not name:
        raise LevelError("empty level name; use a BabyAI level such as GoToLocal")
    if is_mock(name):
        return name
    if mock:
        return "MockPickup" if "Pickup" in name else "MockGoTo"
    if name.startswith("Mock"):
        raise LevelError(f"unknown mock level {name!r}; mock levels: {', '.join(MOCK_LEVELS)}")
    import gymnasium
    import minigrid  # noqa: F401  (registers the MiniGrid and BabyAI ids)

    registry = gymnasium.registry
    candidates = [name] if name in registry else [f"BabyAI-{name}-v0", f"BabyAI-{name}-v1"]
    found = next((c for c in candidates if c in registry), None)
    if found is None:
        raise LevelError(
            f"unknown level {name!r}: not a registered BabyAI level "
            f"(e.g. {', '.join(DEFAULT_LEVELS)})"
        )
    if not found.startswith("BabyAI-"):
        raise LevelError(
            f"level {found!r} is not a BabyAI level: the expert (minigrid's BabyAIBot) plans "
            f"for BabyAI missions only; use one such as {', '.join(DEFAULT_LEVELS)}"
        )
    if found in UNSOLVABLE:
        raise LevelError(
            f"level {found!r} is one the BabyAI bot cannot solve, so it has no expert; "
            f"use one such as {', '.join(DEFAULT_LEVELS)}"
        )
    return found
