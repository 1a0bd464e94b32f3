"""The browser family as a TRL environment: the page's actions (click, type, select, press,
navigate, scroll, done) as tools, each answering with the page's next accessibility snapshot.

A rollout drives the bundled sites (:mod:`pytest_teach.envs.browser`) in Chromium exactly as
the scenario's test does (``scenarios/browser``: :func:`~pytest_teach.envs.browser.run_task`):
the task's start page in a fresh browser context of the same size, one snapshot per step, the
same step limit and loop rule, so replaying the executed actions in the test reproduces the
rollout, refs included. One Chromium and one site server serve every environment of a process
(sync Playwright runs once per process); :func:`close_browser` stops them, and they are stopped
at exit.
"""

from __future__ import annotations

import atexit
import hashlib
import inspect
import json
import threading
from typing import Any

from ._env import ActionError, ScenarioEnv

__all__ = ["BROWSER_INSTRUCTIONS", "BrowserEnv", "browser_task_ids", "close_browser"]

BROWSER_INSTRUCTIONS = (
    "You act on a local website, shown as an accessibility snapshot. Call the tools on elements "
    "by their ref (e12), one call at a time, with refs of the latest snapshot. Call done when "
    "the goal is reached."
)

#: How the end of an episode is announced after the last observation.
_OVER = "\nThe episode is over: {how}."

#: The same observation and action this many times ends a run (the runner's loop rule).
LOOP_REPEATS = 3


def browser_task_ids() -> list[str]:
    """The ids of the bundled browser tasks (``docs-cli-reference``, ...), in suite order."""
    from ..envs import browser as br

    return [task.id for task in br.TASKS]


def _runner_max_steps() -> int:
    """The step limit of the scenario's run (``run_task``'s default, which the suite uses)."""
    from ..envs import browser as br

    return int(inspect.signature(br.run_task).parameters["max_steps"].default)


class _Shared:
    """The process's Chromium and site server, started on first use."""

    def __init__(self) -> None:
        self.server: Any = None
        self.launched: Any = None
        self.owner: int | None = None
        self.lock = threading.Lock()

    def get(self, chromium: str | None) -> tuple[Any, Any]:
        from ..envs import browser as br
        from ..errors import InfrastructureError

        with self.lock:
            if self.launched is None:
                executable = br.find_chromium(chromium)
                if executable is None:
                    raise InfrastructureError(br.NO_CHROMIUM)
                server = br.SiteServer().start()
                try:
                    self.launched = br.launch_browser(executable)
                except BaseException:
                    server.stop()
                    raise
                self.server = server
                self.owner = threading.get_ident()
            elif self.owner != threading.get_ident():
                raise InfrastructureError(
                    "the browser environment's Chromium is driven from the thread that started "
                    "it (sync Playwright); call close_browser() there first"
                )
            return self.server, self.launched

    def close(self) -> None:
        with self.lock:
            launched, server = self.launched, self.server
            self.launched = self.server = self.owner = None
        try:
            if launched is not None:
                launched.close()
        finally:
            if server is not None:
                server.stop()


_SHARED = _Shared()
atexit.register(_SHARED.close)


def close_browser() -> None:
    """Stop the Chromium and site server the browser environments share (idempotent); the
    next rollout starts them again."""
    _SHARED.close()


def _key(data: dict[str, Any], action: Any) -> str:
    text = json.dumps([data["url"], data["snapshot"], action], sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _present(data: dict[str, str]) -> str:
    return f"Current page: {data['url']}\nTitle: {data['title']}\nSnapshot:\n{data['snapshot']}"


def _text(value: Any) -> Any:
    """A tool argument as the action's string field (a model may write a number)."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


class BrowserEnv(ScenarioEnv):
    """A browser task (``docs-cli-reference``, the test's parameter id) driven by page actions.

    Each tool call is one step of the scenario's run: an action the page refuses (a stale ref,
    an element covered by a banner) is a step like any other, answered with its error and the
    page as it is now, and replayed in the test; only a malformed call (a ref that isn't one,
    an empty key) is refused without a step. The run ends on ``done``, on the third identical
    observation and action, or at the suite's step limit.

    Options (the context's ``options``): ``chromium``, the browser to drive (default: as the
    suite finds it, ``TEACH_CHROMIUM`` or ``/usr/bin/chromium``).
    """

    family = "browser"
    instructions = BROWSER_INSTRUCTIONS
    suite = "scenarios/browser"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.session: Any = None
        self._task: Any = None
        self._data: dict[str, str] = {}
        self._seen: dict[str, int] = {}
        self._steps = 0
        self._ended: str | None = None
        self._answer: str | None = None
        self._last_error: dict[str, Any] | None = None
        self._policy: Any = None

    # -- the tools ---------------------------------------------------------------------------

    def click(self, ref: str) -> str:
        """Click an element of the page.

        Args:
            ref: The element's ref, such as e12.
        """
        return self._act({"type": "click", "ref": _text(ref)}, "click", {"ref": ref})

    def type(self, ref: str, text: str) -> str:  # noqa: A003 - the tool's name
        """Type text into a text box (replacing its text).

        Args:
            ref: The text box's ref.
            text: The text to type.
        """
        action = {"type": "fill", "ref": _text(ref), "text": _text(text)}
        return self._act(action, "type", {"ref": ref, "text": text})

    def select(self, ref: str, value: str) -> str:
        """Choose an option of a list.

        Args:
            ref: The list's ref.
            value: The option's value.
        """
        action = {"type": "select", "ref": _text(ref), "value": _text(value)}
        return self._act(action, "select", {"ref": ref, "value": value})

    def press(self, key: str, ref: str = "") -> str:
        """Press a key.

        Args:
            key: The key, such as Enter.
            ref: The element's ref (empty: the page).
        """
        action: dict[str, Any] = {"type": "press", "key": _text(key)}
        arguments: dict[str, Any] = {"key": key}
        if ref:
            action["ref"] = arguments["ref"] = _text(ref)
        return self._act(action, "press", arguments)

    def navigate(self, url: str) -> str:
        """Open a page of this site.

        Args:
            url: The page's path, such as /shop/cart.html.
        """
        return self._act({"type": "navigate", "url": _text(url)}, "navigate", {"url": url})

    def scroll(self, direction: str) -> str:
        """Scroll the page.

        Args:
            direction: up or down.
        """
        action = {"type": "scroll", "direction": _text(direction)}
        return self._act(action, "scroll", {"direction": direction})

    def done(self, answer: str = "") -> str:
        """Finish the task.

        Args:
            answer: The answer, if the goal asks for one.
        """
        action: dict[str, Any] = {"type": "done"}
        arguments: dict[str, Any] = {}
        if answer not in ("", None):
            action["answer"] = arguments["answer"] = _text(answer)
        return self._act(action, "done", arguments)

    def _act(self, action: dict[str, Any], tool: str, arguments: dict[str, Any]) -> str:
        from ..envs import browser as br

        try:
            checked = br.validate_action(action)
        except ValueError as exc:
            return self._step(
                json.dumps({"invalid": str(exc)}), tool=tool, arguments=arguments
            )  # refused in _apply: the reply is never replayed
        reply = json.dumps(checked, ensure_ascii=False)
        return self._step(reply, tool=tool, arguments=arguments)

    # -- the family's protocol -------------------------------------------------------------

    def _begin(self, task: str) -> str:
        from ..envs import browser as br
        from ..envs.browser.fixtures import VIEWPORT

        found = br.TASKS_BY_ID.get(task)
        if found is None:
            raise ValueError(
                f"no browser task {task!r}; the tasks are {', '.join(browser_task_ids())}"
            )
        server, launched = _SHARED.get(self.context.options.get("chromium"))
        page = launched.new_page(viewport=VIEWPORT)
        self.session = br.BrowserSession(page, base_url=server.origin)
        self._task = found
        self._seen, self._steps, self._ended = {}, 0, None
        self._answer, self._last_error = None, None
        self._policy = br.OraclePolicy(found) if self.context.options.get("oracle") else None
        self.session.goto(found.start_path)
        self._data = self.session.observe(screenshot=False).data
        return f"Goal: {found.goal}\n\n{_present(self._data)}"

    def _apply(self, reply: str) -> str:
        action = json.loads(reply)
        if "invalid" in action:
            raise ActionError(action["invalid"])
        error = self.session.act(action)
        self._last_error = error
        self._steps += 1
        if action["type"] == "done" and error is None:
            self._ended = "done"
            self._answer = action.get("answer")
            return _OVER.format(how="done").lstrip("\n")
        key = _key(self._data, action)
        self._seen[key] = self._seen.get(key, 0) + 1
        if self._seen[key] >= LOOP_REPEATS:
            self._ended = "loop"
        elif self._steps >= _runner_max_steps():
            self._ended = "max_steps"
        self._data = self.session.observe(screenshot=False).data
        text = _present(self._data)
        if error is not None:
            shown = {"type": error["type"], "message": error["message"]}
            text = json.dumps({"error": shown}, ensure_ascii=False) + "\n" + text
        if self._ended == "loop":
            text += _OVER.format(how=f"the same action on the same page {LOOP_REPEATS} times")
        elif self._ended == "max_steps":
            text += _OVER.format(how=f"out of steps ({self._steps})")
        return text

    def _finished(self) -> bool:
        return self.session is None or self._ended is not None

    def _succeeded(self) -> bool:
        if self.session is None or self._ended != "done":
            return False
        state = self.session.state()
        if not isinstance(state, dict):
            return False
        passed, _ = self._task.check(self.session.page, {**state, "answer": self._answer})
        return bool(passed)

    def _oracle(self) -> tuple[str, dict[str, Any]] | None:
        """The oracle policy's next action (the task's plan resolved on the current snapshot),
        as a tool call."""
        from ..envs import browser as br

        if self._policy is None:
            self._policy = br.OraclePolicy(self._task)
        decision = self._policy.act(br.Observation(dict(self._data)), self._last_error)
        action = decision.action
        if action is None:
            return None
        kind = action["type"]
        if kind == "fill":
            return "type", {"ref": action["ref"], "text": action["text"]}
        if kind == "done":
            return "done", {"answer": action["answer"]} if action.get("answer") else {}
        return kind, {k: v for k, v in action.items() if k != "type"}

    def _close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            import contextlib

            with contextlib.suppress(Exception):  # the browser may be gone already
                session.page.context.close()

    def _valid_actions(self) -> list[str] | None:
        return ["click", "type", "select", "press", "navigate", "scroll", "done"]
