"""Compare a baseline model (A) with a candidate (B) on the same scenarios, and gate B."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..store import Episode
from ._stats import bootstrap_mean_diff_ci, mcnemar_exact, mean, percentile, sign_test

APPROVE = "APPROVE"
REJECT = "REJECT"
ALPHA = 0.05


@dataclass(frozen=True)
class Thresholds:
    """The gate's limits: ratios of the candidate's figure to the baseline's, and a latency floor.

    ``latency_floor_ms``: a latency difference smaller than this many milliseconds never counts,
    however large its ratio (sub-millisecond timings are noise, not a slowdown).
    """

    min_quality_ratio: float = 0.95
    max_latency_ratio: float = 1.10
    max_cost_ratio: float = 1.20
    latency_floor_ms: float = 5.0


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
    mean_cost: float | None  # per episode, over the episodes that reported ``cost_usd``
    errors: int = 0

    @property
    def quality_measure(self) -> float | None:
        """Mean quality when scored, else the success rate (the gate's quality figure)."""
        return self.mean_quality if self.mean_quality is not None else self.success_rate


@dataclass
class PairedFigure:
    """A lower-is-better figure (latency, cost) compared scenario by scenario.

    An arm's figure for a scenario is the mean over its episodes of that scenario, so an arm that
    ran a scenario more often (or ran fewer scenarios) weighs no differently. ``baseline`` and
    ``candidate`` summarize those per-scenario means over the scenarios both arms measured: their
    median for latency, their mean for cost. ``higher``/``lower`` count the scenarios where B's
    figure is above/below A's; ``p_value`` is the exact sign test of that split.

    ``direction`` is ``"higher"`` or ``"lower"`` (B's figure against A's) when the difference
    counts in the gate, else ``None`` with the reason in ``note``.
    """

    name: str
    unit: str
    pairs: int
    baseline: float | None
    candidate: float | None
    higher: int
    lower: int
    p_value: float
    tested: bool  # whether the difference must pass the sign test (and a floor) to count
    direction: str | None
    note: str

    @property
    def ratio(self) -> float | None:
        """B's figure over A's."""
        return _ratio(self.candidate, self.baseline)

    def value_text(self, value: float) -> str:
        """A value of this figure with its unit."""
        if self.unit == "$":
            return f"${value:.4f}" if value == 0 or abs(value) >= 0.001 else f"${value:.2e}"
        return f"{value:.1f} {self.unit}" if abs(value) >= 1 else f"{value:.3f} {self.unit}"

    def describe(self) -> str:
        """One line: both arms' figures, the split of the pairs, and whether it counts."""
        if self.baseline is None or self.candidate is None:
            return f"{self.name}: {self.note}"
        a, b = self.baseline, self.candidate
        head = f"{self.name}, paired on {self.pairs} scenarios: A {self.value_text(a)}, "
        if a == b:
            return head + f"B {self.value_text(b)} (no difference)"
        diff = ("+" if b > a else "-") + self.value_text(abs(b - a))
        ratio = self.ratio
        ratio_text = "" if ratio is None or math.isinf(ratio) else f", {ratio:.0%}"
        split = f"B higher in {self.higher}, lower in {self.lower}"
        if self.tested:
            split += f", sign test p = {self.p_value:.4g}"
        text = head + f"B {self.value_text(b)} ({diff}{ratio_text}; {split})"
        return text + (f"; not counted: {self.note}" if self.note else "")


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
    latency: PairedFigure
    cost: PairedFigure
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
        mean_cost=mean(costs),
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


def _per_scenario_means(episodes: Iterable[Episode], metric: str) -> dict[str, float]:
    """Each scenario's mean of ``metric`` over its scored episodes that reported it."""
    values: dict[str, list[float]] = defaultdict(list)
    for e in episodes:
        if e.label is not None and metric in e.metrics:
            values[e.scenario].append(float(e.metrics[metric]))
    return {scenario: sum(v) / len(v) for scenario, v in values.items()}


def paired_latency(
    baseline: Iterable[Episode], candidate: Iterable[Episode], *, floor_ms: float = 5.0
) -> PairedFigure:
    """Latency (``latency_ms``) paired by scenario: the p50 of each arm's per-scenario means.

    The difference counts only when the two p50s are at least ``floor_ms`` apart and the exact
    sign test on the per-scenario differences is significant at 5% in the same direction, so
    run-to-run noise is neither a regression nor an improvement.
    """
    a_by = _per_scenario_means(baseline, "latency_ms")
    b_by = _per_scenario_means(candidate, "latency_ms")
    shared = sorted(set(a_by) & set(b_by))
    higher, lower, p_value = sign_test([b_by[s] - a_by[s] for s in shared])
    a = percentile([a_by[s] for s in shared], 50)
    b = percentile([b_by[s] for s in shared], 50)
    direction: str | None = None
    if a is None or b is None:
        note = "no scenario reported latency_ms under both models"
    elif a == b:
        note = "no difference"
    elif abs(b - a) < floor_ms:
        note = f"under the {floor_ms:g} ms floor"
    elif p_value >= ALPHA:
        note = f"within run-to-run noise (sign test p >= {ALPHA:g})"
    elif (b > a) != (higher > lower):
        note = "the p50s and the per-scenario differences disagree"
    else:
        direction, note = ("higher" if b > a else "lower"), ""
    return PairedFigure(
        "latency p50", "ms", len(shared), a, b, higher, lower, p_value, True, direction, note
    )


def paired_cost(baseline: Iterable[Episode], candidate: Iterable[Episode]) -> PairedFigure:
    """Cost (``cost_usd``) per episode, paired by scenario: the mean of each arm's per-scenario
    means over the scenarios both arms reported a cost for.

    Cost is a per-episode mean, never a sum, so an arm that ran fewer episodes does not look
    cheaper.
    """
    a_by = _per_scenario_means(baseline, "cost_usd")
    b_by = _per_scenario_means(candidate, "cost_usd")
    shared = sorted(set(a_by) & set(b_by))
    higher, lower, p_value = sign_test([b_by[s] - a_by[s] for s in shared])
    a = mean([a_by[s] for s in shared])
    b = mean([b_by[s] for s in shared])
    direction: str | None = None
    if a is None or b is None:
        note = "no scenario reported cost_usd under both models"
    elif a == b:
        note = "no difference"
    else:
        direction, note = ("higher" if b > a else "lower"), ""
    return PairedFigure(
        "cost per episode", "$", len(shared), a, b, higher, lower, p_value, False, direction, note
    )


def compare(
    baseline: Sequence[Episode],
    candidate: Sequence[Episode],
    *,
    baseline_name: str = "A",
    candidate_name: str = "B",
    thresholds: Thresholds | None = None,
) -> Comparison:
    """Compare two sets of episodes paired by scenario.

    Outcomes and rewards pair the latest episode of each scenario; latency and cost pair each
    scenario's per-episode means (see :func:`paired_latency` and :func:`paired_cost`).

    The gate APPROVEs the candidate only if its quality is at least ``min_quality_ratio`` of the
    baseline's, its paired latency p50 is not significantly above ``max_latency_ratio`` of it (a
    difference under ``latency_floor_ms`` never counts), its paired cost per episode is under
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
    latency = paired_latency(baseline, candidate, floor_ms=limits.latency_floor_ms)
    l_ratio = latency.ratio
    if (
        latency.direction == "higher"
        and l_ratio is not None
        and l_ratio >= limits.max_latency_ratio
    ):
        assert latency.baseline is not None and latency.candidate is not None
        ok = False
        reasons.append(
            f"latency p50 {latency.value_text(latency.candidate)} is {l_ratio:.0%} of the "
            f"baseline's {latency.value_text(latency.baseline)} "
            f"(needs < {limits.max_latency_ratio:.0%}; slower in {latency.higher} of "
            f"{latency.pairs} paired scenarios, sign test p = {latency.p_value:.2g})"
        )
    cost = paired_cost(baseline, candidate)
    c_ratio = cost.ratio
    if cost.direction == "higher" and c_ratio is not None and c_ratio >= limits.max_cost_ratio:
        assert cost.baseline is not None and cost.candidate is not None
        ok = False
        reasons.append(
            f"cost {cost.value_text(cost.candidate)} per episode is {c_ratio:.0%} of the "
            f"baseline's {cost.value_text(cost.baseline)} (needs < {limits.max_cost_ratio:.0%}; "
            f"paired on {cost.pairs} scenarios)"
        )
    if regressions:
        ok = False
        shown = ", ".join(regressions[:10]) + (" ..." if len(regressions) > 10 else "")
        reasons.append(
            f"{len(regressions)} scenario(s) passed under the baseline but fail: {shown}"
        )
    improvements = _improvements(a_sum, b_sum, latency, cost)
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
        latency=latency,
        cost=cost,
        thresholds=limits,
    )


def _improvements(
    a: ModelSummary, b: ModelSummary, latency: PairedFigure, cost: PairedFigure
) -> list[str]:
    higher = (
        ("success rate", a.success_rate, b.success_rate),
        ("mean reward", a.mean_reward, b.mean_reward),
        ("quality", a.mean_quality, b.mean_quality),
    )
    better = [name for name, x, y in higher if x is not None and y is not None and y > x]
    # latency and cost count only as their paired figures say (floor, noise, per episode)
    better += [f.name.split()[0] for f in (latency, cost) if f.direction == "lower"]
    return better
