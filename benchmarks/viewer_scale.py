"""Does ``teach view`` stay fast and small on a store of a million episodes?

The store is the one ``benchmarks/store_scale.py`` generates (100 sessions, 1,000 scenarios, 8
models, about 65% success, 33% intervention and 2% error, 1 to 5 steps each), cached under
``.teach/bench/`` and reused; the first open migrates it to the current schema (timed apart).
``teach view`` serves it from a subprocess on 127.0.0.1 and a free port, and the benchmark asks
it over HTTP, one request at a time, after one untimed pass over every address:

- the episodes page, 50 requests spread over: the first page; a page in the middle (reached by
  the cursor its neighbour links to); the first page of one outcome, one model, one session and
  one scenario family (``checkout[*``); and a middle page of one outcome (target: p95 <= 200 ms);
- one episode as a timeline, 50 requests for episodes picked at random (target: p95 <= 200 ms);
- the server's resident memory: the peak (``VmHWM`` in ``/proc/PID/status``) and the highest
  ``VmRSS`` sampled every 20 ms throughout (target: < 300 MB).

For comparison it also times, a few times each and outside the targets: the middle page by
``offset`` (how the list paged before it paged by cursor), a text search and a scenario pattern
without ``[`` (``case-042``, which also matches case ids: both read every row), and the first page
sorted by reward (it sorts every row).

Usage::

    .venv/bin/python benchmarks/viewer_scale.py [--size 1000000] [--requests 50] [--quick]
        [--cache DIR] [--json PATH]

``--quick`` is a smoke run on 20,000 episodes with 10 requests each. Exit status: 0 normally
(whatever the figures), 1 when a page answers wrongly (not 200, or the wrong rows).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_scale import CACHE, PAGE_SCENARIO, cached_sqlite, session_id  # noqa: E402

TARGET_PAGE_MS = 200.0
TARGET_EPISODE_MS = 200.0
TARGET_RSS_MB = 300.0
PAGE_ROWS = 50  # the viewer's page
EXTRA_ROUNDS = 3  # the comparison figures
FILTER_MODEL = "scripted:oracle"


class CheckFailed(Exception):
    """A page answered wrongly; the figures can't be trusted."""


def progress(message: str) -> None:
    """One progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status_kb(pid: int, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{field}:\s+(\d+) kB", text, flags=re.M)
    return int(found.group(1)) if found else None


class Viewer:
    """``teach view`` on a store, in a subprocess, with its memory sampled while it runs."""

    def __init__(self, db: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEACH_", "PYTEST_"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_teach.cli", "view", "--db", str(db),
             "--port", str(self.port)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.max_rss_kb = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = _status_kb(self.proc.pid, "VmRSS")
            if rss is not None:
                self.max_rss_kb = max(self.max_rss_kb, rss)
            time.sleep(0.02)

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds until it answers."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read() if self.proc.stdout else ""
                raise CheckFailed(f"teach view exited with {self.proc.returncode}: {out[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return time.perf_counter() - t0
            time.sleep(0.1)
        raise CheckFailed(f"teach view did not answer within {timeout:.0f} s")

    def get(self, path: str) -> tuple[float, str]:
        """(milliseconds, body) of one GET; a status other than 200 fails the run."""
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(self.base + path, timeout=120) as response:
                body = response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            raise CheckFailed(f"GET {path}: {exc.code} {exc.read()[:300]!r}") from None
        return (time.perf_counter() - t0) * 1000, body

    def memory(self) -> dict[str, float]:
        """The peak resident memory (kernel's high-water mark) and the highest sample, in MB."""
        hwm = _status_kb(self.proc.pid, "VmHWM") or 0
        return {"peak_mb": hwm / 1024, "sampled_max_mb": self.max_rss_kb / 1024}

    def stop(self) -> None:
        """Stop the sampler and the server."""
        self._stop.set()
        self._sampler.join()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def serving(db: Path) -> Iterator[Viewer]:
    """A running viewer on ``db``, always stopped."""
    viewer = Viewer(db)
    try:
        yield viewer
    finally:
        viewer.stop()


def _rowids(body: str) -> list[int]:
    return [int(r) for r in re.findall(r'data-rowid="(\d+)"', body)]


def _outcomes(body: str) -> set[str]:
    return set(re.findall(r'<tr data-rowid="\d+" data-outcome="(\w+)">', body))


def _p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def _summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": statistics.median(values),
        "p95_ms": _p95(values),
        "max_ms": max(values),
    }


def page_addresses(db: Path, size: int) -> dict[str, tuple[str, Any]]:
    """The episode-list addresses timed, each with a check of what it must show."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        last = conn.execute("SELECT MAX(rowid) FROM episodes").fetchone()[0]
    middle = last // 2
    cursor = json.dumps([middle, middle])

    def q(**params: Any) -> str:
        return "/episodes?" + urlencode(params) if params else "/episodes"

    def newest_first(rows: list[int]) -> bool:
        return len(rows) == PAGE_ROWS and rows == sorted(rows, reverse=True)

    return {
        "first": (q(), lambda b: newest_first(_rowids(b)) and _rowids(b)[0] == last),
        "middle": (
            q(offset=size - middle, after=cursor),
            lambda b: newest_first(_rowids(b)) and _rowids(b)[0] < middle,
        ),
        "outcome": (
            q(outcome="intervention"),
            lambda b: newest_first(_rowids(b)) and _outcomes(b) == {"intervention"},
        ),
        "outcome-middle": (
            q(outcome="error", offset=1000, after=cursor),
            lambda b: newest_first(_rowids(b)) and _outcomes(b) == {"error"},
        ),
        "model": (q(model=FILTER_MODEL), lambda b: newest_first(_rowids(b))),
        "session": (q(session=session_id(42)), lambda b: newest_first(_rowids(b))),
        "scenario": (
            q(scenario=PAGE_SCENARIO.split("[", 1)[0] + "[*"),
            lambda b: newest_first(_rowids(b)),
        ),
    }


def episode_ids(db: Path, n: int, seed: int = 7) -> list[str]:
    """``n`` episode ids picked at random, by position."""
    rng = random.Random(seed)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        last = conn.execute("SELECT MAX(rowid) FROM episodes").fetchone()[0]
        picks = [rng.randint(1, last) for _ in range(n)]
        ids = []
        for rowid in picks:
            row = conn.execute(
                "SELECT id FROM episodes WHERE rowid >= ? ORDER BY rowid LIMIT 1", (rowid,)
            ).fetchone()
            ids.append(row[0])
    return ids


def bench(db: Path, size: int, requests: int) -> dict[str, Any]:
    """Serve ``db`` and time the pages; the figures."""
    addresses = page_addresses(db, size)
    ids = episode_ids(db, requests)
    figures: dict[str, Any] = {}
    with serving(db) as viewer:
        figures["startup_s"] = viewer.wait_ready()
        progress(f"  teach view answers after {figures['startup_s']:.1f} s (pid {viewer.proc.pid})")
        names = list(addresses)
        for name in names:  # one untimed pass: the first touch of each index is a cold read
            _, body = viewer.get(addresses[name][0])
            if not addresses[name][1](body):
                raise CheckFailed(f"the {name} page ({addresses[name][0]}) shows the wrong rows")
        per_kind: dict[str, list[float]] = {name: [] for name in names}
        for i in range(requests):
            name = names[i % len(names)]
            ms, body = viewer.get(addresses[name][0])
            if not addresses[name][1](body):
                raise CheckFailed(f"the {name} page shows the wrong rows")
            per_kind[name].append(ms)
        every = [ms for values in per_kind.values() for ms in values]
        figures["episodes_page"] = _summary(every)
        figures["episodes_page_by_kind"] = {k: _summary(v) for k, v in per_kind.items() if v}
        progress(f"  episodes page: p95 {figures['episodes_page']['p95_ms']:.1f} ms")
        viewer.get(f"/episodes/{ids[0]}")
        times = []
        for episode_id in ids:
            ms, body = viewer.get(f"/episodes/{episode_id}")
            if episode_id not in body:
                raise CheckFailed(f"/episodes/{episode_id} does not show its id")
            times.append(ms)
        figures["episode_page"] = _summary(times)
        progress(f"  episode page: p95 {figures['episode_page']['p95_ms']:.1f} ms")
        extra = {
            "middle by offset": f"/episodes?offset={size // 2}",
            "text search": "/episodes?" + urlencode({"q": PAGE_SCENARIO}),
            "case-id glob": "/episodes?" + urlencode({"scenario": "case-042"}),
            "sorted by reward": "/episodes?sort=reward",
        }
        figures["outside_targets"] = {}
        for name, path in extra.items():
            values = [viewer.get(path)[0] for _ in range(EXTRA_ROUNDS)]
            figures["outside_targets"][name] = _summary(values)
            progress(f"  {name}: median {statistics.median(values):.0f} ms")
        figures["memory"] = viewer.memory()
    return figures


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(figures: dict[str, Any]) -> str:
    """The figures as text."""
    page, one, mem = figures["episodes_page"], figures["episode_page"], figures["memory"]
    lines = [
        f"viewer on a store of {figures['size']:,} episodes ({figures['store_mb']:,.0f} MB), "
        f"{figures['cpus']} CPUs, Python {figures['python']}",
        f"migrating the store on first open: {figures['migrate_s']:.1f} s",
        f"episodes page, p95 of {page['n']}: {page['p95_ms']:7.1f} ms "
        f"(p50 {page['p50_ms']:.1f}, max {page['max_ms']:.1f}; target <= {TARGET_PAGE_MS:.0f}) "
        f"{_verdict(page['p95_ms'] <= TARGET_PAGE_MS)}",
    ]
    for name, s in figures["episodes_page_by_kind"].items():
        lines.append(f"  {name:<16} p50 {s['p50_ms']:7.1f} ms   max {s['max_ms']:7.1f} ms")
    lines += [
        f"episode page, p95 of {one['n']}:  {one['p95_ms']:7.1f} ms "
        f"(p50 {one['p50_ms']:.1f}, max {one['max_ms']:.1f}; target <= {TARGET_EPISODE_MS:.0f}) "
        f"{_verdict(one['p95_ms'] <= TARGET_EPISODE_MS)}",
        f"server resident memory, peak: {mem['peak_mb']:.1f} MB (highest sample "
        f"{mem['sampled_max_mb']:.1f} MB; target < {TARGET_RSS_MB:.0f}) "
        f"{_verdict(mem['peak_mb'] < TARGET_RSS_MB)}",
        "outside the targets (median of a few):",
    ]
    for name, s in figures["outside_targets"].items():
        lines.append(f"  {name:<16} {s['p50_ms']:8.0f} ms")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, metavar="N", help="episodes in the store")
    parser.add_argument("--requests", type=int, metavar="N", help="timed requests of each page")
    parser.add_argument("--quick", action="store_true", help="20,000 episodes, 10 requests")
    parser.add_argument("--cache", type=Path, default=CACHE, metavar="DIR", help=f"default {CACHE}")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    args.size = args.size or (20_000 if args.quick else 1_000_000)
    args.requests = args.requests or (10 if args.quick else 50)
    if args.size < 1000 or args.requests < 1:
        parser.error("--size must be at least 1000 and --requests at least 1")
    args.cache = args.cache.resolve()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        t0 = time.perf_counter()
        db = cached_sqlite(args.cache, args.size, False)  # generates once, migrates once
        migrate_s = time.perf_counter() - t0
        progress(f"store {db} ready in {migrate_s:.1f} s")
        figures: dict[str, Any] = {
            "size": args.size,
            "store_mb": db.stat().st_size / 1e6,
            "migrate_s": migrate_s,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_before": os.getloadavg(),
        }
        figures.update(bench(db, args.size, args.requests))
    except CheckFailed as exc:
        print(f"viewer_scale: {exc}", file=sys.stderr)
        return 1
    print(report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
