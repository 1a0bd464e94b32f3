"""Driving Debian Chromium through Playwright: launching it, observing a page, acting on it.

The agent sees a page as its accessibility snapshot (``page.aria_snapshot(mode="ai")``) and
acts on elements by the ``ref`` they carry in that snapshot. :meth:`BrowserSession.act` never
raises for an agent's mistake: a stale or unknown ref, an element covered by a banner, a bad
action or a navigation away from the local site comes back as a structured step error.

Playwright is imported inside the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from ...errors import InfrastructureError
from ._aria import refs_of

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

__all__ = [
    "ACTION_TYPES",
    "CHROMIUM_ARGS",
    "NO_CHROMIUM",
    "STEP_ERROR_TYPES",
    "BrowserSession",
    "LaunchedBrowser",
    "Observation",
    "find_chromium",
    "launch_browser",
    "parse_action",
    "step_error",
    "validate_action",
]

ACTION_TYPES = ("click", "fill", "select", "press", "navigate", "scroll", "done")
STEP_ERROR_TYPES = (
    "stale_ref",
    "not_found",
    "not_visible",
    "timeout",
    "invalid_action",
    "navigation_refused",
)
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
NO_CHROMIUM = (
    "no Chromium found: install Debian's chromium (apt-get install chromium) or set "
    "TEACH_CHROMIUM / ini teach_chromium"
)

# required and optional string fields of each action type
_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "click": (("ref",), ()),
    "fill": (("ref", "text"), ()),
    "select": (("ref", "value"), ()),
    "press": (("key",), ("ref",)),
    "navigate": (("url",), ()),
    "scroll": (("direction",), ()),
    "done": ((), ("answer",)),
}
_REF_FORMAT = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_FENCE = re.compile(r"^```(?:json)?\s*\n(?P<body>.*?)\n?```$", re.DOTALL)
_CAUSE_LIMIT = 600


# -- finding and launching Chromium ------------------------------------------------------------


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_chromium(config_value: str | None = None) -> str | None:
    """The Chromium to drive: ``config_value`` (ini ``teach_chromium``), else ``$TEACH_CHROMIUM``,
    else ``/usr/bin/chromium`` or ``/usr/bin/chromium-browser``; None when there is none.

    A path given explicitly (ini or environment) that is not an executable file yields None
    rather than a silent fallback, so a typo is noticed.
    """
    for explicit in (config_value, os.environ.get("TEACH_CHROMIUM")):
        if explicit and explicit.strip():
            path = str(Path(explicit.strip()).expanduser())
            return path if _executable(path) else None
    for path in CHROMIUM_CANDIDATES:
        if _executable(path):
            return path
    return None


class LaunchedBrowser:
    """A running Chromium with the Playwright driver behind it. ``close()`` stops both."""

    def __init__(self, playwright: Playwright, browser: Browser) -> None:
        self.playwright = playwright
        self.browser = browser

    def new_page(self, **context_options: Any) -> Page:
        """A page in a fresh context (its own storage); close it with ``page.context.close()``."""
        return self.browser.new_context(**context_options).new_page()

    def close(self) -> None:
        """Close the browser and stop the driver. Idempotent."""
        browser, playwright = self.browser, self.playwright
        self.browser = self.playwright = None  # type: ignore[assignment]
        try:
            if browser is not None:
                with contextlib.suppress(Exception):  # already gone: the window was closed
                    browser.close()
        finally:
            if playwright is not None:
                playwright.stop()

    def __enter__(self) -> LaunchedBrowser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def launch_browser(executable: str, *, headless: bool = True) -> LaunchedBrowser:
    """Start the Playwright driver and launch ``executable`` (sync API) with :data:`CHROMIUM_ARGS`.

    Raises :class:`~pytest_teach.errors.InfrastructureError` naming the cause when Playwright is
    missing or the browser does not start.
    """
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        raise InfrastructureError(
            f"playwright is not installed ({exc}); pip install 'pytest-teach[browser]'"
        ) from exc
    try:
        playwright = sync_playwright().start()
    except Error as exc:
        raise InfrastructureError(f"could not start the Playwright driver: {exc}") from exc
    try:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=headless, args=list(CHROMIUM_ARGS)
        )
    except Error as exc:
        playwright.stop()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InfrastructureError(f"could not launch Chromium at {executable}: {first}") from exc
    return LaunchedBrowser(playwright, browser)


# -- actions -----------------------------------------------------------------------------------


def step_error(kind: str, message: str, cause: Any = None) -> dict[str, Any]:
    """A structured step error: ``{"type", "message", "cause"}``."""
    if kind not in STEP_ERROR_TYPES:
        raise ValueError(f"unknown step error type {kind!r}")
    text = None if cause is None else str(cause).strip()[:_CAUSE_LIMIT]
    return {"type": kind, "message": message, "cause": text}


def validate_action(action: Any) -> dict[str, Any]:
    """Check one action against the action schema and return it as a plain dict.

    Raises :class:`ValueError` saying what is wrong: not an object, an unknown ``type``, a
    missing or non-string field, an unknown key, or a bad ``direction``.
    """
    if not isinstance(action, dict):
        raise ValueError(f"an action is a JSON object, got {type(action).__name__}")
    kind = action.get("type")
    if kind not in _FIELDS:
        raise ValueError(f"unknown action type {kind!r}; use one of {', '.join(ACTION_TYPES)}")
    required, optional = _FIELDS[kind]
    allowed = {"type", *required, *optional}
    extra = sorted(set(action) - allowed)
    if extra:
        raise ValueError(
            f"{kind}: unexpected key(s) {', '.join(extra)}; a {kind} action has "
            f"{', '.join(sorted(allowed))}"
        )
    for key in required:
        if key not in action:
            raise ValueError(f"{kind}: missing {key!r}")
    for key in (*required, *optional):
        if key in action and not isinstance(action[key], str):
            raise ValueError(f"{kind}: {key!r} must be a string, got {action[key]!r}")
    if "ref" in action and not _REF_FORMAT.match(action["ref"]):
        raise ValueError(f"{kind}: {action['ref']!r} is not a ref like 'e12'")
    if kind == "scroll" and action["direction"] not in ("up", "down"):
        raise ValueError(f"scroll: direction must be 'up' or 'down', got {action['direction']!r}")
    if kind == "press" and not action["key"].strip():
        raise ValueError("press: 'key' is empty; give a key such as 'Enter'")
    return dict(action)


def parse_action(text: str) -> dict[str, Any]:
    """Parse a model's reply as exactly one action.

    The reply must be one JSON object (optionally inside a single ```json fenced block) that
    passes :func:`validate_action`. Raises :class:`ValueError` with a message an agent can act on.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected the reply as text, got {type(text).__name__}")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group("body").strip()
    if not body:
        raise ValueError('empty reply; answer with one JSON action such as {"type": "done"}')
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"reply is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "answer with exactly one JSON object and nothing else"
        ) from None
    return validate_action(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- observing and acting ----------------------------------------------------------------------


@dataclass
class Observation:
    """What the agent sees: ``data`` = {"url", "title", "snapshot"}, and a PNG screenshot."""

    data: dict[str, str]
    screenshot: bytes | None = None

    @property
    def snapshot(self) -> str:
        """The aria snapshot text."""
        return self.data["snapshot"]

    @property
    def url(self) -> str:
        """The page's URL as shown to the agent."""
        return self.data["url"]


class BrowserSession:
    """Observe a Playwright page and act on it by snapshot refs.

    ``base_url`` (for example the site server's origin) is the only place ``navigate`` may go;
    URLs under it are shown to the agent as paths (``/shop/cart.html``), which keeps prompts
    identical across runs. ``timeout_ms`` bounds each action, so a failure is fast.
    """

    def __init__(self, page: Page, *, base_url: str | None = None, timeout_ms: float = 2000):
        self.page = page
        self.timeout_ms = float(timeout_ms)
        self.nav_timeout_ms = max(5000.0, 2.5 * self.timeout_ms)
        self.origin = _origin(base_url) if base_url else None
        self.last_snapshot: str | None = None
        self._refs: set[str] = set()
        self._seen_refs: set[str] = set()

    # -- navigation by the harness (not the agent) -----------------------------------------

    def goto(self, url: str) -> None:
        """Open ``url`` (absolute, or relative to ``base_url``). Infrastructure failures raise
        :class:`~pytest_teach.errors.InfrastructureError`."""
        from playwright.sync_api import Error

        target = self._absolute(url)
        try:
            response = self.page.goto(target, wait_until="load", timeout=self.nav_timeout_ms)
        except Error as exc:
            raise InfrastructureError(f"could not open {target}: {_first_line(exc)}") from exc
        if response is not None and response.status >= 400:
            raise InfrastructureError(f"could not open {target}: HTTP {response.status}")
        self.last_snapshot = None
        self._refs = set()

    # -- observing ---------------------------------------------------------------------------

    def display_url(self, url: str | None = None) -> str:
        """``url`` (default: the page's) as the agent sees it: a path when under ``base_url``."""
        url = self.page.url if url is None else url
        if self.origin and _origin(url) == self.origin:
            parts = urlsplit(url)
            return (
                (parts.path or "/")
                + (f"?{parts.query}" if parts.query else "")
                + (f"#{parts.fragment}" if parts.fragment else "")
            )
        return url

    def observe(self, screenshot: bool = True) -> Observation:
        """Snapshot the page (``aria_snapshot(mode="ai")``), its title, URL and a screenshot.

        Refs in the snapshot are the ones :meth:`act` accepts until the next observation.
        """
        from playwright.sync_api import Error

        try:
            snapshot = self.page.aria_snapshot(mode="ai", timeout=self.nav_timeout_ms)
            title = self.page.title()
            image = (
                self.page.screenshot(type="png", timeout=self.nav_timeout_ms)
                if screenshot
                else None
            )
        except Error as exc:
            raise InfrastructureError(f"could not observe the page: {_first_line(exc)}") from exc
        self.last_snapshot = snapshot
        self._refs = refs_of(snapshot)
        self._seen_refs |= self._refs
        return Observation({"url": self.display_url(), "title": title, "snapshot": snapshot}, image)

    def state(self) -> Any:
        """The site's ``window.__teachState()`` (for task checks only), or None without one."""
        return self.page.evaluate(
            "() => typeof window.__teachState === 'function' ? window.__teachState() : null"
        )

    # -- acting ------------------------------------------------------------------------------

    def act(self, action: Any) -> dict[str, Any] | None:
        """Carry out one action; None on success, else a step error (see :func:`step_error`).

        Actions: ``click``/``fill``/``select`` an element by ``ref``, ``press`` a key (on an
        element or the page), ``navigate`` to a URL of the local site, ``scroll`` up or down,
        and ``done``. Never raises for an agent's mistake; a crashed browser raises
        :class:`~pytest_teach.errors.InfrastructureError`.
        """
        from playwright.sync_api import Error, TimeoutError

        try:
            action = validate_action(action)
        except ValueError as exc:
            return step_error("invalid_action", str(exc), repr(action)[:200])
        kind = action["type"]
        if kind == "done":
            return None
        if kind == "navigate":
            return self._navigate(action["url"])
        if kind == "scroll":
            sign = 1 if action["direction"] == "down" else -1
            self.page.evaluate("(s) => window.scrollBy(0, s * Math.round(innerHeight * 0.8))", sign)
            return None
        ref = action.get("ref")
        if ref is not None:
            problem = self._check_ref(ref)
            if problem is not None:
                return problem
        target = None if ref is None else self.page.locator(f"aria-ref={ref}")
        try:
            if target is not None and target.count() == 0:
                return step_error(
                    "stale_ref",
                    f"{ref} is no longer on the page (it changed since the snapshot); "
                    "use a ref from the current snapshot",
                )
            if kind == "click":
                target.click(timeout=self.timeout_ms)
                self._settle()
            elif kind == "fill":
                target.fill(action["text"], timeout=self.timeout_ms)
            elif kind == "select":
                target.select_option(action["value"], timeout=self.timeout_ms)
            elif kind == "press":
                if target is None:
                    self.page.keyboard.press(action["key"])
                else:
                    target.press(action["key"], timeout=self.timeout_ms)
                self._settle()
        except TimeoutError as exc:
            return self._explain_timeout(action, exc)
        except Error as exc:
            return self._explain_error(action, exc)
        return None

    def _absolute(self, url: str) -> str:
        base = self.page.url if self.page.url.startswith("http") else (self.origin or "")
        if self.origin and url.startswith("/"):
            base = self.origin + "/"
        return urljoin(base, url)

    def _navigate(self, url: str) -> dict[str, Any] | None:
        from playwright.sync_api import Error

        target = self._absolute(url)
        allowed = self.origin or _origin(self.page.url)
        if not allowed or _origin(target) != allowed:
            return step_error(
                "navigation_refused",
                f"navigate may only open pages of the local site ({allowed or 'none open'}); "
                f"{url!r} is outside it",
            )
        try:
            response = self.page.goto(target, wait_until="load", timeout=self.nav_timeout_ms)
        except Error as exc:
            kind = "timeout" if "Timeout" in type(exc).__name__ else "not_found"
            return step_error(kind, f"could not open {url!r}", _first_line(exc))
        if response is not None and response.status >= 400:
            return step_error(
                "not_found", f"{self.display_url(target)} answered HTTP {response.status}"
            )
        return None

    def _check_ref(self, ref: str) -> dict[str, Any] | None:
        if ref in self._refs:
            return None
        if ref in self._seen_refs:
            return step_error(
                "stale_ref",
                f"{ref} is from an earlier snapshot and is not on the current page; "
                "use a ref from the current snapshot",
            )
        return step_error("not_found", f"no element with ref {ref} in the current snapshot")

    def _settle(self) -> None:
        """Wait for a navigation the action started to finish loading."""
        from playwright.sync_api import Error

        with contextlib.suppress(Error):  # the next observation shows the page as it is
            self.page.wait_for_load_state("load", timeout=self.nav_timeout_ms)

    def _describe(self, ref: str | None) -> str:
        if ref is None:
            return "the page"
        if self.last_snapshot:
            for line in self.last_snapshot.splitlines():
                if f"[ref={ref}]" in line:
                    head = line.strip().lstrip("- ").strip("'")
                    return f"{ref} ({head.split(' [', 1)[0]})"
        return ref

    def _explain_timeout(self, action: dict[str, Any], exc: Exception) -> dict[str, Any]:
        text = str(exc)
        what = self._describe(action.get("ref"))
        covering = re.search(r"(<[^\n]*?>)(?:…|\.\.\.)?(?:</\w+>)? intercepts pointer events", text)
        if covering or "intercepts pointer events" in text:
            by = covering.group(1) if covering else "another element"
            return step_error(
                "not_visible",
                f"{what} is covered by {by}, which intercepts the click; deal with what covers "
                "it first (for example close a dialog or banner)",
                _first_line(exc),
            )
        if "not visible" in text:
            return step_error("not_visible", f"{what} is not visible", _first_line(exc))
        if "not enabled" in text or "disabled" in text:
            return step_error("timeout", f"{what} is disabled", _first_line(exc))
        if action["type"] == "select" and "did not find some options" in text:
            return step_error(
                "not_found",
                f"{what} has no option {action['value']!r}; options: {self._options(action)}",
                _first_line(exc),
            )
        seconds = self.timeout_ms / 1000
        return step_error(
            "timeout", f"{action['type']} on {what} did not finish in {seconds:g} s", text
        )

    def _explain_error(self, action: dict[str, Any], exc: Exception) -> dict[str, Any]:
        text = str(exc)
        if "has been closed" in text or "Target crashed" in text:
            raise InfrastructureError(f"the browser went away: {_first_line(exc)}") from exc
        what = self._describe(action.get("ref"))
        detail = _first_line(exc).split(": ", 1)[-1]
        detail = detail[len("Error: ") :] if detail.startswith("Error: ") else detail
        return step_error("invalid_action", f"cannot {action['type']} {what}: {detail}", text)

    def _options(self, action: dict[str, Any]) -> str:
        try:
            options = self.page.locator(f"aria-ref={action['ref']}").evaluate(
                "(el) => Array.from(el.options || []).map(o => JSON.stringify(o.value) + ' (' + o.label + ')')",
                timeout=self.timeout_ms,
            )
        except Exception:
            return "unknown"
        return ", ".join(options) or "none"


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"
