"""Teachable moments II: micro-training, the training matrix, the evaluation suite, the selection
experiment and the artifacts, through ``teach teachable pilot --full`` on the mock world (every
file's schema, values finite and in range), resuming, bad input, and the statistics."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import pytest

from pytest_teach.envs import minigrid as mg
from pytest_teach.teachable import (
    EVAL_FILES,
    FIGURES,
    FORMATS,
    METHODS,
    QUADRANTS,
    Experiment,
    TeachableError,
    bootstrap_mean,
    play,
    spearman,
    supervision_row,
    t_interval,
)
from pytest_teach.teachable._select import choose

from .conftest import REPO
from .test_teachable import _rows, _teach

pytest.importorskip("minigrid")
pytest.importorskip("sklearn")
pytest.importorskip("trl")

RUNS = [f"{q}-{f}" for q in QUADRANTS for f in FORMATS] + ["all_failures", "random"]


@pytest.fixture(scope="module")
def pilot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``teach teachable pilot --full`` on the mock world: every phase at a tiny N."""
    out = tmp_path_factory.mktemp("full") / "results"
    done = _teach(
        "teachable", "pilot", "--full", "--mock-env", "--skip-api", "-o", str(out),
        "--suite", str(REPO / "scenarios" / "minigrid"),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done.stdout


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _number(text: str, lo: float, hi: float) -> float:
    value = float(text)
    assert math.isfinite(value) and lo <= value <= hi, (text, lo, hi)
    return value


def _finite(value: object) -> None:
    """Every number inside ``value`` is finite."""
    if isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, dict):
        for v in value.values():
            _finite(v)
    elif isinstance(value, list):
        for v in value:
            _finite(v)


# -- the pilot, file by file ---------------------------------------------------------------------


def test_pilot_full_writes_every_file(pilot: tuple[Path, str]) -> None:
    out, stdout = pilot
    named = [
        "labeled_snapshots.jsonl", "hist_U.png", "hist_L.png", "scatter_U_L.png",
        "quantiles.json", "training_result.json", "micro_training_results.json",
        "cpt_correlation.json", "training_summary.json", *EVAL_FILES, "selection_summary.json",
        *(f"figures/{f}" for f in FIGURES),
        *(f"tables/{t}.{ext}" for t in ("training_matrix", "selection", "cpt_correlation",
                                         "hypotheses") for ext in ("csv", "md")),
    ]  # fmt: skip
    missing = [n for n in named if not (out / n).is_file() or (out / n).stat().st_size == 0]
    assert missing == []
    report = json.loads((out / "pilot.json").read_text())
    assert report["student"].startswith("hf:") and (out / "student" / "student.json").exists()
    assert set(report["seconds"]) >= {"student", "micro_train", "train_matrix", "eval", "select"}
    assert "hypothesis: Q1 shows the biggest gain:" in stdout


def test_micro_training_schema(pilot: tuple[Path, str]) -> None:
    out, _ = pilot
    micro = json.loads((out / "micro_training_results.json").read_text())
    labeled = {r["id"]: r for r in _rows(out / "labeled_snapshots.jsonl")}
    assert micro["n"] == len(micro["snapshots"]) > 0
    for row in micro["snapshots"]:
        truth = labeled[row["id"]]
        assert row["quadrant"] == truth["quadrant"] and row["ELP_net"] == truth["cpt"]["ELP_net"]
        for key in ("success_before", "success_after", "p_expert_before", "p_expert_after"):
            assert 0.0 <= row[key] <= 1.0
        assert row["utility"] == pytest.approx(row["success_after"] - row["success_before"])
        assert row["format"] == "demo" and math.isfinite(row["train_loss"])
    # the few steps took: the expert's action got likelier at the snapshot it was trained on
    rises = [r["p_expert_after"] > r["p_expert_before"] for r in micro["snapshots"]]
    assert sum(rises) > len(rises) / 2
    corr = json.loads((out / "cpt_correlation.json").read_text())
    assert corr["n"] == micro["n"] and corr["target"] == 0.3
    if corr["rho"] is not None:
        assert -1 <= corr["rho"] <= 1 and 0 <= corr["p_value"] <= 1
        assert corr["passed"] == (corr["rho"] >= 0.3)
    assert set(corr["q1_vs_q2"]) == {"Q1", "Q2", "difference"}
    _finite(micro)
    _finite(corr)


def test_training_summary_schema(pilot: tuple[Path, str]) -> None:
    out, _ = pilot
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["planned"] == RUNS and summary["complete"]
    split = json.loads((out / "split.json").read_text())
    assert not set(split["train_episodes"]) & set(split["test_episodes"])
    train_ids = {r["id"] for r in _rows(out / "labeled_snapshots.jsonl")
                 if r["episode_id"] in split["train_episodes"]}  # fmt: skip
    for run in summary["runs"]:
        assert run["status"] in ("done", "skipped")
        assert set(run["snapshots"]) <= train_ids  # nothing held out is trained on
        if run["status"] == "done":
            assert (Path(run["model"]) / "config.json").exists()
            assert run["command"].startswith("teach train sft --data ")
            assert run["steps"] >= 1 and math.isfinite(run["loss"])
    by_name = {r["run"]: r for r in summary["runs"]}
    assert by_name["all_failures"]["n_snapshots"] == len(train_ids)
    assert by_name["random"]["n_snapshots"] == summary["per_run"]


def test_eval_csvs_schema_and_ranges(pilot: tuple[Path, str]) -> None:
    out, _ = pilot
    overall = _csv(out / "overall_task_results.csv")
    trained = [r["run"] for r in json.loads((out / "training_summary.json").read_text())["runs"]
               if r["status"] == "done"]  # fmt: skip
    assert [r["run"] for r in overall] == ["base", *trained]
    for row in overall:
        _number(row["success_rate"], 0, 1)
        low, gain, high = (_number(row[k], -1, 1) for k in ("gain_ci_low", "gain", "gain_ci_high"))
        assert low <= gain + 1e-9 and gain <= high + 1e-9
        assert int(row["successes"]) <= int(row["tasks"])
    assert float(overall[0]["gain"]) == 0.0
    for row in _csv(out / "per_quadrant_results.csv"):
        assert row["eval_quadrant"] in QUADRANTS
        if int(row["snapshots"]):
            _number(row["success_rate"], 0, 1)
            _number(row["gain"], -1, 1)
    transfer = _csv(out / "transfer_matrix.csv")
    assert {r["format"] for r in transfer} <= {*FORMATS, "mean"}
    assert list(transfer[0]) == ["format", "train", *QUADRANTS]
    for row in _csv(out / "retention_results.csv"):
        assert int(row["still_solved"]) <= int(row["base_solved"])
        if int(row["base_solved"]):
            _number(row["retention"], 0, 1)
            assert float(row["retention_drop"]) == pytest.approx(1 - float(row["retention"]))
    for row in _csv(out / "stuckness_results.csv"):
        for key in ("timeout_rate", "loop_rate", "invalid_rate"):
            _number(row[key], 0, 1)
        assert int(row["timeouts"]) <= int(row["episodes"])


def test_selection_summary_schema(pilot: tuple[Path, str]) -> None:
    out, _ = pilot
    summary = json.loads((out / "selection_summary.json").read_text())
    assert set(summary["methods"]) == set(METHODS) and summary["seeds"] == 2
    assert sorted(summary["order_by_reliability_gain"]) == sorted(METHODS)
    for stats in summary["methods"].values():
        assert [r["seed"] for r in stats["runs"]] == [0, 1]
        for run in stats["runs"]:
            assert len(run["chosen"]) == len(set(run["chosen"])) == summary["budget"]
            assert -1 <= run["reliability_gain"] <= 1 and 0 <= (run["retention"] or 0) <= 1
        gain = stats["reliability_gain"]
        assert gain["n"] == 2 and gain["ci95"][0] <= gain["mean"] <= gain["ci95"][1]
    # from the same pool, the oracle's picks have the highest true ELP of any method's
    for seed in (0, 1):
        chosen = {m: s["runs"][seed]["mean_ELP_chosen"] for m, s in summary["methods"].items()}
        assert chosen["ORACLE"] == max(chosen.values())
    _finite(summary)


def test_figures_are_real_pngs(pilot: tuple[Path, str]) -> None:
    from PIL import Image

    out, _ = pilot
    for name in FIGURES:
        with Image.open(out / "figures" / name) as image:
            assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200
            colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
            assert colours is not None and len(colours) > 20  # drawn, not blank


def test_tables_state_each_hypothesis(pilot: tuple[Path, str]) -> None:
    out, _ = pilot
    rows = _csv(out / "tables" / "hypotheses.csv")
    assert [r["hypothesis"].split(" at budget")[0] for r in rows] == [
        "Q1 shows the biggest gain",
        "predictor > entropy > random",
        "retention drop under 10%",
        "Spearman(CPT, utility) >= 0.3",
    ]
    corr = json.loads((out / "cpt_correlation.json").read_text())
    spearman_row = rows[3]
    expected = "undetermined" if corr["rho"] is None else ("yes" if corr["passed"] else "no")
    assert spearman_row["held"] == expected
    assert all(r["held"] in ("yes", "no", "undetermined") for r in rows)
    md = (out / "tables" / "training_matrix.md").read_text()
    assert md.startswith("| run | kind |") and "all_failures" in md


# -- resuming and the verbs' exit status --------------------------------------------------------


def test_the_phases_resume_without_redoing_work(pilot: tuple[Path, str]) -> None:
    out, _ = pilot
    checkpoint = out / "micro.partial.jsonl"
    lines = checkpoint.read_text().splitlines(keepends=True)
    checkpoint.write_text("".join(lines[:-2]) + lines[-2][:30])  # two lost, one torn
    done = _teach("teachable", "micro-train", "-r", str(out), "--n-per-quadrant", "2")
    assert f"{len(lines) - 2} done, 2 to go" in done.stdout
    corr = json.loads((out / "cpt_correlation.json").read_text())
    assert done.returncode == (0 if corr["passed"] else 1)  # exit 0 iff rho >= 0.3
    assert len(checkpoint.read_text().splitlines()) == len(lines)
    again = _teach("teachable", "train-matrix", "-r", str(out))
    assert again.returncode == 0 and "0 already trained" not in again.stdout
    assert "Q1_highU_highL-demo: " not in again.stdout  # no run trained again
    other = _teach("teachable", "train-matrix", "-r", str(out), "--lr", "0.01")
    assert other.returncode == 2 and "other settings (finetune); pass --restart" in other.stderr
    evaluated = _teach("teachable", "eval", "-r", str(out), "--eval-tasks", "5")
    assert evaluated.returncode == 0 and "already evaluated" in evaluated.stdout
    assert "[eval] 1/" not in evaluated.stdout


def test_evaluation_is_deterministic(pilot: tuple[Path, str]) -> None:
    from pytest_teach.teachable import Bench, EvalSettings

    out, _ = pilot
    exp = Experiment.open(out)
    bench = Bench.of(exp, exp.split(0.3, 0).test, EvalSettings(eval_tasks=3))
    with exp.loaded() as student:
        first = bench.play("base", student)
    with exp.loaded() as student:
        assert bench.play("base", student) == first


# -- bad input -----------------------------------------------------------------------------------


def test_bad_results_folders_are_one_clear_error(pilot: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = pilot
    empty = _teach("teachable", "micro-train", "-r", str(tmp_path))
    assert empty.returncode == 2 and "no labeled_snapshots.jsonl" in empty.stderr
    assert len(empty.stderr.strip().splitlines()) == 1
    scripted = _teach("teachable", "train-matrix", "-r", str(out), "--student", "scripted:oracle")
    assert scripted.returncode == 2 and "needs a local hf: model" in scripted.stderr
    no_matrix = tmp_path / "no-matrix"
    no_matrix.mkdir()
    for name in ("labeled_snapshots.jsonl", "snapshots.jsonl"):
        (no_matrix / name).write_bytes((out / name).read_bytes())
    done = _teach("teachable", "eval", "-r", str(no_matrix))
    assert done.returncode == 2 and "run teach teachable train-matrix first" in done.stderr
    budget = _teach("teachable", "select", "-r", str(out), "--budget", "100000")
    assert budget.returncode == 2 and "--budget 100000 is more than" in budget.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    rows = _rows(out / "labeled_snapshots.jsonl")
    rows[1]["cpt"] = None
    (broken / "labeled_snapshots.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    (broken / "snapshots.jsonl").write_bytes((out / "snapshots.jsonl").read_bytes())
    bad = _teach("teachable", "micro-train", "-r", str(broken))
    assert bad.returncode == 2
    assert "labeled_snapshots.jsonl line 2: field 'cpt' is missing" in bad.stderr
    nothing = _teach("teachable", "figures", "-r", str(tmp_path / "nowhere"))
    assert nothing.returncode == 2 and "none of the experiment's files" in nothing.stderr


# -- the parts -----------------------------------------------------------------------------------


def _row(**kw: object) -> dict:
    return {
        "observation": "Mission: go to the red ball\nYou carry: nothing",
        "student_action": "left",
        "expert_action": "forward",
        "target": {"object": "a red ball", "right": 0, "forward": 2},
        "cpt": None,
        **kw,
    }


def test_supervision_formats_answer_with_the_experts_action() -> None:
    demo, hint, contrast = (supervision_row(_row(), f)["messages"] for f in FORMATS)
    for messages in (demo, hint, contrast):
        assert messages[0]["content"] == mg.SYSTEM_PROMPT and messages[-1] == {
            "role": "assistant", "content": "forward"
        }  # fmt: skip
    assert "Advice" not in demo[1]["content"]
    assert "A red ball is 2 steps forward of you." in hint[1]["content"]
    assert "Not left: forward is the better action here." in contrast[1]["content"]
    given = _row(cpt={"patches": {"hint": {"text": "Walk on. The ball waits."}}})
    assert (
        "Advice: Walk on. The ball waits."
        in supervision_row(given, "hint")["messages"][1]["content"]
    )
    with pytest.raises(TeachableError, match="unknown supervision format"):
        supervision_row(_row(), "lecture")


def test_selection_methods_pick_what_they_say() -> None:
    pool = [
        {"id": f"s{i}", "U": u, "cpt": {"ELP_net": e}}
        for i, (u, e) in enumerate([(0.1, 0.9), (2.0, 0.0), (1.5, 0.5), (0.2, 0.0), (0.3, 0.7)])
    ]
    predicted = {"s0": 0.0, "s1": 0.1, "s2": 0.2, "s3": 0.9, "s4": 0.8}
    assert choose("ORACLE", pool, 2, 0, predicted) == ["s0", "s4"]
    assert choose("ENTROPY", pool, 2, 0, predicted) == ["s1", "s2"]
    assert choose("PREDICTOR", pool, 2, 0, predicted) == ["s3", "s4"]
    assert choose("RANDOM", pool, 3, 7, predicted) == choose("RANDOM", pool, 3, 7, predicted)
    picks = {tuple(sorted(choose("RANDOM", pool, 3, seed, predicted))) for seed in range(20)}
    assert len(picks) > 1
    # ties (ELP 0 for s1 and s3) are broken by a seeded order, not the input order
    ties = {choose("ORACLE", pool, 4, seed, predicted)[-1] for seed in range(20)}
    assert ties == {"s1", "s3"}


class _Turner(mg.ScriptedStudent):
    """Always turns left: it loops on the spot until the step limit."""

    spec = "scripted:turner"

    def distribution(self, world, patch=None):
        return {"left": 1.0}


def test_play_reports_loops_and_timeouts() -> None:
    stuck = play(mg.make_world("MockGoTo", 0, max_steps=9, mock=True), _Turner())
    assert not stuck.success and stuck.timeout and stuck.loop and stuck.steps == 9
    solved = play(mg.make_world("MockGoTo", 0, max_steps=30, mock=True), mg.OracleStudent())
    assert solved.success and not solved.timeout and not solved.loop


def test_statistics_by_hand() -> None:
    exact = spearman([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    assert exact["rho"] == pytest.approx(1.0) and exact["ci95"] == pytest.approx([1.0, 1.0])
    assert spearman([1, 2, 3, 4], [5, 4, 3, 2])["rho"] == pytest.approx(-1.0)
    assert spearman([0, 0, 0, 0], [1, 2, 3, 4])["rho"] is None  # a constant side
    rng = random.Random(1)
    noisy = [(x, x + rng.gauss(0, 3)) for x in range(60)]
    rho = spearman([a for a, _ in noisy], [b for _, b in noisy])
    assert 0.5 < rho["rho"] < 1 and rho["ci95"][0] < rho["rho"] < rho["ci95"][1]
    t = t_interval([1.0, 2.0, 3.0])
    assert t["mean"] == 2.0 and t["sd"] == pytest.approx(1.0)
    assert t["ci95"] == pytest.approx([2 - 4.302653 / 3**0.5, 2 + 4.302653 / 3**0.5], rel=1e-5)
    assert t_interval([0.5])["ci95"] is None
    mean = bootstrap_mean([1.0] * 10 + [0.0] * 10, seed=3)
    assert mean["mean"] == 0.5 and 0.2 < mean["ci95"][0] < 0.5 < mean["ci95"][1] < 0.8
    diff = bootstrap_mean([1.0, 1.0, 1.0], minus=[0.0, 0.0])
    assert diff["mean"] == 1.0 and diff["ci95"] == [1.0, 1.0]


def test_rehearsal_mixes_in_a_seeded_sample_of_the_students_own_rows(tmp_path: Path) -> None:
    from pytest_teach.teachable import FineTune
    from pytest_teach.teachable._supervision import rehearsal_rows

    model = tmp_path / "student" / "model"
    model.mkdir(parents=True)
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": "left"},
            ]
        }
        for i in range(10)
    ]
    (model.parent / "demos.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    picked = rehearsal_rows(FineTune(rehearsal=4, seed=1), model)
    assert len(picked) == 4 and all(p in rows for p in picked)
    assert picked == rehearsal_rows(FineTune(rehearsal=4, seed=1), model)
    assert picked != rehearsal_rows(FineTune(rehearsal=4, seed=2), model)
    assert rehearsal_rows(FineTune(), model) == []
    with pytest.raises(TeachableError, match="holds 10 rows"):
        rehearsal_rows(FineTune(rehearsal=11), model)
    with pytest.raises(TeachableError, match=r"no .*demos.jsonl; pass --rehearsal-data"):
        rehearsal_rows(FineTune(rehearsal=1), tmp_path / "elsewhere" / "model")


def test_the_eval_seed_default_shown_is_the_one_used() -> None:
    from click.testing import CliRunner

    from pytest_teach.cli import cli
    from pytest_teach.teachable import EVAL_SEED_START

    shown = CliRunner().invoke(cli, ["teachable", "eval", "--help"]).stdout
    assert f"first seed [default: {EVAL_SEED_START}]" in " ".join(shown.split())
