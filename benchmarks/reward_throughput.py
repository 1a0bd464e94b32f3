"""Rewards per second for the same scenario checks, four ways, side by side in one run.

For each family (``tool_selection``; ``stories``, which renders HTML in Chromium and runs
axe-core) one list of candidate completions is built: for every scenario taken, a correct reply,
a wrong one and an unparseable one. Each way scores them:

- (a) ``direct``: the family's check called as a function in this process (parse the reply,
  ``tool_selection.check`` / ``stories.check_story`` on a page opened once);
- (b) ``pool``: :class:`pytest_teach.rewards.RewardPool` over the bundled suite (the test itself
  runs for each candidate, with ``agent`` answering it), with 1 worker (the per-candidate
  overhead over (a), both single-threaded, alternated with (a) over ``--rounds`` rounds and
  compared by their medians) and with ``--workers`` workers (throughput);
- (b') ``ray``: :class:`pytest_teach.rewards.RayRewardPool` on a local Ray cluster, with 1 actor
  (alternated with a local pool of 1 worker over ``--rounds`` rounds, medians compared: Ray's
  overhead per candidate) and with ``--workers`` actors; skipped with a line where ray is not
  installed, or with ``--no-ray``;
- (c) ``pytest.main``: ``pytest.main([nodeid, "--model", "replay:FILE"])`` in this process per
  candidate, the reward being the exit status (what tools that call pytest in-process do);
- (d) ``subprocess``: ``python -m pytest nodeid --model replay:FILE`` per candidate.

(c) and (d) are slow, so they score the first ``--slow-candidates`` candidates; every figure is
a per-candidate time. The pool's start-up (collecting the suite, warming fixtures) is reported
apart, since it is paid once per training run. Printed: per-candidate milliseconds and rewards
per second of each way, (b)'s overhead over (a) in ms, and the speed-ups of (b) over (c) and (d).
Targets: (b) adds at most 5 ms per candidate over (a); (b) is at least 20x faster than (c);
(b') x1 adds at most 2 ms per candidate over (b) x1.

Usage::

    .venv/bin/python benchmarks/reward_throughput.py [--family tool_selection|stories|all]
        [--scenarios 40] [--slow-candidates 12] [--workers 2] [--rounds 5] [--no-ray]
        [--json PATH]

Exit status 0 (whatever the ratios), 1 when the ways disagree on a reward's pass/fail.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

OVERHEAD_TARGET_MS = 5.0
SPEEDUP_TARGET = 20.0
RAY_OVERHEAD_TARGET_MS = 2.0

Candidate = tuple[str, str]  # (nodeid, completion)


# ------------------------------------------------------------------------------------------------
# The families: candidates and the direct check
# ------------------------------------------------------------------------------------------------


def tool_selection_family(n: int) -> tuple[str, list[Candidate], Callable[[], Any]]:
    from pytest_teach.envs import tool_selection as ts

    suite = "scenarios/tool_selection"
    cases = ts.SCENARIOS[:n]
    candidates: list[Candidate] = []
    for case in cases:
        node = f"{suite}/test_tool_selection.py::test_tool_selection[{case.id}]"
        wrong = "web_search" if "web_search" not in case.expected else "weather_forecast"
        candidates += [
            (node, ts.format_plan(list(case.expected))),
            (node, ts.format_plan([wrong])),
            (node, "I would call some tools."),
        ]
    by_id = {c.id: c for c in cases}

    @contextlib.contextmanager
    def direct():
        def score(node: str, text: str) -> float:
            case = by_id[node.rsplit("[", 1)[1][:-1]]
            try:
                tools = ts.parse_plan(text.strip())
            except ts.PlanParseError:
                tools = []
            return ts.check(case, tools).to_reward().value

        yield score

    return suite, candidates, direct


def stories_family(n: int) -> tuple[str, list[Candidate], Callable[[], Any]]:
    from pytest_teach.envs import stories

    suite = "scenarios/stories"
    intents = stories.INTENTS[:n]
    accessible = stories.scripted_generator("accessible")
    soup = stories.scripted_generator("div-soup")
    nodes = _collect(suite)
    candidates: list[Candidate] = []
    for intent in intents:
        node = next(n for n in nodes if n.endswith(f"[{intent.id}]"))
        candidates += [
            (node, accessible.generate(intent).text),
            (node, soup.generate(intent).text),
            (node, "Here is a nice component for you."),
        ]
    by_id = {i.id: i for i in intents}

    @contextlib.contextmanager
    def direct():
        from pytest_teach.envs.browser import find_chromium, launch_browser
        from pytest_teach.envs.browser.fixtures import VIEWPORT

        executable = find_chromium()
        if executable is None:
            raise SystemExit("stories: no Chromium found (make setup installs Debian's chromium)")
        with launch_browser(executable) as launched:
            page = launched.new_page(viewport=VIEWPORT)

            def score(node: str, text: str) -> float:
                intent = by_id[node.rsplit("[", 1)[1][:-1]]
                try:
                    html = stories.parse_html(text)
                except stories.StoryParseError:
                    html = ""
                return stories.check_story(page, intent, html).reward.value

            yield score

    return suite, candidates, direct


FAMILIES = {"tool_selection": tool_selection_family, "stories": stories_family}


def _collect(suite: str) -> list[str]:
    from pytest_teach._util import run_pytest

    run = run_pytest([suite, "--collect-only", "-q", "-p", "no:randomly"], cwd=ROOT)
    return [line for line in run.output.splitlines() if "::" in line]


# ------------------------------------------------------------------------------------------------
# The four ways
# ------------------------------------------------------------------------------------------------


def run_direct_and_pool(
    suite: str, candidates: list[Candidate], make: Callable[[], Any], rounds: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(a) and (b) with one worker, alternated over ``rounds`` rounds (median per-candidate
    time of each), so both see the same machine: the difference is the pool's overhead."""
    from pytest_teach.rewards import RewardPool

    a_times: list[float] = []
    b_times: list[float] = []
    with make() as score, contextlib.ExitStack() as stack:
        score(*candidates[0])  # warm-up, as the pool's workers are warm
        started = time.perf_counter()
        pool = stack.enter_context(RewardPool([suite], workers=1, cwd=ROOT))
        pool.score([candidates[0]])  # warm-up: fixtures set up once
        startup = time.perf_counter() - started
        for _ in range(rounds):
            started = time.perf_counter()
            a_values = [score(node, text) for node, text in candidates]
            a_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            scores = pool.score(candidates)
            b_times.append(time.perf_counter() - started)
    a = {
        "seconds": statistics.median(a_times),
        "n": len(a_values),
        "values": a_values,
        "rounds": [round(t, 3) for t in a_times],
    }
    b = {
        "seconds": statistics.median(b_times),
        "n": len(scores),
        "values": [s.value for s in scores],
        "startup_s": round(startup, 3),
        "rounds": [round(t, 3) for t in b_times],
    }
    return a, b


def run_pool(suite: str, candidates: list[Candidate], workers: int) -> dict[str, Any]:
    from pytest_teach.rewards import RewardPool

    started = time.perf_counter()
    with RewardPool([suite], workers=workers, cwd=ROOT) as pool:
        pool.score([candidates[0]] * workers)  # warm-up: fixtures set up once
        startup = time.perf_counter() - started
        started = time.perf_counter()
        scores = pool.score(candidates)
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "n": len(scores),
        "values": [s.value for s in scores],
        "startup_s": round(startup, 3),
    }


def run_ray(
    suite: str, candidates: list[Candidate], workers: int, rounds: int
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(b') on a local Ray cluster started here: one actor alternated with a local pool of one
    worker over ``rounds`` rounds (the medians: Ray's overhead), then ``workers`` actors."""
    import logging

    import ray

    from pytest_teach.rewards import RayRewardPool, RewardPool

    started = time.perf_counter()
    ray.init(
        num_cpus=max(workers, 2),
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    cluster_s = time.perf_counter() - started
    try:
        local_times: list[float] = []
        ray_times: list[float] = []
        with contextlib.ExitStack() as stack:
            started = time.perf_counter()
            on_ray = stack.enter_context(RayRewardPool([suite], workers=1, cwd=ROOT))
            on_ray.score([candidates[0]])  # warm-up: fixtures set up once
            startup = time.perf_counter() - started
            local = stack.enter_context(RewardPool([suite], workers=1, cwd=ROOT))
            local.score([candidates[0]])
            for _ in range(rounds):
                started = time.perf_counter()
                local_scores = local.score(candidates)
                local_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                ray_scores = on_ray.score(candidates)
                ray_times.append(time.perf_counter() - started)
        pool_1 = {
            "seconds": statistics.median(local_times),
            "n": len(local_scores),
            "values": [s.value for s in local_scores],
            "rounds": [round(t, 3) for t in local_times],
        }
        ray_1 = {
            "seconds": statistics.median(ray_times),
            "n": len(ray_scores),
            "values": [s.value for s in ray_scores],
            "startup_s": round(startup, 3),
            "cluster_s": round(cluster_s, 3),
            "rounds": [round(t, 3) for t in ray_times],
        }
        started = time.perf_counter()
        with RayRewardPool([suite], workers=workers, cwd=ROOT) as many:
            many.score([candidates[0]] * workers)
            startup = time.perf_counter() - started
            started = time.perf_counter()
            scores = many.score(candidates)
            seconds = time.perf_counter() - started
        ray_n = {
            "seconds": seconds,
            "n": len(scores),
            "values": [s.value for s in scores],
            "startup_s": round(startup, 3),
        }
    finally:
        ray.shutdown()
    return pool_1, ray_1, ray_n


def _replay_file(tmp: Path, i: int, text: str) -> Path:
    path = tmp / f"candidate-{i}.txt"
    path.write_text(text, encoding="utf-8")
    return path


def run_pytest_main(candidates: list[Candidate], tmp: Path) -> dict[str, Any]:
    import pytest

    cwd = os.getcwd()
    os.chdir(ROOT)
    passed = []
    try:
        started = time.perf_counter()
        for i, (node, text) in enumerate(candidates):
            reply = _replay_file(tmp, i, text)
            with contextlib.redirect_stdout(io.StringIO()):
                code = pytest.main(
                    [node, "--model", f"replay:{reply}", "-q", "-p", "no:cacheprovider"]
                )
            passed.append(int(code) == 0)
        seconds = time.perf_counter() - started
    finally:
        os.chdir(cwd)
    return {"seconds": seconds, "n": len(passed), "passed": passed}


def run_subprocess(candidates: list[Candidate], tmp: Path) -> dict[str, Any]:
    passed = []
    started = time.perf_counter()
    for i, (node, text) in enumerate(candidates):
        reply = _replay_file(tmp, i, text)
        code = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                node,
                "--model",
                f"replay:{reply}",
                "-q",
                "-p",
                "no:cacheprovider",
            ],
            cwd=ROOT,
            capture_output=True,
            check=False,
        ).returncode
        passed.append(code == 0)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "n": len(passed), "passed": passed}


def ms_each(run: dict[str, Any]) -> float:
    return run["seconds"] / run["n"] * 1000.0


def bench_family(
    name: str, n: int, slow: int, workers: int, rounds: int, use_ray: bool = True
) -> dict[str, Any]:
    suite, candidates, direct = FAMILIES[name](n)
    print(f"\n== {name}: {len(candidates)} candidates ({suite}) ==", flush=True)
    results: dict[str, Any] = {}
    results["a_direct"], results["b_pool_1"] = run_direct_and_pool(
        suite, candidates, direct, rounds
    )
    print(
        f"(a) direct        {ms_each(results['a_direct']):9.2f} ms/candidate "
        f"(median of {rounds} rounds, alternated with (b) x1)",
        flush=True,
    )
    print(
        f"(b) pool x1       {ms_each(results['b_pool_1']):9.2f} ms/candidate "
        f"(start-up {results['b_pool_1']['startup_s']} s, once)",
        flush=True,
    )
    if workers > 1:
        results[f"b_pool_{workers}"] = run_pool(suite, candidates, workers)
        print(
            f"(b) pool x{workers}       {ms_each(results[f'b_pool_{workers}']):9.2f} ms/candidate",
            flush=True,
        )
    ray_rows: dict[str, Any] = {}
    if use_ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            print("(b') ray              skipped: ray is not installed (pip install '.[ray]')")
        else:
            pool_1, ray_rows["b_ray_1"], ray_rows[f"b_ray_{workers}"] = run_ray(
                suite, candidates, workers, rounds
            )
            ray_rows["ray_overhead_ms"] = round(ms_each(ray_rows["b_ray_1"]) - ms_each(pool_1), 3)
            ray_rows["ray_agrees"] = (
                pool_1["values"]
                == ray_rows["b_ray_1"]["values"]
                == ray_rows[f"b_ray_{workers}"]["values"]
            )
            print(
                f"(b') ray x1        {ms_each(ray_rows['b_ray_1']):9.2f} ms/candidate "
                f"(median of {rounds} rounds, alternated with a local pool x1 at "
                f"{ms_each(pool_1):.2f}; cluster start {ray_rows['b_ray_1']['cluster_s']} s, "
                f"actor start-up {ray_rows['b_ray_1']['startup_s']} s)",
                flush=True,
            )
            print(
                f"(b') ray x{workers}        {ms_each(ray_rows[f'b_ray_{workers}']):9.2f} "
                f"ms/candidate",
                flush=True,
            )
            print(
                f"(b') - (b) x1: {ray_rows['ray_overhead_ms']:+.2f} ms per candidate "
                f"(target <= {RAY_OVERHEAD_TARGET_MS:g}); rewards agree: "
                f"{ray_rows['ray_agrees']}",
                flush=True,
            )
            results["b_ray_1"] = ray_rows["b_ray_1"]
            results[f"b_ray_{workers}"] = ray_rows[f"b_ray_{workers}"]
    few = candidates[:slow]
    with tempfile.TemporaryDirectory() as tmp:
        results["c_pytest_main"] = run_pytest_main(few, Path(tmp))
        print(
            f"(c) pytest.main   {ms_each(results['c_pytest_main']):9.2f} ms/candidate "
            f"({len(few)} candidates)",
            flush=True,
        )
        results["d_subprocess"] = run_subprocess(few, Path(tmp))
        print(
            f"(d) subprocess    {ms_each(results['d_subprocess']):9.2f} ms/candidate "
            f"({len(few)} candidates)",
            flush=True,
        )
    a, b1 = results["a_direct"], results["b_pool_1"]
    agree = a["values"] == b1["values"]
    passed_b = [v == 1.0 for v in b1["values"][:slow]]
    agree_slow = passed_b == results["c_pytest_main"]["passed"] == results["d_subprocess"]["passed"]
    best_b = min(ms_each(results[k]) for k in results if k.startswith("b_pool"))
    summary = {
        "pool_overhead_ms": round(ms_each(b1) - ms_each(a), 3),
        "speedup_over_pytest_main": round(ms_each(results["c_pytest_main"]) / best_b, 1),
        "speedup_over_subprocess": round(ms_each(results["d_subprocess"]) / best_b, 1),
        "rewards_per_s": {
            k: round(1000.0 / ms_each(v), 1) for k, v in results.items() if isinstance(v, dict)
        },
        "ms_per_candidate": {
            k: round(ms_each(v), 3) for k, v in results.items() if isinstance(v, dict)
        },
        "rewards_agree": agree and ray_rows.get("ray_agrees", True),
        "pass_fail_agree": agree_slow,
    }
    if "ray_overhead_ms" in ray_rows:
        summary["ray_overhead_ms"] = ray_rows["ray_overhead_ms"]
    print(
        f"(b) - (a): {summary['pool_overhead_ms']:+.2f} ms per candidate "
        f"(target <= {OVERHEAD_TARGET_MS:g})"
    )
    print(
        f"(c) / (b): {summary['speedup_over_pytest_main']}x (target >= {SPEEDUP_TARGET:g}x); "
        f"(d) / (b): {summary['speedup_over_subprocess']}x"
    )
    print(f"rewards/s: {summary['rewards_per_s']}")
    print(f"the ways agree: rewards (a) = (b) {agree}; pass/fail (b) = (c) = (d) {agree_slow}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=[*FAMILIES, "all"], default="all")
    parser.add_argument("--scenarios", type=int, default=40, help="scenarios per family")
    parser.add_argument(
        "--slow-candidates", type=int, default=12, help="candidates scored by (c) and (d)"
    )
    parser.add_argument("--workers", type=int, default=2, help="pool workers for throughput")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of (a) alternated with (b) x1; the medians are compared",
    )
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray rows (b')")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    families = list(FAMILIES) if args.family == "all" else [args.family]
    out = {
        name: bench_family(
            name,
            args.scenarios,
            args.slow_candidates,
            args.workers,
            args.rounds,
            use_ray=not args.no_ray,
        )
        for name in families
    }
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0 if all(r["rewards_agree"] and r["pass_fail_agree"] for r in out.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
