"""The HTTP services refuse before they read: `teach trainer serve` and `teach serve-model`, as real
processes on free 127.0.0.1 ports, probed with raw sockets.

- credentials are checked on the headers: a POST without the token is 401 with its body unsent;
- a body over the limit is 413: at once for a declared Content-Length, and as soon as a chunked
  body passes the limit, before the client has sent the rest;
- a head or body that drips in is answered 408 and the connection closed, and a connection that
  sends nothing is closed too;
- error bodies name fields, never server paths, and answer a path outside the data dir the same
  whether it exists or not;
- both servers bind before they announce: a busy port is one line naming it, exit status 1.

Every loop is bounded, and every server is stopped.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_teach.serve import lone_surrogate, parse_size
from pytest_teach.trainer.fixtures import OFFLINE_ENV, LocalTrainer

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

TOKEN = "hardening-token-5678"
API_KEY = "serve-key-1234"
FAST = ["--header-timeout", "1", "--body-timeout", "1"]
ROW = {
    "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": '{"tools": ["weather"]}'},
    ]
}


# -- raw HTTP ----------------------------------------------------------------------------------


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_reply(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, closed): reads one response, then whether the server closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed without an answer: {data!r}"
        data += chunk
    top, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed mid-answer"
        body += chunk
    try:
        closed = sock.recv(1) == b""
    except TimeoutError:
        closed = False
    except ConnectionResetError:
        closed = True
    return int(status_line.split()[1]), headers, body, closed


def closes_while_dripping(sock: socket.socket, drip: bytes, pause: float = 0.1) -> tuple[bool, int]:
    """Send ``drip`` a byte every ``pause`` seconds until the server answers or closes;
    (whether it did before the drip ended, bytes sent)."""
    for sent in range(len(drip)):
        readable, _, _ = select.select([sock], [], [], pause)
        if readable:
            return True, sent
        try:
            sock.sendall(drip[sent : sent + 1])
        except OSError:
            return True, sent
    readable, _, _ = select.select([sock], [], [], pause)
    return bool(readable), len(drip)


def chunked(size: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    """A chunked body of ``size`` bytes of JSON-ish text, without the closing chunk."""
    sent = 0
    while sent < size:
        n = min(piece, size - sent)
        yield f"{n:x}\r\n".encode() + b"a" * n + b"\r\n"
        sent += n


def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post(url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# -- servers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTrainer]:
    """A stub trainer with a token, the default 1 MB body limit and 1 s head/body deadlines."""
    root = tmp_path_factory.mktemp("hardening")
    local = LocalTrainer(root / "data", "stub", token=TOKEN, args=FAST).start()
    try:
        yield local
    finally:
        local.stop()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Process:
    """A server subprocess on a free port, stopped on exit."""

    def __init__(self, command: list[str], port: int, log: Path, env: dict[str, str]) -> None:
        self.port = port
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait_health(self, headers: dict[str, str] | None = None, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}:\n{self.text()}")
            try:
                if get_json(f"http://127.0.0.1:{self.port}/health", headers)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the server did not answer /health in {timeout:g}s:\n{self.text()}")
            time.sleep(0.1)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from pytest_teach.train.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


def serve_model_command(model_dir: Path, port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest_teach.cli", "serve-model", str(model_dir),
            "--host", "127.0.0.1", "--port", str(port), *args]  # fmt: skip


@pytest.fixture(scope="module")
def model_server(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """`teach serve-model` with an API key, a 100 KB body limit and 1 s deadlines."""
    port = free_port()
    env = {**os.environ, **OFFLINE_ENV, "TEACH_SERVE_API_KEY": API_KEY}
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    server = Process(
        serve_model_command(tiny_dir, port, "--max-body", "100KB", "--max-tokens", "4", *FAST),
        port,
        log,
        env,
    )
    try:
        server.wait_health()
        yield server
    finally:
        server.stop()


KEY = {"Authorization": f"Bearer {API_KEY}"}
COMPLETIONS = "/v1/chat/completions"


# -- the library pieces ------------------------------------------------------------------------


def test_sizes_and_surrogates() -> None:
    assert parse_size("1MB") == 1_000_000 and parse_size("4MiB") == 4 * 1024 * 1024
    assert parse_size("512kb") == 512_000 and parse_size("100") == 100 and parse_size(7) == 7
    for bad in ("", "one MB", "0", "-1", "1 TB"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert lone_surrogate("ok \U0001f600") is None and lone_surrogate("ab\ud800") == 2


def test_base_model_outside_the_data_dir_reveals_nothing(tmp_path: Path) -> None:
    from pytest_teach.trainer._backends import check_base_model

    data = tmp_path / "data"
    (data / "models" / "m").mkdir(parents=True)
    (data / "models" / "m" / "config.json").write_text("{}")
    (data / "models" / "empty").mkdir()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "m").mkdir(parents=True)
    (elsewhere / "m" / "config.json").write_text("{}")
    check_base_model("models/m", data)  # relative to the data dir
    check_base_model(str(data / "models" / "m"), data)
    check_base_model("Qwen/Qwen2-0.5B", data)  # a hub id
    check_base_model(str(elsewhere / "m"), data, [elsewhere])  # an allowed models dir
    with pytest.raises(ValueError, match="not a transformers model directory"):
        check_base_model("models/empty", data)
    messages = []
    for outside in (elsewhere / "m", tmp_path / "nope", Path("/etc"), Path("/no/such")):
        with pytest.raises(ValueError) as info:
            check_base_model(str(outside), data)
        messages.append(str(info.value).replace(repr(str(outside)), "X"))
    assert len(set(messages)) == 1, messages  # exists or not: the same answer
    assert "outside the trainer's data dir" in messages[0] and str(data) not in messages[0]


# -- the trainer -------------------------------------------------------------------------------


def test_trainer_refuses_a_post_without_token_before_its_body(trainer: LocalTrainer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        with connect(trainer.port) as sock:  # 50 MB announced, not one byte of it sent
            sock.sendall(head("POST", "/train", {"Content-Length": "50000000", **headers}))
            status, answer_headers, body, closed = read_reply(sock)
        assert status == 401 and closed, (headers, body)
        assert answer_headers["www-authenticate"] == "Bearer"
        assert json.loads(body)["code"] == "unauthorized"
    # malformed JSON without a token: unauthorized, not a parse error
    status, answer = post(f"{trainer.url}/train", b'{"jobId": "j",', {})
    assert status == 401 and answer["code"] == "unauthorized", answer
    status, answer = post(f"{trainer.url}/train", b'{"jobId": "j",', AUTH)
    assert status == 422 and answer["code"] == "malformed_json", answer


def test_trainer_refuses_a_declared_oversize_body_unread(trainer: LocalTrainer) -> None:
    with connect(trainer.port) as sock:
        sock.sendall(head("POST", "/train", {**AUTH, "Content-Length": "50000000"}))
        status, _, body, closed = read_reply(sock)
    answer = json.loads(body)
    assert status == 413 and closed and answer["code"] == "too_large"
    assert "50000000" in answer["error"] and "1000000" in answer["error"]  # the 1 MB default
    # a body under the limit still goes through
    status, answer = post(f"{trainer.url}/train", {"jobId": "j", "runId": "r"}, AUTH)
    assert status == 422 and answer["field"] == "datasetRef"


def test_trainer_refuses_a_chunked_body_as_it_passes_the_limit(trainer: LocalTrainer) -> None:
    """1.1 MB of a chunked body, no closing chunk: the server counted past 1 MB and answered,
    before the body ended."""
    with connect(trainer.port) as sock:
        sock.sendall(head("POST", "/train", {**AUTH, "Transfer-Encoding": "chunked"}))
        for piece in chunked(1_100_000):
            sock.sendall(piece)
        status, _, body, closed = read_reply(sock)
    assert status == 413 and closed and json.loads(body)["code"] == "too_large"


def test_trainer_closes_a_body_that_drips(trainer: LocalTrainer) -> None:
    """200 bytes announced, one sent every 0.1 s (20 s in all): answered 408 and closed after
    the 1 s body deadline, long before the drip ends."""
    with connect(trainer.port) as sock:
        sock.sendall(head("POST", "/train", {**AUTH, "Content-Length": "200"}) + b"{")
        answered, sent = closes_while_dripping(sock, b" " * 199)
        assert answered and sent < 199
        status, _, body, closed = read_reply(sock)
    assert status == 408 and closed and json.loads(body)["code"] == "body_timeout"


def test_trainer_closes_heads_that_drip_and_connections_that_say_nothing(
    trainer: LocalTrainer,
) -> None:
    with connect(trainer.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answered, sent = closes_while_dripping(sock, b"X-Slow: " + b"a" * 192)
        assert answered and sent < 200
        status, _, body, closed = read_reply(sock)
        assert status == 408 and closed, body
    # twenty at once, half silent and half mid-head: every one is closed
    socks = [connect(trainer.port) for _ in range(20)]
    try:
        for sock in socks[:10]:
            sock.sendall(b"POST /train HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Partial: ")
        open_ = set(socks)
        deadline = time.monotonic() + 20
        while open_ and time.monotonic() < deadline:
            readable, _, _ = select.select(list(open_), [], [], 0.5)
            for sock in readable:
                data = b""
                try:
                    while chunk := sock.recv(65536):
                        data += chunk
                except ConnectionResetError:
                    pass
                assert data == b"" or data.startswith(b"HTTP/1.1 408"), data
                open_.discard(sock)
        assert not open_, f"{len(open_)} of 20 slow connections still open after 20 s"
    finally:
        for sock in socks:
            sock.close()
    assert get_json(f"{trainer.url}/health")[0] == 200  # and the service goes on


def test_trainer_error_bodies_name_fields_not_server_paths(
    trainer: LocalTrainer, tmp_path: Path
) -> None:
    data = trainer.data_dir.resolve()
    (data / "datasets").mkdir(parents=True, exist_ok=True)
    (data / "datasets" / "good.jsonl").write_text(json.dumps(ROW) + "\n")
    secret = tmp_path / "secret.jsonl"
    secret.write_text(json.dumps(ROW) + "\n")
    answers: dict[str, dict[str, Any]] = {}
    cases = {
        "outside, exists": {"datasetRef": str(secret)},
        "outside, missing": {"datasetRef": str(tmp_path / "missing.jsonl")},
        "inside, missing": {"datasetRef": "datasets/missing.jsonl"},
        "base outside, exists": {"baseModel": str(tmp_path)},
        "base outside, missing": {"baseModel": str(tmp_path / "nope")},
        "base /etc": {"baseModel": "/etc"},
        "base inside, missing": {"baseModel": "./models/none"},
    }
    for n, (name, fields) in enumerate(cases.items()):
        body = {"jobId": "j", "datasetRef": "datasets/good.jsonl", "runId": f"paths-{n}", **fields}
        status, answer = post(f"{trainer.url}/train", body, AUTH)
        assert status == 400, (name, answer)
        (field,) = fields
        assert answer["field"] == field, (name, answer)
        assert str(data) not in answer["error"] and str(tmp_path) not in answer["error"].replace(
            repr(fields[field]), ""
        ), (name, answer["error"])
        answers[name] = answer
    same = [answers["outside, exists"], answers["outside, missing"]]
    assert {a["code"] for a in same} == {"dataset_outside_data_dir"}
    assert same[0]["error"].replace(str(secret), "X") == same[1]["error"].replace(
        str(tmp_path / "missing.jsonl"), "X"
    )
    bases = [answers[k] for k in ("base outside, exists", "base outside, missing", "base /etc")]
    assert len({a["error"].split("'", 2)[2] for a in bases}) == 1, bases
    assert "no such model directory" in answers["base inside, missing"]["error"]
    # a lone surrogate is a 422 naming the field, not a 500
    body = {"jobId": "j\ud800", "datasetRef": "datasets/good.jsonl", "runId": "sur-1"}
    status, answer = post(f"{trainer.url}/train", body, AUTH)
    assert status == 422 and answer["field"] == "jobId", answer
    assert "unicode" in answer["error"] or "surrogate" in answer["error"], answer
    # a body that isn't UTF-8
    status, answer = post(f"{trainer.url}/train", b'{"jobId": "\xff"}', AUTH)
    assert status == 400 and answer["code"] == "not_utf8", answer


# -- the model server --------------------------------------------------------------------------


def test_model_server_refuses_before_reading(model_server: Process) -> None:
    port = model_server.port
    with connect(port) as sock:  # no key, 50 MB announced: 401 in OpenAI's shape
        sock.sendall(head("POST", COMPLETIONS, {"Content-Length": "50000000"}))
        status, _, body, closed = read_reply(sock)
    error = json.loads(body)["error"]
    assert status == 401 and closed and error["code"] == "invalid_api_key"
    assert set(error) == {"message", "type", "param", "code"}
    status, answer = post(f"http://127.0.0.1:{port}{COMPLETIONS}", b"{not json", {})
    assert status == 401, answer
    with connect(port) as sock:  # the key, 50 MB announced: 413 unread
        sock.sendall(head("POST", COMPLETIONS, {**KEY, "Content-Length": "50000000"}))
        status, _, body, closed = read_reply(sock)
    assert status == 413 and closed and json.loads(body)["error"]["code"] == "too_large"
    with connect(port) as sock:  # chunked, past the 100 KB limit, no closing chunk
        sock.sendall(head("POST", COMPLETIONS, {**KEY, "Transfer-Encoding": "chunked"}))
        for piece in chunked(200_000, piece=16 * 1024):
            sock.sendall(piece)
        status, _, body, closed = read_reply(sock)
    assert status == 413 and closed
    with connect(port) as sock:  # a dripping body
        sock.sendall(head("POST", COMPLETIONS, {**KEY, "Content-Length": "100"}) + b"{")
        answered, sent = closes_while_dripping(sock, b" " * 99)
        assert answered and sent < 99
        status, _, body, closed = read_reply(sock)
    assert status == 408 and closed and json.loads(body)["error"]["code"] == "body_timeout"
    with connect(port) as sock:  # a dripping head
        sock.sendall(b"GET /v1/models HTTP/1.1\r\n")
        answered, sent = closes_while_dripping(sock, b"X-Slow: " + b"a" * 92)
        assert answered and sent < 100
    # GET /health is open; everything else needs the key, and works with it
    assert get_json(f"http://127.0.0.1:{port}/health")[0] == 200
    assert get_json(f"http://127.0.0.1:{port}/v1/models")[0] == 401
    status, models = get_json(f"http://127.0.0.1:{port}/v1/models", KEY)
    assert status == 200 and models["data"][0]["id"] == "tiny"
    messages = [{"role": "user", "content": "hi"}]
    status, reply = post(
        f"http://127.0.0.1:{port}{COMPLETIONS}",
        {"model": "tiny", "messages": messages, "max_tokens": 50},
        KEY,
    )
    assert status == 200 and reply["usage"]["completion_tokens"] <= 4  # --max-tokens 4


# -- bind first, then announce -----------------------------------------------------------------


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port this test holds: bound and listening on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def assert_busy_port_refused(result: subprocess.CompletedProcess[str], port: int) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "serving" not in result.stdout, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in lines[0], lines[0]


def test_trainer_busy_port_is_one_line(held_port: int, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest_teach.trainer", "serve", "--backend", "stub",
         "--data-dir", str(tmp_path / "data"), "--port", str(held_port)],
        capture_output=True, text=True, timeout=60, env={**os.environ, **OFFLINE_ENV},
    )  # fmt: skip
    assert_busy_port_refused(result, held_port)


def test_model_server_busy_port_is_one_line(held_port: int, tiny_dir: Path) -> None:
    result = subprocess.run(
        serve_model_command(tiny_dir, held_port),
        capture_output=True, text=True, timeout=120, env={**os.environ, **OFFLINE_ENV},
    )  # fmt: skip
    assert_busy_port_refused(result, held_port)
