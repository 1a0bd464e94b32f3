"""Tool selection: given a query and a tool registry, the planner must pick exactly the right tools.

Run it against any model and record every outcome as training data:

    pytest scenarios/tool_selection --model scripted:noisy-0.3 --collect-training-data
"""

from __future__ import annotations

import pytest

from pytest_teach.agents import ModelCallError
from pytest_teach.envs import tool_selection as ts

VALID_ACTIONS = [tool.name for tool in ts.TOOLS]

CASES = [
    pytest.param(
        case,
        id=case.id,
        marks=pytest.mark.scenario(
            "tool_selection", category=case.category, difficulty=case.difficulty
        ),
    )
    for case in ts.SCENARIOS
]


@pytest.mark.parametrize("case", CASES)
def test_tool_selection(case: ts.Scenario, planner: ts.ScriptedPlanner, episode) -> None:
    try:
        plan = planner.plan(case)
    except ModelCallError as exc:  # the endpoint's fault: recorded as an error, not a label
        episode.step(case.query, None, error=exc.as_step_error())
        raise
    episode.step(
        case.query,
        {"tools": plan.tools},
        messages=plan.messages,
        valid_actions=VALID_ACTIONS,
        probs=plan.probs,
        error=plan.error,
    )
    episode.metric(
        latency_ms=plan.latency_ms,
        prompt_tokens=plan.prompt_tokens,
        completion_tokens=plan.completion_tokens,
        cost_usd=plan.cost_usd,
    )
    result = ts.check(case, plan.tools)
    episode.reward(result.to_reward())
    episode.meta(expected=list(case.expected))
    assert result.passed, result.message
