"""`teach train` on two CPU processes (torchrun, gloo DDP) against one process on the same global
batch: each rank trains on its own half of every batch, rank 0 alone writes and registers the
model, the loss matches; a failing rank, a half-set launch and a wait past its timeout are one
line each.

Each run is a real `torchrun --standalone --nproc_per_node 2 -m pytest_teach.cli train ...` on
the tiny offline base, a few steps long."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from safetensors.torch import load_file  # noqa: E402

from pytest_teach import open_store  # noqa: E402
from pytest_teach.cli import cli  # noqa: E402
from pytest_teach.pipeline import list_specialist_models  # noqa: E402
from pytest_teach.train import ensure_tiny_base  # noqa: E402

from .conftest import REPO  # noqa: E402

#: The longest any one launch may take here before the test fails (a hang is a failure).
LAUNCH_TIMEOUT = 420


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        TEACH_DIST_TIMEOUT="120",  # a stuck collective fails in 2 minutes, not transformers' 30
        PYTHONPATH=str(REPO / "src"),
    )
    env.update(extra)
    return env


def teach(
    args: list[str], processes: int, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """``teach ARGS`` in one process, or under torchrun with ``processes`` ranks."""
    if processes == 1:
        cmd = [sys.executable, "-m", "pytest_teach.cli", *args]
    else:
        launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        cmd = [sys.executable, *launch, "-m", "pytest_teach.cli", *args]
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=LAUNCH_TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_base(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of the weather tool-selection scenarios run by the oracle (chat rows, prompts)."""
    path = tmp_path_factory.mktemp("store") / "experience.db"
    subprocess.run(
        [
            sys.executable, "-m", "pytest", str(REPO / "scenarios" / "tool_selection"),
            "-q", "-p", "no:cacheprovider", "-k", "weather",
            "--collect-training-data", "--teach-db", str(path), "--model", "scripted:oracle",
        ],
        env=_env(),
        capture_output=True,
        timeout=LAUNCH_TIMEOUT,
        check=True,
    )  # fmt: skip
    return path


def _store(recorded: Path, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(recorded, where / "experience.db"))


def _metrics(out: str) -> dict:
    return json.loads(next(line for line in out.splitlines() if line.startswith("metrics "))[8:])


def _rank_logs(out: Path, n: int) -> list[dict]:
    logs = sorted((out / "ranks").glob("rank-*.json"))
    assert [p.name for p in logs] == [f"rank-{k}.json" for k in range(n)]
    return [json.loads(p.read_text()) for p in logs]


def _train_both(
    method: str, recorded: Path, base: Path, tmp_path: Path, steps: int, extra: list[str]
) -> tuple[dict, ...]:
    """The same run on one process (per-process batch 2*B) and on two (B each): same global
    batch, same seed. Returns (one's metrics, two's metrics, one's log, two's logs, two's db)."""
    runs = {}
    for processes, batch in ((1, 2 * int(extra[1])), (2, int(extra[1]))):
        db = _store(recorded, tmp_path / f"p{processes}")
        out = tmp_path / f"p{processes}" / "model"
        result = teach(
            [
                "train", method, "--db", str(db), "--base-model", str(base), "-o", str(out),
                "--max-steps", str(steps), "--batch-size", str(batch), *extra[2:],
            ],
            processes,
            tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        # progress, the result and the registration are printed once, by rank 0
        lines = result.stdout.splitlines()
        assert [line.split()[1] for line in lines if line.startswith("step ")] == [
            f"{s}/{steps}" for s in range(1, steps + 1)
        ]
        assert sum(line.startswith("registered ") for line in lines) == 1
        runs[processes] = (_metrics(result.stdout), _rank_logs(out, processes), db, out)
    return runs[1], runs[2]


def _check_shards(one: list[dict], two: list[dict], steps: int) -> None:
    """Both ranks stepped, each on its own rows, and together on the single process's batch."""
    for log in two:
        assert log["world_size"] == 2 and log["error"] is None
        assert len(log["steps"]) == steps
    assert two[0]["pid"] != two[1]["pid"]
    for step in range(steps):
        rank0, rank1 = (set(log["steps"][step]["rows"]) for log in two)
        assert rank0 and rank1 and not rank0 & rank1
        assert sorted(two[0]["steps"][step]["rows"] + two[1]["steps"][step]["rows"]) == sorted(
            one[0]["steps"][step]["rows"]
        )


def _one_registered(db: Path, out: Path, processes: int) -> None:
    with open_store(db) as store:
        models = list_specialist_models(store)
    assert len(models) == 1
    assert Path(models[0].path) == out.resolve()
    assert models[0].metrics.get("processes") == (processes if processes > 1 else None)


def test_sft_on_two_ranks_matches_one_process(recorded: Path, base: Path, tmp_path: Path) -> None:
    """Full fine-tuning, 3 steps, global batch 4: 1 process x 4 rows against 2 ranks x 2 rows.

    DDP averages the two ranks' gradients and transformers averages the loss over the tokens of
    all ranks, so the two runs compute the same numbers in float32 up to the order of the sums:
    the logged loss agrees to 1e-4 relative and the weights to 1e-4 absolute (measured: 0 and
    under 1e-6)."""
    (m1, log1, _, out1), (m2, log2, db2, out2) = _train_both(
        "sft", recorded, base, tmp_path, 3, ["--batch-size", "2", "--full"]
    )
    _check_shards(log1, log2, 3)
    assert m2["processes"] == 2 and m2["steps"] == 3
    assert m2["loss"] == pytest.approx(m1["loss"], rel=1e-4)
    assert m2["train_loss"] == pytest.approx(m1["train_loss"], rel=1e-4)
    before = load_file(str(base / "model.safetensors"))
    after1 = load_file(str(out1 / "model.safetensors"))
    after2 = load_file(str(out2 / "model.safetensors"))
    assert max((after2[k] - before[k]).abs().max().item() for k in before) > 1e-5  # it trained
    assert max((after2[k] - after1[k]).abs().max().item() for k in before) < 1e-4
    _one_registered(db2, out2, 2)


def test_grpo_on_two_ranks(recorded: Path, base: Path, tmp_path: Path) -> None:
    """GRPO with LoRA, 2 steps, 2 prompts x 4 completions a step: each rank generates and scores
    the group of its own prompt.

    TRL seeds each rank's sampling apart (``set_seed(seed, device_specific=True)``), so the
    completions, rewards and gradients differ from one process's; what must agree is the batch
    of prompts and the loss's value. With beta 0 and one update per generation the policy ratio
    is 1 and the loss is minus the token-weighted mean of the group-normalised advantages, zero
    up to float error in both runs (measured: under 5e-7): they agree within 1e-3."""
    (m1, log1, _, _), (m2, log2, db2, out2) = _train_both(
        "grpo",
        recorded,
        base,
        tmp_path,
        2,
        ["--batch-size", "1", "--num-generations", "4", "--max-completion-length", "4"],
    )
    _check_shards(log1, log2, 2)
    assert m2["processes"] == 2 and m2["steps"] == 2
    assert abs(m2["loss"] - m1["loss"]) < 1e-3
    adapter = load_file(str(out2 / "adapter_model.safetensors"))
    assert any(t.abs().sum() > 0 for k, t in adapter.items() if "lora_B" in k)  # B starts at 0
    _one_registered(db2, out2, 2)


def test_rank_error_is_one_line_per_rank_and_nothing_waits(
    recorded: Path, base: Path, tmp_path: Path
) -> None:
    """Rank 0's export finds no rows: every rank fails at once with one line naming it (rank 1
    gets rank 0's error instead of waiting for rows that never come), nothing is registered."""
    db = _store(recorded, tmp_path)
    result = teach(
        [
            "train", "sft", "--db", str(db), "--scenario", "no-such-scenario*",
            "--base-model", str(base), "-o", str(tmp_path / "model"), "--max-steps", "1",
        ],
        2,
        tmp_path,
        TEACH_DIST_TIMEOUT="600",
    )  # fmt: skip
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 2, result.stderr
    by_rank = {line.split(": error: ")[1][:11]: line for line in errors}
    assert set(by_rank) == {"rank 0 of 2", "rank 1 of 2"}
    assert "NothingToTrain: no sft rows in the store" in by_rank["rank 0 of 2"]
    assert "RankError: no sft rows in the store" in by_rank["rank 1 of 2"]
    assert "raised on rank 0" in by_rank["rank 1 of 2"]
    assert not (tmp_path / "model").exists()
    with open_store(db) as store:
        assert list_specialist_models(store) == []


def test_a_wait_on_rank_0_times_out_with_the_timeout_in_the_message(tmp_path: Path) -> None:
    """A rank waiting for rank 0's rows gives up after TEACH_DIST_TIMEOUT and says so."""
    script = tmp_path / "slow.py"
    script.write_text(
        "import time\n"
        "from pytest_teach.train import share_from_main\n"
        "share_from_main(lambda: time.sleep(30) or 'rows', 'export of the store')\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script)],
        cwd=tmp_path,
        env=_env(TEACH_DIST_TIMEOUT="3"),
        capture_output=True,
        text=True,
        timeout=LAUNCH_TIMEOUT,
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert (
        "LaunchError: rank 1 of 2: no export of the store from rank 0 after 3s "
        "(timeout 3s, TEACH_DIST_TIMEOUT)" in result.stderr
    ), result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
            "accelerate launch was asked for several processes but started one",
        ),
        ({"RANK": "1"}, "RANK is set but WORLD_SIZE is not"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 does not fit WORLD_SIZE=2"),
        ({"RANK": "0", "WORLD_SIZE": "2"}, "WORLD_SIZE=2 but MASTER_ADDR is not set"),
        ({"TEACH_DIST_TIMEOUT": "soon"}, "TEACH_DIST_TIMEOUT='soon': expected a number"),
    ],
)
def test_misconfigured_launch_is_one_line(
    env: dict[str, str],
    message: str,
    recorded: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A launch that would train on the wrong number of processes is refused before training."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "ACCELERATE_USE_CPU"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    db = _store(recorded, tmp_path)
    result = CliRunner().invoke(
        cli, ["train", "sft", "--db", str(db), "-o", str(tmp_path / "m"), "--max-steps", "1"]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("teach train sft: error: ")
    assert message in lines[0]
    assert not (tmp_path / "m").exists()


# -- the trainer service, launching runs on several processes ---------------------------------

CHAT_ROWS = [
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    {"messages": [{"role": "user", "content": "2+2"}, {"role": "assistant", "content": "4"}]},
]


def _dataset(data_dir: Path, name: str = "chat.jsonl") -> str:
    path = data_dir / "datasets" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in CHAT_ROWS), encoding="utf-8")
    return f"datasets/{name}"


def test_trainer_service_launches_each_run_on_two_processes(tmp_path: Path) -> None:
    """`teach trainer serve --processes 2` runs each run under torchrun: the run records it;
    a rank that raises or dies fails the run naming that rank, and the service keeps serving."""
    from pytest_teach.trainer.fixtures import LocalTrainer

    data = tmp_path / "data"
    local = LocalTrainer(
        data, "stub", args=["--processes", "2"], env={"TEACH_TRAINER_FAULTS": "1", **_env()}
    ).start()
    try:
        client = local.client()
        health = client.health()
        assert health["processes"] == 2 and health["launcher"] == "torchrun"
        assert health["worker"] == "ready"
        ref = _dataset(local.data_dir)
        for run_id, params in (
            ("raise", {"crash": "raise"}),
            ("exit", {"crash": "exit"}),
            ("good", {"max_steps": 3}),
        ):
            client.train(job_id="j", dataset_ref=ref, run_id=run_id, params=params)
        raised = client.wait("raise", timeout=LAUNCH_TIMEOUT)
        assert raised["status"] == "failed", raised
        assert raised["error"].startswith(
            "rank 1 of 2 failed: RuntimeError: injected crash at step 1 "
            "(params.crash='raise') (of 2 processes launched by torchrun; log: "
        ), raised["error"]
        assert raised["metrics"]["processes"] == 2 and raised["metrics"]["launcher"] == "torchrun"
        died = client.wait("exit", timeout=LAUNCH_TIMEOUT)
        assert died["status"] == "failed", died
        assert died["error"].startswith("rank 1 exited with status 70 (of 2 processes"), died
        good = client.wait("good", timeout=LAUNCH_TIMEOUT)
        assert good["status"] == "completed", good
        assert good["metrics"]["processes"] == 2 and good["metrics"]["launcher"] == "torchrun"
        assert good["metrics"]["steps"] == 3
        out = Path(good["outputModelRef"])
        assert (out / "unigram.json").is_file()
        assert not list(out.parent.glob("*.rank1"))  # rank 1's own output was thrown away
        for run_id in ("raise", "exit"):
            assert not (data / "runs" / run_id / "model").exists()
    finally:
        local.stop()


def test_trainer_service_sft_run_on_two_processes(tmp_path: Path) -> None:
    """A real TRL run through `teach trainer serve --backend sft --processes 2`: both ranks
    step on their halves of each batch, rank 0 writes the adapter."""
    from pytest_teach.trainer.fixtures import LocalTrainer

    data = tmp_path / "data"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"a {i}"},
            ]
        }
        for i in range(8)
    ]
    (data / "datasets").mkdir(parents=True)
    (data / "datasets" / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    local = LocalTrainer(data, "sft", args=["--processes", "2"], env=_env()).start()
    try:
        client = local.client()
        client.train(
            job_id="j",
            dataset_ref="datasets/chat.jsonl",
            run_id="sft2",
            params={"max_steps": 2, "batch_size": 2},
        )
        final = client.wait("sft2", timeout=LAUNCH_TIMEOUT)
    finally:
        local.stop()
    assert final["status"] == "completed", final
    assert final["metrics"]["processes"] == 2 and final["metrics"]["steps"] == 2
    out = Path(final["outputModelRef"])
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert any(t.abs().sum() > 0 for k, t in adapter.items() if "lora_B" in k)
    logs = _rank_logs(out, 2)
    for step in range(2):
        rank0, rank1 = (set(log["steps"][step]["rows"]) for log in logs)
        assert len(rank0) == len(rank1) == 2 and not rank0 & rank1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--processes", "2", "--launcher", "accelerate", "--accelerate-config", "nope.yaml"],
            "--accelerate-config nope.yaml: no such file",
        ),
        (["--accelerate-config", "cfg.yaml"], "--accelerate-config needs --launcher accelerate"),
    ],
)
def test_trainer_service_refuses_a_bad_launch_in_one_line(
    args: list[str], message: str, tmp_path: Path
) -> None:
    (tmp_path / "cfg.yaml").write_text("distributed_type: MULTI_GPU\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest_teach.trainer", "serve", "--port", "1",
         "--data-dir", str(tmp_path / "data"), *args],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.parametrize(
    ("mode", "url", "message"),
    [
        ("colocate", None, "vllm_mode='colocate' needs vLLM, which is not installed"),
        ("server", "http://127.0.0.1:8000", "vllm_mode='server' needs vLLM"),
        ("paged", None, "vllm_mode must be 'colocate' or 'server', got 'paged'"),
        (None, "http://127.0.0.1:8000", "vllm_server_url needs vllm_mode='server'"),
    ],
)
def test_grpo_vllm_generation_is_refused_in_one_line_without_vllm(
    mode: str | None, url: str | None, message: str, tmp_path: Path
) -> None:
    """vLLM generation (GPU only) is TRL's; without vLLM it is one clear error, before any
    model loads."""
    import importlib.util

    from pytest_teach.train import train_grpo

    if importlib.util.find_spec("vllm") is not None and mode in ("colocate", "server"):
        pytest.skip("vLLM is installed here")
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "plan", "scenario": "x"}) + "\n")
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        train_grpo(data, tmp_path / "no-base", tmp_path / "out", vllm_mode=mode,
                   vllm_server_url=url)  # fmt: skip
    assert not (tmp_path / "out").exists()
