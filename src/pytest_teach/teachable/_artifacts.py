"""``teach teachable figures`` and ``teach teachable tables``: the experiment's figures and tables
from what the phases left in the results folder.

Figures (``figures/``, PNG), each drawn when its input exists:

==================================  ===========================================================
``quadrant_scatter.png``            U against L_local per snapshot, by quadrant, sized by ELP
``cpt_vs_utility.png``              the CPT score against micro-training's measured utility
``gain_by_quadrant_format.png``     task gain over the student per training quadrant and format
``transfer_heatmap.png``            training quadrant x held-out quadrant gain
``reliability_retention_frontier.png``  each trained model's reliability gain against retention
``selection_bars.png``              the selection methods' gains and retention, with 95% CIs
==================================  ===========================================================

Tables (``tables/``, CSV and Markdown): ``training_matrix``, ``selection``, ``cpt_correlation``
and ``hypotheses`` (the seed's four hypotheses, whether each held, and the figures behind it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._files import TeachableError, read_json, read_rows, write_csv
from ._label import LABELED
from ._quadrants import QUADRANTS

__all__ = ["FIGURES", "TABLES", "hypotheses", "load_results", "write_figures", "write_tables"]

FIGURES = (
    "quadrant_scatter.png",
    "cpt_vs_utility.png",
    "gain_by_quadrant_format.png",
    "transfer_heatmap.png",
    "reliability_retention_frontier.png",
    "selection_bars.png",
)
TABLES = ("training_matrix", "selection", "cpt_correlation", "hypotheses")

_COLORS = dict(zip(QUADRANTS, ("tab:red", "tab:orange", "tab:grey", "tab:blue"), strict=True))
_FORMAT_COLORS = {"demo": "tab:green", "hint": "tab:purple", "contrast": "tab:brown"}
#: The retention drop the seed hypothesises stays under.
RETENTION_DROP_TARGET = 0.10

Echo = Callable[[str], None]


def load_results(results: Path) -> dict[str, Any]:
    """Whatever the phases wrote, by name (missing files are absent)."""
    found: dict[str, Any] = {}
    for key, name in (
        ("micro", "micro_training_results.json"),
        ("correlation", "cpt_correlation.json"),
        ("matrix", "training_summary.json"),
        ("eval", "eval_summary.json"),
        ("selection", "selection_summary.json"),
    ):
        if (results / name).exists():
            found[key] = read_json(results / name)
    if (results / LABELED).exists():
        found["labeled"] = [r for _, r in read_rows(results / LABELED, what="labels")]
    if not found:
        raise TeachableError(
            f"{results}: none of the experiment's files are here; run teach teachable pilot "
            "--full, or the phases, with this results folder"
        )
    return found


def _short(quadrant: str | None) -> str:
    return (quadrant or "").split("_")[0]


# -- figures -------------------------------------------------------------------------------------


def _open(results: Path, output: Path | None, folder: str) -> tuple[dict[str, Any], Path]:
    """What the phases wrote, and the output folder (``results/folder`` by default), made."""
    data = load_results(results)
    out = output or results / folder
    out.mkdir(parents=True, exist_ok=True)
    return data, out


def write_figures(results: Path, output: Path | None = None) -> list[Path]:
    """Draw every figure whose input is in ``results``; return the files written.

    Raises:
        TeachableError: nothing of the experiment in ``results``.
    """
    data, out = _open(results, output, "figures")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._plots import save_figure

    drawn = []
    for name, draw, needs in (
        ("quadrant_scatter.png", _quadrant_scatter, "labeled"),
        ("cpt_vs_utility.png", _cpt_vs_utility, "micro"),
        ("gain_by_quadrant_format.png", _gain_bars, "eval"),
        ("transfer_heatmap.png", _transfer_heatmap, "eval"),
        ("reliability_retention_frontier.png", _frontier, "eval"),
        ("selection_bars.png", _selection_bars, "selection"),
    ):
        if needs not in data:
            continue
        figure = draw(plt, data)
        save_figure(figure, out / name)
        plt.close(figure)
        drawn.append(out / name)
    return drawn


def _quadrant_scatter(plt: Any, data: dict[str, Any]) -> Any:
    rows = data["labeled"]
    figure, ax = plt.subplots(figsize=(6.4, 5))
    for q in QUADRANTS:
        points = [r for r in rows if r.get("quadrant") == q]
        if points:
            ax.scatter(
                [r["U"] for r in points],
                [r["leverage"]["L_local"] for r in points],
                s=[12 + 120 * r["cpt"]["ELP_net"] for r in points],
                color=_COLORS[q],
                alpha=0.6,
                label=f"{q} ({len(points)})",
            )
    ax.set_xlabel("U: entropy of the student's action distribution (nats)")
    ax.set_ylabel("L_local: leverage of the expert's action")
    ax.set_title(f"Failure snapshots by quadrant (n={len(rows)}); marker size = ELP_net")
    ax.legend(fontsize=8)
    return figure


def _cpt_vs_utility(plt: Any, data: dict[str, Any]) -> Any:
    rows = data["micro"]["snapshots"]
    rho = (data.get("correlation") or {}).get("rho")
    figure, ax = plt.subplots(figsize=(6.4, 4.6))
    for q in QUADRANTS:
        points = [r for r in rows if r["quadrant"] == q]
        if points:
            ax.scatter(
                [r["ELP_net"] for r in points],
                [r["utility"] for r in points],
                color=_COLORS[q],
                alpha=0.7,
                label=f"{q} ({len(points)})",
            )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("CPT score (ELP_net)")
    ax.set_ylabel("measured utility (success after - before)")
    shown = "undefined" if rho is None else f"{rho:.2f}"
    ax.set_title(f"CPT score against micro-training utility (Spearman rho = {shown})")
    ax.legend(fontsize=8)
    return figure


def _models(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [m for m in data["eval"]["models"] if m["kind"] == kind]


def _gain_bars(plt: Any, data: dict[str, Any]) -> Any:
    import numpy as np

    from ._supervision import FORMATS

    runs = _models(data, "quadrant")
    figure, ax = plt.subplots(figsize=(7.6, 4.8))
    x = np.arange(len(QUADRANTS))
    width = 0.26
    for j, fmt in enumerate(FORMATS):
        gains, lows, highs = [], [], []
        for q in QUADRANTS:
            m = next((r for r in runs if r["quadrant"] == q and r["format"] == fmt), None)
            gain = m["gain"] if m and m["gain"] is not None else np.nan
            ci = (m or {}).get("gain_ci95") or [gain, gain]
            gains.append(gain)
            lows.append(gain - ci[0])
            highs.append(ci[1] - gain)
        ax.bar(
            x + (j - 1) * width,
            gains,
            width,
            yerr=[lows, highs],
            capsize=3,
            color=_FORMAT_COLORS[fmt],
            label=fmt,
        )
    for m, style in zip(_models(data, "baseline"), ("--", ":"), strict=False):
        if m["gain"] is not None:
            ax.axhline(m["gain"], color="black", linestyle=style, label=f"{m['run']} (demo)")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, [_short(q) for q in QUADRANTS])
    ax.set_xlabel("training quadrant")
    ax.set_ylabel("task success gain over the student")
    ax.set_title("Gain per training quadrant and supervision format (95% CI over tasks)")
    ax.legend(fontsize=8, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    return figure


def _transfer_heatmap(plt: Any, data: dict[str, Any]) -> Any:
    import numpy as np

    rows = [r for r in data["eval"]["transfer"] if r["format"] == "mean"]
    rows += [r for r in data["eval"]["transfer"] if r["train"] in ("all_failures", "random")]
    grid = np.array([[np.nan if r[q] is None else r[q] for q in QUADRANTS] for r in rows])
    figure, ax = plt.subplots(figsize=(6.6, 1.2 + 0.6 * max(1, len(rows))))
    bound = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    image = ax.imshow(grid, cmap="RdBu", vmin=-bound or -1, vmax=bound or 1, aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            text = "n/a" if np.isnan(grid[i, j]) else f"{grid[i, j]:+.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(QUADRANTS)), [_short(q) for q in QUADRANTS])
    ax.set_yticks(range(len(rows)), [_short(r["train"]) or r["train"] for r in rows])
    ax.set_xlabel("held-out snapshots' quadrant")
    ax.set_ylabel("trained on")
    ax.set_title("Transfer: success gain from held-out failure snapshots")
    figure.colorbar(image, ax=ax, label="gain over the student")
    return figure


def _frontier(plt: Any, data: dict[str, Any]) -> Any:
    models = [m for m in data["eval"]["models"] if m["kind"] != "base"]
    points = [
        (m, m["retention"]["retention"], m["gain"])
        for m in models
        if m["retention"]["retention"] is not None and m["gain"] is not None
    ]
    figure, ax = plt.subplots(figsize=(6.8, 5))
    markers = {"demo": "o", "hint": "^", "contrast": "s"}
    for m, retention, gain in points:
        color = _COLORS.get(m["quadrant"], "black")
        ax.scatter(retention, gain, color=color, marker=markers.get(m["format"], "o"), s=50)
        ax.annotate(_short(m["quadrant"]) or m["run"], (retention, gain), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
    frontier, best = [], float("-inf")
    for _, retention, gain in sorted(points, key=lambda p: (-p[1], -p[2])):
        if gain > best:
            frontier.append((retention, gain))
            best = gain
    if frontier:
        ax.plot([p[0] for p in frontier], [p[1] for p in frontier], color="black", linewidth=1,
                marker="o", markersize=11, markerfacecolor="none", label="frontier")  # fmt: skip
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axvline(1 - RETENTION_DROP_TARGET, color="grey", linestyle="--", linewidth=0.8,
               label=f"{RETENTION_DROP_TARGET:.0%} retention drop")  # fmt: skip
    for fmt, marker in markers.items():
        ax.scatter([], [], color="black", marker=marker, label=fmt)
    ax.set_xlabel("retention: share of the student's solved tasks still solved")
    ax.set_ylabel("reliability gain: task success over the student")
    ax.set_title("Reliability-retention frontier of the trained models")
    ax.legend(fontsize=8)
    return figure


def _selection_bars(plt: Any, data: dict[str, Any]) -> Any:
    from ._select import METHODS

    selection = data["selection"]
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    for ax, key, label in zip(
        axes,
        ("reliability_gain", "snapshot_gain", "retention"),
        ("reliability gain (tasks)", "gain on held-out failure snapshots", "retention"),
        strict=True,
    ):
        means, errors = [], [[], []]
        for method in METHODS:
            stat = selection["methods"][method][key]
            mean = stat["mean"] if stat["mean"] is not None else 0.0
            ci = stat["ci95"] or [mean, mean]
            means.append(mean)
            errors[0].append(mean - ci[0])
            errors[1].append(ci[1] - mean)
        ax.bar(METHODS, means, yerr=errors, capsize=4, color="tab:blue", alpha=0.8)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(label, fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
    figure.suptitle(
        f"Selection at budget {selection['budget']}: mean over {selection['seeds']} seeds, "
        "95% t-intervals"
    )
    return figure


# -- tables --------------------------------------------------------------------------------------


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:+.3f}" if signed else f"{value:.3f}"
    return str(value)


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def _ci(stat: dict[str, Any] | None, signed: bool = True) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    ci = stat.get("ci95")
    tail = f" [{_fmt(ci[0], signed)}, {_fmt(ci[1], signed)}]" if ci else ""
    return _fmt(stat["mean"], signed) + tail


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _table(out: Path, name: str, header: list[str], rows: list[list[str]]) -> list[Path]:
    from ..export import atomic_write_text

    write_csv(out / f"{name}.csv", header, (dict(zip(header, r, strict=True)) for r in rows))
    atomic_write_text(out / f"{name}.md", _markdown(header, rows))
    return [out / f"{name}.csv", out / f"{name}.md"]


def write_tables(results: Path, output: Path | None = None) -> list[Path]:
    """Write every table whose input is in ``results``; return the files written.

    Raises:
        TeachableError: nothing of the experiment in ``results``.
    """
    data, out = _open(results, output, "tables")
    written: list[Path] = []
    if "eval" in data:
        trained = {r["run"]: r for r in (data.get("matrix") or {}).get("runs", [])}
        rows = []
        for m in data["eval"]["models"]:
            t = trained.get(m["run"], {})
            stuck = m["stuckness"]
            rows.append(
                [m["run"], m["kind"], m["quadrant"] or "-", m["format"] or "-",
                 _fmt(t.get("n_snapshots")), _fmt(t.get("steps")), _fmt(m["success_rate"]),
                 _ci({"mean": m["gain"], "ci95": m["gain_ci95"]}),
                 _fmt(m["snapshot_gain"], True),
                 _fmt(m["retention"]["retention"]),
                 f"{stuck['timeouts']}/{stuck['episodes']}", f"{stuck['loops']}/{stuck['episodes']}"]
            )  # fmt: skip
        written += _table(
            out,
            "training_matrix",
            ["run", "kind", "quadrant", "format", "snapshots", "steps", "task success",
             "gain [95% CI]", "held-out snapshot gain", "retention", "timeouts", "loops"],
            rows,
        )  # fmt: skip
    if "selection" in data:
        from ._select import METHODS

        sel = data["selection"]["methods"]
        written += _table(
            out,
            "selection",
            ["method", "reliability gain [95% CI]", "held-out snapshot gain [95% CI]",
             "retention [95% CI]", "mean ELP_net chosen"],
            [[m, _ci(sel[m]["reliability_gain"]), _ci(sel[m]["snapshot_gain"]),
              _ci(sel[m]["retention"], signed=False), _ci(sel[m]["mean_ELP_chosen"], False)]
             for m in METHODS],
        )  # fmt: skip
    if "correlation" in data:
        c = data["correlation"]
        q = c["q1_vs_q2"]
        written += _table(
            out,
            "cpt_correlation",
            ["n", "Spearman rho [95% CI]", "p", "Q1 utility", "Q2 utility", "Q1 - Q2"],
            [[_fmt(c["n"]), _ci({"mean": c["rho"], "ci95": c["ci95"]}), _p(c["p_value"]),
              _ci(q["Q1"]), _ci(q["Q2"]), _ci(q["difference"])]],
        )  # fmt: skip
    written += _table(out, "hypotheses", ["hypothesis", "held", "evidence"], hypotheses(data))
    return written


def _held(value: bool | None) -> str:
    return "undetermined" if value is None else ("yes" if value else "no")


def hypotheses(data: dict[str, Any]) -> list[list[str]]:
    """The seed's four hypotheses: ``[hypothesis, held, evidence]`` rows."""
    rows = []
    if "eval" in data:
        gains = data["eval"]["quadrant_gain"]
        known = {q: g["mean"] for q, g in gains.items() if g["mean"] is not None}
        held = None
        if QUADRANTS[0] in known and len(known) > 1:
            held = all(known[QUADRANTS[0]] > v for q, v in known.items() if q != QUADRANTS[0])
        evidence = "; ".join(f"{_short(q)} {_ci(gains[q])}" for q in QUADRANTS)
        rows.append(
            ["Q1 shows the biggest gain", _held(held), f"task gain by quadrant: {evidence}"]
        )
    else:
        rows.append(["Q1 shows the biggest gain", "undetermined", "no eval_summary.json"])
    if "selection" in data:
        sel = data["selection"]
        held = sel.get("predictor_gt_entropy_gt_random")
        evidence = "; ".join(
            f"{m} {_ci(sel['methods'][m]['reliability_gain'])}"
            for m in ("PREDICTOR", "ENTROPY", "RANDOM")
        )
        rows.append(
            [f"predictor > entropy > random at budget {sel['budget']}", _held(held),
             f"reliability gain: {evidence}"]
        )  # fmt: skip
    else:
        rows.append(["predictor > entropy > random", "undetermined", "no selection_summary.json"])
    if "eval" in data:
        drops = [
            1 - m["retention"]["retention"]
            for m in data["eval"]["models"]
            if m["kind"] != "base" and m["retention"]["retention"] is not None
        ]
        mean = sum(drops) / len(drops) if drops else None
        rows.append(
            ["retention drop under 10%", _held(None if mean is None else mean < RETENTION_DROP_TARGET),
             f"mean drop {_fmt(mean)} over {len(drops)} trained models (worst {_fmt(max(drops, default=None))})"]
        )  # fmt: skip
    else:
        rows.append(["retention drop under 10%", "undetermined", "no eval_summary.json"])
    if "correlation" in data:
        c = data["correlation"]
        held = None if c["rho"] is None else c["rho"] >= c["target"]
        rows.append(
            [f"Spearman(CPT, utility) >= {c['target']}", _held(held),
             f"rho {_ci({'mean': c['rho'], 'ci95': c['ci95']})}, n {c['n']}"]
        )  # fmt: skip
    else:
        rows.append(["Spearman(CPT, utility) >= 0.3", "undetermined", "no cpt_correlation.json"])
    return rows
