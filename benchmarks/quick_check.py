"""What does ``PRAGMA quick_check`` cost when a store is opened for writing, on a 1 GB store?

Builds a store of about ``--gb`` gigabytes in a temporary folder (realistic tool-selection
episodes: four steps each with an observation, system and user messages, valid actions and
probabilities; written through ``Store.write_episodes`` in batches), then, alternating over
``--rounds``:

- **open + first write**, without the check: ``Store.open(create=True)`` with the file
  remembered as checked, then ``start_session`` and one episode (what pytest does at start-up);
- **quick_check**: ``PRAGMA quick_check`` on a fresh connection, with the file in the page
  cache (warm) and, where ``posix_fadvise`` can evict it, from disk (cold);
- **open + first write after a change**: the same open when the file changed since its last
  clean check, so the check runs.

It reports medians and the ratio of quick_check to the open + first write. The store opened
for writing runs the check only when the file changed since the last clean check (remembered in
``<db>.checked`` by device, inode, size, mtime and ctime), so the first figure is what a pytest
start usually pays and the last what it pays after the file changed outside SQLite.

Usage::

    .venv/bin/python benchmarks/quick_check.py [--gb 1.0] [--rounds 3] [--keep PATH] [--json PATH]

The store is deleted afterwards unless ``--keep`` names where to build it. Exit status 0, or 1
when a check fails (quick_check not ``ok``, or an episode missing after the first write).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_teach.store import Episode, Label, Step, Store, new_id

TOOLS = [f"tool_{i}" for i in range(12)]


def _episode(rng: random.Random, i: int) -> Episode:
    def text(n: int) -> str:
        return "".join(rng.choices(string.ascii_letters + "     ", k=n))

    ok = rng.random() > 0.3
    steps = [
        Step(
            index=j,
            observation={"query": text(200), "tools": TOOLS},
            action={"tool": rng.choice(TOOLS), "args": {"q": text(60)}},
            messages=[
                {"role": "system", "content": text(400)},
                {"role": "user", "content": text(300)},
            ],
            valid_actions=TOOLS,
            probs={t: rng.random() for t in TOOLS[:6]},
            entropy=rng.random(),
        )
        for j in range(4)
    ]
    return Episode(
        id=new_id(),
        nodeid=f"scenarios/test_tools.py::test_case[{i}]",
        scenario=f"tool_selection[case-{i % 500:03d}]",
        outcome="success" if ok else "intervention",
        label=0 if ok else 1,
        label_reason=None if ok else text(120),
        model="scripted:noisy-0.3",
        params={"i": i},
        metrics={"latency_ms": rng.random() * 100, "prompt_tokens": 300},
        reward=1.0 if ok else 0.0,
        duration_s=0.01,
        steps=steps,
        labels=[Label("success" if ok else "intervention")],
    )


def build(path: Path, gb: float) -> tuple[int, float]:
    """Fill a new store at ``path`` up to ``gb`` gigabytes; return (episodes, seconds)."""
    rng = random.Random(0)
    target = int(gb * 2**30)
    wal = path.with_name(path.name + "-wal")
    t0 = time.perf_counter()
    n = 0
    with Store.open(path, create=True) as store:
        while path.stat().st_size + (wal.stat().st_size if wal.exists() else 0) < target:
            store.write_episodes([_episode(rng, n + k) for k in range(500)])
            n += 500
            if n % 10_000 == 0:
                print(f"  {n} episodes, {path.stat().st_size / 2**30:.2f} GiB", flush=True)
    return n, time.perf_counter() - t0


def _evict(path: Path) -> bool:
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def quick_check(path: Path) -> tuple[float, str]:
    """Seconds for ``PRAGMA quick_check`` on a fresh connection, and its first row."""
    conn = sqlite3.connect(path)
    try:
        t0 = time.perf_counter()
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        return time.perf_counter() - t0, result
    finally:
        conn.close()


def open_and_first_write(path: Path, rng: random.Random, *, changed: bool) -> float:
    """Seconds for what pytest does at start-up: open for writing, start a session, write one
    episode. With ``changed`` the file's remembered check no longer matches, so it runs;
    without, the check the last writer remembered when it closed the store still does."""
    if changed:
        mtime = path.stat().st_mtime_ns
        os.utime(path, ns=(mtime, mtime + 1_000))  # as if changed outside SQLite
    episode = _episode(rng, 0)
    t0 = time.perf_counter()
    store = Store.open(path, create=True)
    store.start_session(new_id(), argv=[], version="bench", git_commit=None, rootdir=None)
    store.write_episode(episode)
    elapsed = time.perf_counter() - t0
    found = store.count(ids=[episode.id])
    store.close()
    if found != 1:
        raise SystemExit(f"the first write did not land in {path}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the figures (and write them as JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.0, help="store size to build (GiB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build (and keep) the store here")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="teach-quick-check-"))
    path = args.keep or folder / "experience.db"
    try:
        if path.exists():
            print(f"using the existing store {path}")
            episodes, build_s = -1, 0.0
        else:
            print(f"building a {args.gb:g} GiB store at {path} ...", flush=True)
            episodes, build_s = build(path, args.gb)
        size = path.stat().st_size
        print(f"store: {size / 2**30:.3f} GiB, {episodes} episodes, built in {build_s:.0f} s")
        rng = random.Random(1)
        open_and_first_write(path, rng, changed=True)  # warm-up; its close remembers the check
        plain: list[float] = []
        warm: list[float] = []
        cold: list[float] = []
        checked: list[float] = []
        can_evict = True
        for r in range(args.rounds):
            plain.append(open_and_first_write(path, rng, changed=False))
            seconds, result = quick_check(path)
            if result != "ok":
                print(f"quick_check: {result}", file=sys.stderr)
                return 1
            warm.append(seconds)
            if can_evict and (can_evict := _evict(path)):
                cold.append(quick_check(path)[0])
            checked.append(open_and_first_write(path, rng, changed=True))
            print(
                f"round {r + 1}: open+write {plain[-1] * 1000:.1f} ms, quick_check warm "
                f"{warm[-1]:.3f} s" + (f", cold {cold[-1]:.3f} s" if cold else "") + ", "
                f"open+write after a change {checked[-1]:.3f} s",
                flush=True,
            )
        figures: dict[str, Any] = {
            "store_bytes": size,
            "episodes": episodes,
            "open_first_write_s": statistics.median(plain),
            "quick_check_warm_s": statistics.median(warm),
            "quick_check_cold_s": statistics.median(cold) if cold else None,
            "open_first_write_after_change_s": statistics.median(checked),
            "rounds": args.rounds,
            "sqlite": sqlite3.sqlite_version,
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()}",
        }
        figures["ratio_warm"] = figures["quick_check_warm_s"] / figures["open_first_write_s"]
        print()
        print(f"store                          {size / 2**30:.3f} GiB")
        print(f"open + first write             {figures['open_first_write_s'] * 1000:.1f} ms")
        print(f"quick_check (page cache)       {figures['quick_check_warm_s']:.3f} s")
        if cold:
            print(f"quick_check (from disk)        {figures['quick_check_cold_s']:.3f} s")
        print(f"open + first write, changed    {figures['open_first_write_after_change_s']:.3f} s")
        print(f"quick_check / open+write       {figures['ratio_warm']:.0f}x")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
