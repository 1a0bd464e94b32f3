"""The phases' results as terminal text (``teach teachable ...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._select import METHODS

__all__ = [
    "render_correlation",
    "render_evaluation",
    "render_pilot",
    "render_regressor",
    "render_selection",
]


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_regressor(result: dict[str, Any]) -> str:
    """The teachability regressor's figures (:func:`train_teachability_regressor`'s result, or
    a pilot's ``predictor``): R² per target, quadrant accuracy, P@K and NDCG@K against entropy,
    and which seed targets were met."""
    t = result["targets"]
    lines = [
        f"R2 U {_num(t['U']['r2'])}   R2 L {_num(t.get('L', {}).get('r2'))}   "
        f"R2 ELP {_num(t.get('ELP', {}).get('r2'))}"
    ]
    if result["quadrant"]:
        q = result["quadrant"]
        lines.append(
            f"quadrant accuracy {_num(q['accuracy'])} (majority {_num(q['majority_baseline'])})"
        )
    if result["ranking"]:
        r = result["ranking"]
        for k in r["k"]:
            lines.append(
                f"K={k}: predictor P@K {_num(r['predictor'][f'P@{k}'])} "
                f"NDCG@K {_num(r['predictor'][f'NDCG@{k}'])}   entropy P@K "
                f"{_num(r['entropy'][f'P@{k}'])} NDCG@K {_num(r['entropy'][f'NDCG@{k}'])}"
            )
    met = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in result["met"].items())
    lines.append(f"seed targets met: {met}")
    return "\n".join(lines)


def render_correlation(c: dict[str, Any]) -> str:
    """:func:`micro_train`'s result in one line: Spearman's rho with its CI, the quadrants'
    mean utility, and whether the target was reached."""
    rho = "undefined (a side is constant)" if c["rho"] is None else f"{c['rho']:.3f}"
    ci = f" [{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}]" if c.get("ci95") else ""
    q = c["q1_vs_q2"]
    q1, q2 = q["Q1"]["mean"], q["Q2"]["mean"]
    quads = (
        f"; mean utility Q1 {q1:+.3f} vs Q2 {q2:+.3f}" if q1 is not None and q2 is not None else ""
    )
    verdict = "at least" if c["passed"] else "below"
    return (
        f"Spearman(ELP_net, utility) = {rho}{ci} over {c['n']} snapshots: {verdict} "
        f"{c['target']}{quads}"
    )


def render_evaluation(result: dict[str, Any], results: Path) -> str:
    """:func:`evaluate`'s models: success on the tasks, the gain over the student and the
    retention, then where the files are."""
    lines = []
    for m in result["models"]:
        gain = "" if m["kind"] == "base" else f"  gain {m['gain']:+.3f}"
        retention = m["retention"]["retention"]
        lines.append(
            f"  {m['run']:<28} tasks {m['success_rate']:.3f}{gain}"
            + ("" if retention is None else f"  retention {retention:.3f}")
        )
    lines.append(f"five CSVs and eval_summary.json -> {results}")
    return "\n".join(lines)


def render_selection(summary: dict[str, Any], results: Path) -> str:
    """:func:`run_selection`'s reliability gain per method with its 95% interval, then where
    the summary is."""
    lines = []
    for method in METHODS:
        stat = summary["methods"][method]["reliability_gain"]
        ci = f" [{stat['ci95'][0]:+.3f}, {stat['ci95'][1]:+.3f}]" if stat["ci95"] else ""
        lines.append(f"  {method:<10} reliability gain {stat['mean']:+.3f}{ci}")
    lines.append(f"selection_summary.json -> {results}")
    return "\n".join(lines)


def render_pilot(report: dict[str, Any], output: Path) -> str:
    """:func:`run_pilot`'s report: the regressor's figures, each hypothesis (with ``--full``)
    and the time of each phase."""
    lines = [render_regressor(report["predictor"])]
    if report["experiments"]:
        lines.extend(
            f"hypothesis: {claim}: {held}"
            for claim, held in report["experiments"]["hypotheses"].items()
        )
    times = ", ".join(f"{k} {v:.1f}s" for k, v in report["seconds"].items() if k != "total")
    lines.append(f"total {report['seconds']['total']:.1f}s ({times}); results in {output}")
    return "\n".join(lines)
