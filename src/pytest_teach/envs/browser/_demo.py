"""Recording human demonstrations on the bundled sites (``teach record``).

Each user action is logged with the page as it was when the user decided (the snapshot, URL,
title and a screenshot), in the same format as an agent's step: the observation, the action in
the session's format, and the prompt an agent would have seen with the action as its reply. The
steps are labeled ``good``; a demonstration is a successful episode by ``model="human"``.

Two sources:

- a script (:func:`load_script`): a JSON list of actions whose targets are refs or
  ``{"role", "name"}`` (resolved against the current snapshot), executed through
  :class:`BrowserSession` by :func:`run_script`;
- a person at a headed browser (:class:`InteractiveRecorder`): an injected listener reports
  clicks, committed inputs, selections and Enter presses through ``page.expose_binding``; each
  event's element is mapped to its ref in the snapshot taken before it.

:func:`record_demonstration` serves the site, launches Chromium and runs either source. The
person can be played by a *driver* (:func:`load_driver`), a generator function that takes the
Playwright page and acts on it with real mouse and keyboard input (``page.mouse``,
``page.keyboard``), yielding after each action; the listener logs its input exactly as it logs
a person's. That is how the headed recorder is tested unattended (under Xvfb).
"""

from __future__ import annotations

import importlib
import json
import queue
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...recorder import EpisodeRecorder
from ._agents import build_messages
from ._aria import describe_target, find, parse_snapshot, resolve_action
from ._runner import VALID_ACTIONS
from ._session import validate_action

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from ...store import Episode
    from ._session import BrowserSession, Observation

#: Plays the person at the browser: called with the page, it acts through ``page.mouse`` and
#: ``page.keyboard`` and yields after each action so the action is logged against the page it
#: was taken on. When it returns, the demonstration ends (as when the window is closed).
Driver = Callable[["Page"], Iterable[object]]

__all__ = [
    "LISTENER_JS",
    "Demonstration",
    "Driver",
    "InteractiveRecorder",
    "ScriptError",
    "load_driver",
    "load_script",
    "record_demonstration",
    "run_script",
]

_TARGETED = ("click", "fill", "select")


class ScriptError(ValueError):
    """A demonstration script that can't be read, parsed or carried out."""


def load_script(path: str | Path) -> list[dict[str, Any]]:
    """Read a script: a JSON list of actions in the session's format, where a target may be
    a ``ref`` or ``"target": {"role", "name"}`` (or ``role``/``name`` at the top level).

    Raises :class:`ScriptError` naming the file, and the action's position when one is bad.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScriptError(f"cannot read script {path}: {reason}") from None
    try:
        steps = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScriptError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(steps, list) or not steps:
        raise ScriptError(f"{path}: expected a non-empty JSON list of actions")
    for number, step in enumerate(steps, start=1):
        where = f"{path}: action #{number}"
        if not isinstance(step, dict):
            raise ScriptError(f"{where}: expected an object, got {type(step).__name__}")
        target = step.get("target")
        if target is None and "role" in step:
            target = {k: step[k] for k in ("role", "name") if k in step}
        if target is not None and (
            not isinstance(target, dict) or not isinstance(target.get("role"), str)
        ):
            raise ScriptError(f'{where}: a target is {{"role": ..., "name": ...}}, got {target!r}')
        if step.get("type") in _TARGETED and target is None and "ref" not in step:
            raise ScriptError(f"{where}: {step['type']} needs a 'ref' or a 'target'")
        probe = {
            k: v
            for k, v in step.items()
            if k not in ("target", "role", "name", "match", "within", "nth")
        }
        if target is not None and step.get("type") in (*_TARGETED, "press"):
            probe["ref"] = "e1"
        try:
            validate_action(probe)
        except ValueError as exc:
            raise ScriptError(f"{where}: {exc}") from None
    return steps


class Demonstration:
    """The steps of one demonstration, recorded as an agent's steps would be."""

    def __init__(self, goal: str) -> None:
        self.goal = goal
        self.recorder = EpisodeRecorder(enabled=True)
        self.history: list[dict[str, Any]] = []
        self.started = time.time()

    def step(self, observation: Observation, action: dict[str, Any]) -> int:
        """Log ``action`` as taken on ``observation``; return the step's index."""
        prompt = build_messages(self.goal, observation.data, self.history)
        reply = json.dumps(action, ensure_ascii=False, separators=(", ", ": "))
        self.history.append({"action": action, "error": None})
        return self.recorder.step(
            observation.data,
            action,
            messages=[*prompt, {"role": "assistant", "content": reply}],
            valid_actions=VALID_ACTIONS,
            screenshot=observation.screenshot,
            label="good",
        )

    @property
    def steps(self) -> int:
        """How many steps were logged."""
        return len(self.recorder.steps)

    def build(
        self, *, episode_id: str, site: str, start: str, source: str, **fields: Any
    ) -> Episode:
        """The demonstration as a successful episode by ``model="human"``."""
        self.recorder.metric(steps=self.steps)
        return self.recorder.build(
            episode_id=episode_id,
            nodeid=f"teach record --site {site}",
            scenario=f"record:{site}",
            outcome="success",
            reason=None,
            category="demonstration",
            model="human",
            params={"site": site, "start": start},
            meta={"task": self.goal, "site": site, "start": start, "source": source},
            duration_s=time.time() - self.started,
            created_at=time.time(),
            **fields,
        )


def run_script(session: BrowserSession, steps: list[dict[str, Any]], demo: Demonstration) -> None:
    """Carry out ``steps`` (see :func:`load_script`) and log each with the page it acted on.

    A final ``done`` is added when the script has none. Raises :class:`ScriptError` when a
    target is not on the page or an action fails, naming the action.
    """
    observation = session.observe()
    for number, step in enumerate(steps, start=1):
        action = resolve_action(step, observation.snapshot)
        if action is None:
            target = step.get("target") or {k: step.get(k) for k in ("role", "name")}
            raise ScriptError(
                f"action #{number}: no {describe_target(target)} on {observation.url}"
            )
        error = session.act(action)
        if error is not None:
            raise ScriptError(f"action #{number} ({action['type']}) failed: {error['message']}")
        demo.step(observation, action)
        if action["type"] == "done":
            return
        observation = session.observe()
    demo.step(observation, {"type": "done"})


# -- a person at the browser -------------------------------------------------------------------

LISTENER_JS = r"""
(() => {
  if (window.__teachListening) return;
  window.__teachListening = true;
  const TEXT_TYPES = ["text", "search", "email", "number", "tel", "url", "password", "date",
    "datetime-local", "month", "week", "time", ""];
  const CLICKABLE = 'a[href], button, input, select, textarea, summary, [role="button"], ' +
    '[role="link"], [role="checkbox"], [role="radio"], [role="tab"], [role="menuitem"], ' +
    '[role="option"], [role="switch"]';
  const isText = (el) => el && ((el.tagName === "INPUT" &&
    TEXT_TYPES.includes((el.getAttribute("type") || "").toLowerCase())) ||
    el.tagName === "TEXTAREA" || el.isContentEditable);
  const squash = (s) => (s || "").replace(/\s+/g, " ").trim();
  function roleOf(el) {
    const explicit = el.getAttribute("role");
    if (explicit) return explicit.split(/\s+/)[0];
    const tag = el.tagName.toLowerCase();
    const type = (el.getAttribute("type") || "").toLowerCase();
    if (tag === "a") return "link";
    if (tag === "button" || (tag === "input" && ["button", "submit", "reset", "image"].includes(type))) return "button";
    if (tag === "select") return el.multiple ? "listbox" : "combobox";
    if (tag === "textarea") return "textbox";
    if (tag === "summary") return "button";
    if (tag === "input") {
      if (type === "checkbox") return "checkbox";
      if (type === "radio") return "radio";
      if (type === "search") return "searchbox";
      if (type === "number") return "spinbutton";
      if (type === "range") return "slider";
      return "textbox";
    }
    return tag;
  }
  function nameOf(el) {
    const label = el.getAttribute("aria-label");
    if (label && label.trim()) return squash(label);
    const by = el.getAttribute("aria-labelledby");
    if (by) {
      const text = by.split(/\s+/).map((id) => document.getElementById(id))
        .filter(Boolean).map((n) => n.textContent).join(" ");
      if (squash(text)) return squash(text);
    }
    if (el.labels && el.labels.length) return squash(Array.from(el.labels).map((l) => l.textContent).join(" "));
    if (el.tagName === "INPUT" && ["button", "submit", "reset"].includes(el.type)) return squash(el.value);
    if (!isText(el) && el.tagName !== "SELECT" && squash(el.textContent)) return squash(el.textContent);
    return squash(el.getAttribute("title") || el.getAttribute("placeholder") || el.getAttribute("alt"));
  }
  const committed = new WeakMap();
  function send(kind, el, extra) {
    try {
      window.__teachRecord(Object.assign({ kind, role: roleOf(el), name: nameOf(el) }, extra || {}));
    } catch (e) { /* the recorder is gone */ }
  }
  function commit(el) {
    if (committed.get(el) === el.value) return;
    committed.set(el, el.value);
    send("fill", el, { value: el.value });
  }
  let enter = { form: null, at: -1 };  // Enter in a text field submits its form...
  document.addEventListener("click", (ev) => {
    const el = ev.target instanceof Element ? ev.target.closest(CLICKABLE) : null;
    if (!el || isText(el) || el.tagName === "SELECT" || el.tagName === "OPTION") return;
    // ...through a synthetic click on the form's submit button: already logged as the press
    if (ev.detail === 0 && el.form && el.form === enter.form && ev.timeStamp - enter.at < 500) return;
    send("click", el);
  }, true);
  document.addEventListener("change", (ev) => {
    const el = ev.target;
    if (el.tagName === "SELECT") send("select", el, { value: el.value });
    else if (isText(el)) commit(el);
  }, true);
  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter" || !isText(ev.target) || ev.target.tagName === "TEXTAREA") return;
    commit(ev.target);
    enter = { form: ev.target.form || null, at: ev.timeStamp };
    send("press", ev.target, { key: "Enter" });
  }, true);
})();
"""


class InteractiveRecorder:
    """Logs what a person does in a (headed) page, step by step.

    Call :meth:`install` once, then :meth:`poll` repeatedly (or :meth:`run` until the page is
    closed). The observation each action is logged with is the one taken before it: after every
    logged action, and whenever the page changed while the person was idle.
    """

    def __init__(
        self, session: BrowserSession, demo: Demonstration, *, idle_refresh_s: float = 1.0
    ) -> None:
        self.session = session
        self.demo = demo
        self.idle_refresh_s = idle_refresh_s
        self.events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.observation: Observation | None = None
        self.observed_at = 0.0
        self.closed = False
        self.unresolved = 0

    def install(self) -> None:
        """Expose the binding, inject the listener (now and on every later page), observe."""
        page = self.session.page
        page.expose_binding("__teachRecord", lambda source, payload: self.events.put(payload))
        page.add_init_script(LISTENER_JS)
        page.evaluate(LISTENER_JS)
        page.on("close", lambda _page: setattr(self, "closed", True))
        self._observe()

    def _observe(self) -> None:
        self.observation = self.session.observe()
        self.observed_at = time.monotonic()

    def poll(self, wait_ms: float = 150) -> bool:
        """Wait a little, log the events that arrived; False once the page is closed."""
        from playwright.sync_api import Error

        if self.closed:
            return False
        try:
            self.session.page.wait_for_timeout(wait_ms)
        except Error:
            self.closed = True
        logged = False
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            action = self.action_of(event)
            if action is not None and self.observation is not None:
                self.demo.step(self.observation, action)
                logged = True
        if self.closed:
            return False
        try:
            if logged:
                self.session.page.wait_for_load_state("load")
                self._observe()
            elif time.monotonic() - self.observed_at > self.idle_refresh_s:
                snapshot = self.session.page.aria_snapshot(mode="ai")
                if self.observation is None or snapshot != self.observation.snapshot:
                    self._observe()
                else:
                    self.observed_at = time.monotonic()
        except Error:
            self.closed = True
            return False
        return True

    def run(self, driver: Driver | None = None) -> None:
        """Poll until the page is closed (or Ctrl+C); with a ``driver``, until it returns.

        After each of the driver's yields the events it caused are logged (and the page is
        observed again), so its next action is resolved against the page it was taken on.
        """
        try:
            if driver is None:
                while self.poll():
                    pass
                return
            for _ in driver(self.session.page):
                if not self.poll(50):
                    return
            self.poll(50)
        except KeyboardInterrupt:
            pass

    def action_of(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The session-format action for one listener event, its target resolved to a ref of
        the current observation (or left as ``target`` when no element there matches)."""
        kind = event.get("kind")
        if kind not in ("click", "fill", "select", "press"):
            return None
        target = {"role": event.get("role") or "", "name": event.get("name") or ""}
        node = None
        if self.observation is not None:
            nodes = parse_snapshot(self.observation.snapshot)
            node = find(nodes, target) or find(nodes, {**target, "match": "prefix"})
        action: dict[str, Any] = {"type": kind}
        if node is not None:
            action["ref"] = node.ref
        else:
            self.unresolved += 1
            action["target"] = target
        if kind == "fill":
            action["text"] = str(event.get("value", ""))
        elif kind == "select":
            action["value"] = str(event.get("value", ""))
        elif kind == "press":
            action["key"] = str(event.get("key", "Enter"))
        return action

    def finish(self) -> None:
        """Log the final ``done`` on the last page seen."""
        if self.observation is not None:
            self.demo.step(self.observation, {"type": "done"})


# -- serving, launching and recording -----------------------------------------------------------


def load_driver(spec: str) -> Driver:
    """The driver named ``MODULE:FUNCTION`` (a generator function, see :data:`Driver`).

    Raises :class:`ScriptError` naming what could not be imported or found.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ScriptError(f"--drive {spec!r}: expected MODULE:FUNCTION")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ScriptError(f"--drive {spec!r}: cannot import {module_name!r} ({exc})") from None
    driver = getattr(module, attr, None)
    if not callable(driver):
        raise ScriptError(f"--drive {spec!r}: {module_name} has no function {attr!r}")
    return driver


def record_demonstration(
    site: str,
    task: str,
    *,
    executable: str,
    headless: bool,
    steps: list[dict[str, Any]] | None = None,
    driver: Driver | None = None,
    start: str = "index.html",
    announce: Callable[[str], None] | None = None,
) -> tuple[Demonstration, InteractiveRecorder | None]:
    """Serve ``site`` on 127.0.0.1, launch Chromium (``headless`` or in a window) on ``start``,
    and record a demonstration of ``task``: the ``steps`` of a script, else a person's input
    (played by ``driver`` when given) until the window is closed.

    ``announce`` receives the site's URL once the recorder listens (for a person). Returns the
    demonstration and, for a person, the recorder (its ``unresolved`` count). Raises
    :class:`ScriptError` when a script fails and
    :class:`~pytest_teach.errors.InfrastructureError` when the browser can't start.
    """
    from ._server import SiteServer
    from ._session import BrowserSession, launch_browser
    from .fixtures import VIEWPORT

    demo = Demonstration(task)
    with SiteServer() as server, launch_browser(executable, headless=headless) as launched:
        page = launched.new_page(viewport=VIEWPORT)
        session = BrowserSession(page, base_url=server.origin)
        session.goto(f"/{site}/{start}")
        if steps is not None:
            run_script(session, steps, demo)
            return demo, None
        recorder = InteractiveRecorder(session, demo)
        recorder.install()
        if announce is not None:
            announce(server.url(site, start))
        recorder.run(driver)
        recorder.finish()
    return demo, recorder
