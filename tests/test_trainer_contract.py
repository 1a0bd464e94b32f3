"""The trainer service's HTTP contract, against real `teach trainer serve` processes (stub backend).

Every error code (400 traversal/missing dataset, 401 token, 404 unknown run, 409 duplicate,
422 naming the field), a worker that raises or dies mid-run (the run fails, the service keeps
serving), a restart (completed runs stay completed, in-flight runs come back failed, queued runs
still run), the data-dir lock, and schemathesis against /openapi.json finding no 5xx.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_teach.trainer import TrainerClient, TrainerError
from pytest_teach.trainer.fixtures import LocalTrainer

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

TOKEN = "contract-token-1234"
GOOD_ROWS = [
    {
        "messages": [
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": '{"tools": ["weather"]}'},
        ]
    },
    {
        "messages": [
            {"role": "system", "content": "Pick tools."},
            {"role": "user", "content": "2 + 2"},
            {"role": "assistant", "content": '{"tools": ["calculator"]}'},
        ]
    },
]


def request(
    url: str, method: str = "GET", body: Any = None, token: str | None = TOKEN
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, headers) for one call; ``body`` bytes are sent as they are."""
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def write_dataset(data_dir: Path, name: str, rows: list[Any] | str = GOOD_ROWS) -> str:
    path = data_dir / "datasets" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    return f"datasets/{name}"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTrainer]:
    """One stub trainer for the module, with a token and fault injection on."""
    root = tmp_path_factory.mktemp("trainer")
    local = LocalTrainer(
        root / "data", "stub", token=TOKEN, env={"TEACH_TRAINER_FAULTS": "1"}
    ).start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def client(service: LocalTrainer) -> TrainerClient:
    return service.client()


_RUNS = iter(range(1_000_000))


def rid(prefix: str = "run") -> str:
    return f"{prefix}-{os.getpid()}-{next(_RUNS)}"


def test_health_and_openapi(service: LocalTrainer) -> None:
    status, body, _ = request(f"{service.url}/health")
    assert status == 200
    assert body["status"] == "ok" and body["backend"] == "stub" and body["version"]
    assert body["auth"] is True and Path(body["dataDir"]) == service.data_dir.resolve()
    assert body["worker"] in ("starting", "ready", "busy")
    status, spec, _ = request(f"{service.url}/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    assert {"/health", "/train", "/status/{runId}", "/runs"} <= set(spec["paths"])
    responses = spec["paths"]["/train"]["post"]["responses"]
    assert {"202", "400", "401", "409", "422"} <= set(responses)


def test_run_completes_with_output_metrics_and_timestamps(
    service: LocalTrainer, client: TrainerClient
) -> None:
    ref = write_dataset(service.data_dir, "good.jsonl")
    run_id = rid()
    status, body, headers = request(
        f"{service.url}/train",
        "POST",
        {"jobId": "job-1", "datasetRef": ref, "runId": run_id, "params": {"max_steps": 3}},
    )
    assert status == 202, body
    assert body["status"] == "pending" and body["runId"] == run_id and body["jobId"] == "job-1"
    assert headers["location"] == f"/status/{run_id}"
    assert body["params"]["max_steps"] == 3 and body["createdAt"]
    final = client.wait(run_id, timeout=30)
    assert final["status"] == "completed", final
    assert final["error"] is None and final["startedAt"] and final["finishedAt"]
    assert final["metrics"]["steps"] == 3 and final["metrics"]["loss"] > 0
    assert final["metrics"]["seconds"] >= 0 and final["metrics"]["rows"] == 2
    out = Path(final["outputModelRef"])
    assert out.is_dir() and out.is_relative_to(service.data_dir.resolve())
    unigram = json.loads((out / "unigram.json").read_text())
    assert unigram["kind"] == "char-unigram" and unigram["total"] > 0
    assert any(r["runId"] == run_id for r in client.runs())


def test_token_is_required_on_post(service: LocalTrainer) -> None:
    ref = write_dataset(service.data_dir, "good.jsonl")
    body = {"jobId": "j", "datasetRef": ref, "runId": rid("auth")}
    for token in (None, "wrong-token"):
        status, answer, headers = request(f"{service.url}/train", "POST", body, token=token)
        assert status == 401, answer
        assert answer["code"] == "unauthorized" and headers["www-authenticate"] == "Bearer"
        assert ("missing" if token is None else "wrong") in answer["error"]
    # nothing was queued, and a malformed body without a token is refused as unauthorized too
    assert request(f"{service.url}/status/{body['runId']}")[0] == 404
    assert request(f"{service.url}/train", "POST", {"x": 1}, token=None)[0] == 401
    # GETs stay open
    assert request(f"{service.url}/health", token=None)[0] == 200


def test_duplicate_run_id_is_409(service: LocalTrainer) -> None:
    ref = write_dataset(service.data_dir, "good.jsonl")
    body = {"jobId": "j", "datasetRef": ref, "runId": rid("dup")}
    assert request(f"{service.url}/train", "POST", body)[0] == 202
    status, answer, _ = request(f"{service.url}/train", "POST", {**body, "jobId": "other"})
    assert status == 409 and answer["code"] == "duplicate_run" and answer["field"] == "runId"
    assert body["runId"] in answer["error"]


def test_unknown_run_is_404(service: LocalTrainer, client: TrainerClient) -> None:
    status, answer, _ = request(f"{service.url}/status/no-such-run")
    assert status == 404 and answer["code"] == "unknown_run" and "no-such-run" in answer["error"]
    with pytest.raises(TrainerError) as info:
        client.status("../../etc/passwd")
    assert info.value.status == 404


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"datasetRef": "d.jsonl", "runId": "r1"}, "jobId", "Field required"),
        ({"jobId": "j", "runId": "r1"}, "datasetRef", "Field required"),
        ({"jobId": "j", "datasetRef": "d.jsonl"}, "runId", "Field required"),
        ({"jobId": "j", "datasetRef": "d.jsonl", "runId": "a/b"}, "runId", "pattern"),
        ({"jobId": "j", "datasetRef": "", "runId": "r1"}, "datasetRef", "at least 1"),
        ({"jobId": 5, "datasetRef": "d.jsonl", "runId": "r1"}, "jobId", "string"),
        (
            {"jobId": "j", "datasetRef": "d.jsonl", "runId": "r1", "params": {"max_steps": 0}},
            "params.max_steps",
            "greater than or equal to 1",
        ),
        (
            {"jobId": "j", "datasetRef": "d.jsonl", "runId": "r1", "params": {"max_stepz": 2}},
            "params.max_stepz",
            "Extra inputs",
        ),
        ({"jobId": "j", "datasetRef": "d.jsonl", "runId": "r1", "epochs": 3}, "epochs", "Extra"),
        ({"jobId": "j", "datasetRef": "d.jsonl", "runId": "r1", "params": []}, "params", "valid"),
    ],
)
def test_malformed_body_is_422_naming_the_field(
    service: LocalTrainer, body: dict[str, Any], field: str, words: str
) -> None:
    status, answer, _ = request(f"{service.url}/train", "POST", body)
    assert status == 422, answer
    assert answer["code"] == "invalid_request" and answer["field"] == field
    assert f"{field}: " in answer["error"] and words in answer["error"], answer["error"]


def test_malformed_json_is_422(service: LocalTrainer) -> None:
    status, answer, _ = request(f"{service.url}/train", "POST", b'{"jobId": "j",')
    assert status == 422 and answer["code"] == "malformed_json"
    assert "malformed JSON" in answer["error"]


def test_dataset_ref_outside_or_missing_is_400(service: LocalTrainer, tmp_path: Path) -> None:
    outside = tmp_path / "secret.jsonl"
    outside.write_text(json.dumps(GOOD_ROWS[0]) + "\n")
    link = service.data_dir / "datasets" / "link.jsonl"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(outside)
    cases = {
        "../../../../../../etc/passwd": "dataset_outside_data_dir",
        os.path.relpath(outside, service.data_dir): "dataset_outside_data_dir",
        str(outside): "dataset_outside_data_dir",
        "datasets/link.jsonl": "dataset_outside_data_dir",  # a symlink out is resolved first
        "datasets/../../x.jsonl": "dataset_outside_data_dir",
        "datasets/missing.jsonl": "dataset_not_found",
        "datasets": "dataset_not_found",  # a directory
        "datasets/\x00.jsonl": "bad_dataset_ref",
    }
    for ref, code in cases.items():
        body = {"jobId": "j", "datasetRef": ref, "runId": rid("ref")}
        status, answer, _ = request(f"{service.url}/train", "POST", body)
        assert status == 400, (ref, answer)
        assert answer["code"] == code and answer["field"] == "datasetRef", (ref, answer)
        assert request(f"{service.url}/status/{body['runId']}")[0] == 404  # nothing queued
    # an absolute path inside the data dir is fine
    ref = write_dataset(service.data_dir, "abs.jsonl")
    body = {"jobId": "j", "datasetRef": str(service.data_dir / ref), "runId": rid("abs")}
    assert request(f"{service.url}/train", "POST", body)[0] == 202


def test_bad_base_model_is_400(service: LocalTrainer, tmp_path: Path) -> None:
    ref = write_dataset(service.data_dir, "good.jsonl")
    for base in (str(tmp_path / "nope"), str(tmp_path), "not a hub id!"):
        body = {"jobId": "j", "datasetRef": ref, "runId": rid("base"), "baseModel": base}
        status, answer, _ = request(f"{service.url}/train", "POST", body)
        assert status == 400 and answer["field"] == "baseModel", answer


@pytest.mark.parametrize(
    ("crash", "words"),
    [
        ("raise", "RuntimeError: injected crash at step 1"),
        ("exit", "the worker process exited with status 70 during training"),
    ],
)
def test_crash_mid_training_fails_the_run_and_the_service_keeps_serving(
    service: LocalTrainer, client: TrainerClient, crash: str, words: str
) -> None:
    ref = write_dataset(service.data_dir, "good.jsonl")
    crashed = rid(f"crash-{crash}")
    client.train(job_id="j", dataset_ref=ref, run_id=crashed, params={"crash": crash})
    after = rid("after")
    client.train(job_id="j", dataset_ref=ref, run_id=after)  # queued behind it
    final = client.wait(crashed, timeout=60)
    assert final["status"] == "failed" and words in final["error"], final
    assert final["outputModelRef"] is None and final["finishedAt"]
    assert final["metrics"]["steps"] == 1  # it did get a step in before crashing
    assert client.health()["status"] == "ok"
    assert client.wait(after, timeout=60)["status"] == "completed"
    assert not list((service.data_dir / "runs" / crashed).glob(".model.tmp-*"))


def test_malformed_dataset_fails_the_run_naming_the_line(
    service: LocalTrainer, client: TrainerClient
) -> None:
    text = json.dumps(GOOD_ROWS[0]) + "\n" + '{"messages": [{"role": "user"\n'
    ref = write_dataset(service.data_dir, "broken.jsonl", text)
    run_id = rid("broken")
    client.train(job_id="j", dataset_ref=ref, run_id=run_id)
    final = client.wait(run_id, timeout=30)
    assert final["status"] == "failed"
    assert "broken.jsonl line 2: not JSON" in final["error"], final["error"]


def _serve_process(data_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_teach.trainer", "serve", "--backend", "stub",
         "--data-dir", str(data_dir), "--port", str(port)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_restart_keeps_completed_runs_and_fails_the_ones_in_flight(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ref = write_dataset(data, "good.jsonl")
    first = LocalTrainer(data, "stub", log_path=tmp_path / "first.log").start()
    try:
        client = first.client()
        client.train(job_id="j", dataset_ref=ref, run_id="done-1")
        done = client.wait("done-1", timeout=30)
        assert done["status"] == "completed"
        client.train(job_id="j", dataset_ref=ref, run_id="slow-1", params={"delay_s": 60})
        client.train(job_id="j", dataset_ref=ref, run_id="queued-1")
        deadline = time.monotonic() + 30
        while client.status("slow-1")["status"] != "running":
            assert time.monotonic() < deadline, "slow-1 never started"
            time.sleep(0.05)
        # a second service on the same data dir is refused while this one holds it
        refused = _serve_process(data, 1)
        assert refused.returncode != 0
        assert "is in use by another trainer" in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    finally:
        first.kill()  # SIGKILL: no chance to clean up

    second = LocalTrainer(data, "stub", log_path=tmp_path / "second.log").start()
    try:
        client = second.client()
        again = client.status("done-1")
        assert again["status"] == "completed" and again["outputModelRef"] == done["outputModelRef"]
        assert again["metrics"] == done["metrics"] and Path(again["outputModelRef"]).is_dir()
        lost = client.status("slow-1")
        assert lost["status"] == "failed" and lost["finishedAt"]
        assert "stopped while this run was in flight" in lost["error"], lost
        assert client.wait("queued-1", timeout=30)["status"] == "completed"  # the queue survived
        # a clean shutdown (SIGTERM) fails the run in flight with its own reason
        client.train(job_id="j", dataset_ref=ref, run_id="slow-2", params={"delay_s": 60})
        deadline = time.monotonic() + 30
        while client.status("slow-2")["status"] != "running":
            assert time.monotonic() < deadline, "slow-2 never started"
            time.sleep(0.05)
        # uvicorn shuts down cleanly, then re-raises the SIGTERM it caught
        assert second.stop() in (0, -signal.SIGTERM)
    finally:
        second.stop()

    third = LocalTrainer(data, "stub", log_path=tmp_path / "third.log").start()
    try:
        client = third.client()
        stopped = client.status("slow-2")
        assert stopped["status"] == "failed"
        assert "shut down while this run was in flight" in stopped["error"], stopped
        assert client.status("done-1")["status"] == "completed"
        counts = client.health()["runs"]
        assert counts == {"pending": 0, "running": 0, "completed": 2, "failed": 2}
        # fault injection is off on a service started without TEACH_TRAINER_FAULTS
        with pytest.raises(TrainerError) as info:
            client.train(job_id="j", dataset_ref=ref, run_id="c", params={"crash": "exit"})
        assert info.value.status == 422 and info.value.field == "params.crash"
    finally:
        third.stop()


def test_run_timeout_stops_the_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ref = write_dataset(data, "good.jsonl")
    local = LocalTrainer(data, "stub", args=["--run-timeout", "1"]).start()
    try:
        client = local.client()
        client.train(job_id="j", dataset_ref=ref, run_id="slow", params={"delay_s": 30})
        client.train(job_id="j", dataset_ref=ref, run_id="next")
        final = client.wait("slow", timeout=30)
        assert final["status"] == "failed"
        assert "exceeded the service's run timeout of 1s" in final["error"], final
        assert client.wait("next", timeout=30)["status"] == "completed"
    finally:
        local.stop()


def test_worker_dies_with_the_service(tmp_path: Path) -> None:
    """A SIGKILLed service leaves no worker behind."""
    data = tmp_path / "data"
    local = LocalTrainer(data, "stub").start()
    pid = local.process.pid if local.process else 0
    children = _children(pid)
    local.kill()
    deadline = time.monotonic() + 10
    while any(_alive(c) for c in children):
        assert time.monotonic() < deadline, f"worker(s) {children} outlived the service"
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            pytest.skip("no /proc children list on this system")
        if text.split():
            return [int(c) for c in text.split()]
        time.sleep(0.05)
    return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# -- schemathesis -----------------------------------------------------------------------------


def test_schemathesis_finds_no_server_errors(service: LocalTrainer) -> None:
    """Every operation in /openapi.json, positive and negative data, 50 examples each: no 5xx,
    and every response matches the documented status codes and schemas."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    write_dataset(service.data_dir, "good.jsonl")
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    seen: Counter[tuple[str, int]] = Counter()
    started = time.monotonic()

    def run(operation: Any, mode: Any) -> None:
        @settings(
            max_examples=50,
            deadline=2000,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            response = case.call(base_url=service.url, headers=headers)
            seen[(operation.label, response.status_code)] += 1
            assert response.status_code < 500, (case.as_curl_command(), response.text)
            case.validate_response(response, checks=checks, headers=headers)

        try:
            check()
        except Unsatisfiable:
            if mode != GenerationMode.NEGATIVE:
                raise
            skipped.append(operation.label)  # nothing to get wrong (GET /health)

    skipped: list[str] = []
    for result in schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run(result.ok(), mode)
    elapsed = time.monotonic() - started
    total = sum(seen.values())
    print(
        f"schemathesis: {total} requests in {elapsed:.1f}s: {dict(sorted(seen.items()))}; "
        f"no negative data for {skipped}"
    )
    assert not [k for k in seen if k[1] >= 500]
    assert total >= 100 and elapsed < 120
    assert {s for (label, s) in seen if label == "POST /train"} >= {400, 422}
    assert TrainerClient(service.url).health()["status"] == "ok"
