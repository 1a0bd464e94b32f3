"""The teacher: given what the student saw and did, suggest a valid action and a diagnosis.

Two backends, chosen by spec (``--teacher``, ini ``teach_teacher``):

- ``oracle`` (default, offline): the scenario family's own expert. Families register an oracle
  with :func:`register_oracle`; the scenario passes its ``context`` (the task or case).
- ``openai:MODEL`` / ``hf:PATH``: a language model prompted with the observation, the valid
  actions and the student's action. Its suggestion is validated strictly against the valid
  actions, with one repair try; otherwise the suggestion is ``None`` with the reason.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LLMTeacher",
    "OracleTeacher",
    "Suggestion",
    "Teacher",
    "is_valid_action",
    "make_teacher",
    "register_oracle",
]

#: family name -> oracle(context, observation, valid_actions) -> (action, diagnosis)
Oracle = Callable[[Any, Any, Sequence[Any]], tuple[Any, str]]
_ORACLES: dict[str, Oracle] = {}
#: Families whose oracle registers itself when this module is imported (on first use).
_ORACLE_MODULES = {"minigrid": "pytest_teach.envs.minigrid._teacher"}


@dataclass
class Suggestion:
    """The teacher's advice. ``action`` is ``None`` when no valid action could be given."""

    action: Any
    diagnosis: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Whether a valid action was suggested."""
        return self.action is not None


def register_oracle(family: str, oracle: Oracle) -> None:
    """Make ``oracle`` the offline teacher for scenarios of ``family``."""
    _ORACLES[family] = oracle


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def is_valid_action(action: Any, valid_actions: Sequence[Any]) -> bool:
    """Whether ``action`` is one of ``valid_actions``. A list (or ``{"tools": [...]}``) is valid
    when it is non-empty and every element is a valid action."""
    allowed = {_canonical(v) for v in valid_actions}
    if isinstance(action, dict) and set(action) == {"tools"}:
        action = action["tools"]
    if isinstance(action, list):
        return bool(action) and all(_canonical(a) in allowed for a in action)
    return _canonical(action) in allowed


class Teacher(ABC):
    """Suggests what the student should have done."""

    spec: str = "teacher"

    @abstractmethod
    def advise(
        self,
        observation: Any,
        valid_actions: Sequence[Any],
        student_action: Any,
        *,
        family: str | None = None,
        context: Any = None,
    ) -> Suggestion:
        """A suggested valid action (or ``None`` with a reason) and a short diagnosis."""


class OracleTeacher(Teacher):
    """The family's expert, offline."""

    spec = "oracle"

    def advise(
        self,
        observation: Any,
        valid_actions: Sequence[Any],
        student_action: Any,
        *,
        family: str | None = None,
        context: Any = None,
    ) -> Suggestion:
        """Ask the registered oracle of ``family``; validate its answer like any other."""
        if family in _ORACLE_MODULES and family not in _ORACLES:
            import importlib

            importlib.import_module(_ORACLE_MODULES[family])
        if family is None or family not in _ORACLES:
            known = ", ".join(sorted(_ORACLES)) or "none registered"
            return Suggestion(None, "", f"no oracle teacher for family {family!r} ({known})")
        action, diagnosis = _ORACLES[family](context, observation, valid_actions)
        if action is None or not is_valid_action(action, valid_actions):
            return Suggestion(None, diagnosis, f"the oracle's action {action!r} is not valid here")
        return Suggestion(action, diagnosis)


_SYSTEM = (
    "You are a teacher reviewing an agent's decision. Given what the agent observed, the valid "
    "actions and the action it took, answer with JSON only: "
    '{"action": <one valid action, exactly as listed>, "diagnosis": "<one or two sentences>"}'
)


class LLMTeacher(Teacher):
    """A language model as teacher, validated strictly with one repair try."""

    def __init__(self, chat: Any) -> None:
        self.chat = chat
        self.spec = getattr(chat, "spec", "llm")

    def _ask(
        self, messages: list[dict[str, str]], valid_actions: Sequence[Any]
    ) -> tuple[Any, str, str]:
        reply = self.chat.complete(messages, max_tokens=200, temperature=0.0).text
        try:
            data = json.loads(reply)
        except json.JSONDecodeError as exc:
            return None, "", f"reply is not JSON ({exc.msg}): {reply[:200]!r}"
        if not isinstance(data, dict) or "action" not in data:
            return None, "", f'reply lacks "action": {reply[:200]!r}'
        diagnosis = str(data.get("diagnosis", ""))[:600]
        if not is_valid_action(data["action"], valid_actions):
            return None, diagnosis, f"action {data['action']!r} is not one of the valid actions"
        return data["action"], diagnosis, ""

    def advise(
        self,
        observation: Any,
        valid_actions: Sequence[Any],
        student_action: Any,
        *,
        family: str | None = None,
        context: Any = None,
    ) -> Suggestion:
        """Prompt the model; on an invalid answer, say why and ask once more."""
        messages = [
            {"role": "system", "content": _SYSTEM},
            {
                "role": "user",
                "content": (
                    f"Observation:\n{observation if isinstance(observation, str) else _canonical(observation)}\n\n"
                    f"Valid actions: {_canonical(list(valid_actions))}\n"
                    f"The agent's action: {_canonical(student_action)}"
                ),
            },
        ]
        action, diagnosis, problem = self._ask(messages, valid_actions)
        if problem:
            messages += [
                {"role": "assistant", "content": problem},
                {
                    "role": "user",
                    "content": f"That answer was invalid: {problem}. Answer again with JSON only, "
                    "choosing the action exactly as listed.",
                },
            ]
            action, diagnosis, problem = self._ask(messages, valid_actions)
        if problem:
            return Suggestion(None, diagnosis, f"after one repair try: {problem}")
        return Suggestion(action, diagnosis)


def make_teacher(spec: str, *, cache: str = "off", cache_dir: str | None = None) -> Teacher:
    """``oracle`` or a model spec (``openai:MODEL``, ``hf:PATH``)."""
    if spec == "oracle":
        return OracleTeacher()
    from ..agents import chat_model

    return LLMTeacher(chat_model(spec, cache=cache, cache_dir=cache_dir))
