"""Why an export came out empty: the filters, the store, or a scenario glob that missed."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from ..store import Store

#: How many scenario names an empty export suggests.
SUGGESTIONS = 3
#: The similarity (difflib's ratio) from which a scenario name counts as near a pattern.
_NEAR = 0.6


def closest_scenarios(pattern: str, names: Iterable[str], n: int = SUGGESTIONS) -> list[str]:
    """Up to ``n`` scenario names near ``pattern`` by whole name or by case id, nearest first.

    ``wether-*`` is near ``tool_selection[weather-001]`` through its case id ``weather-001``.
    Empty when no name is near.
    """
    bare = pattern.replace("*", "").replace("?", "")
    scored: dict[str, float] = {}
    for name in set(names):
        forms = [name]
        if "[" in name and name.endswith("]"):
            forms.append(name[name.index("[") + 1 : -1])
        score = max(difflib.SequenceMatcher(None, bare, form).ratio() for form in forms)
        if score >= _NEAR:
            scored[name] = score
    return sorted(scored, key=lambda name: (-scored[name], name))[:n]


def why_empty(store: Store, fmt: str, filters: dict[str, Any]) -> str:
    """One clause saying why ``filters`` gave no ``fmt`` rows from ``store``."""
    matched = store.count(**filters)
    if matched:
        return f"{matched} episode(s) match the filters but give no {fmt} rows"
    if not store.count():
        return f"the store {store.location} has no episodes"
    pattern = filters.get("scenario")
    if pattern and not store.count(scenario=pattern):
        names = list(store.stats()["by_scenario"])
        near = closest_scenarios(pattern, names)
        if near:
            return f"no scenario matches {pattern!r}; the nearest: {', '.join(near)}"
        return f"no scenario matches {pattern!r}; names look like {', '.join(names[:SUGGESTIONS])}"
    shown = ", ".join(
        f"{key}={','.join(map(str, value)) if isinstance(value, (list, tuple)) else value}"
        for key, value in filters.items()
        if key != "include_errors" and value is not None
    )
    return f"no episode matches the filters ({shown or 'errors left out'}); see `teach stats`"
