"""Collect a training set for the intervention predictor from the browser family.

Runs the bundled browser suite (``scenarios/browser``, 24 tasks on the local shop, docs and
booking sites, in Debian Chromium) once per noise level under ``scripted:noisy-P``, with
``--collect-training-data``, into one store. Every step keeps its screenshot. Each noise level
draws different mistakes (the draw is seeded by task and level), so 51 levels give 1,224
episodes that mix clean runs, mistakes the agent recovers from, and runs that fail::

    .venv/bin/python scripts/collect_browser_experience.py                    # 0.50..1.00, 51 levels
    .venv/bin/python scripts/collect_browser_experience.py --levels 0.3,0.5,0.7 --db .teach/small.db

Then ``teach train predictor --db .teach/predictor.db`` and ``teach evaluate --db ...``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def noise_levels(spec: str) -> list[float]:
    """``START:STOP:STEP`` (inclusive) or a comma-separated list of levels in [0, 1]."""
    if ":" in spec:
        start, stop, step = (float(x) for x in spec.split(":"))
        if step <= 0:
            raise SystemExit(f"--levels {spec!r}: the step must be positive")
        count = int(round((stop - start) / step)) + 1
        levels = [round(start + i * step, 4) for i in range(count)]
    else:
        levels = [float(x) for x in spec.split(",") if x.strip()]
    bad = [p for p in levels if not 0.0 <= p <= 1.0]
    if bad or not levels:
        raise SystemExit(f"--levels {spec!r}: every level must be in [0, 1]")
    return levels


def main(argv: list[str] | None = None) -> int:
    """Run the browser suite once per noise level into ``--db``; print what was collected."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=".teach/predictor.db", help="the store to fill")
    parser.add_argument(
        "--levels",
        default="0.50:1.00:0.01",
        help="noise levels: START:STOP:STEP (inclusive) or P1,P2,... (default 0.50:1.00:0.01)",
    )
    parser.add_argument("--workers", default="2", help="pytest-xdist workers per run (-n)")
    args = parser.parse_args(argv)
    levels = noise_levels(args.levels)
    db = Path(args.db).resolve()
    started = time.perf_counter()
    for number, p in enumerate(levels, 1):
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(REPO / "scenarios" / "browser"),
            "-q",
            "-p",
            "no:cacheprovider",
            "--tb=no",
            "-rN",
            "-n",
            args.workers,
            "--collect-training-data",
            "--teach-db",
            str(db),
            "--model",
            f"scripted:noisy-{p:g}",
        ]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        if done.returncode not in (0, 1):  # 1: some scenarios failed, which is the data
            sys.stderr.write(done.stdout[-2000:] + done.stderr[-2000:])
            print(f"noise {p:g}: pytest exited {done.returncode}; stopping", file=sys.stderr)
            return done.returncode
        summary = next(
            (line for line in done.stdout.splitlines() if line.startswith("pytest-teach:")), ""
        )
        elapsed = time.perf_counter() - started
        print(f"[{number}/{len(levels)}] noise {p:g}: {summary} ({elapsed:.0f} s)", flush=True)
    env = {**os.environ, "TEACH_DB": str(db)}
    subprocess.run([sys.executable, "-m", "pytest_teach.cli", "stats"], env=env, check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
