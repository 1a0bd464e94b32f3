"""A reward with named, weighted components: what a scenario's check returns.

The same check grades a model in CI (the test asserts on it) and scores completions for GRPO
(``teach train grpo --suite``). Its reward is the weighted mean of its components::

    from pytest_teach import Reward

    reward = Reward.of(
        {"a11y": 0.9, "semantics": 1.0, "keyboard": 0.5, "length": 0.3},
        weights={"a11y": 0.4, "semantics": 0.3, "keyboard": 0.3, "length": 0},
    )
    reward.value          # (0.4 * 0.9 + 0.3 * 1.0 + 0.3 * 0.5) / 1.0 = 0.81
    episode.reward(reward)

A weight of 0 keeps a component as a logged metric that doesn't move the reward. Light: the
standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Reward", "RewardError"]


class RewardError(ValueError):
    """A component or weight is out of range; the message names it."""


def _number(value: Any, where: str) -> float:
    if type(value).__module__.startswith("numpy") and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RewardError(f"{where}: expected a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise RewardError(f"{where}: {value!r} is not a finite number")
    return number


@dataclass(frozen=True)
class Reward:
    """A reward in [0, 1] built from named components in [0, 1] and their weights.

    Build it with :meth:`of`. ``value`` is ``sum(w * c) / sum(w)`` over the components with a
    positive weight; components weighted 0 are reported (``components``) but don't count.
    """

    components: Mapping[str, float]
    weights: Mapping[str, float]
    value: float = field(init=False)

    def __post_init__(self) -> None:
        total = sum(self.weights.values())
        value = sum(self.weights[k] * self.components[k] for k in self.components) / total
        object.__setattr__(self, "value", round(min(1.0, max(0.0, value)), 6))

    @classmethod
    def of(
        cls, components: Mapping[str, float], weights: Mapping[str, float] | None = None
    ) -> Reward:
        """A reward from ``components`` (each in [0, 1]) and ``weights`` (each >= 0; a missing
        weight is 1).

        Raises:
            RewardError: no components, a component outside [0, 1] or not a number, a negative
                weight, a weight for an unknown component, or no positive weight.
        """
        if not components:
            raise RewardError("Reward.of(): give at least one component")
        clean: dict[str, float] = {}
        for name, value in components.items():
            if not isinstance(name, str) or not name:
                raise RewardError(f"Reward.of(): component names must be strings, got {name!r}")
            number = _number(value, f"reward component {name!r}")
            if not 0.0 <= number <= 1.0:
                raise RewardError(f"reward component {name!r} = {number} is outside [0, 1]")
            clean[name] = number
        given = dict(weights or {})
        unknown = sorted(set(given) - set(clean))
        if unknown:
            raise RewardError(f"reward weight for unknown component {unknown[0]!r}")
        resolved: dict[str, float] = {}
        for name in clean:
            weight = _number(given.get(name, 1.0), f"reward weight {name!r}")
            if weight < 0:
                raise RewardError(f"reward weight {name!r} = {weight} is negative")
            resolved[name] = weight
        if not any(w > 0 for w in resolved.values()):
            raise RewardError("reward weights are all 0: at least one component must count")
        return cls(components=clean, weights=resolved)

    @property
    def metrics(self) -> dict[str, float]:
        """The components weighted 0: logged, not scored."""
        return {k: v for k, v in self.components.items() if self.weights[k] == 0}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``value``, ``components`` and ``weights``."""
        return {
            "value": self.value,
            "components": dict(self.components),
            "weights": dict(self.weights),
        }

    def __float__(self) -> float:
        return self.value
