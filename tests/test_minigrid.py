"""The gridworld family: levels, the text view, strict actions, students, exact snapshot replay,
the teacher, and the suite recorded through the plugin."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from pytest_teach import open_store
from pytest_teach.agents import Completion
from pytest_teach.envs import minigrid as mg
from pytest_teach.teacher import OracleTeacher

from .conftest import REPO

pytest.importorskip("minigrid")


# -- the text view and the actions ---------------------------------------------------------------


def test_relative_positions_and_render() -> None:
    assert mg.relative_position(-2, 1) == "2 steps left and 1 forward"
    assert mg.relative_position(1, 0) == "1 step right"
    assert mg.relative_position(0, 3) == "3 steps forward"
    assert mg.relative_position(3, -2) == "3 steps right and 2 back"
    text = mg.render_observation(
        "go to the red ball",
        [mg.Seen("door", "yellow", 0, 3, "locked"), mg.Seen("ball", "red", -2, 1)],
        ("key", "yellow"),
        (2, "a locked yellow door"),
        "left",
    )
    assert text.splitlines() == [
        "Mission: go to the red ball",
        "You carry: a yellow key",
        "You see:",
        "- a red ball 2 steps left and 1 forward",
        "- a locked yellow door 3 steps forward",
        "Ahead: 2 free steps, then a locked yellow door",
        "Last action: left",
    ]


def test_action_parsing_is_strict() -> None:
    assert mg.parse_action(" forward\n") == "forward"
    for reply in ("Forward", "go forward", "forward.", "", '{"action": "left"}', "left right"):
        with pytest.raises(mg.ActionParseError, match="is not one of the actions"):
            mg.parse_action(reply)


# -- levels --------------------------------------------------------------------------------------


def test_levels_resolve_and_unsolvable_ones_are_refused() -> None:
    assert mg.resolve_level("GoToLocal") == "BabyAI-GoToLocal-v0"
    assert mg.resolve_level("BabyAI-PickupLoc-v0") == "BabyAI-PickupLoc-v0"
    assert mg.resolve_level("PickupLoc", mock=True) == "MockPickup"
    with pytest.raises(mg.LevelError, match="cannot solve"):
        mg.resolve_level("KeyInBox")
    with pytest.raises(mg.LevelError, match="not a BabyAI level"):
        mg.resolve_level("MiniGrid-Empty-5x5-v0")
    with pytest.raises(mg.LevelError, match="unknown level 'NoSuchLevel'"):
        mg.resolve_level("NoSuchLevel")


@pytest.mark.parametrize("level", [*mg.DEFAULT_LEVELS, "MockGoTo", "MockPickup"])
def test_the_expert_solves_every_level(level: str) -> None:
    for seed in range(3):
        world = mg.make_world(level, seed, max_steps=64)
        result = mg.run_episode(world, mg.OracleStudent(), _Recorder())
        assert result.success, f"{level} seed {seed}: {result.reason}"
        assert result.agreement == 1.0


def test_worlds_are_seeded() -> None:
    a, b, c = (mg.make_world("GoToLocal", s) for s in (5, 5, 6))
    assert a.observe() == b.observe() and a.state_hash() == b.state_hash()
    assert a.state_hash() != c.state_hash()
    assert "Mission: " + a.mission in a.observe()


# -- snapshots -----------------------------------------------------------------------------------


def _noisy_prefix(level: str, seed: int, steps: int) -> mg.World:
    world = mg.make_world(level, seed, max_steps=64)
    student = mg.NoisyStudent(0.5, seed=1)
    rng = random.Random(0)
    for _ in range(steps):
        if world.done:
            break
        world.expert_action()
        world.step(student.act(world, world.observe(), rng).action)
    return world


@pytest.mark.parametrize("level", ["GoToLocal", "OpenDoor", "MockGoTo"])
def test_snapshot_replay_is_exact(level: str) -> None:
    original = _noisy_prefix(level, 3, 4)
    assert not original.done
    expert = original.expert_action()
    blob = original.snapshot()
    restored = mg.World.restore(blob)
    replayed = mg.replay(level, 3, original.actions_taken, max_steps=64)
    for twin in (restored, replayed):
        assert twin.state_hash() == original.state_hash()
        assert twin.expert_action() == expert
        assert twin.observe() == original.observe()
    # the bot's plan carries on identically: step all three with the same (off-plan) actions
    rng = random.Random(7)
    for _ in range(6):
        if original.done:
            break
        action = rng.choice(["left", "right", "forward"])
        for world in (original, restored, replayed):
            world.expert_action()
            world.step(action)
        hashes = {w.state_hash() for w in (original, restored, replayed)}
        advice = {w.expert_action() for w in (original, restored, replayed)}
        assert len(hashes) == 1 and len(advice) == 1
    with pytest.raises(mg.SnapshotError, match="not a world snapshot"):
        mg.World.restore(b"not a pickle")


def test_replay_refuses_a_prefix_past_the_end() -> None:
    with pytest.raises(ValueError, match="ended after 1 steps"):
        mg.replay("MockGoTo", 0, ["left", "left"], max_steps=1)


# -- students ------------------------------------------------------------------------------------


def test_noisy_student_distribution() -> None:
    student = mg.student_for("scripted:noisy-0.3")
    assert isinstance(student, mg.NoisyStudent)
    entropies = set()
    for seed in range(8):
        world = mg.make_world("GoToLocal", seed)
        probs = student.distribution(world)
        assert sorted(probs) == sorted(mg.ACTIONS)
        assert sum(probs.values()) == pytest.approx(1.0)
        assert probs[world.expert_action()] == pytest.approx(1 - student.noise(world))
        entropies.add(round(-sum(p * __import__("math").log(p) for p in probs.values() if p), 6))
        patched = student.distribution(world, mg.Patch("demo", "x", world.expert_action()))
        assert 1 - patched[world.expert_action()] == pytest.approx(student.noise(world) / 2)
    assert len(entropies) > 4  # the noise varies from state to state
    with pytest.raises(ValueError, match="P must be a number in"):
        mg.student_for("scripted:noisy-2")
    with pytest.raises(ValueError, match="unknown scripted gridworld student"):
        mg.student_for("scripted:keyword")


class _Chat:
    """A stand-in chat model: fixed replies, and a fixed distribution when it scores."""

    spec = "fake:chat"

    def __init__(self, *replies: str, probs: dict[str, float] | None = None) -> None:
        self.replies = list(replies)
        self.probs = probs
        self.scored = 0

    def complete(self, messages, **kw) -> Completion:
        return Completion(text=self.replies.pop(0), action_probs=self.probs, prompt_tokens=5)


class _ScoringChat(_Chat):
    def action_probs(self, messages, valid_actions):
        self.scored += 1
        return dict(self.probs)


def test_lm_student_parses_strictly_and_explores_from_its_distribution() -> None:
    world = mg.make_world("GoToLocal", 0)
    rng = random.Random(0)
    ok = mg.LMStudent(_Chat(" left ", probs={"left": 0.9, "right": 0.1})).act(
        world, world.observe(), rng
    )
    assert ok.action == "left" and ok.error is None and ok.probs == {"left": 0.9, "right": 0.1}
    assert ok.messages[1]["content"] == world.observe()
    bad = mg.LMStudent(_Chat("I would go left")).act(world, world.observe(), rng)
    assert bad.action is None and bad.error["type"] == "unparseable_output"
    patched = mg.LMStudent(_Chat("left")).act(
        world, world.observe(), rng, patch=mg.Patch("demo", "Go left.", "left")
    )
    assert patched.messages[1]["content"].endswith("\nAdvice: Go left.")
    chat = _ScoringChat(probs={"right": 1.0})
    student = mg.LMStudent(chat)
    picks = {student.act(world, world.observe(), rng, explore=True).action for _ in range(5)}
    assert picks == {"right"} and chat.scored == 1  # one prompt, scored once


def test_rollouts_drop_the_expert_only_for_students_that_never_consult_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_teach.envs.minigrid._babyai import BabyAIWorld
    from pytest_teach.teachable import rollout

    world = mg.make_world("GoToLocal", 1, max_steps=6)
    world.expert_action()
    blob = world.snapshot()
    planned: list[int] = []
    plan = BabyAIWorld._advise
    monkeypatch.setattr(BabyAIWorld, "_advise", lambda self: planned.append(1) or plan(self))
    lm = mg.LMStudent(_ScoringChat(probs={"left": 0.5, "right": 0.5}))
    assert rollout(blob, lm, random.Random(0)) is False  # it only turns: never there
    assert planned == []  # the bot was never asked to plan
    rollout(blob, mg.NoisyStudent(0.2), random.Random(0))
    assert planned  # a scripted student consults the expert at every step
    dropped = mg.World.restore(blob)
    dropped.drop_expert()
    assert dropped.expert_action() is None and "dropped" in dropped.expert_error
    dropped.step("forward")
    twin = mg.World.restore(blob)
    twin.step("forward")
    assert dropped.state_hash() == twin.state_hash()


def test_unparseable_reply_fails_the_episode_with_a_step_error() -> None:
    recorder = _Recorder()
    world = mg.make_world("MockGoTo", 1)
    result = mg.run_episode(world, mg.LMStudent(_Chat("forward", "jump")), recorder)
    assert not result.success and "is not one of the actions" in result.reason
    assert recorder.steps[-1]["error"]["type"] == "unparseable_output"
    assert recorder.steps[-1]["action"] == "jump"


# -- the teacher ---------------------------------------------------------------------------------


def test_oracle_teacher_for_the_gridworld() -> None:
    world = mg.make_world("GoToLocal", 4)
    expert = world.expert_action()
    wrong = next(a for a in mg.ACTIONS if a != expert)
    advice = OracleTeacher().advise(
        world.observe(), list(mg.ACTIONS), wrong, family="minigrid", context=world
    )
    assert advice.ok and advice.action == expert
    target = world.target()
    assert target is not None and target[0] in advice.diagnosis.lower()
    assert 1 <= advice.diagnosis.count(".") <= 2


# -- the suite through the plugin -------------------------------------------------------------------


class _Recorder:
    """Records what a scenario gives ``episode`` (the parts the runner uses)."""

    def __init__(self) -> None:
        self.steps: list[dict] = []
        self.meta_values: dict = {}

    def step(self, observation, action, **kw) -> int:
        self.steps.append({"observation": observation, "action": action, **kw})
        return len(self.steps) - 1

    def meta(self, **kv) -> None:
        self.meta_values.update(kv)

    def metric(self, **kv) -> None:
        pass

    def reward(self, *a, **kv) -> None:
        pass


def _pytest(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )


def test_suite_records_steps_distributions_and_verdicts(tmp_path) -> None:
    db = tmp_path / "store.db"
    done = _pytest(
        "scenarios/minigrid", "--model", "scripted:noisy-0.5", "--minigrid-mock",
        "--minigrid-seeds", "4", "--minigrid-max-steps", "10", "--collect-training-data",
        "--teach-db", str(db),
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    episodes = list(open_store(db).episodes())
    assert len(episodes) == 8
    assert {e.scenario for e in episodes} == {
        f"minigrid[{level}-s{seed}]" for level in ("MockGoTo", "MockPickup") for seed in range(4)
    }
    assert {e.outcome for e in episodes} == {"success", "intervention"}
    for episode in episodes:
        assert episode.meta["world"] == "mock" and episode.meta["max_steps"] == 10
        assert episode.meta["actions"] == [s.action for s in episode.steps]
        for step in episode.steps:
            assert step.valid_actions == list(mg.ACTIONS)
            assert step.entropy is not None and sum(step.probs.values()) == pytest.approx(1)
            assert step.label in ("good", "bad")
            assert (step.correction is not None) == (step.label == "bad")
        replayed = mg.replay(
            episode.meta["level"], episode.meta["seed"], episode.meta["actions"],
            max_steps=10, mock=True,
        )  # fmt: skip
        assert replayed.state_hash() == episode.meta["end_hash"]


def test_suite_refuses_a_level_the_bot_cannot_solve(tmp_path) -> None:
    done = _pytest("scenarios/minigrid", "--minigrid-levels", "KeyInBox", "--collect-only")
    assert done.returncode == pytest.ExitCode.INTERRUPTED  # a collection error, nothing runs
    assert "KeyInBox-v0' is one the BabyAI bot cannot solve" in done.stdout


def test_minigrid_env_fixture_in_a_users_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_teach.envs import minigrid as mg

        def test_goto(minigrid_env, episode):
            world = minigrid_env("GoToLocal", seed=2, max_steps=30)
            assert world.kind == "babyai" and world.level == "BabyAI-GoToLocal-v0"
            assert mg.run_episode(world, mg.OracleStudent(), episode).success
        """
    )
    result, store = _collect(pytester)
    result.assert_outcomes(passed=1)
    (episode,) = store.episodes()
    assert episode.meta["level"] == "BabyAI-GoToLocal-v0" and episode.steps


def _collect(pytester: pytest.Pytester):
    db = pytester.path / "store.db"
    result = pytester.runpytest("--collect-training-data", "--teach-db", str(db))
    return result, open_store(db)


def test_importing_the_plugin_and_family_stays_light() -> None:
    code = (
        "import sys, json\n"
        "import pytest_teach.plugin, pytest_teach.envs.minigrid, pytest_teach.teachable\n"
        "import pytest_teach.envs.minigrid.fixtures, pytest_teach.cli\n"
        "print(json.dumps([m for m in ('minigrid', 'gymnasium', 'torch', 'numpy', 'sklearn',"
        " 'matplotlib') if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [], out.stderr
