"""``teach teachable plot-thresholds``: how U and L are distributed, and where the thresholds cut.

Writes ``hist_U.png``, ``hist_L.png``, ``scatter_U_L.png`` (each point a snapshot, coloured by
quadrant, the thresholds drawn) and ``quantiles.json``::

    {"n": 300, "U": {"0.1": ..., "0.5": ...}, "L": {...}, "thresholds": {"U": ..., "L": ...},
     "quadrants": {"Q1_highU_highL": 71, ...}}

matplotlib (with the Agg backend) is imported when the plots are drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._files import TeachableError, read_json, read_rows, write_json
from ._quadrants import QUADRANTS, QUANTILES, assign_quadrant, counts, quantile

__all__ = ["PLOTS", "plot_thresholds", "save_figure"]

PLOTS = ("hist_U.png", "hist_L.png", "scatter_U_L.png")
_COLORS = dict(zip(QUADRANTS, ("tab:red", "tab:orange", "tab:grey", "tab:blue"), strict=True))


def save_figure(figure: Any, target: Path) -> None:
    """Save a figure beside ``target`` and rename it into place."""
    tmp = target.with_name(f".{target.name}.tmp")
    figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    tmp.replace(target)


def _pick(given: float | None, used: Any, values: list[float]) -> float:
    if given is not None:
        return given
    return float(used) if isinstance(used, (int, float)) else quantile(values, 0.5)


def plot_thresholds(
    labeled: Path,
    output: Path,
    *,
    u_threshold: float | None = None,
    l_threshold: float | None = None,
) -> dict[str, Any]:
    """Draw the plots and write ``quantiles.json`` into ``output``; return the JSON.

    The thresholds are the given ones, else those labeling assigned the quadrants with
    (``label_summary.json`` beside ``labeled``), else the medians.

    Raises:
        TeachableError: the file has no row with both U and a leverage.
    """
    rows = []
    for where, row in read_rows(labeled, what="labeled snapshots"):
        if not isinstance(row.get("U"), (int, float)):
            raise TeachableError(f"{where}: field 'U' must be a number")
        rows.append(row)
    pairs = [(r["U"], r["leverage"]["L_local"]) for r in rows if r.get("leverage")]
    if not pairs:
        raise TeachableError(f"{labeled}: no snapshot has a leverage (labeled --skip-leverage?)")
    us, ls = [p[0] for p in pairs], [p[1] for p in pairs]
    summary = labeled.parent / "label_summary.json"
    used = read_json(summary).get("thresholds", {}) if summary.exists() else {}
    t_u = _pick(u_threshold, used.get("U"), us)
    t_l = _pick(l_threshold, used.get("L"), ls)
    quadrants = [assign_quadrant(u, v, t_u, t_l) for u, v in pairs]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output.mkdir(parents=True, exist_ok=True)
    for name, values, threshold, label in (
        ("hist_U.png", us, t_u, "U: entropy of the student's action distribution (nats)"),
        ("hist_L.png", ls, t_l, "L_local: success(expert action) - success(student action)"),
    ):
        figure, ax = plt.subplots(figsize=(6, 3.6))
        ax.hist(values, bins=min(30, max(5, len(set(values)))), color="tab:blue", alpha=0.8)
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3g}")
        ax.set_xlabel(label)
        ax.set_ylabel("snapshots")
        ax.legend()
        save_figure(figure, output / name)
        plt.close(figure)
    figure, ax = plt.subplots(figsize=(6, 5))
    for quadrant in QUADRANTS:
        points = [p for p, q in zip(pairs, quadrants, strict=True) if q == quadrant]
        if points:
            ax.scatter(
                [p[0] for p in points],
                [p[1] for p in points],
                s=14,
                alpha=0.7,
                color=_COLORS[quadrant],
                label=f"{quadrant} ({len(points)})",
            )
    ax.axvline(t_u, color="black", linestyle="--", linewidth=1)
    ax.axhline(t_l, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("U (nats)")
    ax.set_ylabel("L_local")
    ax.legend(fontsize=8)
    save_figure(figure, output / "scatter_U_L.png")
    plt.close(figure)
    data = {
        "n": len(pairs),
        "U": {f"{q:g}": quantile(us, q) for q in QUANTILES},
        "L": {f"{q:g}": quantile(ls, q) for q in QUANTILES},
        "thresholds": {"U": t_u, "L": t_l},
        "quadrants": counts([{"quadrant": q} for q in quadrants]),
    }
    write_json(output / "quantiles.json", data)
    return data
