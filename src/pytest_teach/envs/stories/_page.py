"""Driving a story page: load the HTML, run axe-core, read the page as a snapshot, press keys.

A :class:`Snapshot` is one read of the page: every element with a role, an ARIA attribute, a
click handler or a tab index, with its role and accessible name as axe-core computes them, its
ARIA state, visibility and focus. Elements keep their ``key`` across snapshots of one load, so a
check can find the same element after a key press.

Playwright is imported only for its error type, when a page is driven.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["AXE_OPTIONS", "Node", "Ref", "Snapshot", "StoryPage", "story_document"]

#: axe-core rules that judge whole pages, not a component: off for stories.
PAGE_LEVEL_RULES = ("region", "landmark-one-main", "page-has-heading-one", "bypass")
AXE_OPTIONS: dict[str, Any] = {
    "resultTypes": ["violations"],
    "rules": {rule: {"enabled": False} for rule in PAGE_LEVEL_RULES},
}
LOAD_TIMEOUT_MS = 10_000
NAVIGATED_AWAY = "the story left the page (a form submission, a link, a popup or a script)"
#: Past this many seconds in one check, the story's running script is stopped (see _Watchdog).
CHECK_DEADLINE_S = 4.0
# Roles that take clicks and keys; a click handler on anything else is div soup.
INTERACTIVE_ROLES = frozenset(
    (
        "button", "link", "checkbox", "radio", "switch", "tab", "menuitem", "menuitemcheckbox",
        "menuitemradio", "option", "textbox", "searchbox", "combobox", "slider", "spinbutton",
        "listbox", "treeitem", "gridcell",
    )
)  # fmt: skip

# Reads the page: every element worth a check, with axe-core's role and accessible name.
_READ = r"""async function read(activeOnly) {
  // The story's window carries a mark (set by the first read): a read that finds no mark, or
  // finds that a navigation away started, reports that the page navigated away, whether or
  // not the new document has replaced the story yet.
  const STORY = Symbol.for("pytest-teach.story");
  const LEAVING = Symbol.for("pytest-teach.story-leaving");
  if (!window[STORY] || window[LEAVING]) {
    return activeOnly ? null : { leaving: window[LEAVING] || location.href };
  }
  await new Promise((resolve) => setTimeout(resolve, 0));
  const KEYS = Symbol.for("pytest-teach.story-keys");
  const store = window[KEYS] || (window[KEYS] = { map: new WeakMap(), next: 1 });
  const keyOf = (el) => {
    let key = store.map.get(el);
    if (!key) { key = store.next++; store.map.set(el, key); }
    return key;
  };
  let active = document.activeElement;
  while (active && active.shadowRoot && active.shadowRoot.activeElement) {
    active = active.shadowRoot.activeElement;
  }
  if (active === document.body || active === document.documentElement) active = null;
  if (activeOnly) return active ? keyOf(active) : null;
  if (window[LEAVING]) return { leaving: window[LEAVING] };
  const ax = window.axe;
  const clean = (text) => (text || "").replace(/\s+/g, " ").trim().slice(0, 300);
  const visible = (el) =>
    el.checkVisibility({ visibilityProperty: true }) && el.getClientRects().length > 0;
  const SKIP = new Set(["SCRIPT", "STYLE", "TEMPLATE", "NOSCRIPT", "META", "LINK", "TITLE"]);
  const ATTRS = ["role", "type", "href", "tabindex", "hidden", "disabled", "required",
    "readonly", "alt", "onclick", "open", "name"];
  const REFS = ["aria-controls", "aria-describedby", "aria-errormessage", "aria-labelledby"];
  ax.setup(document);
  try {
    const roleOf = (el) => ax.commons.aria.getRole(el) || null;
    const nameOf = (el) => {
      const vnode = ax.utils.getNodeFromTree(el);
      return vnode ? clean(ax.commons.text.accessibleTextVirtual(vnode, { includeHidden: true })) : "";
    };
    const nodes = [];
    const kept = new Set();
    for (const el of document.querySelectorAll("body *")) {
      if (SKIP.has(el.tagName)) continue;
      const role = roleOf(el);
      const hasAria = Array.from(el.attributes).some((a) => a.name.startsWith("aria-"));
      const wanted = (role && role !== "generic" && role !== "presentation" && role !== "none"
        && role !== "paragraph") || hasAria || el.hasAttribute("onclick")
        || el.hasAttribute("tabindex") || el.tagName === "IMG" || el === active;
      if (!wanted) continue;
      kept.add(el);
      const attrs = {};
      for (const a of el.attributes) {
        if (a.name.startsWith("aria-") || ATTRS.includes(a.name)) attrs[a.name] = a.value;
      }
      const refs = {};
      for (const name of REFS) {
        if (!el.hasAttribute(name)) continue;
        refs[name] = el.getAttribute(name).split(/\s+/).filter(Boolean).map((id) => {
          const target = document.getElementById(id);
          return target ? { id, key: keyOf(target), role: roleOf(target),
            text: clean(target.textContent), visible: visible(target) } : { id, key: null };
        });
      }
      const box = el.getBoundingClientRect();
      const checkable = el.tagName === "INPUT" && (el.type === "checkbox" || el.type === "radio");
      const focusable = el.tabIndex >= 0 && !el.disabled && !el.closest("[inert]");
      nodes.push({
        key: keyOf(el), tag: el.tagName.toLowerCase(), role, name: nameOf(el),
        text: clean(el.textContent), visible: visible(el), tabbable: focusable && visible(el),
        checked: checkable ? el.checked : null,
        value: "value" in el && typeof el.value === "string" ? el.value : null,
        native_disabled: el.matches(":disabled"), modal: el.matches(":modal"),
        attrs, refs, box: [box.x + box.width / 2, box.y + box.height / 2], el,
      });
    }
    for (const node of nodes) {
      const ancestors = [];
      for (let up = node.el.parentElement; up; up = up.parentElement) {
        if (kept.has(up)) ancestors.push(keyOf(up));
      }
      node.ancestors = ancestors;
      delete node.el;
    }
    return {
      nodes, active: active ? keyOf(active) : null, url: location.href, leaving: null,
      body: (document.body ? document.body.innerText : "").replace(/\s+/g, " ").slice(0, 5000),
    };
  } finally {
    ax.teardown();
  }
}"""

_SNAPSHOT = "async (activeOnly) => {\n" + _READ + "\nreturn read(activeOnly);\n}"

# axe-core on the page as loaded, and the first read, in one call.
_AUDIT = (
    "async (options) => {\n"
    + _READ
    + """
  if (!window.axe) return null;
  window[Symbol.for("pytest-teach.story")] = true;
  // A form submission, link or popup the story lets through is recorded and stopped (these
  // listeners run last, after the story's own): the check stays on the story's document and
  // no navigation is left running into the next check.
  const leave = (event, url) => {
    window[Symbol.for("pytest-teach.story-leaving")] = url;
    event.preventDefault();
  };
  window.open = (url) => {
    window[Symbol.for("pytest-teach.story-leaving")] = String(url || "about:blank");
    return null;
  };
  window.addEventListener("submit", (event) => {
    if (!event.defaultPrevented) leave(event, event.target.action || location.href);
  });
  window.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("a[href]") : null;
    if (event.defaultPrevented || !link) return;
    const url = new URL(link.href, location.href);
    const here = new URL(location.href);
    if (url.hash && url.origin === here.origin && url.pathname === here.pathname
        && url.search === here.search) return;
    leave(event, link.href);
  });
  const result = await window.axe.run(document, options);
  const violations = result.violations.map((v) => ({
    id: v.id, impact: v.impact || "minor", help: v.help, nodes: v.nodes.length,
  }));
  return { violations, snapshot: await read(false) };
}"""
)

_SCROLL_TO = """(key) => {
  const store = window[Symbol.for("pytest-teach.story-keys")];
  for (const el of document.querySelectorAll("body *")) {
    if (store && store.map.get(el) === key) {
      el.scrollIntoView({ block: "center" });
      const box = el.getBoundingClientRect();
      return [box.x + box.width / 2, box.y + box.height / 2];
    }
  }
  return null;
}"""


def story_document(title: str, html: str) -> str:
    """The page a story is checked on: ``html`` inside a minimal English document titled
    ``title``, or ``html`` itself when it already is a whole document."""
    if re.match(r"\s*<(!doctype|html[\s>])", html, re.IGNORECASE):
        return html
    return (
        f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n</head>\n<body>\n{html}\n</body>\n</html>\n"
    )


@dataclass(frozen=True)
class Ref:
    """An element named by an ID reference (``aria-controls``, ``aria-describedby``...)."""

    id: str
    key: int | None
    role: str | None = None
    text: str = ""
    visible: bool = False


@dataclass(frozen=True)
class Node:
    """One element of a :class:`Snapshot`."""

    key: int
    tag: str
    role: str | None
    name: str
    text: str
    visible: bool
    tabbable: bool
    checked: bool | None
    value: str | None
    native_disabled: bool
    modal: bool
    attrs: dict[str, str]
    refs: dict[str, tuple[Ref, ...]]
    box: tuple[float, float]
    ancestors: tuple[int, ...]

    def attr(self, name: str) -> str | None:
        """The attribute's value, or None when absent."""
        return self.attrs.get(name)

    def aria(self, state: str) -> str | None:
        """``aria-STATE``, lowercased and stripped, or None."""
        value = self.attrs.get(f"aria-{state}")
        return None if value is None else value.strip().lower()

    @property
    def disabled(self) -> bool:
        """Disabled natively or through ``aria-disabled="true"``."""
        return self.native_disabled or self.aria("disabled") == "true"

    @property
    def on(self) -> bool | None:
        """The on/off state of a checkbox, radio, switch or toggle button; None when not exposed."""
        if self.checked is not None:
            return self.checked
        if self.role in ("checkbox", "radio", "switch", "menuitemcheckbox", "menuitemradio"):
            return {"true": True, "false": False}.get(self.aria("checked") or "")
        return {"true": True, "false": False}.get(self.aria("pressed") or "")

    def targets(self, *attrs: str) -> list[Ref]:
        """The elements this one names through the given ID-reference attributes."""
        return [ref for attr in attrs for ref in self.refs.get(attr, ())]

    def describe(self) -> str:
        """A short label for messages: ``<div> "Save changes"``."""
        role = f" role={self.role}" if self.role else ""
        label = (self.name or self.text)[:40]
        return f'<{self.tag}{role}> "{label}"'


def _node(raw: dict[str, Any]) -> Node:
    refs = {name: tuple(Ref(**item) for item in items) for name, items in raw["refs"].items()}
    return Node(
        key=raw["key"],
        tag=raw["tag"],
        role=raw["role"],
        name=raw["name"],
        text=raw["text"],
        visible=raw["visible"],
        tabbable=raw["tabbable"],
        checked=raw["checked"],
        value=raw["value"],
        native_disabled=raw["native_disabled"],
        modal=raw["modal"],
        attrs=raw["attrs"],
        refs=refs,
        box=(raw["box"][0], raw["box"][1]),
        ancestors=tuple(raw["ancestors"]),
    )


@dataclass(frozen=True)
class Snapshot:
    """One read of the page. Name patterns are regular expressions, matched case-insensitively
    anywhere in the accessible name."""

    nodes: tuple[Node, ...] = ()
    active_key: int | None = None
    url: str = ""
    body: str = ""
    #: why the page could not be read (it navigated away or crashed); empty when it was read
    lost: str = ""
    by_key: dict[int, Node] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_key.update({node.key: node for node in self.nodes})

    def all(
        self,
        roles: str | Iterable[str] | None = None,
        name: str | None = None,
        *,
        within: Node | None = None,
        visible: bool | None = None,
    ) -> list[Node]:
        """The nodes with one of ``roles`` (any role when None) whose name matches ``name``,
        inside ``within`` and with the given visibility."""
        wanted = {roles} if isinstance(roles, str) else None if roles is None else set(roles)
        pattern = None if name is None else re.compile(name, re.IGNORECASE)
        return [
            node
            for node in self.nodes
            if (wanted is None or node.role in wanted)
            and (pattern is None or pattern.search(node.name))
            and (within is None or within.key in node.ancestors)
            and (visible is None or node.visible == visible)
        ]

    def find(
        self,
        roles: str | Iterable[str] | None = None,
        name: str | None = None,
        *,
        within: Node | None = None,
        visible: bool | None = None,
    ) -> Node | None:
        """The first node :meth:`all` would give, or None."""
        found = self.all(roles, name, within=within, visible=visible)
        return found[0] if found else None

    def get(self, node: Node | None) -> Node | None:
        """The same element in this snapshot, or None when it is gone (or ``node`` is None)."""
        return None if node is None else self.by_key.get(node.key)

    @property
    def active(self) -> Node | None:
        """The focused element, or None when focus is on the page itself."""
        return None if self.active_key is None else self.by_key.get(self.active_key)

    def focused(self, node: Node | None) -> bool:
        """Whether ``node`` has focus."""
        return node is not None and self.active_key == node.key

    def inside(self, node: Node | None, container: Node | None) -> bool:
        """Whether ``node`` is a descendant of ``container``."""
        return node is not None and container is not None and container.key in node.ancestors

    def has_ancestor(self, node: Node | None, roles: str | Iterable[str]) -> bool:
        """Whether one of ``node``'s ancestors has one of ``roles``."""
        wanted = {roles} if isinstance(roles, str) else set(roles)
        return node is not None and any(
            self.by_key[key].role in wanted for key in node.ancestors if key in self.by_key
        )

    def shows(self, pattern: str) -> bool:
        """Whether the page's visible text matches ``pattern``."""
        return re.search(pattern, self.body, re.IGNORECASE) is not None

    @property
    def live_regions(self) -> list[Node]:
        """Status, alert and log regions, and anything with ``aria-live``."""
        return [
            node
            for node in self.nodes
            if node.role in ("status", "alert", "log") or node.tag == "output"
            or "aria-live" in node.attrs
        ]  # fmt: skip

    def announces(self, pattern: str) -> bool:
        """Whether a visible live region's text matches ``pattern``."""
        regex = re.compile(pattern, re.IGNORECASE)
        return any(node.visible and regex.search(node.text) for node in self.live_regions)

    @property
    def tabbable_count(self) -> int:
        """How many elements Tab can reach."""
        return sum(node.tabbable for node in self.nodes)


_CDP: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_ABORT = re.compile(r"^(https?|wss?|ftp)://", re.IGNORECASE)


class _Watchdog:
    """Stops a story's script that runs too long, so a check can't hang on a busy page.

    A script stuck in a loop blocks the page, and Playwright calls have no deadline of their
    own. The watchdog is a timer on the Playwright client's event loop, which runs while a sync
    call waits. Once the check has run ``seconds`` and the call in flight has waited ``grace``
    seconds, it sends CDP ``Runtime.terminateExecution`` through a session opened before the
    story loaded (again every ``grace`` seconds while that call stays stuck). The stuck call
    then returns, and :attr:`fired` tells the check. It relies on two private attributes of
    Playwright's sync API (the page's ``_loop``, the CDP session's ``_impl_obj``); without
    them it does nothing.
    """

    def __init__(self, page: Page, cdp: Any, seconds: float, grace: float = 0.5) -> None:
        self.fired = False
        self.seconds = seconds
        self._grace = grace
        self._cdp = cdp
        self._loop = getattr(page, "_loop", None)  # the sync API's event loop (private)
        self._call_started: float | None = None
        self._handle = None if self._loop is None else self._loop.call_later(seconds, self._fire)

    def _fire(self) -> None:
        import asyncio

        assert self._loop is not None
        waited = 0.0 if self._call_started is None else self._loop.time() - self._call_started
        if self._call_started is not None and waited >= self._grace:
            self.fired = True
            sender = getattr(getattr(self._cdp, "_impl_obj", None), "send", None)
            if sender is not None:
                task = asyncio.ensure_future(sender("Runtime.terminateExecution", None, None))
                task.add_done_callback(lambda done: done.cancelled() or done.exception())
            waited = 0.0
        self._handle = self._loop.call_later(self._grace - waited, self._fire)

    def call(self, operation: Callable[[], Any]) -> Any:
        """Run one Playwright call under the watchdog."""
        self._call_started = None if self._loop is None else self._loop.time()
        try:
            return operation()
        finally:
            self._call_started = None

    def disarm(self) -> None:
        """Stop the timer."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class StoryPage:
    """A Playwright page set up for stories, once per page: axe-core is injected into every new
    document (an init script), requests leaving the page are aborted (stories are
    self-contained, and checks stay offline and deterministic), and a CDP session is kept open
    for the watchdog that stops runaway scripts.

    Use it as a context manager around one check: it loads nothing by itself, and on exit it
    stops collecting script errors and disarms the watchdog.
    """

    def __init__(self, page: Page, *, deadline_s: float | None = None) -> None:
        self.page = page
        self.errors: list[str] = []
        if page not in _CDP:
            from axe_playwright_python.base import AXE_SCRIPT

            page.add_init_script(AXE_SCRIPT)
            page.route(_ABORT, lambda route: route.abort())
            _CDP[page] = page.context.new_cdp_session(page)
        seconds = CHECK_DEADLINE_S if deadline_s is None else deadline_s
        self.watchdog = _Watchdog(page, _CDP[page], seconds)

    def __enter__(self) -> StoryPage:
        return self

    def __exit__(self, *exc: object) -> None:
        from playwright.sync_api import Error

        if self.watchdog.fired:  # a termination sent as the stuck call ended would hit the
            for _ in range(2):  # next script run: spend it on a no-op
                with contextlib.suppress(Error):
                    self._evaluate("0")
        self.watchdog.disarm()
        self.page.remove_listener("pageerror", self._on_error)

    def _evaluate(self, expression: str, arg: Any = None) -> Any:
        return self.watchdog.call(lambda: self.page.evaluate(expression, arg))

    def _on_error(self, error: Any) -> None:
        self.errors.append(str(getattr(error, "message", error))[:300])

    def load(self, title: str, html: str) -> None:
        """Show ``html`` on a fresh document (a new window, so nothing a previous story's
        scripts left behind survives) and start collecting its script errors.

        Raises:
            InfrastructureError: the page could not be reset to ``about:blank``.
            playwright.sync_api.TimeoutError: the story's document did not load in time.
        """
        from playwright.sync_api import Error

        from ...errors import InfrastructureError

        self.errors = []
        self.page.remove_listener("pageerror", self._on_error)
        for _ in range(3):
            try:
                self.watchdog.call(lambda: self.page.goto("about:blank", timeout=LOAD_TIMEOUT_MS))
                break
            except Error as exc:
                failure = exc
                # A navigation the last story started (script-driven, so it couldn't be
                # stopped) can cut in; it is fine as long as a fresh about:blank comes out.
                if self._fresh():
                    break
        else:
            raise InfrastructureError(
                f"the story page could not be reset to about:blank: {_first_line(failure)}"
            ) from failure
        self.page.on("pageerror", self._on_error)
        document = story_document(title, html)
        self.watchdog.call(lambda: self.page.set_content(document, timeout=LOAD_TIMEOUT_MS))

    def _fresh(self) -> bool:
        """Whether the page shows a new about:blank window (no story has been read on it)."""
        from playwright.sync_api import Error

        try:
            self.watchdog.call(
                lambda: self.page.wait_for_load_state("load", timeout=LOAD_TIMEOUT_MS)
            )
            return self.page.url == "about:blank" and self._evaluate(
                '() => !window[Symbol.for("pytest-teach.story")]'
            )
        except Error:
            return False

    def audit(self) -> tuple[list[dict[str, Any]] | None, Snapshot]:
        """axe-core's violations on the page as loaded (``{id, impact, help, nodes}``), and
        the page's first :class:`Snapshot`, in one round trip. Violations are None (and the
        snapshot says why) when axe-core could not run: the page navigated away or crashed."""
        from playwright.sync_api import Error

        try:
            found = self._evaluate(_AUDIT, AXE_OPTIONS)
            if found is None:  # a document created before the init script, or that replaced it
                from axe_playwright_python.base import AXE_SCRIPT

                self._evaluate(AXE_SCRIPT)
                found = self._evaluate(_AUDIT, AXE_OPTIONS)
        except Error as exc:
            return None, Snapshot(lost=_first_line(exc))
        violations = sorted(found["violations"], key=lambda v: (v["id"], v["impact"]))
        return violations, _snapshot(found["snapshot"])

    def snapshot(self) -> Snapshot:
        """Read the page, after letting already-queued tasks run. A page that navigated away
        or crashed gives an empty snapshot saying so."""
        from playwright.sync_api import Error

        try:
            raw = self._evaluate(_SNAPSHOT, False)
        except Error as exc:
            return Snapshot(lost=_first_line(exc))
        if raw is None:
            return Snapshot(lost="axe-core is not available on the page")
        return _snapshot(raw)

    def active_key(self) -> int | None:
        """The key of the focused element (cheaper than a snapshot)."""
        from playwright.sync_api import Error

        try:
            return self._evaluate(_SNAPSHOT, True)
        except Error:
            return None

    def press(self, key: str) -> Snapshot:
        """Press ``key`` (``Tab``, ``Enter``, ``Space``, ``Shift+Tab``...) and read the page."""
        return self._keyboard(lambda: self.page.keyboard.press(key))

    def type(self, text: str) -> Snapshot:
        """Type ``text`` into the focused element and read the page."""
        return self._keyboard(lambda: self.page.keyboard.type(text))

    def _keyboard(self, action: Callable[[], object]) -> Snapshot:
        """Run the keyboard ``action`` under the watchdog and read the page (a lost snapshot
        when the page went away)."""
        from playwright.sync_api import Error

        try:
            self.watchdog.call(action)
        except Error as exc:
            return Snapshot(lost=_first_line(exc))
        return self.snapshot()

    def tab_to(self, node: Node | None, snapshot: Snapshot) -> bool:
        """Press Tab until ``node`` has focus; False when it isn't reachable. Focus wraps past
        the end of the page, so every Tab stop is tried once from wherever focus starts."""
        if node is None or snapshot.lost:
            return False
        if snapshot.active_key == node.key:
            return True
        if not node.tabbable:
            return False
        from playwright.sync_api import Error

        try:
            for _ in range(snapshot.tabbable_count + 1):
                self.watchdog.call(lambda: self.page.keyboard.press("Tab"))
                if self.active_key() == node.key:
                    return True
        except Error:
            pass
        return False

    def click(self, node: Node) -> Snapshot:
        """Click the middle of ``node`` with the mouse (a real click: a disabled button ignores
        it) and read the page."""
        from playwright.sync_api import Error

        try:
            point = self._evaluate(_SCROLL_TO, node.key)
            if point is not None:
                self.watchdog.call(lambda: self.page.mouse.click(point[0], point[1]))
        except Error as exc:
            return Snapshot(lost=_first_line(exc))
        return self.snapshot()


def _snapshot(raw: dict[str, Any]) -> Snapshot:
    if raw.get("leaving"):
        return Snapshot(lost=NAVIGATED_AWAY)
    nodes = tuple(_node(item) for item in raw["nodes"])
    return Snapshot(nodes=nodes, active_key=raw["active"], url=raw["url"], body=raw["body"])


def _first_line(exc: BaseException) -> str:
    """A stable one-line reason for a Playwright error (its wording varies with timing)."""
    text = str(exc).strip()
    if "context was destroyed" in text or "navigation" in text.split("\n", 1)[0]:
        return NAVIGATED_AWAY
    line = text.splitlines()[0] if text else type(exc).__name__
    return re.sub(r"^\w+\.\w+: ", "", line).rstrip(".")[:300]
