"""The intervention predictor's pure parts: step labels (the first mistake), features that
never look ahead, the split by episode, the threshold, and the early-warning figures."""

from __future__ import annotations

import pytest

from pytest_teach.predictor import (
    EpisodeWarning,
    PredictorError,
    first_crossing,
    known_paths,
    lead_time,
    split_episodes,
    step_labels,
    summarize_warnings,
)
from pytest_teach.predictor._features import PAGE_DIM, episode_features
from pytest_teach.predictor._metrics import choose_threshold, f1_at
from pytest_teach.store import Episode, Feedback, Step, new_id


def _episode(actions: list[str], label: int, scenario: str = "toy[a]", **kw) -> Episode:
    steps = [Step(index=i, observation=f"room {i}", action=a) for i, a in enumerate(actions)]
    return Episode(
        id=new_id(),
        nodeid="t.py::test",
        scenario=scenario,
        outcome={0: "success", 1: "intervention"}[label],
        label=label,
        steps=steps,
        **kw,
    )


def test_the_first_mistake_is_where_the_run_leaves_every_clean_successful_path() -> None:
    clean = _episode(["forward", "forward", "done"], 0)
    recovered = _episode(["forward", "wait", "forward", "done"], 0)
    paths = known_paths([clean, recovered])
    # only the shortest successful runs are clean: the recovered detour's prefixes are not paths
    assert max(map(len, paths["toy[a]"])) == 3 and len(paths["toy[a]"]) == 3
    # the first "wait" is the mistake, though a successful run made it too and recovered
    stuck = _episode(["forward", "wait", "wait", "wait"], 1)
    assert step_labels(stuck, paths) == [0, 1, 1, 1]
    assert step_labels(recovered, paths) == [0, 0, 0, 0]  # it needed no one
    # a failure on another scenario has no path to compare with: only its last step
    other = _episode(["forward", "wait", "wait"], 1, scenario="toy[b]")
    assert step_labels(other, paths) == [0, 0, 1]
    # a failing run that stayed on a clean path fails at its end
    early = _episode(["forward", "forward"], 1)
    assert step_labels(early, paths) == [0, 1]
    assert step_labels(clean, paths) == [0, 0, 0]


def test_human_verdicts_override_the_derived_labels() -> None:
    paths = known_paths([_episode(["forward", "done"], 0)])
    run = _episode(["forward", "left", "left"], 1)
    run.steps[0].label = "bad"
    run.feedback = [
        Feedback(id=1, episode_id=run.id, step=1, correct_action="left"),  # confirmed: fine
        Feedback(id=2, episode_id=run.id, step=2, correct_action="done"),  # corrected: bad
    ]
    assert step_labels(run, paths) == [1, 0, 1]
    passing = _episode(["forward", "done"], 0)
    passing.steps[1].label = "bad"
    assert step_labels(passing, paths) == [0, 1]
    unlabeled = Episode(id="x", nodeid="n", scenario="s", outcome="error", steps=run.steps)
    assert step_labels(unlabeled, paths) == [None, None, None]


def test_features_of_a_step_never_depend_on_later_steps() -> None:
    snapshot = (
        '- banner [ref=e1]:\n  - button "Accept all" [ref=e2]\n  - link "Learn more" [ref=e3]'
    )
    steps = []
    for i, action in enumerate(
        [
            {"type": "click", "ref": "e3"},
            {"type": "scroll", "direction": "down"},
            {"type": "scroll", "direction": "down"},
            {"type": "done"},
        ]
    ):
        steps.append(
            Step(
                index=i,
                observation={"url": f"/shop/{i // 2}.html", "title": "Shop", "snapshot": snapshot},
                action=action,
                messages=[{"role": "user", "content": "Goal: accept the cookies\n"}],
                error={"type": "not_visible"} if i == 1 else None,
            )
        )
    full = episode_features(steps)
    for t in range(len(steps)):
        prefix = episode_features(steps[: t + 1])
        assert prefix[t] == full[t]
        assert len(full[t].page) == PAGE_DIM
        assert len(full[t].actions) == t + 1
    # the target's name is read from the snapshot: "Learn more" shares no word with the goal
    assert full[0].actions[0].numeric[0] == 0.0
    assert full[0].actions[0].role > 0
    # the repeated scroll is flagged as a repeat of the previous action
    assert full[2].actions[-1].numeric[1] == 1.0 and full[1].actions[-1].numeric[1] == 0.0


def test_split_is_by_episode_stratified_and_deterministic() -> None:
    episodes = [_episode(["a"], 0) for _ in range(20)] + [_episode(["b"], 1) for _ in range(10)]
    split = split_episodes(episodes, seed=3)
    parts = [set(split.train), set(split.val), set(split.test)]
    assert sum(map(len, parts)) == 30 and set().union(*parts) == {e.id for e in episodes}
    assert not (parts[0] & parts[2]) and not (parts[1] & parts[2]) and not (parts[0] & parts[1])
    label = {e.id: e.label for e in episodes}
    assert sorted(label[i] for i in split.test) == [0] * 4 + [1] * 2
    assert split_episodes(episodes, seed=3) == split
    assert split_episodes(episodes, seed=4).test != split.test
    with pytest.raises(PredictorError, match="only 2 intervention episode"):
        split_episodes(episodes[:20] + episodes[20:22])


def test_threshold_maximises_f1_between_scores() -> None:
    labels = [0, 0, 0, 1, 1, 0, 1]
    probs = [0.1, 0.2, 0.3, 0.6, 0.7, 0.65, 0.9]
    threshold = choose_threshold(labels, probs)
    assert 0.3 < threshold < 0.6  # every positive above, at the cost of one false alarm
    assert f1_at(labels, probs, threshold) == pytest.approx(6 / 7)
    assert choose_threshold([0, 0], [0.2, 0.4]) == 0.5


def test_lead_time_counts_steps_between_the_warning_and_the_failure() -> None:
    assert first_crossing([0.1, None, 0.8, 0.9], 0.75) == 2
    assert first_crossing([0.1, 0.2], 0.75) is None
    assert lead_time(True, 5, 2) == 2 and lead_time(True, 5, 4) == 0
    assert lead_time(False, 5, 2) is None and lead_time(True, 5, None) is None

    def w(outcome: str, steps: int, at: int | None) -> EpisodeWarning:
        return EpisodeWarning("id", "s", "m", outcome, steps, 0.5, at, None)

    summary = summarize_warnings(
        [w("intervention", 6, 1), w("intervention", 4, 3), w("intervention", 3, None)]
        + [w("success", 4, 2), w("success", 4, None)]
    )
    assert (summary.failing, summary.failing_warned, summary.false_alarms) == (3, 2, 1)
    assert summary.leads == [4, 0] and summary.median_lead == 2 and summary.warned_early == 1
