"""The teacher: the oracle per family, and a model teacher validated strictly with one repair."""

from __future__ import annotations

import pytest

from pytest_teach.agents import Completion
from pytest_teach.envs import tool_selection as ts
from pytest_teach.teacher import LLMTeacher, OracleTeacher, is_valid_action, make_teacher


class ScriptedReplies:
    """A stand-in chat model that answers from a list, to exercise the repair logic."""

    spec = "scripted-replies"

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.seen: list[list[dict]] = []

    def complete(self, messages, **_: object) -> Completion:
        self.seen.append(messages)
        return Completion(text=self.replies.pop(0))


VALID = [t.name for t in ts.TOOLS]


def test_oracle_teacher_for_tool_selection() -> None:
    case = next(s for s in ts.SCENARIOS if s.difficulty == "multi")
    advice = OracleTeacher().advise(
        case.query, VALID, ["web_search"], family="tool_selection", context=case
    )
    assert advice.ok and sorted(advice.action) == sorted(case.expected)
    assert all(name in advice.diagnosis for name in case.expected)
    missing = OracleTeacher().advise("x", VALID, "y", family="no-such-family")
    assert missing.action is None and "no oracle teacher for family" in missing.reason


def test_validation_is_strict() -> None:
    assert is_valid_action(["weather_forecast"], VALID)
    assert is_valid_action({"tools": ["weather_forecast", "email_send"]}, VALID)
    assert not is_valid_action(["weather"], VALID)
    assert not is_valid_action([], VALID)
    assert is_valid_action({"type": "click", "ref": "e1"}, [{"ref": "e1", "type": "click"}])


def test_llm_teacher_valid_first_time() -> None:
    chat = ScriptedReplies('{"action": ["calculator"], "diagnosis": "It is arithmetic."}')
    advice = LLMTeacher(chat).advise("what is 2+2", VALID, ["web_search"])
    assert advice.action == ["calculator"] and advice.diagnosis == "It is arithmetic."
    assert len(chat.seen) == 1


def test_llm_teacher_repairs_once() -> None:
    chat = ScriptedReplies(
        '{"action": ["calc"], "diagnosis": "arithmetic"}',
        '{"action": ["calculator"], "diagnosis": "arithmetic"}',
    )
    advice = LLMTeacher(chat).advise("what is 2+2", VALID, ["web_search"])
    assert advice.action == ["calculator"]
    assert "is not one of the valid actions" in chat.seen[1][-1]["content"]


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        ("not json", "still not json", "reply is not JSON"),
        ('{"action": ["nope"]}', '{"diagnosis": "x"}', 'reply lacks "action"'),
        ('{"action": "x"}', '{"action": ["calc"]}', "is not one of the valid actions"),
    ],
)
def test_llm_teacher_gives_up_with_a_reason(first: str, second: str, reason: str) -> None:
    advice = LLMTeacher(ScriptedReplies(first, second)).advise("q", VALID, ["web_search"])
    assert advice.action is None
    assert advice.reason.startswith("after one repair try:") and reason in advice.reason


def test_make_teacher_specs() -> None:
    assert isinstance(make_teacher("oracle"), OracleTeacher)
    with pytest.raises(ValueError):
        make_teacher("scripted:oracle")


def test_teacher_fixture_in_a_scenario(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_teach.envs import tool_selection as ts

        def test_teacher_corrects(teacher, episode):
            case = ts.SCENARIOS[0]
            valid = [t.name for t in ts.TOOLS]
            advice = teacher.advise(case.query, valid, ["web_search"], family="tool_selection",
                                    context=case)
            episode.step(case.query, {"tools": ["web_search"]}, label="bad",
                         correction={"tools": advice.action})
            assert advice.ok
        """
    )
    result = pytester.runpytest("--collect-training-data", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    bad = pytester.runpytest("--teacher", "scripted:x")
    assert bad.ret != 0
