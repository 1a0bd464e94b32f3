"""Two sides of a comparison picked from the store: a session id (or a prefix) or a model spec."""

from __future__ import annotations

import re

from ..store import Episode, Store, StoreError
from ._compare import Comparison, Thresholds, compare

__all__ = ["compare_in_store", "resolve_side"]

_SESSION_PREFIX = re.compile(r"[0-9a-f]{4,16}")


def resolve_side(store: Store, ident: str, option: str = "--baseline") -> tuple[str, list[Episode]]:
    """The name and the scored episodes of ``ident``: a session id (a unique prefix works) that
    ran one model, else a model spec.

    Raises:
        StoreError: naming ``option``, when ``ident`` matches several sessions, a session that
            ran several models, or neither a session nor a model.
    """
    text = ident.strip()
    if _SESSION_PREFIX.fullmatch(text):
        sessions = [s["id"] for s in store.sessions() if s["id"].startswith(text)]
        if len(sessions) > 1:
            raise StoreError(f"{option} {ident!r} matches several sessions; give more characters")
        if sessions:
            episodes = list(store.episodes(session=sessions[0], include_errors=False))
            models = sorted({e.model or "none" for e in episodes})
            if len(models) > 1:
                raise StoreError(
                    f"{option} {ident!r}: session {sessions[0]} ran several models "
                    f"({', '.join(models)}); pass a model spec instead"
                )
            label = f"{models[0] if models else 'none'} @ {sessions[0]}"
            return label, episodes
    episodes = list(store.episodes(model=text, include_errors=False))
    if not episodes:
        known = sorted(store.stats()["by_model"])
        raise StoreError(
            f"{option} {ident!r} is neither a session id nor a model in {store.location} "
            f"(models: {', '.join(known) or 'none'}; sessions: see `teach history`)"
        )
    return text, episodes


def compare_in_store(
    store: Store,
    baseline: str,
    candidate: str,
    thresholds: Thresholds | None = None,
    *,
    options: tuple[str, str] = ("--baseline", "--candidate"),
) -> Comparison:
    """Compare ``candidate`` (B) with ``baseline`` (A), each a session id (prefix) or a model
    spec resolved by :func:`resolve_side` (its errors name ``options``), paired by scenario."""
    a_name, a_eps = resolve_side(store, baseline, options[0])
    b_name, b_eps = resolve_side(store, candidate, options[1])
    return compare(
        a_eps,
        b_eps,
        baseline_name=a_name,
        candidate_name=b_name,
        thresholds=thresholds or Thresholds(),
    )
