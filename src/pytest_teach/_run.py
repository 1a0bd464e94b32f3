"""The controller's view of a run: every episode from every worker, the A/B verdict, the report.

Registered only on the xdist controller (or the single process). It builds its results from the
teardown reports that every worker sends (``report.teach``), so nothing is merged on disk.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ._collector import episode_from_wire
from .redaction import redact, redact_url
from .store import Episode, Store, StoreError, is_url

DEFAULT_REPORT = "reports/teach-report.html"
_FLAGGED_SHOWN = 20


class RunResults:
    """Aggregates the run's episodes; prints the summary, the comparison, and writes the report."""

    def __init__(
        self,
        config: pytest.Config,
        *,
        db: Path | str | None,
        session_id: str,
        ab: tuple[str, str] | None,
        gate: bool,
        report_path: Path | None,
        scorer: Any = None,
    ) -> None:
        self.config = config
        self.scorer = scorer  # --intervention-predictor
        self.db = db
        self.session_id = session_id
        self.ab = ab
        self.gate = gate
        self.report_path = report_path
        self.episodes: list[Episode] = []
        self.images: dict[str, bytes] = {}
        self.comparison: Any = None
        self.report_written: Path | None = None
        self.report_error: str | None = None
        self.collector: Any = None  # the controller's Collector, for its write failures
        # read now, so a bad ini value is a usage error before the run, not after it
        self.thresholds: Any = self._thresholds() if ab is not None else None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":
            return
        wire = getattr(report, "teach", None)
        if wire:
            episode, images = episode_from_wire(wire)
            self.episodes.append(episode)
            self.images.update(images)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # first, so the store's session row records the exit status the gate decided
        if self.ab is not None:
            self.comparison = self._compare()
            if self.gate and int(exitstatus) in (0, 1):
                # the verdict is the exit status: scenario failures are data, not errors
                session.exitstatus = 0 if self.comparison.verdict == "APPROVE" else 1

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # written last, after the collector committed this session (the history includes it)
        if self.report_path is not None and self.report_written is None and not self.report_error:
            self._write_report()

    def _thresholds(self) -> Any:
        from .compare import Thresholds

        def number(key: str, default: float) -> float:
            raw = self.config.getini(key)
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise pytest.UsageError(f"ini {key} = {raw!r} is not a number") from None
            if not value >= 0 or value == float("inf"):
                raise pytest.UsageError(f"ini {key} = {raw!r} must be a finite number >= 0")
            return value

        return Thresholds(
            min_quality_ratio=number("teach_ab_min_quality_ratio", 0.95),
            max_latency_ratio=number("teach_ab_max_latency_ratio", 1.10),
            max_cost_ratio=number("teach_ab_max_cost_ratio", 1.20),
            latency_floor_ms=number("teach_ab_latency_floor_ms", 5.0),
        )

    def _compare(self) -> Any:
        from .compare import compare

        assert self.ab is not None
        spec_a, spec_b = self.ab
        return compare(
            [e for e in self.episodes if e.arm == "A"],
            [e for e in self.episodes if e.arm == "B"],
            baseline_name=spec_a,
            candidate_name=spec_b,
            thresholds=self.thresholds,
        )

    def _write_report(self) -> None:
        from .report import build_report, run_name, write_report

        history = None
        sessions: list[dict[str, Any]] = []
        store: Store | None = None
        if self.db is not None and (is_url(self.db) or Path(self.db).exists()):
            try:
                from .compare import history as history_of

                store = Store.open(self.db)
                history = history_of(store, "success_rate")
                sessions = [s for s in store.sessions() if s["id"] == self.session_id]
            except (StoreError, OSError) as exc:
                self.report_error = f"history unavailable ({exc})"

        def image(sha: str) -> bytes | None:
            if sha in self.images:
                return self.images[sha]
            if store is not None:
                try:
                    return store.read_artifact(sha)
                except (StoreError, OSError):
                    return None
            return None

        try:
            html = build_report(
                self.episodes,
                comparison=self.comparison,
                history=history,
                sessions=sessions,
                title=run_name(self.config.invocation_params.args),
                image=image,
            )
            self.report_written = write_report(self.report_path, html)
        except OSError as exc:
            self.report_error = f"could not write the report to {self.report_path}: {exc}"
        finally:
            if store is not None:
                store.close()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter = _Redacting(terminalreporter)
        if self.report_path is not None:
            self._write_report()  # the collector has committed the session by now
        counts = Counter(e.outcome for e in self.episodes)
        if self.db is not None:
            labeled = counts["success"] + counts["intervention"]
            parts = ", ".join(f"{counts[k]} {k}" for k in ("success", "intervention", "error"))
            share = f"{100 * counts['intervention'] / labeled:.1f}%" if labeled else "n/a"
            line = (
                f"pytest-teach: {len(self.episodes)} episodes recorded ({parts}); "
                f"interventions {share} -> {redact_url(str(self.db))}"
            )
            failures = getattr(self.collector, "write_failures", 0)
            if failures:
                line += f"; {failures} could not be written (see warnings)"
            terminalreporter.write_sep("-", "training data")
            terminalreporter.write_line(line)
        if self.scorer is not None:
            self._summarize_warnings(terminalreporter)
        if self.comparison is not None:
            from .compare import render_comparison

            terminalreporter.write_sep("-", "A/B comparison")
            for text in render_comparison(self.comparison).splitlines():
                terminalreporter.write_line(text)
            if self.gate:
                terminalreporter.write_line(
                    f"--ab-gate: exit status {0 if self.comparison.verdict == 'APPROVE' else 1}"
                )
        if self.report_written is not None:
            terminalreporter.write_line(f"pytest-teach report: {self.report_written}")
        if self.report_error:
            terminalreporter.write_line(f"pytest-teach report: {self.report_error}", red=True)

    def _summarize_warnings(self, terminalreporter: Any) -> None:
        from .predictor import summarize_warnings, warning_of

        scored = [w for w in map(warning_of, self.episodes) if w is not None]
        summary = summarize_warnings(scored)
        terminalreporter.write_sep("-", "early warning")
        terminalreporter.write_line(
            f"pytest-teach: intervention predictor {self.scorer.path} "
            f"(threshold {self.scorer.threshold:.3f}): " + "; ".join(summary.lines())
        )
        for note in [*self.scorer.notes, *filter(None, [self.scorer.problem])]:
            terminalreporter.write_line(f"  note: {note}", yellow=True)
        for w in summary.flagged[:_FLAGGED_SHOWN]:
            p = "-" if w.max_p is None else f"{w.max_p:.2f}"
            if w.failed:
                ending = f"failed at step {w.steps - 1}: lead time {w.lead} step(s)"
            else:
                ending = f"{w.outcome} (a false alarm)" if w.outcome == "success" else w.outcome
            terminalreporter.write_line(
                f"  WARNED {w.scenario} [{w.model or '-'}] at step {w.warned_at} "
                f"(p up to {p}); {ending}",
                red=w.failed,
            )
        hidden = len(summary.flagged) - _FLAGGED_SHOWN
        if hidden > 0:
            terminalreporter.write_line(f"  ... and {hidden} more (see the report)")


class _Redacting:
    """The terminal reporter, masking secrets in every line the summary writes through it."""

    def __init__(self, reporter: Any) -> None:
        self._reporter = reporter

    def write_line(self, line: str, **markup: Any) -> None:
        self._reporter.write_line(redact(str(line)), **markup)

    def write_sep(self, sep: str, title: str | None = None, **markup: Any) -> None:
        self._reporter.write_sep(sep, None if title is None else redact(title), **markup)


def report_path(config: pytest.Config) -> Path | None:
    """Where ``--teach-report`` writes, relative to the invocation directory; None when off.

    Checked before the run (:func:`pytest_teach.report.check_report_path`), so that no file of
    the user's is ever replaced: the path must end in ``.html``, and an existing file must be a
    report pytest-teach wrote.

    Raises:
        pytest.UsageError: a directory, a path not ending in ``.html``, or an existing file that
            is not a pytest-teach report (one line naming it).
    """
    value = config.getoption("teach_report")
    if value is None:
        return None
    from .report import ReportPathError, check_report_path

    try:
        return check_report_path(value)
    except ReportPathError as exc:
        reason = str(exc)
        if exc.kind == "suffix":  # the usual cause: a test path taken as the report's
            reason = (
                "the report path must end in .html. A test path right after --teach-report is "
                "read as the report's path: write --teach-report=PATH.html, or put "
                f"--teach-report after the test paths for {DEFAULT_REPORT}"
            )
        raise pytest.UsageError(f"--teach-report {value}: {reason}") from None
