"""The comparison as terminal text."""

from __future__ import annotations

from ._compare import Comparison, ModelSummary


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _row(s: ModelSummary, arm: str) -> list[str]:
    return [
        f"{arm} {s.model}",
        str(s.n),
        _fmt(None if s.success_rate is None else 100 * s.success_rate, ".1f"),
        _fmt(s.mean_reward, ".3f"),
        _fmt(s.mean_quality, ".2f"),
        _fmt(s.latency_p50, ".1f"),
        _fmt(s.latency_p95, ".1f"),
        _fmt(s.tokens, ".0f"),
        _fmt(s.mean_cost, ".4g"),
    ]


def render_comparison(c: Comparison) -> str:
    """The per-model table, the paired view and the verdict, as aligned text."""
    header = [
        "model",
        "n",
        "success%",
        "reward",
        "quality",
        "p50 ms",
        "p95 ms",
        "tokens",
        "cost $/ep",
    ]
    rows = [header, _row(c.baseline, "A"), _row(c.candidate, "B")]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    ci = (
        "-"
        if c.reward_diff_ci is None
        else f"{c.reward_diff:+.3f} [{c.reward_diff_ci[0]:+.3f}, {c.reward_diff_ci[1]:+.3f}]"
    )
    lines += [
        "",
        f"paired on {c.pairs} scenarios: B wins {c.wins}, loses {c.losses}, ties {c.ties}",
        f"McNemar exact p = {c.mcnemar_p:.4g} (only A passed {c.only_baseline_passed}, "
        f"only B passed {c.only_candidate_passed})",
        f"reward difference B - A, bootstrap 95% CI: {ci}",
        c.latency.describe(),
        c.cost.describe(),
        f"winner: {c.winner_text}",
        f"verdict for B ({c.candidate.model}): {c.verdict}",
    ]
    lines += [f"  - {reason}" for reason in c.reasons]
    return "\n".join(lines)
