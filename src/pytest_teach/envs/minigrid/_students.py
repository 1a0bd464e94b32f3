"""Students: the policies behind the ``agent`` fixture in gridworld scenarios.

- ``scripted:oracle``: the world's expert (the BabyAI bot, or the mock world's planner).
- ``scripted:noisy-P``: the expert's action with probability ``1 - e``, another action with
  probability ``e``, where the noise ``e`` of each state is drawn once from a hash of the state
  and averages ``P`` (so some states are confusing and others are not, and the recorded
  entropy varies). It heeds advice: a patch that names an action halves ``e`` at that step and
  puts the rest of the mass on the advised action.
- ``openai:MODEL`` / ``hf:PATH``: a chat model asked for one action name per step
  (:func:`build_messages`); the reply is parsed strictly, and an unparseable one is a step
  error, not a crash. ``hf:`` models also score every action, so their distribution is
  recorded.

:meth:`Student.act` decides once; with ``explore=True`` (the teachable phases' rollouts) a
student samples from its distribution instead of taking its greedy choice.
"""

from __future__ import annotations

import hashlib
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..._util import noise_level
from ...errors import InfrastructureError
from ._actions import ACTIONS, ActionParseError, parse_action

if TYPE_CHECKING:
    from ...agents import Agent
    from ._world import World

__all__ = [
    "SCRIPTED_NAMES",
    "SYSTEM_PROMPT",
    "Decision",
    "ExpertUnavailable",
    "LMStudent",
    "NoisyStudent",
    "OracleStudent",
    "Patch",
    "ScriptedStudent",
    "Student",
    "build_messages",
    "student_for",
]

SCRIPTED_NAMES = ("oracle", "noisy-P")

SYSTEM_PROMPT = (
    "You steer an agent in a grid world to complete its mission. Reply with one action "
    "and nothing else: " + ", ".join(ACTIONS) + "."
)

#: How the noise of a scripted student spreads over the actions it takes by mistake.
_MISTAKE_WEIGHTS = {
    "left": 3.0,
    "right": 3.0,
    "forward": 3.0,
    "pickup": 1.0,
    "drop": 1.0,
    "toggle": 1.0,
    "done": 1.0,
}


class ExpertUnavailable(InfrastructureError):
    """The expert has no action for this state (the BabyAI bot failed to plan)."""


@dataclass(frozen=True)
class Patch:
    """Supervision shown in the prompt at one decision: its kind (``demo``, ``hint``,
    ``contrast``), the text the student reads, and the action behind it (if any)."""

    kind: str
    text: str
    action: str | None = None


@dataclass
class Decision:
    """A student's choice at one step. ``action`` is ``None`` when the reply didn't parse;
    ``error`` then says why (``unparseable_output``)."""

    action: str | None
    text: str
    probs: dict[str, float] | None = None
    messages: list[dict[str, str]] | None = None
    error: dict[str, Any] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0


def build_messages(observation: str, patch: Patch | None = None) -> list[dict[str, str]]:
    """The chat prompt for one step: the system prompt, then the observation, then the
    patch's advice when there is one."""
    user = observation if patch is None else f"{observation}\nAdvice: {patch.text}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _argmax(probs: dict[str, float]) -> str:
    """The most likely action; ties go to the one listed first in :data:`ACTIONS`."""
    order = {a: i for i, a in enumerate(ACTIONS)}
    return min(probs, key=lambda a: (-probs[a], order.get(a, len(order))))


def _sample(probs: dict[str, float], rng: random.Random) -> str:
    actions = list(probs)
    return rng.choices(actions, weights=[probs[a] for a in actions])[0]


def _chosen(
    action: str, probs: dict[str, float], messages: list[dict[str, str]], latency_ms: float = 0.0
) -> Decision:
    """The decision for ``action`` picked from ``probs``: the prompt plus the action as reply."""
    reply = [*messages, {"role": "assistant", "content": action}]
    return Decision(action, action, probs, reply, latency_ms=latency_ms)


class Student(ABC):
    """Chooses one action per observation (``consults_expert``: it asks the world's expert)."""

    spec = "student"
    consults_expert = True

    @abstractmethod
    def act(
        self,
        world: World,
        observation: str,
        rng: random.Random,
        *,
        patch: Patch | None = None,
        explore: bool = False,
    ) -> Decision:
        """The action for ``observation`` in ``world`` (``patch`` is advice in the prompt;
        ``explore`` samples from the student's distribution)."""

    def greedy(self, world: World, observation: str) -> Decision:
        """The student's most likely action, deterministically (what evaluation plays): the
        argmax of its distribution, ties broken by the order of :data:`ACTIONS`. A student
        without a distribution answers as :meth:`act` does without exploring."""
        return self.act(world, observation, random.Random(0))


class ScriptedStudent(Student):
    """A student built on the world's expert: each decision is a draw from
    :meth:`distribution` (``explore`` changes nothing for a scripted student)."""

    @abstractmethod
    def distribution(self, world: World, patch: Patch | None = None) -> dict[str, float]:
        """The student's probability for each action in this state.

        Raises:
            ExpertUnavailable: the expert has no action here.
        """

    def _expert(self, world: World) -> str:
        action = world.expert_action()
        if action is None:
            raise ExpertUnavailable(f"{world.describe()}: {world.expert_error}")
        return action

    def act(
        self,
        world: World,
        observation: str,
        rng: random.Random,
        *,
        patch: Patch | None = None,
        explore: bool = False,
    ) -> Decision:
        """A draw from :meth:`distribution`."""
        probs = self.distribution(world, patch)
        return _chosen(_sample(probs, rng), probs, build_messages(observation, patch))

    def greedy(self, world: World, observation: str) -> Decision:
        """The argmax of :meth:`distribution`."""
        probs = self.distribution(world)
        return _chosen(_argmax(probs), probs, build_messages(observation))


class OracleStudent(ScriptedStudent):
    """The expert itself."""

    spec = "scripted:oracle"

    def distribution(self, world: World, patch: Patch | None = None) -> dict[str, float]:
        """All the probability on the expert's action."""
        return {self._expert(world): 1.0}


class NoisyStudent(ScriptedStudent):
    """The expert, wrong with a state-dependent probability averaging ``p``."""

    def __init__(self, p: float, seed: int = 0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"noise probability must be in [0, 1], got {p!r}")
        self.p = float(p)
        self.seed = seed
        self.spec = f"scripted:noisy-{self.p:g}"

    def noise(self, world: World) -> float:
        """This state's noise: ``2 * p * u`` capped at 1, ``u`` uniform from a hash of the
        state, the step and the seed."""
        key = f"{world.state_hash()}|{world.steps}|{self.p}|{self.seed}".encode()
        u = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2.0**64
        return min(1.0, 2.0 * self.p * u)

    def distribution(self, world: World, patch: Patch | None = None) -> dict[str, float]:
        """The expert's action with ``1 - noise``, the rest spread over the other actions
        (a patch naming an action makes it the best one and halves the noise)."""
        best = self._expert(world)
        noise = self.noise(world)
        if patch is not None and patch.action in ACTIONS:
            best, noise = patch.action, noise / 2
        others = {a: w for a, w in _MISTAKE_WEIGHTS.items() if a != best}
        total = sum(others.values())
        probs = {a: noise * w / total for a, w in others.items()}
        probs[best] = 1.0 - noise
        return {a: probs[a] for a in ACTIONS}


class LMStudent(Student):
    """A chat model (``openai:``, ``hf:``) answering with one action name per step."""

    #: Distributions kept per prompt for exploring (the prompt is all a student conditions on).
    MEMO_SIZE = 50_000
    consults_expert = False

    def __init__(self, chat: Any, *, max_tokens: int = 8) -> None:
        self.chat = chat
        self.spec = str(getattr(chat, "spec", "model"))
        self.max_tokens = max_tokens
        self._memo: dict[str, dict[str, float]] = {}

    def _scored(self, messages: list[dict[str, str]]) -> dict[str, float] | None:
        """The model's distribution over the actions, if it scores them (memoised)."""
        scorer = getattr(self.chat, "action_probs", None)
        if scorer is None:
            return None
        key = messages[-1]["content"]
        probs = self._memo.get(key)
        if probs is None:
            probs = scorer(messages, list(ACTIONS))
            if len(self._memo) >= self.MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = probs
        return probs

    def greedy(self, world: World, observation: str) -> Decision:
        """The argmax of the model's scored distribution (one forward pass, no generation);
        a model that can't score actions replies at temperature 0, parsed strictly."""
        messages = build_messages(observation)
        started = time.perf_counter()
        probs = self._scored(messages)
        if probs is None:
            return self.act(world, observation, random.Random(0))
        action = _argmax(probs)
        return _chosen(action, probs, messages, (time.perf_counter() - started) * 1000.0)

    def act(
        self,
        world: World,
        observation: str,
        rng: random.Random,
        *,
        patch: Patch | None = None,
        explore: bool = False,
    ) -> Decision:
        """Greedy: the model's reply, parsed strictly, with the action distribution when the
        model scores actions. ``explore``: a draw from that distribution (models that can
        score), or a reply sampled at temperature 1 and parsed strictly (models that can't).

        Raises:
            ModelCallError: the model call failed (an infrastructure error).
        """
        messages = build_messages(observation, patch)
        started = time.perf_counter()
        probs = self._scored(messages) if explore else None
        if probs is not None:
            action = _sample(probs, rng)
            return _chosen(action, probs, messages, (time.perf_counter() - started) * 1000.0)
        completion = self.chat.complete(
            messages,
            max_tokens=self.max_tokens,
            temperature=1.0 if explore else 0.0,
            valid_actions=None if explore else list(ACTIONS),
        )
        text = completion.text
        decision = Decision(
            None,
            text,
            completion.action_probs,
            [*messages, {"role": "assistant", "content": text}],
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            latency_ms=completion.latency_ms,
            cost_usd=completion.cost_usd,
        )
        try:
            decision.action = parse_action(text)
        except ActionParseError as exc:
            decision.error = {"type": "unparseable_output", "message": str(exc), "output": text}
        return decision


def student_for(
    agent: Agent | str, *, cache: str = "off", cache_dir: str | None = None, seed: int = 0
) -> Student:
    """The student behind an ``agent`` fixture (or a model spec).

    Raises:
        ValueError: an unknown scripted name, or a bad spec.
    """
    from ...agents import Agent, chat_model, parse_model_spec

    if isinstance(agent, str):
        agent = Agent(parse_model_spec(agent), seed=seed, cache=cache, cache_dir=cache_dir)
    if agent.provider == "scripted":
        if agent.name == "oracle":
            return OracleStudent()
        p = noise_level(agent.name)
        if p is not None:
            return NoisyStudent(p, seed=agent.seed)
        raise ValueError(
            f"unknown scripted gridworld student {agent.name!r}; use scripted:oracle or "
            "scripted:noisy-P"
        )
    return LMStudent(chat_model(agent.spec, cache=agent.cache, cache_dir=agent.cache_dir))
