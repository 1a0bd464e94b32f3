"""A scenario family as a TRL environment: reset, tools, and a reward from the scenario's test.

:class:`ScenarioEnv` is what ``GRPOTrainer(environment_factory=...)`` instantiates. TRL calls
``reset(**row)`` at the start of each rollout, exposes every public method as a tool (its
docstring becomes the tool's schema), and calls ``get_reward()`` once the rollout is finished.

A family implements a small protocol (underscored, so TRL doesn't take them for tools):

- ``_begin(task) -> str``: start the task (a task id such as ``MockGoTo-s3``), return the
  first observation;
- ``_apply(reply) -> str``: carry out one reply, the text the scenario's own agent would have
  answered (``"forward"``, or a JSON browser action), and return the next observation; raise
  :class:`ActionError` for an action that can't be carried out (nothing happens, nothing is
  replayed);
- ``_finished() -> bool``: whether the task is over;
- ``_close()`` (optional): release what ``_begin`` opened;
- ``_oracle() -> (tool, arguments)`` and ``_succeeded() -> bool`` (optional): the expert's next
  tool call and whether the task was accomplished, for oracle demonstrations;

and public tool methods that turn their arguments into a reply and return
``self._step(reply, tool=..., arguments=...)``.

``get_reward()`` scores the rollout with the scenario's own test, through the reward pool: the
test runs again from the task's start with its agent answering the rollout's executed replies
in order (:func:`~pytest_teach.agents.encode_replies`), and the test's verdict (what it gave
``episode.reward()``, 1.0/0.0 for pass/fail without one) is the reward. The test file stays the
single source of truth. The rollout is then written to the store as an episode (``meta.source``
is ``rl``).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "ActionError",
    "RolloutContext",
    "RolloutStats",
    "ScenarioEnv",
    "environment_factory",
    "task_of",
]

#: The pool's verdicts that become a stored episode's outcome.
_OUTCOMES = {"passed": "success", "failed": "intervention"}

_TASK_OF_NODEID = re.compile(r"\[([^\[\]]+)\]$")


def task_of(nodeid: str) -> str:
    """The task id of a parametrized test's node id (``...[MockGoTo-s3]`` -> ``MockGoTo-s3``);
    the node id itself when it has no parameter id."""
    match = _TASK_OF_NODEID.search(nodeid)
    return match.group(1) if match else nodeid


class ActionError(ValueError):
    """An action the environment can't carry out; the tool answers with it as a JSON error
    (``{"error": {"type": ..., "message": ...}}``) and the episode goes on."""

    def __init__(self, message: str, *, kind: str = "invalid_action") -> None:
        super().__init__(message)
        self.kind = kind

    def as_dict(self) -> dict[str, str]:
        """The structured error a tool returns and a stored step keeps."""
        return {"type": self.kind, "message": str(self)}


@dataclass
class RolloutStats:
    """What the rollouts of a run did: tool calls, rewards, and the groups' reward spread."""

    rollouts: int = 0
    tool_calls: int = 0
    executed: int = 0
    action_errors: int = 0
    stored: int = 0
    scored: int = 0
    left_out: int = 0
    outcomes: Counter = field(default_factory=Counter)
    #: ``(step, task) -> rewards`` of that step's rollouts of that task (one GRPO group).
    groups: dict[tuple[int, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    #: Seconds spent carrying out tool calls and scoring rollouts.
    env_s: float = 0.0
    reward_s: float = 0.0

    def group_spreads(self) -> list[float]:
        """The population standard deviation of each group's rewards (groups of 2 or more)."""
        return [statistics.pstdev(v) for v in self.groups.values() if len(v) > 1]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counts for a run's metrics."""
        spreads = self.group_spreads()
        rewards = [r for v in self.groups.values() for r in v]
        return {
            "rollouts": self.rollouts,
            "tool_calls": self.tool_calls,
            "tool_calls_executed": self.executed,
            "action_errors": self.action_errors,
            "episodes_stored": self.stored,
            "scored": self.scored,
            "left_out": self.left_out,
            "outcomes": dict(self.outcomes),
            "reward_mean": statistics.fmean(rewards) if rewards else None,
            "groups": len(spreads),
            "groups_with_variance": sum(s > 0 for s in spreads),
            "env_seconds": round(self.env_s, 3),
            "reward_seconds": round(self.reward_s, 3),
        }


class RolloutContext:
    """What the environments of one run share: the reward pool, the tasks, the store.

    Args:
        pool: a started :class:`~pytest_teach.rewards.RewardPool` over the family's suite (any
            object with ``score([(nodeid, completion)]) -> [Score]``).
        tasks: ``{task id: node id}`` of the tasks a rollout may start (the training split).
        held_out: task ids no rollout may start (``reset`` refuses them).
        store: the experience store (path, URL or open store) the rollouts are written to, or
            ``None`` to keep them out of it.
        model: the model the episodes are recorded under.
        reward: ``"value"`` (the test's reward) or the name of a reward component the test
            reported (``episode.reward(value, agreement=...)``), used instead.
        options: the family's settings (the gridworld's ``max_steps``, say).
        argv: the command line recorded with the store session.
    """

    def __init__(
        self,
        pool: Any,
        tasks: dict[str, str],
        *,
        held_out: Iterable[str] = (),
        store: Any = None,
        model: str = "policy",
        reward: str = "value",
        options: dict[str, Any] | None = None,
        argv: list[str] | None = None,
    ) -> None:
        self.pool = pool
        self.tasks = dict(tasks)
        self.held_out = frozenset(held_out)
        overlap = sorted(self.held_out & set(self.tasks))
        if overlap:
            raise ValueError(f"tasks both trained on and held out: {', '.join(overlap)}")
        self.model = model
        self.reward = reward
        self.options = dict(options or {})
        self.stats = RolloutStats()
        self.step = 0
        self.session_id: str | None = None
        self._argv = list(argv or ["teach", "train", "grpo", "--env"])
        self._store: Any = None
        self._owns_store = False
        self._lock = threading.Lock()
        if store is not None:
            self._open(store)

    # -- the store ---------------------------------------------------------------------------

    def _open(self, store: Any) -> None:
        from .. import __version__
        from ..store import new_id, open_store

        if isinstance(store, (str, os.PathLike)):
            self._store = open_store(store, create=True)
            self._owns_store = True
        else:
            self._store = store
        self.session_id = new_id()
        self._store.start_session(
            self.session_id,
            argv=self._argv,
            version=__version__,
            git_commit=None,
            rootdir=os.getcwd(),
        )

    def close(self, exit_status: int = 0) -> None:
        """Finish the store session (and close a store this context opened)."""
        if self._store is None:
            return
        try:
            self._store.finish_session(self.session_id, exit_status)
        finally:
            if self._owns_store:
                self._store.close()
            self._store = None

    def __enter__(self) -> RolloutContext:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(0 if exc_type is None else 1)

    # -- scoring and recording ------------------------------------------------------------------

    def nodeid(self, task: str) -> str:
        """The node id of the test that scores ``task``.

        Raises:
            ValueError: a held-out task, or one not in the training split.
        """
        if task in self.held_out:
            raise ValueError(f"task {task!r} is held out: no rollout may train on it")
        nodeid = self.tasks.get(task)
        if nodeid is None:
            shown = ", ".join(sorted(self.tasks)[:5]) + (", ..." if len(self.tasks) > 5 else "")
            raise ValueError(f"task {task!r} is not among the training tasks ({shown})")
        return nodeid

    def score(self, nodeid: str, replies: list[str]) -> Any:
        """The pool's :class:`~pytest_teach.rewards.Score` of a rollout's replies."""
        from ..agents import encode_replies

        started = time.perf_counter()
        (score,) = self.pool.score([(nodeid, encode_replies(replies))])
        self.stats.reward_s += time.perf_counter() - started
        return score

    def reward_of(self, score: Any) -> float | None:
        """The training reward of a score: its value, or the chosen component."""
        if score.value is None:
            return None
        if self.reward == "value":
            return float(score.value)
        value = score.components.get(self.reward)
        return None if value is None else float(value)

    def record(self, env: ScenarioEnv, score: Any, reward: float | None) -> None:
        """Count the rollout and write it to the store as an episode (``meta.source = rl``)."""
        with self._lock:
            stats = self.stats
            stats.rollouts += 1
            stats.outcomes[score.outcome] += 1
            if reward is None:
                stats.left_out += 1
            else:
                stats.scored += 1
                stats.groups[(self.step, env.task)].append(reward)
            if self._store is None:
                return
            from ..store import new_id

            episode = env._episode(score, reward).build(
                episode_id=new_id(),
                nodeid=env.nodeid,
                scenario=f"{env.family}[{env.task}]",
                outcome=_OUTCOMES.get(score.outcome, "error"),
                reason=score.reason,
                session_id=self.session_id,
                category=env.category,
                model=self.model,
                params={"task": env.task},
                meta={
                    "source": "rl",
                    "family": env.family,
                    "task": env.task,
                    "step": self.step,
                    "reward_source": self.reward,
                    "check_outcome": score.outcome,
                },
                duration_s=time.time() - env.started_at,
                error=None if score.outcome in _OUTCOMES else score.reason,
                created_at=time.time(),
            )
            self._store.write_episode(episode)
            stats.stored += 1


@dataclass
class _Call:
    observation: str
    tool: str
    arguments: dict[str, Any]
    reply: str
    result: str
    error: dict[str, str] | None


class ScenarioEnv:
    """The base of a family's TRL environment (see the module's docstring for the protocol).

    ``family`` names the scenario family (the scenario marker's name), ``instructions`` is the
    system prompt of every task, ``suite`` the default path of the family's pytest suite and
    ``category`` what stored episodes are filed under.
    """

    family: ClassVar[str] = "scenario"
    instructions: ClassVar[str] = ""
    suite: ClassVar[str | None] = None
    category: ClassVar[str | None] = "rl"

    def __init__(self, context: RolloutContext) -> None:
        self.context = context
        self.task = ""
        self.nodeid = ""
        self.started_at = 0.0
        self._calls: list[_Call] = []
        self._observation = ""
        self._reward: tuple[float | None] | None = None

    # -- what TRL calls ----------------------------------------------------------------------

    def reset(self, task: str = "", **row: Any) -> str:
        """Start ``task`` (the dataset row's ``task`` column) and return its first observation.

        Raises:
            ValueError: no task, a held-out task, or one outside the training split.
        """
        if not task:
            raise ValueError("reset() needs the row's task column (a task id)")
        nodeid = self.context.nodeid(task)
        self._close()
        self.task, self.nodeid = task, nodeid
        self._calls = []
        self._reward = None
        self.started_at = time.time()
        started = time.perf_counter()
        self._observation = self._begin(task)
        self.context.stats.env_s += time.perf_counter() - started
        return self._observation

    def get_reward(self) -> float | None:
        """The scenario test's reward for this rollout (``None``, which TRL leaves out, when
        the check couldn't score it); the rollout is stored as an episode."""
        if self._reward is None:
            score = self.context.score(self.nodeid, self.replies)
            reward = self.context.reward_of(score)
            self._reward = (reward,)
            self.context.record(self, score, reward)
        return self._reward[0]

    # -- what tools call -----------------------------------------------------------------------

    @property
    def replies(self) -> list[str]:
        """The replies carried out so far, in order (what the scenario's test replays)."""
        return [c.reply for c in self._calls if c.error is None]

    @property
    def calls(self) -> list[_Call]:
        """Every tool call of the rollout, carried out or refused."""
        return list(self._calls)

    def _step(self, reply: str, *, tool: str, arguments: dict[str, Any]) -> str:
        """Carry out ``reply`` (one tool call) and return the next observation, or the JSON
        error when it can't be carried out."""
        stats = self.context.stats
        stats.tool_calls += 1
        before = self._observation
        started = time.perf_counter()
        try:
            if self._finished():
                raise ActionError("the task is over; stop calling tools", kind="episode_over")
            result = self._apply(reply)
        except ActionError as exc:
            stats.action_errors += 1
            error = exc.as_dict()
            result = json.dumps({"error": error}, ensure_ascii=False)
            self._calls.append(_Call(before, tool, dict(arguments), reply, result, error))
            return result
        finally:
            stats.env_s += time.perf_counter() - started
        stats.executed += 1
        self._observation = result
        self._calls.append(_Call(before, tool, dict(arguments), reply, result, None))
        return result

    def _episode(self, score: Any, reward: float | None) -> Any:
        """The rollout as an :class:`~pytest_teach.recorder.EpisodeRecorder` (one step per
        tool call; refused calls keep their error)."""
        from ..recorder import EpisodeRecorder

        recorder = EpisodeRecorder(enabled=True)
        for call in self._calls:
            recorder.step(
                call.observation,
                call.reply if call.error is None else {"tool": call.tool, **call.arguments},
                messages=[
                    {"role": "user", "content": call.observation},
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [
                            {
                                "type": "function",
                                "function": {"name": call.tool, "arguments": call.arguments},
                            }
                        ],
                    },
                ],
                valid_actions=self._valid_actions(),
                error=call.error,
            )
        if reward is not None or score.value is not None:
            recorder.reward(
                reward if reward is not None else float(score.value), **dict(score.components)
            )
        recorder.metric(
            steps=float(len(self.replies)),
            tool_calls=float(len(self._calls)),
            action_errors=float(len(self._calls) - len(self.replies)),
        )
        return recorder

    # -- the family's protocol -------------------------------------------------------------------

    def _begin(self, task: str) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement _begin(task)")

    def _apply(self, reply: str) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement _apply(reply)")

    def _finished(self) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must implement _finished()")

    def _close(self) -> None:
        """Release what :meth:`_begin` opened (nothing by default)."""

    def _succeeded(self) -> bool:
        """Whether the task was accomplished, as the environment sees it (demonstrations keep
        only those; the reward always comes from the test)."""
        return False

    #: ``_oracle() -> (tool, arguments) | None``: the expert's next tool call, for
    #: demonstrations (optional; ``None`` when the family has no oracle).
    _oracle: Any = None

    def _valid_actions(self) -> list[str] | None:
        """The actions a step may take, stored with each step (``None``: not enumerable)."""
        return None

    @classmethod
    def _suite_args(cls, tasks: list[str], options: dict[str, Any]) -> list[str]:
        """The pytest arguments that make the family's suite collect ``tasks`` (none by
        default: the suite collects them as it is)."""
        return []

    @classmethod
    def _seed_tasks(cls, seeds: list[int], options: dict[str, Any]) -> list[str]:
        """The task ids of ``seeds``, for families whose tasks are seeded.

        Raises:
            ValueError: the family names its tasks by id only (the default).
        """
        raise ValueError(f"{cls.family} tasks are named by id, not by seed")


def environment_factory(
    env_class: type[ScenarioEnv], context: RolloutContext
) -> Callable[[], ScenarioEnv]:
    """The ``environment_factory`` TRL's ``GRPOTrainer`` takes: each call is a fresh
    ``env_class`` sharing ``context``."""
    if not (isinstance(env_class, type) and issubclass(env_class, ScenarioEnv)):
        raise TypeError(f"{env_class!r} is not a ScenarioEnv subclass")

    def factory() -> ScenarioEnv:
        return env_class(context)

    factory.__name__ = f"{env_class.__name__}_factory"
    return factory
