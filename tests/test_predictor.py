"""The intervention predictor end to end on a small generated family: `teach train predictor`
(real contrastive and classifier training, the open_clip tower on real PNGs), `teach evaluate`
(metrics, the baseline, real plots), `teach select-for-labeling`, live scoring under pytest
(`--intervention-predictor`: probabilities on the steps, the summary, the report), the schema
migration, and one clear error for each bad input."""

from __future__ import annotations

import hashlib
import io
import json
import math
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

# imported at module level on purpose: pytester restores sys.modules after each test, and torch
# can't be imported twice in one process
import matplotlib.figure  # noqa: E402,F401
import open_clip  # noqa: E402,F401
import sklearn.linear_model  # noqa: E402,F401
import sklearn.metrics  # noqa: E402,F401
import tqdm  # noqa: E402,F401
from click.testing import CliRunner  # noqa: E402
from PIL import Image  # noqa: E402

from pytest_teach import open_store  # noqa: E402
from pytest_teach.cli import cli  # noqa: E402
from pytest_teach.pipeline import list_specialist_models  # noqa: E402
from pytest_teach.predictor import (  # noqa: E402
    DEFAULT_PREDICTOR_DIR,
    PREDICTOR_AGENT,
    EncoderConfig,
    ExperienceEncoder,
    PredictorTrainingConfig,
    VisualTower,
    load_encoder,
    load_predictor,
    predictor_path,
    render_evaluation,
    render_selection,
    select_for_labeling,
    supcon_loss,
    tensorize,
    train_and_register_predictor,
)
from pytest_teach.predictor._encoder import _clip_visual  # noqa: E402
from pytest_teach.recorder import EpisodeRecorder  # noqa: E402
from pytest_teach.store import Store  # noqa: E402
from pytest_teach.store._schema import MIGRATIONS, SCHEMA_VERSION  # noqa: E402

from .conftest import store_dump  # noqa: E402

# A small gridworld-like family, used both to fill stores directly and as a pytester suite. A
# clean run walks forward; a recovering run waits once and goes on (and passes); a stuck run
# keeps waiting until the loop check ends it. Scenarios 0 and 1 carry screenshots, 2 and 3 none
# (a missing modality). Run kinds are spread so every scenario has all three.
TOY = """
import io

from PIL import Image

KINDS = ["clean", "recover", "stuck", "clean", "recover", "stuck", "stuck", "recover"]
CASES = [(s, k, i) for s in range(4) for i, k in enumerate(KINDS * 2)]


def toy_actions(kind, length=4):
    if kind == "clean":
        return ["forward"] * length + ["done"]
    if kind == "recover":
        return ["forward", "wait"] + ["forward"] * (length - 1) + ["done"]
    return ["forward", "wait", "wait", "wait"]


def toy_png(room):
    image = Image.new("RGB", (48, 32), ((60 * room) % 256, 90, 200 - 30 * room))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def toy_run(episode, scenario, kind):
    room = 0
    for action in toy_actions(kind):
        shot = toy_png(room) if scenario < 2 else None
        episode.step(f"room {room} of level {scenario}", action, screenshot=shot,
                     valid_actions=["forward", "wait", "done"])
        room += action == "forward"
    return kind != "stuck"
"""
_NS: dict = {}
exec(TOY, _NS)


def _fill(db: Path | str, cases: list | None = None, *, only: str | None = None) -> Path | str:
    """Write the toy family's episodes straight into a store (a SQLite file or a PostgreSQL
    URL), with ids fixed by their order (so the seeded split, and what the tests measure on it,
    is the same on every run)."""
    with Store.open(db, create=True) as store:
        for n, (scenario, kind, _) in enumerate(cases if cases is not None else _NS["CASES"]):
            if only is not None and kind != only:
                continue
            rec = EpisodeRecorder(enabled=True)
            passed = _NS["toy_run"](rec, scenario, kind)
            episode = rec.build(
                episode_id=hashlib.sha256(f"{Path(db).name}:{n}".encode()).hexdigest()[:16],
                nodeid=f"test_toy.py::test_toy[{scenario}-{kind}]",
                scenario=f"toy[{scenario}]",
                outcome="success" if passed else "intervention",
                reason=None if passed else "loop: wait repeated",
                model="scripted:toy",
                created_at=time.time(),
            )
            refs = [store.save_artifact_file(d, m) for d, m in rec.blobs.values()]
            store.write_episodes([episode], refs)
    return db


def _train_args(db: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "predictor",
        "--db",
        str(db),
        "-o",
        str(out),
        "--epochs-contrastive",
        "3",
        "--epochs-predictor",
        "30",
        "--lr",
        "3e-3",
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, CliRunner]:
    """A toy store and a predictor trained on it by the real command."""
    root = tmp_path_factory.mktemp("predictor")
    db = _fill(root / "toy.db")
    runner = CliRunner()
    result = runner.invoke(cli, _train_args(db, root / "model"))
    assert result.exit_code == 0, result.output
    return db, root / "model", runner


def test_train_writes_both_checkpoints_registers_them_and_holds_out_test_episodes(
    trained: tuple[Path, Path, CliRunner],
) -> None:
    db, model, _ = trained
    for name in ("experience_encoder", "intervention_predictor"):
        assert (model / f"{name}.pt").stat().st_size > 1000
        json.loads((model / f"{name}.json").read_text())
    config = json.loads((model / "intervention_predictor.json").read_text())
    split = config["split"]
    assert not set(split["test"]) & (set(split["train"]) | set(split["val"]))
    with open_store(db) as store:
        labels = {e.id: e.label for e in store.episodes()}
        [registered] = list_specialist_models(store, agent="intervention-predictor")
    assert registered.path == str(model.resolve())
    assert {labels[i] for i in split["test"]} == {0, 1}  # stratified
    assert len(split["train"]) + len(split["val"]) + len(split["test"]) == len(labels)
    encoder = json.loads((model / "experience_encoder.json").read_text())
    assert encoder["visual_model"] == "ViT-B-32" and encoder["visual_fingerprint"]
    assert 0 < config["threshold"] < 1
    assert config["metrics"]["screenshots"] == 5  # the rooms of the levels with screenshots


def test_training_prints_progress_and_warns_once_about_random_visual_weights(
    trained: tuple[Path, Path, CliRunner], tmp_path: Path
) -> None:
    db, _, _ = trained
    result = CliRunner().invoke(
        cli, _train_args(db, tmp_path / "m", "--epochs-predictor", "2", "--name", "again")
    )
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "visual tower is random" in warnings[0]
    assert "contrastive" in result.stderr and "loss=" in result.stderr and "3/3" in result.stderr
    assert "threshold" in result.stdout and "held out for `teach evaluate`" in result.stdout


def test_an_encoder_trained_alone_is_reused_frozen_with_its_own_held_out_episodes(
    trained: tuple[Path, Path, CliRunner], tmp_path: Path
) -> None:
    db, _, runner = trained
    enc_dir, out = tmp_path / "enc", tmp_path / "pred"
    args = ["train", "encoder", "--db", str(db), "-o", str(enc_dir), "--epochs-contrastive", "2"]
    result = runner.invoke(cli, [*args, "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "teach train predictor --encoder" in result.stdout
    assert not (enc_dir / "intervention_predictor.pt").exists()
    encoder, trained_on = load_encoder(enc_dir)
    split = trained_on["split"]
    assert split["seed"] == 3 and not set(split["test"]) & set(split["train"])

    base = ["train", "predictor", "--db", str(db), "-o", str(out), "--encoder", str(enc_dir)]
    result = runner.invoke(cli, [*base, "--epochs-predictor", "3", "--lr", "3e-3"])
    assert result.exit_code == 0, result.output
    assert "contrastive" not in result.stderr and "predictor" in result.stderr  # phase 2 only
    predictor = load_predictor(out)
    assert predictor.config["split"] == split  # the encoder's held-out episodes stay held out
    for key, value in encoder.state_dict().items():  # frozen: copied beside it as it was
        assert torch.equal(predictor.encoder.state_dict()[key], value), key
    _one_error(
        runner.invoke(cli, [*base, "--epochs-contrastive", "5", "--scenario", "toy*"]),
        "--encoder excludes --epochs-contrastive, --scenario",
    )


def test_evaluate_scores_held_out_episodes_beside_the_baseline_and_draws_real_plots(
    trained: tuple[Path, Path, CliRunner], tmp_path: Path
) -> None:
    db, model, runner = trained
    result = runner.invoke(
        cli, ["evaluate", "--db", str(db), "--model", str(model), "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "experience encoder" in result.stdout and "logistic regression" in result.stdout
    metrics = json.loads((tmp_path / "evaluation_metrics.json").read_text())
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "threshold"):
        assert 0 <= metrics[key] <= 1, key
        assert 0 <= metrics["baseline_logistic_regression"][key] <= 1, key
    cm = metrics["confusion_matrix"]
    assert cm["tn"] + cm["fp"] + cm["fn"] + cm["tp"] == metrics["test_steps"]
    assert cm["tp"] + cm["fn"] == metrics["test_positive_steps"] > 0
    # the stuck runs repeat themselves: learnable from the actions and the page alone
    assert metrics["roc_auc"] > 0.8 and metrics["baseline_logistic_regression"]["roc_auc"] > 0.8
    warning = metrics["early_warning"]
    assert warning["failing_episodes"] == sum(
        1
        for i in json.loads((model / "intervention_predictor.json").read_text())["split"]["test"]
        if i in {e.id for e in open_store(db).episodes(label=1)}
    )
    for name in ("confusion_matrix.png", "roc_curve.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(data)) as image:
            assert image.width > 300 and image.height > 300
            colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
            assert colours is not None and len(colours) > 50  # drawn, not blank


def test_select_for_labeling_lists_the_least_certain_steps_ready_for_feedback(
    trained: tuple[Path, Path, CliRunner], tmp_path: Path
) -> None:
    db, model, runner = trained
    copy = tmp_path / "copy.db"
    shutil.copy(db, copy)
    args = ["select-for-labeling", "--db", str(copy), "--model", str(model), "--k", "4"]
    picked = json.loads(runner.invoke(cli, [*args, "--json"]).stdout)
    assert len(picked) == 4
    threshold = load_predictor(model).threshold

    def logit(x: float) -> float:
        x = min(max(x, 1e-6), 1 - 1e-6)
        return math.log(x / (1 - x))

    def margin(p: float) -> float:
        return abs(logit(p) - logit(threshold))

    margins = [margin(c["p"]) for c in picked]
    assert margins == sorted(margins)
    text = runner.invoke(cli, args)
    assert text.exit_code == 0
    command = next(line.strip() for line in text.stdout.splitlines() if "feedback add" in line)
    first = picked[0]
    assert f"--example {first['episode_id'][:12]} --step {first['step']}" in command
    # the toy family repeats its runs: each state is listed once, with its twins counted
    assert any(c["identical"] > 0 for c in picked)
    # labelling that step (by the printed command) takes its state off the list, twins included
    argv = shlex.split(command)[1:]
    assert runner.invoke(cli, argv).exit_code == 0
    again = json.loads(runner.invoke(cli, [*args, "--json"]).stdout)
    before = {(c["scenario"], c["step"], c["p"]) for c in picked}
    after = {(c["scenario"], c["step"], c["p"]) for c in again}
    assert (first["scenario"], first["step"], first["p"]) in before - after
    assert len(again) == 4


def test_train_and_register_then_find_select_and_render_from_the_library(
    trained: tuple[Path, Path, CliRunner], tmp_path: Path
) -> None:
    db, model, _ = trained
    copy = tmp_path / "copy.db"
    shutil.copy(db, copy)
    with open_store(tmp_path / "empty.db", create=True) as empty:
        assert predictor_path(empty) == str(DEFAULT_PREDICTOR_DIR)
    with open_store(copy) as store:
        assert predictor_path(store, "elsewhere") == "elsewhere"
        newest = list_specialist_models(store, agent=PREDICTOR_AGENT)[0]
        assert predictor_path(store) == newest.path
        cfg = PredictorTrainingConfig(epochs_predictor=2, lr=3e-3)
        out = tmp_path / "again"
        metrics, registered = train_and_register_predictor(
            store, out, cfg, encoder=model, name="second"
        )
        assert (registered.name, registered.agent) == ("second", PREDICTOR_AGENT)
        assert registered.metrics["method"] == "predictor"
        assert registered.metrics["threshold"] == metrics["threshold"]
        assert predictor_path(store) == str(out.resolve())  # the newest registered
        predictor = load_predictor(predictor_path(store))
        picked = select_for_labeling(store, predictor, 2)
    text = render_selection(picked, predictor.threshold, db="my store.db").splitlines()
    assert text[0].startswith("2 steps the predictor is least sure of (threshold ")
    assert text[2].startswith("    teach feedback add --db 'my store.db' --example ")
    assert "--db" not in render_selection(picked, predictor.threshold)
    assert render_selection([], 0.5) == "no unlabelled steps to choose from"
    rates = {"roc_auc": 0.9, "f1": 0.8, "precision": 0.7, "recall": 0.6, "threshold": 0.5}
    warned = {
        "failing_warned": 3,
        "failing_episodes": 4,
        "median_lead_time_steps": 2,
        "false_alarms": 1,
        "passing_episodes": 5,
        "false_alarms_after_a_detour": 1,
    }
    figures = {**rates, "early_warning": warned}
    shown = render_evaluation(
        {
            "test_episodes": 9,
            "test_steps": 40,
            "test_positive_steps": 12,
            "encoder": figures,
            "baseline_logistic_regression": figures,
        },
        tmp_path,
    ).splitlines()
    assert shown[0] == "held out: 9 episodes, 40 steps (12 needing intervention)"
    assert shown[2].split() == [
        "experience",
        "encoder",
        "0.900",
        "0.800",
        "0.700",
        "0.600",
        "0.500",
    ]
    assert (
        shown[-1]
        == f"wrote {tmp_path / 'evaluation_metrics.json'}, confusion_matrix.png, roc_curve.png"
    )


def test_live_scoring_stores_probabilities_flags_episodes_and_reports_lead_time(
    trained: tuple[Path, Path, CliRunner], pytester: pytest.Pytester
) -> None:
    _, model, _ = trained
    pytester.makepyfile(
        test_toy=TOY
        + """
import pytest

@pytest.mark.parametrize("scenario,kind,i", CASES[::5])
def test_toy(scenario, kind, i, episode):
    assert toy_run(episode, scenario, kind), "loop: wait repeated"
"""
    )
    report = pytester.path / "report.html"
    result = pytester.runpytest(
        "--collect-training-data",
        "-p",
        "no:cacheprovider",
        f"--intervention-predictor={model}",
        f"--teach-report={report}",
    )
    result.stdout.fnmatch_lines(
        [
            "*early warning*",
            "*intervention predictor*threshold*episodes crossed the threshold*median lead time*",
            "*WARNED test_toy*lead time*",
        ]
    )
    store = open_store(pytester.path / ".teach" / "experience.db")
    episodes = list(store.episodes())
    assert episodes and all(s.intervention_p is not None for e in episodes for s in e.steps)
    stuck = [e for e in episodes if e.label == 1]
    warned = [e for e in stuck if e.meta["intervention_warning"]["step"] is not None]
    assert warned, "no failing episode was warned"
    for e in warned:
        meta = e.meta["intervention_warning"]
        assert e.steps[meta["step"]].intervention_p >= meta["threshold"]
        assert all(s.intervention_p < meta["threshold"] for s in e.steps[: meta["step"]])
    html = report.read_text()
    assert 'id="early-warnings"' in html and 'id="median-lead"' in html
    assert "lead time (steps)" in html and "p(intervention)" in html


def test_a_process_that_runs_no_test_loads_the_threshold_without_the_visual_tower(
    trained: tuple[Path, Path, CliRunner],
) -> None:
    from pytest_teach.predictor import LiveScorer

    _, model, _ = trained
    scoring, reporting = LiveScorer.load(model), LiveScorer.load(model, scores=False)
    assert scoring.predictor._tower is not None and reporting.predictor._tower is None
    assert reporting.threshold == scoring.threshold == load_predictor(model).threshold
    assert reporting.notes == scoring.notes and "visual tower is random" in scoring.notes[0]


def test_a_bad_predictor_path_is_a_one_line_usage_error(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile("def test_a(episode):\n    episode.step('o', 'a')\n")
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a checkpoint at all")
    for path, message in ((tmp_path / "missing", "no such checkpoint"), (bad, "not a readable")):
        result = pytester.runpytest("--intervention-predictor", str(path))
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*--intervention-predictor: *{message}*"])


def _one_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_input_gets_one_clear_error_and_leaves_the_store_as_it_was(
    trained: tuple[Path, Path, CliRunner], tmp_path: Path
) -> None:
    db, model, runner = trained
    empty = tmp_path / "empty.db"
    Store.open(empty, create=True).close()
    before = store_dump(empty)
    _one_error(runner.invoke(cli, _train_args(empty, tmp_path / "o")), "no labeled episodes")
    assert store_dump(empty) == before and not (tmp_path / "o").exists()

    passing = _fill(tmp_path / "passing.db", only="clean")
    before = store_dump(passing)
    _one_error(
        runner.invoke(cli, _train_args(passing, tmp_path / "o")),
        "are success",
        "needs both successes and interventions",
    )
    assert store_dump(passing) == before

    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    (broken / "intervention_predictor.pt").write_bytes(b"\x00" * 64)
    for verb in ("evaluate", "select-for-labeling"):
        _one_error(
            runner.invoke(cli, [verb, "--db", str(db), "--model", str(broken)]),
            "intervention_predictor.pt is not a readable checkpoint",
        )
    torch.save({"weights": torch.zeros(2)}, broken / "intervention_predictor.pt")
    _one_error(
        runner.invoke(cli, ["evaluate", "--db", str(db), "--model", str(broken)]),
        "is not a pytest-teach/intervention-predictor checkpoint",
    )
    payload = torch.load(model / "intervention_predictor.pt", weights_only=True)
    payload["config"]["labeling"] = "point-of-no-return/1"
    torch.save(payload, broken / "intervention_predictor.pt")
    _one_error(
        runner.invoke(cli, ["evaluate", "--db", str(db), "--model", str(broken)]),
        "was trained on 'point-of-no-return/1' labels",
    )
    (broken / "experience_encoder.pt").unlink()
    shutil.copy(model / "intervention_predictor.pt", broken / "intervention_predictor.pt")
    _one_error(
        runner.invoke(cli, ["evaluate", "--db", str(db), "--model", str(broken)]),
        "experience_encoder.pt: no such checkpoint",
    )
    if not torch.cuda.is_available():
        before = store_dump(db)
        for args in (
            _train_args(db, tmp_path / "o", "--device", "cuda"),
            ["evaluate", "--db", str(db), "--model", str(model), "--device", "cuda"],
        ):
            _one_error(runner.invoke(cli, args), "--device cuda: CUDA is not available")
        assert store_dump(db) == before


def test_the_visual_tower_is_frozen_reproducible_and_a_missing_screenshot_is_masked() -> None:
    images = [_NS["toy_png"](0), _NS["toy_png"](3)]
    with pytest.warns(UserWarning, match="random"):
        a = VisualTower(seed=7)
    _clip_visual.cache_clear()  # built again from scratch, from the same seed
    with pytest.warns(UserWarning, match="random"):
        b = VisualTower(seed=7)
    assert a.visual is not b.visual
    assert a.fingerprint == b.fingerprint and a.dim == 512
    ea, eb = a.embed(images), b.embed(images)
    assert ea.shape == (2, 512) and torch.allclose(ea, eb)
    assert not torch.allclose(ea[0], ea[1])
    assert not any(p.requires_grad for p in a.visual.parameters())

    from pytest_teach.predictor._features import (
        ACTION_NUMERIC,
        ACTION_TYPES,
        ERROR_TYPES,
        MAX_ACTIONS,
        NAME_BUCKETS,
        PAGE_DIM,
        ROLES,
        episode_features,
    )
    from pytest_teach.store import Step

    cfg = EncoderConfig(
        PAGE_DIM,
        len(ACTION_TYPES),
        len(ROLES),
        len(ERROR_TYPES),
        NAME_BUCKETS,
        ACTION_NUMERIC,
        MAX_ACTIONS,
    )
    encoder = ExperienceEncoder(cfg).eval()
    steps = [Step(index=0, observation="room 0", action="forward")]
    features = episode_features(steps)
    batch = tensorize(features, {}, 512)
    assert batch["visual_mask"].tolist() == [0.0]
    noisy = {**batch, "visual": torch.randn(1, 512)}  # whatever sits there is ignored
    with torch.no_grad():
        z = encoder(batch)
        assert torch.allclose(z, encoder(noisy)) and torch.allclose(z.norm(dim=-1), torch.ones(1))
        shown = {**noisy, "visual_mask": torch.ones(1)}
        assert not torch.allclose(z, encoder(shown))


def test_supcon_loss_is_lower_when_the_classes_are_pulled_apart() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1])
    apart = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.1], [1.0, 0.0], [1.0, -0.1], [-1.0, 0.1], [-1.0, -0.1]]), dim=-1
    )
    mixed = apart[[0, 3, 1, 2, 4]]
    assert supcon_loss(apart, labels, 0.1) < supcon_loss(mixed, labels, 0.1)
    z = apart.clone().requires_grad_(True)
    supcon_loss(z, labels, 0.07).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    assert float(supcon_loss(apart, torch.tensor([0, 1, 2, 3, 4]), 0.1)) == 0.0  # no positives


def test_a_schema_2_store_migrates_in_place_keeping_its_steps(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    for version in (1, 2):
        for statement in MIGRATIONS[version]:
            conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    conn.execute(
        "INSERT INTO episodes(id, nodeid, scenario, outcome, label, created_at) "
        "VALUES ('ab12cd34ef56ab78', 'n', 's', 'intervention', 1, 1.0)"
    )
    conn.execute(
        "INSERT INTO steps(episode_id, idx, observation, action) "
        "VALUES ('ab12cd34ef56ab78', 0, '\"o\"', '\"a\"')"
    )
    conn.commit()
    conn.close()
    with open_store(db) as store:
        assert store.schema_version == SCHEMA_VERSION
        [episode] = store.episodes()
        assert episode.steps[0].observation == "o" and episode.steps[0].intervention_p is None


def test_the_plugin_and_the_predictor_package_import_no_heavy_library() -> None:
    code = (
        "import sys, pytest, pytest_teach.plugin, pytest_teach.cli, pytest_teach.predictor,"
        " pytest_teach.report;"
        "heavy = [m for m in ('torch', 'open_clip', 'sklearn', 'matplotlib', 'numpy', 'tqdm')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
