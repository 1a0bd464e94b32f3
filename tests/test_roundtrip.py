"""Anything recorded comes back out of the store, and through every export format, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_teach import open_store
from pytest_teach.export import export, text_of
from pytest_teach.recorder import EpisodeRecorder
from pytest_teach.store import new_id

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.integers(-1000, 1000)
steps = st.lists(
    st.fixed_dictionaries(
        {
            "observation": json_values,
            "action": json_values,
            "label": st.sampled_from([None, "good", "bad"]),
            "correction": st.none() | json_values.filter(lambda v: v is not None),
        }
    ),
    min_size=1,
    max_size=4,
)


def record(store, raw_steps, outcome, reward, metrics, meta, scenario):
    rec = EpisodeRecorder(enabled=True)
    for s in raw_steps:
        rec.step(s["observation"], s["action"], label=s["label"], correction=s["correction"])
    if reward is not None:
        rec.reward(reward, part=reward)
    rec.metric(**metrics)
    rec.meta(**meta)
    episode = rec.build(
        episode_id=new_id(),
        nodeid=f"test_x.py::{scenario}",
        scenario=scenario,
        outcome=outcome,
        reason="because ✓" if outcome == "intervention" else None,
        model="scripted:oracle",
    )
    store.write_episode(episode)
    return episode


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw_steps=steps,
    outcome=st.sampled_from(["success", "intervention"]),
    reward=st.none() | st.floats(0, 1),
    metrics=st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), numbers, max_size=3),
    meta=st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), json_values, max_size=3),
    scenario=text.filter(lambda s: s.strip() != ""),
)
def test_store_and_exports_round_trip(
    tmp_path: Path, raw_steps, outcome, reward, metrics, meta, scenario
) -> None:
    db = tmp_path / f"{new_id()}.db"
    store = open_store(db, create=True)
    written = record(store, raw_steps, outcome, reward, metrics, meta, scenario)
    (read,) = store.episodes()
    assert read == written

    out = tmp_path / new_id()
    # openai / sft: good steps chain into user/assistant turns carrying the exact values
    result = export(store, "openai", out / "chat.jsonl")
    rows = [json.loads(line) for line in (out / "chat.jsonl").read_text("utf-8").splitlines()]
    assert result.rows == len(rows)
    contents = [m["content"] for row in rows for m in row["messages"]]
    for step in read.steps:
        if step.correction is not None:
            assert text_of(step.correction) in contents
    if outcome == "success" and raw_steps[0]["label"] != "bad":
        assert rows[0]["messages"][0]["content"] == text_of(raw_steps[0]["observation"])
        assert rows[0]["messages"][1]["content"] == text_of(raw_steps[0]["action"])

    # dpo: every correction that differs from the action becomes a pair with the exact texts
    export(store, "dpo", out / "dpo.jsonl")
    pairs = [json.loads(line) for line in (out / "dpo.jsonl").read_text("utf-8").splitlines()]
    for s in raw_steps:
        if s["correction"] is not None and text_of(s["correction"]) != text_of(s["action"]):
            assert any(
                p["chosen"][0]["content"] == text_of(s["correction"])
                and p["rejected"][0]["content"] == text_of(s["action"])
                for p in pairs
            )

    # grpo: one prompt per scenario, the first observation verbatim
    export(store, "grpo", out / "grpo.jsonl")
    (prompt_row,) = [json.loads(x) for x in (out / "grpo.jsonl").read_text("utf-8").splitlines()]
    assert prompt_row["prompt"][-1]["content"] == text_of(raw_steps[0]["observation"])
    assert prompt_row["scenario"] == scenario
    assert json.loads(prompt_row["meta"]) == read.meta

    # interventions: the episode comes back with its steps' values intact
    export(store, "interventions", out / "iv")
    name = "interventions.json" if outcome == "intervention" else "successes.json"
    (summary,) = json.loads((out / "iv" / name).read_text("utf-8"))
    assert [s["observation"] for s in summary["steps"]] == [s["observation"] for s in raw_steps]
    assert [s["action"] for s in summary["steps"]] == [s["action"] for s in raw_steps]
    assert summary["metrics"] == metrics and summary["scenario"] == scenario
    store.close()
