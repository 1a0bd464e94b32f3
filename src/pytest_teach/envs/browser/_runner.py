"""Running one browser task under a policy and recording it as an episode."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import InfrastructureError
from ._session import ACTION_TYPES

if TYPE_CHECKING:
    from ...recorder import EpisodeRecorder
    from ._agents import BrowserPolicy
    from ._session import BrowserSession
    from ._tasks import Task

__all__ = ["LOOP_REPEATS", "TaskResult", "run_task"]

LOOP_REPEATS = 3  # the same observation and action this many times is a loop
VALID_ACTIONS = list(ACTION_TYPES)


@dataclass
class TaskResult:
    """How a task run ended: ``success`` (checked against the page), the reason, the steps
    taken, how it ended (``done``, ``loop`` or ``max_steps``) and the check's verdict."""

    success: bool
    reason: str
    steps: int
    ended: str = "done"
    check_passed: bool = False
    answer: str | None = None


def _key(observation: dict[str, Any], action: Any) -> str:
    text = json.dumps([observation["url"], observation["snapshot"], action], sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _describe(action: Any) -> str:
    return json.dumps(action, ensure_ascii=False, separators=(",", ":"))[:120]


def run_task(
    session: BrowserSession,
    task: Task,
    policy: BrowserPolicy,
    episode: EpisodeRecorder,
    *,
    max_steps: int = 15,
    screenshots: bool = True,
) -> TaskResult:
    """Run ``task`` from its start page: observe, ask ``policy``, act, until ``done``.

    Every step is recorded on ``episode`` (observation, action, the prompt and reply, the
    screenshot, and the step error if the action failed). The run also ends, labeled
    ``intervention``, when the same observation and action come back :data:`LOOP_REPEATS` times
    or after ``max_steps``. Success is then checked against the page's state, never the
    agent's claims; the reward is 1.0 on success and 0.0 otherwise, with its components.
    """
    if session.origin is None:
        raise ValueError(
            "run_task needs a BrowserSession with base_url= (the site server's origin)"
        )
    session.goto(task.start_path)
    seen: dict[str, int] = {}
    latency_ms = 0.0
    tokens = {"prompt_tokens": 0, "completion_tokens": 0}
    cost = 0.0
    reported = False
    errors = 0
    last_error: dict[str, Any] | None = None
    ended = "max_steps"
    reason = ""
    answer: str | None = None
    steps = 0
    for _ in range(max_steps):
        observation = session.observe(screenshot=screenshots)
        started = time.perf_counter()
        try:
            decision = policy.act(observation, last_error)
        except InfrastructureError as exc:  # a model call that failed: not the agent's fault
            as_step_error = getattr(exc, "as_step_error", None)
            if callable(as_step_error):
                episode.step(
                    observation.data,
                    None,
                    valid_actions=VALID_ACTIONS,
                    screenshot=observation.screenshot,
                    error=as_step_error(),
                )
            raise
        latency_ms += (time.perf_counter() - started) * 1000.0
        for name in tokens:
            value = getattr(decision, name)
            if value is not None:
                tokens[name] += value
                reported = True
        if decision.cost_usd is not None:
            cost += decision.cost_usd
        steps += 1
        action: Any = decision.action if decision.action is not None else decision.text
        error = decision.error if decision.action is None else session.act(decision.action)
        episode.step(
            observation.data,
            action,
            messages=decision.messages,
            valid_actions=VALID_ACTIONS,
            probs=decision.probs,
            screenshot=observation.screenshot,
            error=error,
        )
        last_error = error
        if error is not None:
            errors += 1
        if decision.action is not None and decision.action["type"] == "done" and error is None:
            ended = "done"
            answer = decision.action.get("answer")
            break
        key = _key(observation.data, action)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] >= LOOP_REPEATS:
            ended = "loop"
            reason = (
                f"loop: {_describe(action)} repeated {LOOP_REPEATS} times on "
                f"{observation.data['url']}"
            )
            episode.label("intervention", reason)
            break
    else:
        reason = f"max_steps {max_steps} reached without done"
        episode.label("intervention", reason)

    state = session.state()
    if isinstance(state, dict):
        passed, message = task.check(session.page, {**state, "answer": answer})
    else:
        passed, message = False, f"the page at {session.display_url()} has no task state"
    success = passed and ended == "done"
    if ended == "done":
        reason = message if passed else f"task not achieved: {message}"
    else:
        reason = f"{reason} ({'goal was reached' if passed else message})"

    metrics: dict[str, float] = {"steps": steps, "latency_ms": latency_ms, "step_errors": errors}
    if reported:
        metrics.update(tokens)
        metrics["cost_usd"] = cost
    episode.metric(**metrics)
    plan_steps = len(task.plan)
    episode.reward(
        1.0 if success else 0.0,
        check=1.0 if passed else 0.0,
        done=1.0 if ended == "done" else 0.0,
        efficiency=min(1.0, plan_steps / steps) if steps else 0.0,
    )
    episode.meta(
        task=task.id,
        site=task.site,
        goal=task.goal,
        start=task.start_path,
        ended=ended,
        answer=answer,
        policy=getattr(policy, "name", type(policy).__name__),
    )
    return TaskResult(success, reason, steps, ended, passed, answer)
