"""The HTML report: redaction, escaping, content, atomic writes, and the page in a real browser."""

from __future__ import annotations

import os
import re
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import Markup, escape

from pytest_teach import open_store
from pytest_teach.compare import History, HistoryPoint, compare
from pytest_teach.recorder import EpisodeRecorder
from pytest_teach.report import (
    build_report,
    redact,
    render_feedback,
    render_stats,
    report_store,
    run_name,
    write_report,
)
from pytest_teach.store import Episode, StoreError, new_id

SCRIPT_PAYLOAD = "<script>window.__pwned=1</script>"
IMG_PAYLOAD = '<img src=x onerror="window.__pwned=1">'
CHROMIUM = os.environ.get("TEACH_CHROMIUM") or "/usr/bin/chromium"


class _Elements(HTMLParser):
    """Every start tag of a document with its attributes, as a browser's tokenizer sees them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.tags if t == tag]


def _png(width: int = 2, height: int = 2) -> bytes:
    """A tiny valid PNG (grey pixels), built without Pillow."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _episode(
    scenario: str,
    outcome: str,
    model: str = "scripted:a",
    *,
    obs: object = "the page",
    reason: str | None = None,
    reward: float | None = None,
    latency: float = 100.0,
    screenshot: bytes | None = None,
    error: str | None = None,
    blobs: dict[str, bytes] | None = None,
    steps: int = 1,
) -> Episode:
    rec = EpisodeRecorder(enabled=True)
    for i in range(steps):
        rec.step(obs, {"tool": "search", "i": i}, screenshot=screenshot)
    rec.metric(latency_ms=latency, prompt_tokens=100, completion_tokens=20, cost_usd=0.001)
    if reward is not None:
        rec.reward(reward)
    if blobs is not None:
        blobs.update({sha: data for sha, (data, _) in rec.blobs.items()})
    return rec.build(
        episode_id=new_id(),
        nodeid=f"t.py::{scenario}",
        scenario=scenario,
        outcome=outcome,
        reason=reason,
        model=model,
        category="research",
        error=error,
    )


# -- redact ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        "sk-abcdefghijklmnop0123456789",
        "sk-proj-AbCdEf0123456789xyzXYZ_-q",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345",
        "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
        "ghp_0123456789abcdefghijABCDEFGHIJklmn",
        "gho_0123456789abcdefghijABCDEFGHIJklmn",
        "ghs_0123456789abcdefghijABCDEFGHIJklmn",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv",
        "AKIAIOSFODNN7EXAMPLE",
        "xoxb-123456789012-1234567890123-abcdefghijklmnop",
        "xoxp-123456789012-abcdefghijkl",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlF",
    ],
)
def test_redact_token_kinds(secret: str) -> None:
    out = redact(f"before {secret} after")
    assert out == "before [REDACTED] after"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc123def456ghi", "Authorization: [REDACTED]"),
        ("curl -H 'Bearer abc.def-123_456'", "curl -H 'Bearer [REDACTED]'"),
        ('{"api_key": "abc123", "n": 1}', '{"api_key": "[REDACTED]", "n": 1}'),
        ("{'apikey': 'x1'}", "{'apikey': '[REDACTED]'}"),
        ("OPENAI_API_KEY=abc123 OTHER=1", "OPENAI_API_KEY=[REDACTED] OTHER=1"),
        ("password: hunter2", "password: [REDACTED]"),
        ("client_secret=shh", "client_secret=[REDACTED]"),
        ('"access_token":"zzz"', '"access_token":"[REDACTED]"'),
        ("/cb?token=abc&page=2", "/cb?token=[REDACTED]&page=2"),
        ('{"authorization": "Basic dXNlcjpwYXNz"}', '{"authorization": "[REDACTED]"}'),
    ],
)
def test_redact_key_value_pairs_keep_the_key(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the weather in Oslo is 5 C, wind 3 m/s",
        "max_tokens=256 prompt_tokens: 12 token_count=3",
        "ask the task-manager for a desk",
        "Bearer of bad news",
        "skip this sk-short",
        "",
    ],
)
def test_redact_leaves_normal_text_alone(text: str) -> None:
    assert redact(text) == text


# -- build_report ------------------------------------------------------------------------------


def _xss_episodes(blobs: dict[str, bytes] | None = None) -> list[Episode]:
    return [
        _episode("weather-001", "success", reward=1.0, latency=120.0),
        _episode(
            "weather-002",
            "intervention",
            obs=f"page says {SCRIPT_PAYLOAD} and {IMG_PAYLOAD}",
            reason=f"picked {IMG_PAYLOAD}",
            reward=0.0,
            latency=300.0,
            screenshot=_png() if blobs is not None else None,
            blobs=blobs,
        ),
        _episode(
            f"evil-{SCRIPT_PAYLOAD}",
            "error",
            obs={"html": IMG_PAYLOAD, "city": "Zürich"},
            error=f"Traceback: {SCRIPT_PAYLOAD}",
            latency=80.0,
        ),
    ]


def _regressing_comparison(extra: list[Episode] | None = None):
    a = [_episode(f"sc-{i}", "success", "model-a", reward=1.0, latency=100.0) for i in range(6)]
    b = [
        _episode(
            f"sc-{i}",
            "intervention" if i < 3 else "success",
            "model-b",
            reward=0.0 if i < 3 else 1.0,
            latency=150.0,
            reason="wrong tool" if i < 3 else None,
        )
        for i in range(6)
    ]
    return a, b, compare(a, b, baseline_name="model-a", candidate_name="model-b")


def test_build_report_escapes_markup_everywhere() -> None:
    html = build_report(_xss_episodes())
    assert SCRIPT_PAYLOAD not in html
    assert "<img src=x" not in html and "<img" not in html
    assert html.count("<script") == 1  # the report's own script
    elements = _Elements(html)
    assert len(elements.named("script")) == 1
    assert elements.named("img") == []
    assert not [tag for tag, attrs in elements.tags if any(a.startswith("on") for a in attrs)]
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html
    assert 'data-scenario="evil-&lt;script&gt;' in html
    assert "Zürich" in html  # observations are JSON-dumped with ensure_ascii=False


def test_build_report_redacts_every_value() -> None:
    key = "sk-proj-AbCdEf0123456789xyzXYZ"
    ep = _episode(
        f"leak-{key}",
        "intervention",
        obs={"headers": {"Authorization": "Bearer abcdef0123456789"}, "note": key},
        reason=f"used {key}",
        error=f"401 for api_key={key}",
    )
    html = build_report([ep], sessions=[{"id": "s1", "started_at": 1.0, "argv": ["--key", key]}])
    assert key not in html
    assert "abcdef0123456789" not in html
    assert "[REDACTED]" in html


def test_markup_objects_in_the_data_are_escaped_too() -> None:
    ep = _episode("m", "intervention", reason=Markup('<b id="bold">x</b>'), obs=Markup("<i>y</i>"))
    html = build_report([ep])
    assert "<b " not in html and "<i>" not in html
    assert "&lt;b id=&#34;bold&#34;&gt;x&lt;/b&gt;" in html


def test_a_secret_cut_by_truncation_is_still_masked() -> None:
    obs = "x" * 3990 + " sk-proj-" + "A" * 40 + " tail"
    html = build_report([_episode("cut", "intervention", obs=obs)])
    assert "sk-proj" not in html and "AAAA" not in html
    assert "more characters]" in html


def test_build_report_sections_and_comparison() -> None:
    a, b, comparison = _regressing_comparison()
    assert comparison.verdict == "REJECT"
    html = build_report(
        a + b,
        comparison=comparison,
        sessions=[
            {
                "id": "sess-1",
                "started_at": 1_700_000_000.0,
                "finished_at": 1_700_000_042.0,
                "git_commit": "0123456789abcdef",
                "argv": ["pytest", "-q"],
                "version": "0.1.0",
            }
        ],
    )
    assert 'id="verdict" data-verdict="REJECT">REJECT<' in html
    assert f'id="winner">{escape(comparison.winner_text)}<' in html
    for reason in comparison.reasons:
        assert escape(reason) in html
    assert "sess-1" in html and "0123456789ab" in html and "2023-11-14" in html
    order = [
        html.index(f'id="{section}"')
        for section in ("summary", "balance", "comparison", "per-scenario", "distributions")
    ]
    assert order == sorted(order)
    assert html.count("<tr data-scenario=") == 12
    # balance: 3 interventions of 12 labeled = 25%, below the 60-70% band
    assert 'data-balance="below"' in html and "25.0%" in html


def test_build_report_without_comparison_or_history_has_no_such_sections() -> None:
    html = build_report([_episode("s", "success", reward=0.5)])
    assert 'id="verdict"' not in html and 'id="history"' not in html
    assert 'id="distributions"' in html


def test_no_external_urls() -> None:
    blobs: dict[str, bytes] = {}
    _, _, comparison = _regressing_comparison()
    html = build_report(
        [*_xss_episodes(blobs), _episode("u", "intervention", obs="see https://example.com")],
        comparison=comparison,
        image=blobs.get,
    )
    refs = [
        value or ""
        for _, attrs in _Elements(html).tags
        for name, value in attrs.items()
        if name in ("src", "href", "srcset", "action", "poster", "xlink:href")
    ]
    assert refs, "expected the screenshot's src"
    assert all(ref.startswith("data:image/png;base64,") for ref in refs)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, flags=re.I)
    assert "<link" not in html and "@import" not in html and "url(" not in html


def test_screenshots_inline_only_when_they_are_images() -> None:
    blobs: dict[str, bytes] = {}
    ep = _episode("shot", "intervention", screenshot=_png(), blobs=blobs, steps=5)
    html = build_report([ep], image=blobs.get)
    assert html.count('src="data:image/png;base64,') == 3  # the last three steps
    html = build_report([ep], image=lambda sha: b"<svg onload=alert(1)>")
    assert "base64," not in html and "not a PNG" in html

    def broken(sha: str) -> bytes:
        raise FileNotFoundError(sha)

    assert "screenshot unavailable" in build_report([ep], image=broken)


def test_failures_are_capped_and_truncated() -> None:
    long_obs = "x" * 10_000
    eps = [_episode(f"f{i}", "intervention", obs=long_obs, steps=4) for i in range(7)]
    eps.append(_episode("ok", "success"))
    html = build_report(eps, max_failures=2)
    assert html.count('<article class="failure') == 2
    assert "Failures (7)" in html and "5 more not shown" in html
    assert "x" * 4000 in html and "x" * 4001 not in html
    assert html.count('<pre class="observation">') == 2 * 3


def test_history_section() -> None:
    points = [
        HistoryPoint(f"s{i}", 1_700_000_000.0 + i * 3600, "model-a", v, 10)
        for i, v in enumerate([0.9, 0.88, 0.91, 0.6])
    ]
    hist = History(
        metric="success_rate",
        higher_is_better=True,
        series={"model-a": points},
        trends={"model-a": -0.08},
        drops=[
            {
                "model": "model-a",
                "session_id": "s3",
                "previous_mean": 0.8967,
                "latest": 0.6,
                "change": -0.33,
            }
        ],
    )
    html = build_report([_episode("s", "success")], history=hist)
    assert 'id="history"' in html
    assert "-0.08 per run (worsening)" in html
    assert 'class="drop"' in html and "Drop: model-a in session s3" in html
    empty = History(metric="reward", higher_is_better=True)
    assert 'id="history"' not in build_report([_episode("s", "success")], history=empty)


def test_write_report_is_atomic_and_creates_dirs(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "report.html"
    assert write_report(target, "<p>one</p>") == target
    write_report(str(target), "<p>two</p>")
    assert target.read_text(encoding="utf-8") == "<p>two</p>"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]


def test_report_store_picks_the_session_and_its_ab_arms(tmp_path: Path) -> None:
    store = open_store(tmp_path / "r.db", create=True)
    with pytest.raises(StoreError, match="has no sessions yet"):
        report_store(store, tmp_path / "none.html")
    for sid, argv in (
        ("aaaa000000000001", ["pytest"]),
        ("abcd000000000002", ["tests/agents", "-q", "--ab", "m:a,m:b", "--teach-db", "x.db"]),
    ):
        store.start_session(sid, argv=argv, version="t", git_commit=None, rootdir=None)
    first = _episode("s0", "success", "m:a")
    first.session_id = "aaaa000000000001"
    store.write_episode(first)
    for model, arm in (("m:a", "A"), ("m:b", "B")):
        for i in range(3):
            e = _episode(f"s{i}", "success" if arm == "B" or i else "intervention", model)
            e.session_id, e.arm = "abcd000000000002", arm
            store.write_episode(e)
    latest = report_store(store, tmp_path / "out" / "latest.html")
    html = latest.path.read_text(encoding="utf-8")
    assert latest.episodes == 6 and "<title>tests/agents · m:a vs m:b</title>" in html
    assert 'id="comparison"' in html and "m:b" in html
    first_only = report_store(store, tmp_path / "first.html", session="AAAA")
    first_html = first_only.path.read_text()
    assert first_only.episodes == 1 and 'id="comparison"' not in first_html
    assert "<title>all tests</title>" in first_html
    everything = report_store(store, tmp_path / "all.html", everything=True)
    assert everything.episodes == 7
    assert "<title>all sessions</title>" in everything.path.read_text()
    with pytest.raises(StoreError, match=r"--session 'a' matches 2 sessions"):
        report_store(store, tmp_path / "x.html", session="a")


def test_render_stats_and_feedback(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db", create=True)
    assert render_feedback([]).startswith("no feedback yet; add some with `teach feedback add")
    episodes = [_episode("s0", "success"), _episode("s1", "intervention")]
    store.write_episodes(episodes)
    store.add_feedback(episodes[1].id, rating=2, aspects={"tone": 4}, comment="too slow")
    text = render_stats(store.stats(), top=1)
    assert "episodes   2   steps 2" in text
    assert "interventions 50.0% of labeled episodes" in text
    assert text.splitlines()[-2:] == ["by scenario: 2 scenarios, top:", f"  {'s0':<40} 1"]
    (line,) = render_feedback(store.feedback()).splitlines()
    assert line.startswith("#1  ") and line.endswith(
        f"{episodes[1].id}  rating=2  tone=4  'too slow'"
    )


def test_report_package_is_not_loaded_by_the_plugin() -> None:
    import subprocess
    import sys

    code = "import sys, pytest_teach.plugin; print('pytest_teach.report' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- in a browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through Playwright, or a skip saying what is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (run scripts/ensure-chromium.sh)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"playwright can't be imported: {exc}")
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


class _Watched:
    """A page with every request, dialog, console error and page error recorded."""

    def __init__(self, browser, path: Path) -> None:
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page()
        self.page.on("request", lambda req: self.requests.append(req.url))
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.goto(path.resolve().as_uri())

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def check_quiet(self) -> None:
        self.page.close()
        assert self.dialogs == []
        assert self.errors == []  # a CSP violation (our own script blocked) would show here
        assert self.requests, "the report itself was requested"
        assert all(url.startswith(("file:", "data:")) for url in self.requests), self.requests


def test_report_in_chromium(browser, tmp_path: Path) -> None:
    blobs: dict[str, bytes] = {}
    a, b, comparison = _regressing_comparison()
    episodes = [*a, *b, *_xss_episodes(blobs)]
    path = write_report(
        tmp_path / "report.html", build_report(episodes, comparison=comparison, image=blobs.get)
    )
    watched = _Watched(browser, path)
    page = watched.page
    assert page.text_content("#verdict") == "REJECT"
    assert page.get_attribute("#verdict", "data-verdict") == "REJECT"
    assert page.text_content("#winner") == comparison.winner_text

    row = page.locator('#scenarios tbody tr[data-scenario="weather-002"]')
    assert row.locator("td").nth(3).text_content() == "intervention"

    rows = page.locator("#scenarios tbody tr")
    visible = page.locator("#scenarios tbody tr:visible")
    assert rows.count() == len(episodes) == visible.count()

    page.fill("#filter-text", "weather")
    assert visible.count() == 2
    assert sorted(visible.evaluate_all("rs => rs.map(r => r.dataset.scenario)")) == [
        "weather-001",
        "weather-002",
    ]
    assert page.text_content("#shown-count") == "2"
    page.select_option("#filter-outcome", "intervention")
    assert visible.evaluate_all("rs => rs.map(r => r.dataset.scenario)") == ["weather-002"]
    page.fill("#filter-text", "")
    assert visible.count() == 4  # 3 from model-b + weather-002
    assert set(visible.evaluate_all("rs => rs.map(r => r.dataset.outcome)")) == {"intervention"}
    page.select_option("#filter-outcome", "")
    assert visible.count() == len(episodes)

    def order() -> list[str]:
        return rows.evaluate_all("rs => rs.map(r => r.dataset.scenario)")

    def latencies() -> list[float]:
        cells = page.locator("#scenarios tbody tr td:nth-child(7)").all_text_contents()
        return [float(c) for c in cells]

    before = order()
    page.click("#scenarios thead th:nth-child(7)")  # latency ms, ascending
    after = order()
    assert after != before and sorted(after) == sorted(before)
    assert latencies() == sorted(latencies())
    page.click("#scenarios thead th:nth-child(7)")  # descending
    assert latencies() == sorted(latencies(), reverse=True)
    page.click("#scenarios thead th:nth-child(1)")  # scenario, text
    names = order()
    assert names == sorted(names, key=str.lower)

    # the payloads stayed inert and are shown as text
    assert page.evaluate("window.__pwned") is None
    assert page.locator("script").count() == 1
    assert page.locator("img[onerror]").count() == 0
    assert page.locator("img:not(.shot)").count() == 0
    observations = page.locator("pre.observation").all_text_contents()
    assert any(SCRIPT_PAYLOAD in t and IMG_PAYLOAD in t for t in observations)
    assert page.get_by_text(f"picked {IMG_PAYLOAD}").first.is_visible()
    evil = page.locator("#scenarios tbody td", has_text=f"evil-{SCRIPT_PAYLOAD}")
    assert evil.first.is_visible()

    # the screenshot decoded from its data: URI
    shot = page.locator("img.shot").first
    assert shot.evaluate("img => img.complete && img.naturalWidth") == 2
    watched.check_quiet()


def test_long_tables_show_a_page_of_rows(
    browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_teach.report import _html

    monkeypatch.setattr(_html, "_PAGE_ROWS", 10)
    episodes = [
        _episode(f"s{i:02d}", "intervention" if i % 3 == 0 else "success", latency=float(i))
        for i in range(25)
    ]
    path = write_report(tmp_path / "report.html", build_report(episodes))
    watched = _Watched(browser, path)
    page = watched.page
    visible = page.locator("#scenarios tbody tr:visible")
    assert page.locator("#scenarios tbody tr").count() == 25
    assert visible.count() == 10 and page.text_content("#shown-count") == "10"
    page.click("#show-more")
    assert visible.count() == 20
    page.click("#show-all")
    assert visible.count() == 25 and page.locator("#show-all").is_hidden()
    page.select_option("#filter-outcome", "intervention")  # a new filter starts a new page
    assert visible.count() == 9 and page.text_content("#match-count") == "9"
    page.select_option("#filter-outcome", "")
    assert visible.count() == 10
    page.click("#scenarios thead th:nth-child(7)")
    page.click("#scenarios thead th:nth-child(7)")  # descending: the page holds the largest
    shown = [float(t) for t in visible.locator("td:nth-child(7)").all_text_contents()]
    assert shown == [float(i) for i in range(24, 14, -1)]
    watched.check_quiet()


# -- what the report learned from the viewer ---------------------------------------------------


def _statuses(html: str) -> list[tuple[str, str]]:
    """(status, scenario) of each row of the A/B section's side-by-side table, in order."""
    table = html[
        html.index('<table id="pairs">') : html.index("</table>", html.index('id="pairs"'))
    ]
    return re.findall(r'<tr data-status="(\w+)"><td>([^<]*)</td>', table)


def test_ab_section_is_one_row_per_scenario_side_by_side_regressions_first() -> None:
    a, b, _ = _regressing_comparison()
    # sc-6 improves (fails under A, passes under B); sc-7 differs in reward only; sc-8 ran
    # under B alone; sc-0..2 regress; sc-3..5 are the same.
    a += [
        _episode("sc-6", "intervention", "model-a", reward=0.0),
        _episode("sc-7", "success", "model-a", reward=0.9),
    ]
    b += [
        _episode("sc-6", "success", "model-b", reward=1.0),
        _episode("sc-7", "success", "model-b", reward=0.5),
        _episode("sc-8", "success", "model-b", reward=1.0),
    ]
    comparison = compare(a, b, baseline_name="model-a", candidate_name="model-b")
    html = build_report(a + b, comparison=comparison)
    rows = _statuses(html)
    assert [s for s, _ in rows] == ["regression"] * 3 + ["improvement"] + ["differs"] * 2 + [
        "same"
    ] * 3
    assert {name for s, name in rows if s == "regression"} == set(comparison.regressions)
    assert [name for _, name in rows[3:6]] == ["sc-6", "sc-7", "sc-8"]  # B - A lowest first
    assert len({name for _, name in rows}) == len(rows) == 9  # one row per scenario
    first = html[html.index('<tr data-status="regression"><td>sc-0<') :].split("</tr>")[0]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", first)
    assert cells == ["sc-0", "regression", "success", "1.000", "intervention", "0.000", "-1.000",
                     "wrong tool"]  # fmt: skip
    lone = html[html.index("<td>sc-8</td>") :].split("</tr>")[0]
    assert re.findall(r"<td[^>]*>([^<]*)</td>", lone)[2:7] == ["", "", "success", "1.000", ""]
    assert "3 regressions" in html


def test_ab_pairs_follow_the_arms_of_an_ab_run() -> None:
    a, b, _ = _regressing_comparison()
    for e in a:
        e.arm, e.model = "A", "same-model"
    for e in b:
        e.arm, e.model = "B", "same-model"
    comparison = compare(a, b, baseline_name="same-model", candidate_name="same-model")
    rows = _statuses(build_report(b + a, comparison=comparison))
    assert [s for s, _ in rows] == ["regression"] * 3 + ["same"] * 3


def _points(model: str, values: list[float]) -> list[HistoryPoint]:
    return [
        HistoryPoint(f"{model}-s{i}", 1_700_000_000.0 + i * 3600, model, v, 10)
        for i, v in enumerate(values)
    ]


def test_history_charts_only_where_there_are_three_points() -> None:
    hist = History(
        metric="success_rate",
        higher_is_better=True,
        series={
            "model-a": _points("model-a", [0.9, 0.8, 0.85]),
            "model-b": _points("model-b", [0.7, 0.75]),
            "model-c": _points("model-c", [0.5]),
        },
        trends={"model-a": -0.025, "model-b": 0.05},
    )
    html = build_report([_episode("s", "success")], history=hist)
    section = html[
        html.index('id="history"') : html.index("</section>", html.index('id="history"'))
    ]
    assert section.count('<svg class="chart') == 1
    assert re.findall(r'<figure data-model="([^"]+)">', section) == ["model-a"]
    assert "model-b: 2 runs, latest 0.75" in section and "model-c: 1 run, latest 0.5" in section
    assert "Charted from 3 runs on" in section
    few = History(
        metric="success_rate",
        higher_is_better=True,
        series={"model-b": _points("model-b", [0.7, 0.75])},
    )
    html = build_report([_episode("s", "success")], history=few)
    assert 'id="history"' in html and '<svg class="chart line' not in html


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        ([], "all tests"),
        (["pytest", "-q"], "all tests"),
        (["tests/agents", "-m", "browser", "--model", "openai:gpt-4o"],
         "tests/agents · -m browser · openai:gpt-4o"),
        (["scenarios/tool_selection", "-p", "no:cacheprovider", "--tb=no", "-kweather",
          "--ab", "scripted:oracle,scripted:noisy-0.3", "-n", "2", "--teach-db", "a.db"],
         "scenarios/tool_selection · -k weather · scripted:oracle vs scripted:noisy-0.3"),
        (["a.py", "b.py", "c.py", "d.py", "e.py", "-x"], "a.py b.py c.py +2 more"),
        (["t.py", "--token", "Zq8vN3pL0wXy7RtK2mB5cD9eF1gH4jSa"], "t.py"),
        (["--model", "http://u:hunter2secret@host/v1"], "all tests · http://u:[REDACTED]@host/v1"),
    ],
)  # fmt: skip
def test_run_name_is_what_ran_and_under_which_models(argv: list[str], name: str) -> None:
    assert run_name(argv) == name


def test_run_name_is_short() -> None:
    name = run_name(["tests/" + "x" * 300 + ".py"])
    assert len(name) == 100 and name.endswith("…")


def test_the_plugin_titles_its_report_with_the_run_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_named="def test_calls(episode):\n    episode.step('o', 'a')\n")
    result = pytester.runpytest(
        "test_named.py", "-p", "no:cacheprovider", "-k", "calls", "--teach-report=report.html"
    )
    result.assert_outcomes(passed=1)
    html = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert "<title>test_named.py · -k calls</title>" in html
    assert (
        "<h1>test_named.py · -k calls</h1>" in html
        and "report.html" not in html.split("<h1>")[1][:80]
    )
