"""What does pytest-teach's browser layer cost per step, against the same steps written by hand?

One task (default ``shop-remove-blue-mug``, ten steps) runs on the bundled shop in the same
Chromium, alternating two variants, each in a fresh browser context:

- ``teach``: :func:`pytest_teach.envs.browser.run_task` with :class:`BrowserSession` and the
  oracle policy, recording into an enabled :class:`EpisodeRecorder` (snapshot, title and
  screenshot per step, refs resolved from the snapshot, step errors checked, the prompt built,
  the observation and screenshot converted for the store);
- ``raw``: the same page, the same steps, written with plain Playwright calls -- per step
  ``aria_snapshot(mode="ai")``, ``title()`` and ``screenshot()``, then the action through
  ``get_by_role`` and a wait for the load state -- and the same final state read.

Each variant's time per step is its run's wall time (from ``goto`` to the final state read)
divided by its steps; the figures are medians over the rounds and the acceptance figure is their
ratio, target <= 1.2. Both variants must end with the task's cart.

Usage::

    .venv/bin/python benchmarks/browser_step.py [--rounds 7] [--task ID] [--json PATH]

Exit status: 0 normally (whatever the ratio), 1 when a check fails (no Chromium, a variant that
did not reach the task's state).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from pytest_teach.envs import browser as br
from pytest_teach.envs.browser.fixtures import VIEWPORT
from pytest_teach.recorder import EpisodeRecorder

TARGET_RATIO = 1.2
STATE = "() => window.__teachState()"


def run_teach(
    launched: br.LaunchedBrowser, server: br.SiteServer, task: br.Task
) -> tuple[float, int, Any]:
    """One run through the framework: seconds, steps, final state."""
    page = launched.new_page(viewport=VIEWPORT)
    try:
        session = br.BrowserSession(page, base_url=server.origin)
        episode = EpisodeRecorder(enabled=True)
        started = time.perf_counter()
        result = br.run_task(session, task, br.OraclePolicy(task), episode, screenshots=True)
        elapsed = time.perf_counter() - started
        if not result.success:
            raise SystemExit(f"browser_step: the teach variant failed: {result.reason}")
        return elapsed, result.steps, page.evaluate(STATE)
    finally:
        page.context.close()


def _locator(page: Any, target: dict[str, Any]) -> Any:
    name = target["name"]
    if target.get("match") == "prefix":
        name = re.compile("^" + re.escape(name))
    scope = page
    within = target.get("within")
    if within:
        scope = page.get_by_role(within["role"], name=within["name"], exact=True)
    return scope.get_by_role(target["role"], name=name, exact=True)


def run_raw(
    launched: br.LaunchedBrowser, server: br.SiteServer, task: br.Task
) -> tuple[float, int, Any]:
    """The same steps with plain Playwright: seconds, steps, final state."""
    page = launched.new_page(viewport=VIEWPORT)
    try:
        started = time.perf_counter()
        page.goto(server.url(task.site, task.start), wait_until="load")
        steps = 0
        for step in task.plan:
            page.aria_snapshot(mode="ai")
            page.title()
            page.screenshot(type="png")
            steps += 1
            kind = step["type"]
            if kind == "done":
                break
            target = _locator(page, step["target"]) if "target" in step else None
            if kind == "click":
                target.click(timeout=2000)
                page.wait_for_load_state("load")
            elif kind == "fill":
                target.fill(step["text"], timeout=2000)
            elif kind == "select":
                target.select_option(step["value"], timeout=2000)
            elif kind == "press":
                target.press(step["key"], timeout=2000)
                page.wait_for_load_state("load")
        state = page.evaluate(STATE)
        return time.perf_counter() - started, steps, state
    finally:
        page.context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    parser.add_argument("--task", default="shop-remove-blue-mug", help="the task to run")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    task = br.TASKS_BY_ID.get(args.task)
    if task is None:
        print(f"browser_step: unknown task {args.task!r}", file=sys.stderr)
        return 1
    executable = br.find_chromium()
    if executable is None:
        print(f"browser_step: {br.NO_CHROMIUM}", file=sys.stderr)
        return 1

    per_step: dict[str, list[float]] = {"teach": [], "raw": []}
    failures: list[str] = []
    with br.SiteServer() as server, br.launch_browser(executable) as launched:
        run_teach(launched, server, task)  # warm up both paths (page cache, JIT)
        run_raw(launched, server, task)
        for round_no in range(args.rounds):
            order = ("teach", "raw") if round_no % 2 == 0 else ("raw", "teach")
            for variant in order:
                runner = run_teach if variant == "teach" else run_raw
                seconds, steps, state = runner(launched, server, task)
                passed, message = task.check(None, {**state, "answer": None})
                if not passed:
                    failures.append(f"{variant} round {round_no + 1}: {message}")
                per_step[variant].append(1000.0 * seconds / steps)

    teach = statistics.median(per_step["teach"])
    raw = statistics.median(per_step["raw"])
    ratio = teach / raw
    print(f"task {task.id} ({len(task.plan)} steps), {args.rounds} alternating rounds")
    print(f"  raw Playwright  {raw:7.1f} ms/step  (median)")
    print(f"  pytest-teach    {teach:7.1f} ms/step  (median)")
    verdict = "ok" if ratio <= TARGET_RATIO else "ABOVE TARGET"
    print(f"  overhead ratio  {ratio:7.3f}  (target <= {TARGET_RATIO}: {verdict})")
    for failure in failures:
        print(f"  FAILED: {failure}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "task": task.id,
                    "steps": len(task.plan),
                    "rounds": args.rounds,
                    "raw_ms_per_step": raw,
                    "teach_ms_per_step": teach,
                    "ratio": ratio,
                    "target_ratio": TARGET_RATIO,
                    "samples_ms_per_step": per_step,
                    "failures": failures,
                    "python": platform.python_version(),
                    "machine": platform.machine(),
                },
                indent=2,
            )
            + "\n"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
