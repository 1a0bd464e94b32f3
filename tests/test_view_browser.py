"""`teach view` in a real browser: Debian's Chromium through Playwright, against a viewer served by
a real uvicorn on a free 127.0.0.1 port.

The main store comes from a real pytest run of the bundled gridworld suite under
``--ab scripted:noisy-0.3,scripted:oracle`` (with a short step budget, so the noisy student's
failures are runs of several steps, each with its valid actions). The hostile store comes from a
real pytest run of a generated suite whose test ids, observations, actions, valid actions,
messages and failure messages are markup, script and a key-like string. One browser, one store
and one server serve the module; every server and browser is stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_teach.export import export, reply_of, text_of
from pytest_teach.store import Episode, Store, new_id

from .conftest import CHROMIUM, NO_BROWSER, REPO, needs_chromium

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from .test_view import serving  # noqa: E402

pytestmark = needs_chromium

SUITE = str(REPO / "scenarios" / "minigrid")
AB = "scripted:noisy-0.3,scripted:oracle"
KEY = "sk-live-4f9KpQ2xVb7NcR1sT8wYz3LmA6dE0hJu"
#: Where a hostile page would send a request if its markup came alive (TEST-NET-3: unroutable).
ELSEWHERE = "http://203.0.113.9"
#: The browser waits this long (ms) for what the page is expected to show.
WAIT_MS = 30_000


def _pytest(folder: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q", "--tb=no",
        "--collect-training-data", "--teach-db", str(folder / "experience.db"),
    ]  # fmt: skip


def _run(folder: Path, *args: str) -> Path:
    db = folder / "experience.db"
    done = subprocess.run(
        _pytest(folder, *args), cwd=folder, capture_output=True, text=True, timeout=600
    )
    assert db.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return db


# -- the browser, the store, the server ----------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the module (sync Playwright runs one driver per process)."""
    if NO_BROWSER is not None:
        pytest.skip(NO_BROWSER)
    from pytest_teach.envs.browser import launch_browser

    with launch_browser(CHROMIUM) as running:
        yield running


@pytest.fixture(scope="module")
def grid_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gridworld suite under A/B, recorded by a real pytest run."""
    folder = tmp_path_factory.mktemp("grid")
    return _run(folder, SUITE, "--ab", AB, "--minigrid-max-steps", "8")


@pytest.fixture(scope="module")
def grid_viewer(grid_db: Path) -> Iterator[str]:
    """The viewer over the gridworld store, served for the whole module: its base URL."""
    with Store.open(grid_db) as store, serving(store) as client:
        yield client.base


class Watched:
    """A page in a fresh context with every request, dialog, page error, console error and
    Content-Security-Policy violation recorded."""

    def __init__(self, chromium: Any, base: str) -> None:
        self.base = base
        self.page = chromium.new_page(viewport={"width": 1280, "height": 800})
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on(
            "console",
            lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None,
        )
        # a CSP violation means markup came alive and only the policy stopped it
        self.page.add_init_script(
            "document.addEventListener('securitypolicyviolation', function (e) {"
            " (window.__violations = window.__violations || [])"
            ".push(e.violatedDirective + ' ' + e.blockedURI); });"
        )

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def goto(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        self.assert_inert()
        return response

    def assert_inert(self) -> None:
        """Nothing ran that the viewer did not write, and nothing left for another origin."""
        assert self.dialogs == []
        violations = self.page.evaluate("window.__violations || []")
        assert violations == [], violations
        foreign = [u for u in self.requests if not u.startswith(self.base + "/")]
        assert foreign == [], foreign
        # a page answered 4xx on purpose is logged as a failed load; anything else is a fault
        faults = [
            e for e in self.errors if "Failed to load resource: the server responded" not in e
        ]
        assert faults == [], faults

    def close(self) -> None:
        self.page.context.close()


@pytest.fixture
def grid_page(chromium: Any, grid_viewer: str) -> Iterator[Watched]:
    watched = Watched(chromium, grid_viewer)
    try:
        yield watched
    finally:
        watched.close()


def _rows(page: Any) -> int:
    return page.locator("#episodes tbody tr").count()


def _wait_rows(page: Any, n: int, timeout: int = WAIT_MS) -> None:
    """Wait until the episode table has at least ``n`` rows (the page's CSP forbids the eval
    ``wait_for_function`` needs, so this waits on a locator)."""
    page.locator("#episodes tbody tr").nth(n - 1).wait_for(state="attached", timeout=timeout)


# -- annotation by keyboard becomes preference pairs ---------------------------------------------


def _dpo_pairs(db: Path, episode_id: str, out: Path) -> set[tuple[str, str]]:
    with Store.open(db) as store:
        export(store, "dpo", out, ids=[episode_id])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows}


def _correct_by_keyboard(page: Any, valid: list[Any], action: Any, step: int) -> Any:
    """``c``, arrows down to a valid action other than the one taken, Escape, ``b``."""
    index = next(i for i, a in enumerate(valid) if a != action)
    page.keyboard.press("c")
    picker = page.locator(f"#step-{step} select.correction")
    assert picker.evaluate("el => el === document.activeElement")
    for _ in range(index + 1):  # option 0 is "-"
        page.keyboard.press("ArrowDown")
    assert picker.input_value() == str(index)
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.wait_for_selector(
        f"#message:has-text('step {step} marked bad')", state="attached", timeout=WAIT_MS
    )
    return valid[index]


def test_keyboard_corrections_become_dpo_pairs(
    grid_page: Watched, grid_db: Path, tmp_path: Path
) -> None:
    watched, page = grid_page, grid_page.page
    watched.goto("/episodes")
    page.select_option("#filters select[name=outcome]", "intervention")
    page.fill("#filters input[name=model]", "scripted:noisy-0.3")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**/episodes?*outcome=intervention*")
    outcomes = page.locator("#episodes tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.outcome)"
    )
    with Store.open(grid_db) as store:
        expected = store.count(outcome="intervention", model="scripted:noisy-0.3")
    assert len(outcomes) == expected > 0 and set(outcomes) == {"intervention"}
    assert page.locator("#total").inner_text() == str(expected)

    page.locator("#episodes tbody tr a").first.click()
    page.wait_for_url("**/episodes/*")
    episode_id = page.locator("#episode").get_attribute("data-episode")
    with Store.open(grid_db) as store:
        episode = store.get_episode(episode_id)
        assert episode is not None and store.feedback(episode_id) == []
    assert episode.outcome == "intervention" and len(episode.steps) >= 3
    steps = episode.steps
    before = _dpo_pairs(grid_db, episode_id, tmp_path / "before.jsonl")

    # keyboard only from here: j selects step 0, a save moves on to the next step
    page.keyboard.press("j")
    assert page.locator("#step-0").evaluate("el => el.classList.contains('selected')")
    first = _correct_by_keyboard(page, steps[0].valid_actions, steps[0].action, 0)
    assert page.locator("#step-1.selected").count() == 1
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert page.locator("#step-1.selected").count() == 1
    second = _correct_by_keyboard(page, steps[1].valid_actions, steps[1].action, 1)
    page.keyboard.press("g")
    page.wait_for_selector(
        "#message:has-text('step 2 marked good')", state="attached", timeout=WAIT_MS
    )
    assert page.locator("#step-0 .status").inner_text().strip() == "bad"
    assert page.locator("#step-2 .status").inner_text().strip() == "good"
    watched.assert_inert()

    # the rows `teach feedback add --step N --correct-action A` writes ...
    with Store.open(grid_db) as store:
        saved = sorted((f.step, f.correct_action) for f in store.feedback(episode_id))
    assert saved == [(0, first), (1, second), (2, steps[2].action)]
    # ... so the DPO export has the two corrections as pairs at once
    pairs = {
        (text_of(first), reply_of(steps[0])),
        (text_of(second), reply_of(steps[1])),
    }
    after = _dpo_pairs(grid_db, episode_id, tmp_path / "after.jsonl")
    assert not pairs & before and pairs <= after

    # the page shows them after a reload as well
    page.reload()
    assert page.locator("#step-1 p.note").first.inner_text().startswith(f"bad: {second}")


# -- A/B ----------------------------------------------------------------------------------------


def test_ab_page_names_the_oracle_the_winner(grid_page: Watched, grid_db: Path) -> None:
    with Store.open(grid_db) as store:
        passed = {model: store.count(outcome="success", model=model) for model in AB.split(",")}
    assert passed["scripted:oracle"] > passed["scripted:noisy-0.3"]

    watched, page = grid_page, grid_page.page
    watched.goto("/ab")  # the newest A/B run: A noisy-0.3, B oracle
    assert page.locator("#winner").inner_text() == "scripted:oracle"
    assert page.locator(".verdict").get_attribute("data-verdict") == "APPROVE"
    assert "McNemar exact p = " in page.locator("#stats").inner_text()
    first = page.locator("#pairs tbody tr").first.get_attribute("data-status")
    assert first == "improvement"

    # swap the sides and keep only the differences, through the form
    page.fill("input[name=a]", "scripted:oracle")
    page.fill("input[name=b]", "scripted:noisy-0.3")
    page.check("input[name=only]")
    page.click("form.controls button[type=submit]")
    page.wait_for_url("**/ab?*only=differences*")
    assert page.locator("#winner").inner_text() == "scripted:oracle"
    assert page.locator(".verdict").get_attribute("data-verdict") == "REJECT"
    statuses = page.locator("#pairs tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.status)"
    )
    assert statuses and statuses[0] == "regression" and "same" not in statuses
    watched.assert_inert()


# -- live ---------------------------------------------------------------------------------------

LIVE_SUITE = '''
"""Records while the viewer watches: two slow tests, then one that waits for a go-ahead."""
import os
import time
from pathlib import Path

import pytest

GO = Path(os.environ["TEACH_VIEW_GO"])


@pytest.mark.parametrize("n", [0, 1])
def test_slow(n, episode):
    time.sleep(2.1)  # past the recorder's two-second batch, so each run is written as it ends
    episode.step(f"observation {n}", f"action {n}")


def test_waits_for_the_viewer(episode):
    deadline = time.monotonic() + 120
    while not GO.exists():
        assert time.monotonic() < deadline, "the viewer never saw the first rows"
        time.sleep(0.05)
    episode.step("observation", "action")
'''


def test_live_page_gains_rows_while_pytest_runs(
    grid_page: Watched, grid_db: Path, tmp_path: Path
) -> None:
    watched, page = grid_page, grid_page.page
    watched.goto("/episodes")
    assert page.locator("#live").count() == 1
    start = _rows(page)
    total = int(page.locator("#total").inner_text())
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    (tmp_path / "test_live.py").write_text(textwrap.dedent(LIVE_SUITE))
    go = tmp_path / "go"
    argv = _pytest(grid_db.parent, str(tmp_path / "test_live.py"))
    env = {**os.environ, "TEACH_VIEW_GO": str(go)}
    with subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as run:
        try:
            # the two slow tests' rows arrive while the third test holds the session open
            _wait_rows(page, start + 2, timeout=90_000)
            assert run.poll() is None, "the session ended before the rows were seen"
            assert page.evaluate("window.__sameDocument") is True
            assert int(page.locator("#total").inner_text()) == total + 2
            scenarios = page.locator("#episodes tbody tr td:nth-child(2)").all_inner_texts()
            assert set(scenarios[:2]) == {"test_slow[0]", "test_slow[1]"}
        finally:
            go.touch()
            output = run.communicate(timeout=120)[0]
    assert run.returncode == 0, output[-3000:]
    _wait_rows(page, start + 3)
    assert _rows(page) == start + 3
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("#episodes tbody tr td:nth-child(2)").first.inner_text() == (
        "test_waits_for_the_viewer"
    )
    watched.assert_inert()


# -- hostile strings stay inert ------------------------------------------------------------------

HOSTILE_SUITE = '''
"""Every recorded string is markup, script, a javascript: URL or a key."""
import pytest

KEY = "{key}"
PAYLOADS = {{
    "<script>alert('id')</script>": "<script>alert('script')</script>",
    "img": "<img src=x onerror=\\"alert('img')\\">",
    "svg": "\\"><svg onload=alert('svg')>",
    "a": "<a href=\\"javascript:alert('a')\\">click me</a>",
    "js": "javascript:alert('href')",
    "beacon": "<img src=\\"{elsewhere}/beacon.png\\"><link rel=stylesheet href={elsewhere}/x.css>",
    "frame": "<iframe src=\\"{elsewhere}/\\"></iframe><style>body{{background:url({elsewhere}/bg)}}</style>",
}}


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_hostile(payload, episode):
    episode.meta(note=payload, homepage="javascript:alert('meta')")
    episode.step(
        {{"url": "javascript:alert('url')", "text": payload}},
        {{"click": payload}},
        valid_actions=[payload, "javascript:alert('choice')", f"use {{KEY}}"],
        probs=[0.5, 0.3, 0.2],
        messages=[{{"role": "user", "content": f"{{payload}} my key is {{KEY}}"}}],
    )
    episode.step(payload, f"reply with {{KEY}}")
    assert False, f"{{payload}} leaked {{KEY}}"
'''


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    suite = HOSTILE_SUITE.format(key=KEY, elsewhere=ELSEWHERE)
    (folder / "test_hostile.py").write_text(textwrap.dedent(suite))
    db = _run(folder, "test_hostile.py")
    # the recorder masks the key on the way in; put it back, as a store written by an older
    # pytest-teach (or by hand) would hold it, so only the viewer's own redaction can hide it
    import sqlite3

    conn = sqlite3.connect(db)
    with conn:
        for table, columns in (
            ("steps", ("observation", "action", "messages", "valid_actions")),
            ("episodes", ("label_reason", "error")),
        ):
            sets = ", ".join(f"{c} = replace({c}, '[REDACTED]', ?)" for c in columns)
            conn.execute(f"UPDATE {table} SET {sets}", [KEY] * len(columns))
    conn.close()
    with Store.open(db) as store:  # the key is in the store: only the viewer can mask it
        assert store.count() == 7 and KEY in json.dumps(
            [e.steps[0].messages for e in store.episodes()]
        )
    return db


def test_hostile_strings_stay_inert(chromium: Any, hostile_db: Path) -> None:
    with Store.open(hostile_db) as store:
        recorded = list(store.episodes())
    ids = [e.id for e in recorded]
    with Store.open(hostile_db) as store, serving(store) as client:
        watched = Watched(chromium, client.base)
        page = watched.page
        try:
            pages = [
                "/",
                "/episodes",
                "/queue?order=failures",
                "/ab",
                *(f"/episodes/{i}" for i in ids),
                # reflected into a form field and into error pages
                "/episodes?q=%22%3E%3Cscript%3Ealert(%27q%27)%3C/script%3E",
                "/episodes?label=%3Cimg%20src=x%20onerror=alert(%27label%27)%3E",
                "/ab?a=%3Cscript%3Ealert(%27ab%27)%3C/script%3E&b=scripted:oracle",
            ]
            for path in pages:
                watched.goto(path)
                dom = page.evaluate(
                    """() => ({
                        scripts: [...document.scripts].map(s => s.getAttribute('src')),
                        handlers: [...document.querySelectorAll('*')].flatMap(el =>
                            [...el.attributes].filter(a => a.name.startsWith('on'))
                            .map(a => el.tagName + ' ' + a.name)),
                        links: [...document.querySelectorAll('[href],[src],[action]')].map(el =>
                            el.getAttribute('href') || el.getAttribute('src')
                            || el.getAttribute('action')),
                        frames: document.querySelectorAll('iframe,object,embed,svg').length,
                        text: document.body.innerText,
                    })"""
                )
                assert dom["scripts"] == ["/static/view.js"], path
                assert dom["handlers"] == [] and dom["frames"] == 0, path
                assert all(link.startswith("/") for link in dom["links"]), (path, dom["links"])
                assert KEY not in page.content() and KEY not in dom["text"], path

            # the hostile strings are shown as text, the key masked
            watched.goto(f"/episodes/{ids[0]}")
            text = page.locator("main").inner_text()
            assert "my key is [REDACTED]" in text and "use [REDACTED]" in text
            assert "leaked [REDACTED]" in text
            watched.goto("/episodes")
            scenarios = page.locator("#episodes tbody tr td:nth-child(2)").all_inner_texts()
            assert "test_hostile[<script>alert('id')</script>]" in scenarios

            # a row that arrives live is built as text too
            start = _rows(page)
            with Store.open(hostile_db) as writer:  # another connection, as a running pytest
                writer.write_episode(
                    Episode(
                        id=new_id(),
                        nodeid="test_live.py::test_live",
                        scenario="<img src=x onerror=alert('live')>",
                        outcome="intervention",
                        label=1,
                        label_reason=f"<script>alert('reason')</script> {KEY}",
                        session_id=recorded[0].session_id,
                        model="scripted:noisy-0.3",
                    )
                )
            _wait_rows(page, start + 1)
            top = page.locator("#episodes tbody tr").first
            assert top.locator("td").nth(1).inner_text() == "<img src=x onerror=alert('live')>"
            assert top.locator("td.reason").inner_text() == (
                "<script>alert('reason')</script> [REDACTED]"
            )
            assert top.locator("img, script").count() == 0
            assert KEY not in page.content()
            watched.assert_inert()
        finally:
            watched.close()
