"""The HTML report: one self-contained file (inline CSS, SVG, a small script, data: images).

Every value is rendered through jinja2 with autoescaping and a ``finalize`` hook that redacts
secrets, so agent output and page text always appear as text. The only markup not escaped is
what this package builds itself: the SVG charts (numbers and escaped labels), the image data URIs
(base64 of bytes whose type is checked by their magic numbers) and the static script.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..compare import pair_scenarios, summary_cells
from ..redaction import redact
from ._svg import Trusted, balance_bar, histogram, line_chart

if TYPE_CHECKING:
    from jinja2 import Template

    from ..compare import Comparison, History, ModelSummary
    from ..store import Episode

__all__ = ["BALANCE_BAND", "build_report", "write_report"]

#: the share of interventions among labeled episodes recommended for training a predictor
BALANCE_BAND = (0.60, 0.70)

_TEMPLATES = Path(__file__).parent / "templates"
_OUTCOMES = ("success", "intervention", "error")
_FAILURE_OUTCOMES = ("intervention", "error")
_ERROR_CHARS = 2000
_OBSERVATION_CHARS = 4000
_CELL_CHARS = 300
_REDACT_MARGIN = 2048  # past a cut: longer than any secret the patterns match in practice
_LAST_STEPS = 3
_MAX_SESSIONS = 50
_MAX_PAIRS = 500
#: a history chart needs this many points: fewer show no trend worth a chart
_MIN_HISTORY_POINTS = 3
_MAX_WARNING_ROWS = 500
_MAX_IMAGE_BYTES = 4 * 1024 * 1024
_IMAGE_BUDGET = 32 * 1024 * 1024
_BINS = 10
#: scenario rows shown at once (the rest are a click away): keeps layout fast with 10,000 rows
_PAGE_ROWS = 500

# Sorting and filtering of the scenario table. It only reads and writes textContent, dataset,
# style and hidden, and moves existing rows; it never builds markup from data.
_SCRIPT = """
"use strict";
(function () {
  var table = document.getElementById("scenarios");
  if (!table) { return; }
  var body = table.tBodies[0];
  var items = Array.prototype.map.call(body.rows, function (row, i) {
    return { row: row, i: i, text: null, key: null };
  });
  var box = document.getElementById("filter-text");
  var pick = document.getElementById("filter-outcome");
  var shown = document.getElementById("shown-count");
  var matching = document.getElementById("match-count");
  var more = document.getElementById("show-more");
  var all = document.getElementById("show-all");
  var page = Number(table.dataset.page) || 500;
  var limit = page;
  // Rows beyond the limit stay hidden: laying out 10,000 visible rows takes seconds.
  function apply() {
    var q = box.value.trim().toLowerCase();
    var want = pick.value;
    var matched = 0;
    var visible = 0;
    for (var k = 0; k < items.length; k++) {
      var it = items[k];
      var ok = !want || it.row.dataset.outcome === want;
      if (ok && q) {
        if (it.text === null) { it.text = it.row.textContent.toLowerCase(); }
        ok = it.text.indexOf(q) !== -1;
      }
      if (ok) { matched++; }
      var show = ok && matched <= limit;
      if (it.row.hidden === show) { it.row.hidden = !show; }
      if (show) { visible++; }
    }
    shown.textContent = String(visible);
    matching.textContent = String(matched);
    more.hidden = all.hidden = matched <= limit;
  }
  function refilter() { limit = page; apply(); }
  box.addEventListener("input", refilter);
  pick.addEventListener("change", refilter);
  more.addEventListener("click", function () { limit += page; apply(); });
  all.addEventListener("click", function () { limit = Infinity; apply(); });
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.style.cursor = "pointer";
    th.addEventListener("click", function () {
      var dir = th.dataset.sort === "asc" ? "desc" : "asc";
      Array.prototype.forEach.call(heads, function (h) { delete h.dataset.sort; });
      th.dataset.sort = dir;
      var num = th.dataset.type === "num";
      var sign = dir === "asc" ? 1 : -1;
      items.forEach(function (it) {
        var t = it.row.cells[col].textContent;
        it.key = num ? (t === "" ? NaN : Number(t)) : t.toLowerCase();
      });
      items.sort(function (a, b) {
        var x = a.key, y = b.key;
        if (num) {
          var nx = x !== x, ny = y !== y;
          if (nx || ny) { return nx === ny ? a.i - b.i : (nx ? 1 : -1); }
        }
        if (x < y) { return -sign; }
        if (x > y) { return sign; }
        return a.i - b.i;
      });
      var frag = document.createDocumentFragment();
      items.forEach(function (it) { frag.appendChild(it.row); });
      apply();
      body.appendChild(frag);
    });
  });
})();
"""
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode()
_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; base-uri 'none'; form-action 'none'"
)


# -- rendering -----------------------------------------------------------------------------------


def _finalize(value: Any) -> Any:
    """Applied to every ``{{ value }}`` before escaping: redact secrets in anything textual."""
    if type(value) is Trusted:  # built by this package from numbers and checked parts
        return value
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return redact(value if isinstance(value, str) else str(value))


@lru_cache(maxsize=1)
def _template() -> Template:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    return env.get_template("report.html.j2")


# -- formatting ----------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return format(value, spec)


def _clip(text: str, limit: int) -> str:
    """Redact, then cut to ``limit`` characters.

    Redacting first means a secret that straddles the cut is masked whole rather than shown in
    part; only a window a little past the cut is scanned, so huge page dumps stay cheap.
    """
    if len(text) <= limit:
        return redact(text)
    shown = redact(text[: limit + _REDACT_MARGIN])[:limit]
    return f"{shown}\n... [{len(text) - limit:,} more characters]"


def _as_text(value: Any) -> str:
    """A step's value as readable text: a string as it is, anything else as JSON, except a
    mapping that holds multi-line text (a browser observation's ARIA snapshot): that is shown as
    ``key: value`` lines with the text as an indented block, its newlines kept."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and any(isinstance(v, str) and "\n" in v for v in value.values()):
        return "\n".join(_field_text(str(key), item) for key, item in value.items())
    try:
        return json.dumps(value, ensure_ascii=False, indent=1, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _field_text(key: str, value: Any) -> str:
    if isinstance(value, str) and "\n" in value:
        body = "\n".join("  " + line for line in value.rstrip("\n").splitlines())
        return f"{key}:\n{body}"
    if not isinstance(value, str):
        try:
            value = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            value = repr(value)
    return f"{key}: {value}"


def _when(ts: Any) -> str:
    if not isinstance(ts, (int, float)) or not math.isfinite(ts):
        return ""
    try:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return ""


def _media_type(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class _Images:
    """Screenshot artifacts as data: URIs, each fetched once, within a total size budget."""

    def __init__(self, image: Callable[[str], bytes | None] | None) -> None:
        self.image = image
        self.cache: dict[str, Trusted | str] = {}
        self.used = 0

    def uri(self, sha: str | None) -> tuple[Trusted | None, str]:
        """(data URI, "") or (None, why it is not shown)."""
        if not sha or self.image is None:
            return None, ""
        if sha not in self.cache:
            self.cache[sha] = self._load(sha)
        got = self.cache[sha]
        return (got, "") if isinstance(got, Trusted) else (None, got)

    def _load(self, sha: str) -> Trusted | str:
        assert self.image is not None
        try:
            data = self.image(sha)
        except Exception as exc:  # a missing or unreadable artifact must not sink the report
            return f"screenshot unavailable ({type(exc).__name__})"
        if not data:
            return "screenshot unavailable"
        data = bytes(data)
        media = _media_type(data)
        if media is None:
            return "screenshot not shown (not a PNG, JPEG or WebP image)"
        if len(data) > _MAX_IMAGE_BYTES or self.used + len(data) > _IMAGE_BUDGET:
            return f"screenshot not shown ({len(data):,} bytes; over the report's size limit)"
        self.used += len(data)
        encoded = base64.b64encode(data).decode("ascii")
        return Trusted(f"data:{media};base64,{encoded}")


# -- sections ------------------------------------------------------------------------------------


def _summary(episodes: Sequence[Episode], sessions: Sequence[dict]) -> dict[str, Any]:
    outcomes = Counter(e.outcome for e in episodes)
    ordered = [(o, outcomes.get(o, 0)) for o in _OUTCOMES]
    ordered += sorted((o, n) for o, n in outcomes.items() if o not in _OUTCOMES)
    models = Counter(e.model or "(none)" for e in episodes)
    shown = list(sessions)[-_MAX_SESSIONS:]
    rows = []
    for s in shown:
        started, finished = s.get("started_at"), s.get("finished_at")
        duration = (
            _fmt(finished - started, ".1f")
            if isinstance(started, (int, float)) and isinstance(finished, (int, float))
            else ""
        )
        argv = s.get("argv")
        rows.append(
            {
                "id": str(s.get("id") or ""),
                "started": _when(started),
                "duration": duration,
                "commit": str(s.get("git_commit") or "")[:12],
                "version": str(s.get("version") or ""),
                "argv": _clip(" ".join(map(str, argv)) if isinstance(argv, list) else "", 200),
            }
        )
    return {
        "episodes": len(episodes),
        "outcomes": ordered,
        "models": models.most_common(),
        "sessions": rows,
        "sessions_total": len(sessions),
        "sessions_hidden": len(sessions) - len(shown),
    }


def _balance(episodes: Sequence[Episode]) -> dict[str, Any]:
    labeled = interventions = 0
    for e in episodes:
        if e.label == 1:
            interventions += 1
            labeled += 1
        elif e.label == 0:
            labeled += 1
    share = interventions / labeled if labeled else None
    low, high = BALANCE_BAND
    band = f"{low:.0%}\u2013{high:.0%}"
    if share is None:
        where, sentence = "none", "No labeled episodes yet, so the balance can't be judged."
    else:
        where = "below" if share < low else "above" if share > high else "in"
        verdict = {
            "below": f"below the {band} band: record more failing scenarios (or fewer passing "
            "ones) before training a predictor",
            "in": f"in the {band} band recommended for training a predictor",
            "above": f"above the {band} band: add passing scenarios before training a predictor",
        }[where]
        sentence = (
            f"Interventions are {share:.1%} of {labeled:,} labeled episodes "
            f"({interventions:,} interventions): {verdict}."
        )
    return {
        "share": _fmt(None if share is None else 100 * share, ".1f"),
        "where": where,
        "sentence": sentence,
        "labeled": labeled,
        "interventions": interventions,
        "svg": balance_bar(share, low=low, high=high),
    }


def _model_row(arm: str, s: ModelSummary) -> list[str]:
    return [arm, s.model, *summary_cells(s, missing=""), str(s.errors)]


def _sides(episodes: Sequence[Episode], c: Comparison) -> tuple[list[Episode], list[Episode]]:
    """The episodes of each side: by arm in an ``--ab`` run, else by the compared models."""
    a = [e for e in episodes if e.arm == "A"]
    b = [e for e in episodes if e.arm == "B"]
    if a or b:
        return a, b
    a = [e for e in episodes if e.model == c.baseline.model]
    b = [e for e in episodes if e.model == c.candidate.model]
    return a, b


def _pair_rows(episodes: Sequence[Episode], c: Comparison) -> list[dict[str, str]]:
    rows = []
    for pair in pair_scenarios(*_sides(episodes, c)):
        ea, eb = pair.a, pair.b
        rows.append(
            {
                "scenario": pair.scenario,
                "status": pair.status,
                "a_outcome": ea.outcome if ea else "",
                "a_reward": _fmt(ea.reward if ea else None, ".3f"),
                "b_outcome": eb.outcome if eb else "",
                "b_reward": _fmt(eb.reward if eb else None, ".3f"),
                "diff": _fmt(pair.diff, "+.3f"),
                "reason": _clip((eb.label_reason or "") if eb else "", _CELL_CHARS),
            }
        )
    return rows


def _comparison(episodes: Sequence[Episode], c: Comparison | None) -> dict[str, Any] | None:
    if c is None:
        return None
    ci = c.reward_diff_ci
    diff = _fmt(c.reward_diff, "+.3f")
    pairs = _pair_rows(episodes, c)
    return {
        "rows": [_model_row("A", c.baseline), _model_row("B", c.candidate)],
        "a_model": c.baseline.model,
        "pairs": c.pairs,
        "wins": c.wins,
        "losses": c.losses,
        "ties": c.ties,
        "only_a": c.only_baseline_passed,
        "only_b": c.only_candidate_passed,
        "mcnemar_p": _fmt(c.mcnemar_p, ".4g"),
        "reward_diff": diff or "-",
        "reward_ci": "" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]",
        "figures": [c.latency.describe(), c.cost.describe()],
        "winner": c.winner_text,
        "verdict": "APPROVE" if c.verdict == "APPROVE" else "REJECT",
        "candidate": c.candidate.model,
        "reasons": list(c.reasons),
        "regressions": len(c.regressions),
        "improvements": list(c.improvements),
        "scenario_pairs": pairs[:_MAX_PAIRS],
        "scenario_pairs_hidden": max(len(pairs) - _MAX_PAIRS, 0),
    }


def _rows(episodes: Sequence[Episode]) -> list[tuple[str, ...]]:
    rows = []
    append = rows.append
    for e in episodes:
        metrics = e.metrics
        latency = metrics.get("latency_ms") if metrics else None
        reason = e.label_reason or ""
        append(
            (
                e.scenario,
                e.category or "",
                e.model or "",
                e.outcome,
                e.outcome if e.outcome in _OUTCOMES else "other",
                "" if e.reward is None else f"{e.reward:.3f}",
                "" if e.quality is None else f"{e.quality:.2f}",
                "" if latency is None else f"{latency:.1f}",
                reason if len(reason) <= _CELL_CHARS else _clip(reason, _CELL_CHARS),
            )
        )
    return rows


def _distributions(episodes: Sequence[Episode]) -> list[dict[str, Any]]:
    by_model: dict[str, list[float]] = defaultdict(list)
    for e in episodes:
        if e.reward is not None and math.isfinite(e.reward):
            by_model[e.model or "(none)"].append(e.reward)
    everything = [r for rewards in by_model.values() for r in rewards]
    if not everything:
        return []
    lo, hi = min(everything), max(everything)
    if lo >= 0 and hi <= 1:
        lo, hi = 0.0, 1.0
    elif lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    width = (hi - lo) / _BINS
    charts = []
    for model in sorted(by_model):
        rewards = by_model[model]
        counts = [0] * _BINS
        for r in rewards:
            counts[min(max(int((r - lo) / width), 0), _BINS - 1)] += 1
        charts.append(
            {
                "model": model,
                "n": len(rewards),
                "mean": _fmt(sum(rewards) / len(rewards), ".3f"),
                "svg": histogram(counts, lo, hi, title=f"{model} (n={len(rewards):,})"),
            }
        )
    return charts


def _history(h: History | None) -> dict[str, Any] | None:
    if h is None or not any(h.series.values()):
        return None
    drops_by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in h.drops:
        drops_by_model[str(d.get("model"))].append(d)
    charts = []
    few = []
    for model, points in h.series.items():
        if not points:
            continue
        if len(points) < _MIN_HISTORY_POINTS:
            few.append(
                {"model": model, "points": len(points), "latest": _fmt(points[-1].value, ".4g")}
            )
            continue
        sessions = {d.get("session_id") for d in drops_by_model.get(model, [])}
        flagged = {i for i, p in enumerate(points) if p.session_id in sessions}
        slope = h.trends.get(model)
        if slope is None:
            trend = "not enough runs for a trend"
        else:
            better = (slope > 0) == h.higher_is_better
            word = "flat" if slope == 0 else "improving" if better else "worsening"
            trend = f"{slope:+.4g} per run ({word})"
        labelled = [(f"{p.session_id[:12]} {_when(p.started_at)}", p.value) for p in points]
        charts.append(
            {
                "model": model,
                "points": len(points),
                "latest": _fmt(points[-1].value, ".4g"),
                "trend": trend,
                "svg": line_chart(
                    labelled, title=f"{model}: {h.metric}", y_label=h.metric, flagged=flagged
                ),
            }
        )
    drops = [
        {
            "model": str(d.get("model")),
            "session": str(d.get("session_id") or "")[:12],
            "previous": _fmt(d.get("previous_mean"), ".4g"),
            "latest": _fmt(d.get("latest"), ".4g"),
            "change": _fmt(d.get("change"), "+.1%"),
        }
        for d in h.drops
    ]
    return {
        "metric": h.metric,
        "direction": "higher is better" if h.higher_is_better else "lower is better",
        "charts": charts,
        "few": few,
        "min_points": _MIN_HISTORY_POINTS,
        "drops": drops,
    }


def _early_warnings(episodes: Sequence[Episode]) -> dict[str, Any] | None:
    """The runs scored by ``--intervention-predictor``: which were warned, which failures were
    missed, and how many steps before the failure each warning came."""
    from ..predictor import summarize_warnings, warning_of

    scored = [w for w in map(warning_of, episodes) if w is not None]
    if not scored:
        return None
    summary = summarize_warnings(scored)
    listed = [w for w in scored if w.warned or w.failed]
    listed.sort(key=lambda w: (not w.failed, w.warned_at is None, w.scenario))
    rows = [
        {
            "scenario": w.scenario,
            "model": w.model or "",
            "outcome": w.outcome,
            "warned_at": "" if w.warned_at is None else str(w.warned_at),
            "p": _fmt(w.max_p, ".3f"),
            "failed_at": str(w.steps - 1) if w.failed else "",
            "lead": "" if w.lead is None else str(w.lead),
            "verdict": (
                ("warned" if w.warned else "missed")
                if w.failed
                else ("false alarm" if w.outcome == "success" else "warned")
            ),
        }
        for w in listed[:_MAX_WARNING_ROWS]
    ]
    thresholds = sorted({w.threshold for w in scored})
    return {
        "lines": summary.lines(),
        "median_lead": "" if summary.median_lead is None else f"{summary.median_lead:g}",
        "threshold": ", ".join(f"{t:.3f}" for t in thresholds),
        "rows": rows,
        "hidden": max(len(listed) - _MAX_WARNING_ROWS, 0),
    }


def _failures(
    episodes: Sequence[Episode], images: _Images, limit: int
) -> tuple[list[dict[str, Any]], int]:
    from ..predictor import warning_of

    shown: list[dict[str, Any]] = []
    total = 0
    for e in episodes:
        if e.outcome not in _FAILURE_OUTCOMES:
            continue
        total += 1
        if len(shown) >= limit:
            continue
        steps = []
        for s in e.steps[-_LAST_STEPS:]:
            uri, why = images.uri(s.screenshot)
            steps.append(
                {
                    "index": s.index,
                    "observation": _clip(_as_text(s.observation), _OBSERVATION_CHARS),
                    "action": _clip(_as_text(s.action), _OBSERVATION_CHARS),
                    "error": _clip(_as_text(s.error), _ERROR_CHARS),
                    "image": uri,
                    "image_note": why,
                    "p": _fmt(s.intervention_p, ".3f"),
                }
            )
        warning = warning_of(e)
        shown.append(
            {
                "warning": (
                    None
                    if warning is None or not warning.warned
                    else f"warned at step {warning.warned_at}"
                    + ("" if warning.lead is None else f", {warning.lead} step(s) before failing")
                ),
                "scenario": e.scenario,
                "model": e.model or "",
                "outcome": e.outcome,
                "id": e.id[:12],
                "nodeid": e.nodeid,
                "reason": _clip(e.label_reason or "", _ERROR_CHARS),
                "error": _clip(e.error or "", _ERROR_CHARS),
                "steps": steps,
                "steps_total": len(e.steps),
            }
        )
    return shown, total


# -- public API ----------------------------------------------------------------------------------


def build_report(
    episodes: Sequence[Episode],
    *,
    comparison: Comparison | None = None,
    history: History | None = None,
    sessions: Sequence[dict] = (),
    title: str = "pytest-teach report",
    image: Callable[[str], bytes | None] | None = None,
    max_failures: int = 200,
) -> str:
    """Return the report as one self-contained HTML document.

    Sections: run summary, dataset balance, A/B comparison (with ``comparison``), per-scenario
    table (sortable and filterable), reward distributions per model, history trend (with
    ``history``), early warnings (for runs scored by ``--intervention-predictor``: who was
    warned, at which step, and the lead time before the failure) and failure details (at most
    ``max_failures``; the rest are counted).
    ``image`` maps a screenshot's artifact sha256 to its PNG/JPEG/WebP bytes. The document uses
    inline CSS, inline SVG, a small inline script and data: URIs only, so it works offline.
    """
    episodes = list(episodes)
    failures, failures_total = _failures(episodes, _Images(image), max(int(max_failures), 0))
    context = {
        "title": title,
        "generated": _when(time.time()),
        "csp": _CSP,
        "script": Trusted(_SCRIPT),
        "summary": _summary(episodes, list(sessions)),
        "balance": _balance(episodes),
        "comparison": _comparison(episodes, comparison),
        "rows": _rows(episodes),
        "page_rows": max(int(_PAGE_ROWS), 1),
        "outcomes": _OUTCOMES,
        "distributions": _distributions(episodes),
        "history": _history(history),
        "warnings": _early_warnings(episodes),
        "failures": failures,
        "failures_total": failures_total,
        "failures_hidden": failures_total - len(failures),
    }
    return _template().render(context)


def write_report(path: str | os.PathLike[str], html: str) -> Path:
    """Write ``html`` to ``path`` atomically (a temp file in the same directory, then
    ``os.replace``), creating parent directories; return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target
