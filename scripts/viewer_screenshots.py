"""Screenshots of every page of ``teach view``, taken from a real store.

Records the bundled suites briefly into a temporary store with ``--collect-training-data`` (the
tool-selection suite under ``scripted:keyword``, four browser tasks under ``scripted:noisy-0.5``
for steps with screenshots and ARIA snapshots, and the gridworld suite under
``--ab scripted:noisy-0.3,scripted:oracle``), serves it with ``teach view`` on a free
127.0.0.1 port, and saves a 1280x800 PNG of each page in Debian's Chromium::

    .venv/bin/python scripts/viewer_screenshots.py                 # into docs/images/
    .venv/bin/python scripts/viewer_screenshots.py --out /tmp/shots

Pages: the sessions, the episodes (interventions), one episode's timeline, the A/B pairs and
the review queue. Needs the ``serve`` and ``browser`` extras and Chromium
(``scripts/ensure-chromium.sh``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_teach import Store
from pytest_teach.envs.browser import find_chromium, launch_browser

REPO = Path(__file__).resolve().parents[1]
TEACH = Path(sys.executable).with_name("teach")
VIEWPORT = {"width": 1280, "height": 800}
#: The browser tasks recorded: short ones, and one the noisy agent fails.
BROWSER_TASKS = "docs-default-port or docs-env-vars or shop-remove-blue-mug or booking-fix-email"


def record(db: Path, *args: str) -> None:
    """One pytest run of a bundled suite, recorded into ``db`` (its failures are the data)."""
    argv = [
        sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q", "--tb=no",
        "--collect-training-data", "--teach-db", str(db),
    ]  # fmt: skip
    print("recording:", " ".join(args), flush=True)
    subprocess.run(argv, cwd=db.parent, stdout=subprocess.DEVNULL, check=False, timeout=900)


def build_store(db: Path) -> None:
    """The store the pictures show: three suites, then two reviews so the queue has progress."""
    record(db, str(REPO / "scenarios" / "tool_selection"), "--model", "scripted:keyword")
    record(
        db, str(REPO / "scenarios" / "browser"), "--model", "scripted:noisy-0.5",
        "-k", BROWSER_TASKS,
    )  # fmt: skip
    record(
        db, str(REPO / "scenarios" / "minigrid"), "--minigrid-max-steps", "8",
        "--ab", "scripted:noisy-0.3,scripted:oracle",
    )  # fmt: skip
    with Store.open(db) as store:
        if store.count() == 0:
            raise SystemExit(f"nothing was recorded into {db}")
        for episode in list(store.episodes(outcome="success"))[:2]:
            store.add_feedback(episode.id, step=0, correct_action=episode.steps[0].action)


def showcase(db: Path) -> dict[str, str]:
    """The episodes whose timelines are pictured: a failed gridworld run (valid actions with
    probabilities) and a browser run (ARIA snapshots, screenshots), failed if one did."""
    with Store.open(db) as store:
        grid = next(store.episodes(outcome="intervention", scenario="minigrid", arm="A"))
        web = sorted(store.episodes(scenario="browser"), key=lambda e: e.outcome != "intervention")
        return {"episode": grid.id, "episode-browser": web[0].id}


def serve(db: Path) -> tuple[subprocess.Popen[str], str]:
    """``teach view`` on a free port, and the URL it announces."""
    server = subprocess.Popen(
        [str(TEACH), "view", "--db", str(db), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    found = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
    if found is None:
        server.terminate()
        raise SystemExit(f"teach view did not start: {line.strip()!r}")
    return server, found.group(1)


def shoot(base: str, out: Path, episodes: dict[str, str], chromium: str) -> list[Path]:
    """A PNG of each page (the viewport, not the whole scroll)."""
    pages = {
        "sessions": "/",
        "episodes": "/episodes?outcome=intervention",
        **{name: f"/episodes/{episode_id}" for name, episode_id in episodes.items()},
        "ab": "/ab",
        "queue": "/queue?order=failures",
    }
    #: where each timeline is scrolled to: the steps, or a browser step's action and screenshot
    anchors = {"episode": "#steps", "episode-browser": "#step-0 pre.action"}
    saved = []
    with launch_browser(chromium) as browser:
        page = browser.new_page(viewport=VIEWPORT)
        try:
            for name, path in pages.items():
                page.goto(base + path)
                if name in ("queue", *anchors):
                    page.keyboard.press("j")  # the first step selected, as in a review
                    page.evaluate("window.scrollTo(0, 0)")
                if name in anchors:
                    page.locator(anchors[name]).evaluate("el => el.scrollIntoView()")
                    page.evaluate("window.scrollBy(0, -40)")
                target = out / f"viewer-{name}.png"
                page.screenshot(path=str(target))
                saved.append(target)
        finally:
            page.context.close()
    return saved


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--chromium", default=None, help="the Chromium executable")
    args = parser.parse_args(argv)
    chromium = find_chromium(args.chromium)
    if chromium is None:
        raise SystemExit("no Chromium found: run scripts/ensure-chromium.sh or pass --chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="teach-view-") as folder:
        db = Path(folder) / "experience.db"
        build_store(db)
        server, base = serve(db)
        try:
            saved = shoot(base, args.out, showcase(db), chromium)
        finally:
            server.terminate()
            server.wait(30)
    for path in saved:
        print(f"{path} ({path.stat().st_size // 1024} KiB)")
    print(f"done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
