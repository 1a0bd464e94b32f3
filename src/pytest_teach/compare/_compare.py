"""Compare a baseline model (A) with a candidate (B) on the same scenarios, and gate B."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..store import Episode
from ._stats import bootstrap_mean_diff_ci, mcnemar_exact, mean, percentile

APPROVE = "APPROVE"
REJECT = "REJECT"
ALPHA = 0.05


@dataclass(frozen=True)
class Thresholds:
    """The gate's limits, as ratios of the candidate's figure to the baseline's."""

    min_quality_ratio: float = 0.95
    max_latency_ratio: float = 1.10
    max_cost_ratio: float = 1.20


@dataclass
class ModelSummary:
    """One model's figures over its episodes."""

    model: str
    n: int
    success_rate: float | None
    mean_reward: float | None
    mean_quality: float | None
    latency_p50: float | None
    latency_p95: float | None
    tokens: float | None
    cost: float | None
    errors: int = 0

    @property
    def quality_measure(self) -> float | None:
        """Mean quality when scored, else the success rate (the gate's quality figure)."""
        return self.mean_quality if self.mean_quality is not None else self.success_rate


@dataclass
class Comparison:
    """Per-model figures, the paired view, the winner and the gate's verdict."""

    baseline: ModelSummary
    candidate: ModelSummary
    pairs: int
    wins: int  # scenarios where B's reward beat A's
    losses: int
    ties: int
    only_baseline_passed: int
    only_candidate_passed: int
    mcnemar_p: float
    reward_diff: float | None
    reward_diff_ci: tuple[float, float] | None
    winner: str | None
    verdict: str
    reasons: list[str]
    regressions: list[str]
    improvements: list[str]
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def winner_text(self) -> str:
        """The winner's model spec, or ``no significant difference``."""
        return self.winner or "no significant difference"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["winner_text"] = self.winner_text
        return data


def summarize(model: str, episodes: Sequence[Episode]) -> ModelSummary:
    """Figures for one model. Errors (infrastructure) are counted but not scored."""
    scored = [e for e in episodes if e.label is not None]
    latencies = [e.metrics["latency_ms"] for e in scored if "latency_ms" in e.metrics]
    tokens = [
        e.metrics.get("prompt_tokens", 0) + e.metrics.get("completion_tokens", 0)
        for e in scored
        if "prompt_tokens" in e.metrics or "completion_tokens" in e.metrics
    ]
    costs = [e.metrics["cost_usd"] for e in scored if "cost_usd" in e.metrics]
    return ModelSummary(
        model=model,
        n=len(scored),
        success_rate=mean([1.0 if e.label == 0 else 0.0 for e in scored]),
        mean_reward=mean([e.reward for e in scored if e.reward is not None]),
        mean_quality=mean([e.quality for e in scored if e.quality is not None]),
        latency_p50=percentile(latencies, 50),
        latency_p95=percentile(latencies, 95),
        tokens=mean(tokens),
        cost=sum(costs) if costs else None,
        errors=len(episodes) - len(scored),
    )


def _latest_by_scenario(episodes: Iterable[Episode]) -> dict[str, Episode]:
    latest: dict[str, Episode] = {}
    for e in episodes:
        if e.label is None:
            continue
        if e.scenario not in latest or e.created_at >= latest[e.scenario].created_at:
            latest[e.scenario] = e
    return latest


def _ratio(b: float | None, a: float | None) -> float | None:
    if a is None or b is None:
        return None
    if a == 0:
        return 1.0 if b == 0 else float("inf")
    return b / a


def compare(
    baseline: Sequence[Episode],
    candidate: Sequence[Episode],
    *,
    baseline_name: str = "A",
    candidate_name: str = "B",
    thresholds: Thresholds | None = None,
) -> Comparison:
    """Compare two sets of episodes paired by scenario (the latest episode of each).

    The gate APPROVEs the candidate only if its quality is at least ``min_quality_ratio`` of the
    baseline's, its latency (p50) is under ``max_latency_ratio`` of it, its cost under
    ``max_cost_ratio`` of it, no scenario that passed under the baseline fails under the
    candidate, and it improves at least one key metric.
    """
    limits = thresholds or Thresholds()
    a_sum = summarize(baseline_name, baseline)
    b_sum = summarize(candidate_name, candidate)
    a_by, b_by = _latest_by_scenario(baseline), _latest_by_scenario(candidate)
    shared = sorted(set(a_by) & set(b_by))
    wins = losses = ties = only_a = only_b = 0
    diffs: list[float] = []
    regressions: list[str] = []
    for scenario in shared:
        ea, eb = a_by[scenario], b_by[scenario]
        ra, rb = ea.reward or 0.0, eb.reward or 0.0
        diffs.append(rb - ra)
        if rb > ra:
            wins += 1
        elif rb < ra:
            losses += 1
        else:
            ties += 1
        if ea.label == 0 and eb.label == 1:
            only_a += 1
            regressions.append(scenario)
        elif ea.label == 1 and eb.label == 0:
            only_b += 1
    p_value = mcnemar_exact(only_a, only_b)
    ci = bootstrap_mean_diff_ci(diffs)
    diff = mean(diffs)
    winner: str | None = None
    if p_value < ALPHA and only_a != only_b:
        winner = candidate_name if only_b > only_a else baseline_name
    elif ci is not None and diff is not None and (ci[0] > 0 or ci[1] < 0):
        winner = candidate_name if diff > 0 else baseline_name

    reasons: list[str] = []
    ok = True
    if not shared:
        ok = False
        reasons.append("no scenario ran under both models")
    q_ratio = _ratio(b_sum.quality_measure, a_sum.quality_measure)
    what = "quality" if a_sum.mean_quality is not None else "quality (success rate)"
    if q_ratio is not None and q_ratio < limits.min_quality_ratio:
        ok = False
        reasons.append(
            f"{what} {b_sum.quality_measure:.3f} is {q_ratio:.0%} of the baseline's "
            f"{a_sum.quality_measure:.3f} (needs >= {limits.min_quality_ratio:.0%})"
        )
    l_ratio = _ratio(b_sum.latency_p50, a_sum.latency_p50)
    if l_ratio is not None and l_ratio >= limits.max_latency_ratio:
        ok = False
        reasons.append(
            f"latency p50 {b_sum.latency_p50:.1f} ms is {l_ratio:.0%} of the baseline's "
            f"{a_sum.latency_p50:.1f} ms (needs < {limits.max_latency_ratio:.0%})"
        )
    c_ratio = _ratio(b_sum.cost, a_sum.cost)
    if c_ratio is not None and c_ratio >= limits.max_cost_ratio and (b_sum.cost or 0) > 0:
        ok = False
        reasons.append(
            f"cost ${b_sum.cost:.4f} is {c_ratio:.0%} of the baseline's ${a_sum.cost:.4f} "
            f"(needs < {limits.max_cost_ratio:.0%})"
        )
    if regressions:
        ok = False
        shown = ", ".join(regressions[:10]) + (" ..." if len(regressions) > 10 else "")
        reasons.append(
            f"{len(regressions)} scenario(s) passed under the baseline but fail: {shown}"
        )
    improvements = _improvements(a_sum, b_sum)
    if not improvements:
        ok = False
        reasons.append("the candidate improves no key metric")
    if ok:
        reasons.append("improves " + ", ".join(improvements) + " with no regression")
    return Comparison(
        baseline=a_sum,
        candidate=b_sum,
        pairs=len(shared),
        wins=wins,
        losses=losses,
        ties=ties,
        only_baseline_passed=only_a,
        only_candidate_passed=only_b,
        mcnemar_p=p_value,
        reward_diff=diff,
        reward_diff_ci=ci,
        winner=winner,
        verdict=APPROVE if ok else REJECT,
        reasons=reasons,
        regressions=regressions,
        improvements=improvements,
        thresholds=limits,
    )


def _improvements(a: ModelSummary, b: ModelSummary) -> list[str]:
    better: list[str] = []
    higher = (
        ("success rate", a.success_rate, b.success_rate),
        ("mean reward", a.mean_reward, b.mean_reward),
        ("quality", a.mean_quality, b.mean_quality),
    )
    lower = (("latency", a.latency_p50, b.latency_p50), ("cost", a.cost, b.cost))
    better += [name for name, x, y in higher if x is not None and y is not None and y > x]
    better += [name for name, x, y in lower if x is not None and y is not None and y < x]
    return better
