"""``noisy-P``: the scripted baselines that every bundled scenario family builds from its
oracle, with a mistake at probability ``P``."""

from __future__ import annotations

__all__ = ["NOISY_PREFIX", "noise_level"]

NOISY_PREFIX = "noisy-"


def noise_level(name: str) -> float | None:
    """``P`` of a scripted ``noisy-P`` name (``"noisy-0.3"`` → ``0.3``); ``None`` for a name
    that is not ``noisy-…``.

    Raises:
        ValueError: ``P`` is not a number in [0, 1]; the message names the spec and the value.
    """
    if not isinstance(name, str) or not name.startswith(NOISY_PREFIX):
        return None
    raw = name[len(NOISY_PREFIX) :]
    try:
        p = float(raw)
    except ValueError:
        p = float("nan")
    if not 0.0 <= p <= 1.0:
        raise ValueError(
            f"scripted:{name}: bad noise level {raw!r}; P must be a number in [0, 1] "
            "(for example scripted:noisy-0.3)"
        )
    return p
