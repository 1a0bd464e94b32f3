"""What the predictor sees of a step: the page state, the actions so far, the screenshot.

Everything here reads only the episode up to and including the step (its observation, the
action taken and that action's step error), never what came after or how the episode ended, so
the same features are computed live during a run (:mod:`._live`) and from the store.

- **Page state** (:data:`PAGE_DIM` numbers): the step index; the kind of observation; the URL
  path and the title (or a text observation's words) hashed into buckets; the count of each
  ARIA role in the snapshot and its size; whether the URL and the snapshot changed since the
  previous step; distinct URLs visited and visits to this one; how often this exact page was
  seen before; the scroll position (viewport heights scrolled since the URL last changed,
  counted from the scroll actions, since the observation carries no offset) and whether it is
  at the top; step errors so far and in a row; whether there is a screenshot; the number of
  valid actions and the entropy of the action probabilities when recorded.
- **Actions so far** (the last :data:`MAX_ACTIONS`): each as its type (``scroll`` split by
  direction), the role of its target, the step error it caused, the words of its target's name
  (or text, URL, tools) hashed into :data:`NAME_BUCKETS`, and a few numbers: the share of those
  words found in the goal, whether it repeats the previous action, how often the same action
  was taken on the same page before, and whether it is the current step's.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..envs.browser import STEP_ERROR_TYPES
from ..store import Step
from ._labels import action_target

__all__ = [
    "ACTION_NUMERIC",
    "ACTION_TYPES",
    "ERROR_TYPES",
    "MAX_ACTIONS",
    "MAX_WORDS",
    "NAME_BUCKETS",
    "PAGE_DIM",
    "ROLES",
    "ActionToken",
    "StepFeatures",
    "episode_features",
]

ACTION_TYPES = (
    "click",
    "fill",
    "select",
    "press",
    "navigate",
    "scroll-up",
    "scroll-down",
    "done",
    "tools",
    "named",
    "text",
    "none",
    "other",
)
ROLES = (
    "button",
    "link",
    "textbox",
    "searchbox",
    "checkbox",
    "radio",
    "combobox",
    "option",
    "listbox",
    "tab",
    "menuitem",
    "switch",
    "slider",
    "spinbutton",
    "heading",
    "dialog",
    "alertdialog",
    "alert",
    "img",
    "list",
    "listitem",
    "navigation",
    "main",
    "region",
    "banner",
    "contentinfo",
    "form",
    "table",
    "row",
    "cell",
    "paragraph",
    "generic",
    "other",
)
ERROR_TYPES = ("none", *STEP_ERROR_TYPES, "unparseable_output", "other")
NAME_BUCKETS = 512
MAX_WORDS = 8
MAX_ACTIONS = 16
URL_BUCKETS = 32
TEXT_BUCKETS = 32
ACTION_NUMERIC = 4
_OBSERVATION_KINDS = ("page", "text", "other")
PAGE_DIM = 2 + len(_OBSERVATION_KINDS) + URL_BUCKETS + TEXT_BUCKETS + len(ROLES) + 2 + 2 + 2
PAGE_DIM += 1 + 2 + 3 + 1 + 3
_WORD = re.compile(r"[a-z0-9]+")
_ROLE_LINE = re.compile(r"^\s*- '?([a-z]+)\b", re.MULTILINE)


@dataclass
class ActionToken:
    """One action of the sequence: ids into the vocabularies (0 is padding), hashed name words,
    and :data:`ACTION_NUMERIC` numbers."""

    kind: int
    role: int
    error: int
    words: list[int]
    numeric: list[float]


@dataclass
class StepFeatures:
    """The predictor's input for one step."""

    page: list[float]
    actions: list[ActionToken]
    screenshot: str | None


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _bucket(word: str, size: int) -> int:
    return zlib.crc32(word.encode("utf-8")) % size


def _bag(words: Sequence[str], size: int) -> list[float]:
    counts = [0.0] * size
    for word in words:
        counts[_bucket(word, size)] += 1.0
    total = sum(counts)
    return [c / total for c in counts] if total else counts


def _index(vocabulary: Sequence[str], value: str | None, fallback: str) -> int:
    """1-based id of ``value`` (0 is padding), the fallback's when it is unknown."""
    try:
        return vocabulary.index(value if value is not None else fallback) + 1
    except ValueError:
        return vocabulary.index(fallback) + 1


def goal_of(steps: Sequence[Step]) -> set[str]:
    """The words of the goal the agent was given: a ``Goal:`` line of the first prompt, else a
    text observation (a query is its own goal)."""
    for step in steps[:1]:
        for message in step.messages or []:
            content = message.get("content")
            if message.get("role") == "user" and isinstance(content, str):
                for line in content.splitlines():
                    if line.startswith("Goal:"):
                        return set(_words(line[len("Goal:") :]))
        if isinstance(step.observation, str):
            return set(_words(step.observation))
    return set()


def _action_kind_and_words(step: Step) -> tuple[str, str | None, list[str]]:
    action = step.action
    if action is None:
        return "none", None, []
    if isinstance(action, dict) and isinstance(action.get("type"), str):
        kind = action["type"]
        if kind == "scroll":
            kind = f"scroll-{action.get('direction')}"
        role, name = action_target(step)
        words = _words(name)
        for key in ("text", "value", "key", "url", "answer"):
            if isinstance(action.get(key), str):
                words += _words(action[key])
        if kind not in ACTION_TYPES:
            kind = "other"
        return kind, role or ("none" if "ref" not in action else "other"), words
    if isinstance(action, dict) and isinstance(action.get("tools"), list):
        return "tools", None, [w for t in action["tools"] for w in _words(str(t))]
    if isinstance(action, str):
        if len(action) <= 24 and " " not in action.strip():
            return "named", None, _words(action)
        return "text", None, []
    if isinstance(action, (int, float)) and not isinstance(action, bool):
        return "named", None, [str(action)]
    return "other", None, _words(json.dumps(action, default=str))[:MAX_WORDS]


def _page_of(observation: Any) -> tuple[str, str, str, str]:
    """(kind, url, title or text, snapshot) of an observation."""
    if isinstance(observation, dict) and isinstance(observation.get("snapshot"), str):
        return (
            "page",
            str(observation.get("url", "")),
            str(observation.get("title", "")),
            (observation["snapshot"]),
        )
    if isinstance(observation, str):
        return "text", "", observation, ""
    return "other", "", "", json.dumps(observation, sort_keys=True, default=str)


def _role_counts(snapshot: str) -> list[float]:
    counts = dict.fromkeys(ROLES, 0)
    for role in _ROLE_LINE.findall(snapshot):
        counts[role if role in counts else "other"] += 1
    return [math.log1p(counts[r]) for r in ROLES]


def episode_features(steps: Sequence[Step]) -> list[StepFeatures]:
    """The features of every step of an episode, each from that step and the ones before it."""
    goal = goal_of(steps)
    out: list[StepFeatures] = []
    tokens: list[ActionToken] = []
    previous_kind_words: tuple[str, tuple[str, ...]] | None = None
    seen_pages: dict[str, int] = {}
    seen_actions: dict[str, int] = {}
    url_visits: dict[str, int] = {}
    errors = in_a_row = 0
    scroll = 0
    last_url: str | None = None
    last_snapshot: str | None = None
    for t, step in enumerate(steps):
        kind, url, text, snapshot = _page_of(step.observation)
        page_key = json.dumps([url, snapshot, text])
        action_key = page_key + json.dumps(step.action, sort_keys=True, default=str)
        if url != last_url:
            scroll = 0
        error_type = (step.error or {}).get("type") if step.error else None
        errors += error_type is not None
        in_a_row = in_a_row + 1 if error_type is not None else 0
        probs = step.probs
        page = [
            t / 15.0,
            math.log1p(t),
            *[float(kind == k) for k in _OBSERVATION_KINDS],
            *_bag([w for w in re.split(r"[/?.=&+#_-]+", url.lower()) if w], URL_BUCKETS),
            *_bag(_words(text)[:64], TEXT_BUCKETS),
            *_role_counts(snapshot),
            math.log1p(snapshot.count("\n")),
            math.log1p(snapshot.count("[ref=")),
            float(t > 0 and url != last_url),
            float(t > 0 and snapshot != last_snapshot),
            math.log1p(len(url_visits) + (url not in url_visits)),
            math.log1p(url_visits.get(url, 0)),
            min(seen_pages.get(page_key, 0), 3) / 3.0,
            min(scroll, 5) / 5.0,
            float(scroll == 0),
            math.log1p(errors),
            min(in_a_row, 3) / 3.0,
            float(error_type is not None),
            float(step.screenshot is not None),
            math.log1p(len(step.valid_actions or [])),
            float(step.entropy or 0.0),
            float(probs is not None),
        ]
        action_kind, role, words = _action_kind_and_words(step)
        signature = (action_kind, tuple(words))
        tokens.append(
            ActionToken(
                kind=_index(ACTION_TYPES, action_kind, "other"),
                role=_index(ROLES, role, "other") if role not in (None, "none") else 0,
                error=_index(ERROR_TYPES, error_type or "none", "other"),
                words=[_bucket(w, NAME_BUCKETS) + 1 for w in words[:MAX_WORDS]],
                numeric=[
                    (sum(w in goal for w in words) / len(words)) if words else 0.0,
                    float(signature == previous_kind_words),
                    min(seen_actions.get(action_key, 0), 3) / 3.0,
                    0.0,
                ],
            )
        )
        window = [
            ActionToken(a.kind, a.role, a.error, a.words, [*a.numeric[:-1], 0.0])
            for a in tokens[-MAX_ACTIONS:]
        ]
        window[-1].numeric[-1] = 1.0  # the current step's action
        out.append(StepFeatures(page=page, actions=window, screenshot=step.screenshot))
        # what the next step knows about this one
        previous_kind_words = signature
        seen_pages[page_key] = seen_pages.get(page_key, 0) + 1
        seen_actions[action_key] = seen_actions.get(action_key, 0) + 1
        url_visits[url] = url_visits.get(url, 0) + 1
        if action_kind == "scroll-down":
            scroll += 1
        elif action_kind == "scroll-up":
            scroll = max(scroll - 1, 0)
        last_url, last_snapshot = url, snapshot
    return out
