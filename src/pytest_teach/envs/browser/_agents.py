"""Browser policies behind the ``agent`` fixture.

- ``scripted:oracle`` follows the task's plan, resolving each target (role and name) against
  the current snapshot, so every step exercises the real page.
- ``scripted:noisy-P`` is the oracle, but with probability ``P`` per task (seeded by task id,
  ``P`` and seed) it makes one realistic mistake: it takes the decoy of a step (``Learn more``
  instead of ``Accept all``, ``Blue Mug XL`` instead of ``Blue Mug``) or it repeats a no-op
  action. Half the time it notices and recovers; otherwise it stalls or ends on a wrong state.
- ``openai:MODEL`` / ``hf:PATH`` ask a chat model (``pytest_teach.agents.chat_model``) for one
  JSON action per step. A reply that doesn't parse becomes a step error, not a crash.

Every policy builds the same prompt (:func:`build_messages`) and records it with its reply, so
scripted demonstrations and model runs export as the same kind of training rows.
"""

from __future__ import annotations

import json
import random
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..._util import noise_level
from ._aria import parse_snapshot, resolve_action
from ._session import ACTION_TYPES, Observation, parse_action, step_error

if TYPE_CHECKING:
    from ...agents import Agent
    from ._tasks import Task

__all__ = [
    "SCRIPTED_NAMES",
    "SYSTEM_PROMPT",
    "BrowserPolicy",
    "Decision",
    "LLMPolicy",
    "NoisyOraclePolicy",
    "OraclePolicy",
    "browser_policy_for",
    "build_messages",
]

SCRIPTED_NAMES = ("oracle", "noisy-P")
HISTORY_LIMIT = 8

SYSTEM_PROMPT = """\
You are a web agent. You see the current page as an accessibility snapshot: one element per \
line, like `- button "Add to cart" [ref=e12]`, nested under its container. Act on elements by \
their ref. Refs change when the page changes, so use refs from the current snapshot only.

Reply with exactly one JSON object, the next action, and nothing else:
{"type": "click", "ref": "e12"}
{"type": "fill", "ref": "e5", "text": "blue mug"}
{"type": "select", "ref": "e7", "value": "kitchen"}
{"type": "press", "key": "Enter", "ref": "e5"}   (ref is optional)
{"type": "navigate", "url": "/shop/cart.html"}   (pages of this site only)
{"type": "scroll", "direction": "down"}           (or "up")
{"type": "done", "answer": "..."}                (when the goal is reached; answer only if asked)"""


@dataclass
class Decision:
    """A policy's choice for one step, with what it cost.

    ``action`` is None when the reply could not be used; ``error`` then says why (a step
    error). ``text`` is the raw reply; ``messages`` the prompt plus the reply.
    """

    action: dict[str, Any] | None
    text: str
    messages: list[dict[str, Any]] | None = None
    error: dict[str, Any] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    probs: dict[str, float] | None = None


def _compact(action: Any) -> str:
    return json.dumps(action, ensure_ascii=False, separators=(", ", ": "))


def build_messages(
    goal: str, observation: dict[str, Any], history: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """The chat prompt for one step: the system prompt, then the goal, the last actions with
    their outcome, and the current page (URL, title, snapshot)."""
    lines = [f"Goal: {goal}", "", "Previous actions:"]
    shown = history[-HISTORY_LIMIT:]
    if not shown:
        lines.append("(none yet)")
    first = len(history) - len(shown) + 1
    for number, entry in enumerate(shown, start=first):
        error = entry.get("error")
        outcome = "ok" if error is None else f"error {error['type']}: {error['message']}"
        lines.append(f"{number}. {_compact(entry['action'])} -> {outcome}")
    lines += [
        "",
        f"Current page: {observation['url']}",
        f"Title: {observation['title']}",
        "Snapshot:",
        observation["snapshot"],
    ]
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "\n".join(lines)},
    ]


class BrowserPolicy(ABC):
    """Chooses one action per observation for one task. Subclasses implement :meth:`decide`."""

    name = "policy"

    def __init__(self, task: Task) -> None:
        self.task = task
        self.history: list[dict[str, Any]] = []

    def act(self, observation: Observation, last_error: dict[str, Any] | None = None) -> Decision:
        """The next action. ``last_error`` is the step error of the previous action (or None)."""
        if self.history:
            self.history[-1]["error"] = last_error
        messages = build_messages(self.task.goal, observation.data, self.history)
        decision = self.decide(observation, messages, last_error)
        self.history.append(
            {
                "action": decision.action if decision.action is not None else decision.text,
                "error": decision.error,
            }
        )
        return decision

    @abstractmethod
    def decide(
        self,
        observation: Observation,
        messages: list[dict[str, str]],
        last_error: dict[str, Any] | None,
    ) -> Decision:
        """Choose the action for ``observation``; ``messages`` is the prompt for it."""

    @staticmethod
    def scripted(action: dict[str, Any], messages: list[dict[str, str]]) -> Decision:
        """A decision made without a model: the action, with the prompt and its JSON reply."""
        text = _compact(action)
        return Decision(action, text, [*messages, {"role": "assistant", "content": text}])


# -- scripted ------------------------------------------------------------------------------------


def _answer_from(pattern: str, snapshot: str) -> str | None:
    match = re.search(pattern, snapshot)
    if match is None:
        return None
    return match.group(1) if match.groups() else match.group(0)


class OraclePolicy(BrowserPolicy):
    """Follows the task's plan; each target is resolved against the current snapshot.

    When a target isn't on the page it scrolls down to look for it (which the runner's loop
    detection ends if the target never appears); when an action fails it retries the step.
    """

    name = "oracle"

    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self.index = 0
        self.previous: int | None = None  # the plan step the last action came from

    def decide(
        self,
        observation: Observation,
        messages: list[dict[str, str]],
        last_error: dict[str, Any] | None,
    ) -> Decision:
        """The next plan step as an action."""
        if last_error is not None and self.previous is not None:
            self.index = self.previous  # the step failed: try it again on the fresh snapshot
        return self.scripted(self.plan_action(observation), messages)

    def plan_action(
        self, observation: Observation, step: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resolve plan step ``self.index`` (or ``step``) against ``observation``; advance."""
        plan = self.task.plan
        if step is None:
            if self.index >= len(plan):
                return {"type": "done"}
            step = plan[self.index]
        if step["type"] == "done":
            action: dict[str, Any] | None = {"type": "done"}
            pattern = step.get("answer_pattern")
            if pattern:
                answer = _answer_from(pattern, observation.snapshot)
                action = None if answer is None else {"type": "done", "answer": answer}
        else:
            action = resolve_action(step, parse_snapshot(observation.snapshot))
        if action is None:
            self.previous = None
            return {"type": "scroll", "direction": "down"}  # look for it
        self.previous = self.index
        self.index += 1
        return action


class NoisyOraclePolicy(OraclePolicy):
    """The oracle with one realistic mistake per task with probability ``p``.

    The draw is a pure function of ``(task.id, p, seed)``. A mistake is either taking a step's
    decoy or repeating a no-op (scrolling up at the top of the page); with probability 1/2 the
    agent recovers (goes back to the page it left and redoes the step, or stops repeating after
    two tries).
    """

    def __init__(self, task: Task, p: float, seed: int = 0) -> None:
        super().__init__(task)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"noise probability must be in [0, 1], got {p!r}")
        self.p = float(p)
        self.seed = seed
        self.name = f"noisy-{self.p}"
        rng = random.Random(f"{task.id}|{self.p}|{seed}")
        self.mistake: str | None = None
        self.at = -1
        self.recover = False
        if rng.random() < self.p:
            decoys = [i for i, s in enumerate(task.plan) if s.get("decoy")]
            kinds = ["decoy", "decoy", "loop"] if decoys else ["loop"]
            self.mistake = rng.choice(kinds)
            last = max(0, len(task.plan) - 2)
            self.at = rng.choice(decoys) if self.mistake == "decoy" else rng.randint(0, last)
            self.recover = rng.random() < 0.5
        self.repeats = 0
        self.left_from: str | None = None  # the URL a decoy took us away from

    def decide(
        self,
        observation: Observation,
        messages: list[dict[str, str]],
        last_error: dict[str, Any] | None,
    ) -> Decision:
        """The oracle's action, or the mistake (and maybe the recovery) when its step comes."""
        if self.left_from is not None:  # recovering from a decoy
            back, self.left_from = self.left_from, None
            if observation.url != back:
                return self.scripted({"type": "navigate", "url": back}, messages)
        if self.mistake is not None and self.index == self.at and last_error is None:
            if self.mistake == "decoy":
                return self.scripted(self._decoy(observation), messages)
            limit = 2 if self.recover else None
            if limit is None or self.repeats < limit:
                self.repeats += 1
                return self.scripted(self._no_op(observation), messages)
            self.mistake = None
        return super().decide(observation, messages, last_error)

    def _decoy(self, observation: Observation) -> dict[str, Any]:
        step = self.task.plan[self.at]
        self.mistake = None
        wrong = resolve_action({**step, "target": step["decoy"]}, observation.snapshot)
        if wrong is None:  # the decoy is not on this page: no mistake after all
            return self.plan_action(observation)
        if self.recover:
            self.left_from = observation.url  # come back here and redo the step
        else:
            self.index += 1  # believes the step is done
        self.previous = None
        return wrong

    @staticmethod
    def _no_op(observation: Observation) -> dict[str, Any]:
        return {"type": "scroll", "direction": "up"}  # at the top already: nothing changes


# -- model-backed --------------------------------------------------------------------------------


class LLMPolicy(BrowserPolicy):
    """Asks a chat model for each action (``openai:`` and ``hf:`` specs).

    The model is built on first use with ``pytest_teach.agents.chat_model``; a model call that
    fails raises its ``ModelCallError`` (an infrastructure error, recorded as ``error``).
    """

    def __init__(
        self,
        task: Task,
        spec: str,
        *,
        cache: str = "off",
        cache_dir: str | None = None,
        model: Any = None,
        max_tokens: int = 256,
    ) -> None:
        super().__init__(task)
        self.spec = spec
        self.name = spec
        self.cache = cache
        self.cache_dir = cache_dir
        self.max_tokens = max_tokens
        self._model = model

    @property
    def model(self) -> Any:
        """The chat model (built lazily)."""
        if self._model is None:
            from ...agents import chat_model

            self._model = chat_model(self.spec, cache=self.cache, cache_dir=self.cache_dir)
        return self._model

    def decide(
        self,
        observation: Observation,
        messages: list[dict[str, str]],
        last_error: dict[str, Any] | None,
    ) -> Decision:
        """One completion, parsed strictly as an action."""
        completion = self.model.complete(messages, max_tokens=self.max_tokens, temperature=0.0)
        text = completion.text
        reply = [*messages, {"role": "assistant", "content": text}]
        costs = {
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "cost_usd": completion.cost_usd,
        }
        try:
            action = parse_action(text)
        except ValueError as exc:
            error = step_error("invalid_action", f"unusable reply: {exc}", text[:300])
            return Decision(None, text, reply, error, **costs)
        return Decision(action, text, reply, None, **costs)


def browser_policy_for(agent: Agent, task: Task, *, seed: int = 0) -> BrowserPolicy:
    """The browser policy behind an ``agent`` fixture for ``task``.

    ``scripted:oracle`` and ``scripted:noisy-P`` (``P`` in [0, 1]) are built here; ``openai:``
    and ``hf:`` specs become an :class:`LLMPolicy`. Raises :class:`ValueError` for an unknown
    scripted name.
    """
    if agent.provider == "scripted":
        name = agent.name
        if name == "oracle":
            return OraclePolicy(task)
        p = noise_level(name)
        if p is not None:
            return NoisyOraclePolicy(task, p, seed=seed)
        raise ValueError(
            f"unknown scripted browser policy {name!r}; use scripted:oracle or scripted:noisy-P"
        )
    return LLMPolicy(
        task,
        str(agent.spec),
        cache=getattr(agent, "cache", "off"),
        cache_dir=getattr(agent, "cache_dir", None),
    )


VALID_ACTIONS = list(ACTION_TYPES)
