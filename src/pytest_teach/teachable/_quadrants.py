"""Quadrants of uncertainty U against leverage L, and the thresholds that split them.

A snapshot is *high U* when ``U > U_threshold`` and *high L* when ``L_local > L_threshold``
(strictly, so a leverage of exactly the threshold, often 0, is low). Auto thresholds are
quantiles of the labeled snapshots (the median unless told otherwise), written to
``quadrant_thresholds_auto.json``::

    {"U": 0.71, "L": 0.0, "quantile": 0.5, "n": 300, "source": "auto"}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "QUADRANTS",
    "QUANTILES",
    "assign_quadrant",
    "auto_thresholds",
    "counts",
    "quantile",
]

QUADRANTS: tuple[str, ...] = ("Q1_highU_highL", "Q2_highU_lowL", "Q3_lowU_lowL", "Q4_lowU_highL")

#: The quantiles ``quantiles.json`` reports.
QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.33, 0.5, 0.67, 0.75, 0.9)


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (linear interpolation, as numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    at = q * (len(ordered) - 1)
    lo, hi = math.floor(at), math.ceil(at)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (at - lo)


def assign_quadrant(u: float | None, leverage: float | None, t_u: float, t_l: float) -> str | None:
    """The quadrant of ``(U, L)``; ``None`` when either is missing."""
    if u is None or leverage is None:
        return None
    high_u, high_l = u > t_u, leverage > t_l
    if high_u:
        return QUADRANTS[0] if high_l else QUADRANTS[1]
    return QUADRANTS[3] if high_l else QUADRANTS[2]


def auto_thresholds(rows: Sequence[dict[str, Any]], q: float = 0.5) -> dict[str, Any]:
    """Thresholds at the ``q`` quantile of the rows' U and L (``None`` where no row has one)."""
    us = [r["U"] for r in rows if r.get("U") is not None]
    ls = [r["leverage"]["L_local"] for r in rows if r.get("leverage")]
    return {
        "U": quantile(us, q) if us else None,
        "L": quantile(ls, q) if ls else None,
        "quantile": q,
        "n": len(rows),
        "source": "auto",
    }


def counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Snapshots per quadrant (every quadrant listed, unassigned ones under ``none``)."""
    found = {name: 0 for name in QUADRANTS}
    for row in rows:
        key = row.get("quadrant") or "none"
        found[key] = found.get(key, 0) + 1
    return found
