"""Acceptance: `teach serve-model` serves a tiny local model over HTTP, the `openai:` provider
talks to it through the official client (with retries, timeouts and accounting), and the
tool_selection scenarios run end to end against it with `--model openai:tiny`.

A small fault-injecting reverse proxy sits in front of the server to produce 5xx, 429 and
timeouts on demand.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

# Heavy modules are imported here, at module level: pytester restores sys.modules after each
# test, so a first import inside a pytester test would break later tests in this process.
openai = pytest.importorskip("openai")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from pytest_teach import open_store  # noqa: E402
from pytest_teach.agents import ModelCallError, OpenAIChat  # noqa: E402
from pytest_teach.train.tiny import build_tiny_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios" / "tool_selection"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the weather in Paris?"},
]
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, timeout: float = 5.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post_json(url: str, body: bytes | dict, timeout: float = 30.0) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# -- the fault-injecting proxy -----------------------------------------------------------------


class FaultProxy:
    """A reverse proxy on a free 127.0.0.1 port that forwards to ``upstream``, unless told to
    answer ``status`` for the next ``fail_next`` requests (or for all of them with
    ``fail_always``), or to ``sleep`` seconds first (then it answers 504 without forwarding)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.lock = threading.Lock()
        self.reset()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy._handle(self, "GET")

            def do_POST(self) -> None:
                proxy._handle(self, "POST")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *args: None  # clients that gave up (timeouts)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        with self.lock:
            self.fail_next = 0
            self.fail_always = False
            self.status = 500
            self.sleep = 0.0
            self.requests = 0
            self.faults = 0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self.lock:
            self.requests += 1
            fault = self.fail_always or self.fail_next > 0
            if self.fail_next > 0:
                self.fail_next -= 1
            self.faults += fault
            status, sleep = self.status, self.sleep
        if sleep:
            time.sleep(sleep)
            fault, status = True, 504
        if fault:
            payload = {"error": {"message": f"injected {status}", "type": "server_error"}}
            self._reply(handler, status, json.dumps(payload).encode())
            return
        request = urllib.request.Request(
            self.upstream + handler.path,
            data=body if method == "POST" else None,
            method=method,
            headers={"Content-Type": handler.headers.get("Content-Type", "application/json")},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                self._reply(handler, response.status, response.read())
        except urllib.error.HTTPError as exc:
            self._reply(handler, exc.code, exc.read())

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, data: bytes) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass  # the client timed out and left


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny random model per module, in a directory named ``tiny`` (its served name)."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


def serve_command(model_dir: Path, port: int, *extra: str) -> list[str]:
    """`teach serve-model` on ``model_dir`` as a command line."""
    args = ["serve-model", str(model_dir), "--host", "127.0.0.1", "--port", str(port), *extra]
    return [sys.executable, "-m", "pytest_teach.cli", *args]


@pytest.fixture(scope="module")
def server(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `teach serve-model` process on a free port; yields its /v1 base URL."""
    yield from start_server(tiny_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def short_server(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`teach serve-model --max-tokens 2`: every reply is short, so many requests run fast."""
    yield from start_server(tiny_dir, tmp_path_factory, "--max-tokens", "2")


def start_server(
    tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory, *extra: str
) -> Iterator[str]:
    """Start `teach serve-model` on a free port, yield its /v1 base URL once /health answers,
    and stop it."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "serve.log"
    env = {**os.environ, **OFFLINE}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            serve_command(tiny_dir, port, *extra), stdout=log, stderr=subprocess.STDOUT, env=env
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # torch + transformers import and a tiny model load
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve-model exited with {process.returncode}:\n"
                            f"{log_path.read_text()}")  # fmt: skip
            try:
                status, body = get_json(f"{base}/health", timeout=1)
                if status == 200 and body.get("status") == "ok":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve-model did not answer /health in 60s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield f"{base}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def _proxy(server: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(server.removesuffix("/v1"))  # the origin: paths pass through as-is
    yield proxy
    proxy.close()


@pytest.fixture
def proxy(_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> FaultProxy:
    """The fault proxy, reset, with fast retries for this test."""
    _proxy.reset()
    monkeypatch.setenv("TEACH_OPENAI_BACKOFF", "0.01")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("TEACH_OPENAI_TIMEOUT", raising=False)
    monkeypatch.delenv("TEACH_OPENAI_MAX_RETRIES", raising=False)
    return _proxy


# -- the server and the openai: provider -------------------------------------------------------


def test_openai_provider_against_served_model(server: str, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = OpenAIChat("tiny", base_url=server)
    reply = model.complete(MESSAGES, max_tokens=8)
    assert isinstance(reply.text, str) and reply.text
    assert reply.prompt_tokens > 0 and 0 < reply.completion_tokens <= 8
    assert reply.cost_usd == 0.0  # a local model has no price
    assert reply.latency_ms > 0 and not reply.cached and model.last_attempts == 1

    # the official client sees a standard API
    client = openai.OpenAI(base_url=server, api_key="local", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["tiny"]
    response = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_completion_tokens=3
    )
    assert response.object == "chat.completion"
    assert response.choices[0].finish_reason in ("stop", "length")
    assert response.usage.total_tokens == (
        response.usage.prompt_tokens + response.usage.completion_tokens
    )
    assert response.usage.completion_tokens <= 3


def test_server_rejects_bad_requests(server: str) -> None:
    url = f"{server}/chat/completions"
    status, body = post_json(url, {"model": "gpt-9", "messages": MESSAGES})
    assert status == 404 and body["error"]["code"] == "model_not_found"
    assert "gpt-9" in body["error"]["message"]
    status, body = post_json(url, {"model": "tiny", "messages": MESSAGES, "stream": True})
    assert status == 400 and "stream" in body["error"]["message"]
    status, body = post_json(url, b'{"model": "tiny", "messages": [')
    assert status == 400 and "malformed JSON" in body["error"]["message"]
    status, body = get_json(f"{server}/no-such-endpoint")
    assert status == 404 and set(body["error"]) == {"message", "type", "param", "code"}
    status, body = post_json(url, {"model": "tiny", "messages": [], "max_tokens": 0})
    assert status in (400, 422) and "messages" in body["error"]["message"]
    assert body["error"]["type"] == "invalid_request_error"

    with pytest.raises(ModelCallError) as info:  # the provider maps a 404 to bad_request
        OpenAIChat("gpt-9", base_url=server, max_retries=3).complete(MESSAGES)
    assert info.value.kind == "bad_request" and "HTTP 404" in str(info.value)


def test_server_error_is_retried(proxy: FaultProxy) -> None:
    proxy.fail_next = 1
    model = OpenAIChat("tiny", base_url=proxy.url)
    reply = model.complete(MESSAGES, max_tokens=4)
    assert reply.text and reply.completion_tokens > 0
    assert model.last_attempts == 2 and proxy.faults == 1 and proxy.requests == 2


def test_persistent_server_error(proxy: FaultProxy) -> None:
    proxy.fail_always = True
    model = OpenAIChat("tiny", base_url=proxy.url)
    with pytest.raises(ModelCallError) as info:
        model.complete(MESSAGES, max_tokens=4)
    assert info.value.kind == "server_error"
    assert "HTTP 500" in str(info.value) and "after 4 attempts" in str(info.value)
    assert model.last_attempts == 4 and proxy.requests == 4  # 1 try + 3 retries (default)


def test_rate_limit_is_retried_then_reported(proxy: FaultProxy, monkeypatch) -> None:
    proxy.fail_next, proxy.status = 2, 429
    monkeypatch.setenv("TEACH_OPENAI_MAX_RETRIES", "1")
    model = OpenAIChat("tiny", base_url=proxy.url)
    with pytest.raises(ModelCallError) as info:
        model.complete(MESSAGES, max_tokens=4)
    assert info.value.kind == "rate_limited" and proxy.requests == 2
    assert model.complete(MESSAGES, max_tokens=4).text  # the limit is over


def test_timeout(proxy: FaultProxy, monkeypatch) -> None:
    proxy.sleep = 3.0
    monkeypatch.setenv("TEACH_OPENAI_TIMEOUT", "1")
    model = OpenAIChat("tiny", base_url=proxy.url)
    start = time.monotonic()
    with pytest.raises(ModelCallError) as info:
        model.complete(MESSAGES, max_tokens=4)
    elapsed = time.monotonic() - start
    assert info.value.kind == "timeout" and "within 1s" in str(info.value)
    assert model.last_attempts == 2  # a timeout is retried once, not max_retries times
    assert elapsed < 4.0


def test_connection_refused(monkeypatch) -> None:
    monkeypatch.setenv("TEACH_OPENAI_BACKOFF", "0.01")
    model = OpenAIChat("tiny", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=2)
    with pytest.raises(ModelCallError) as info:
        model.complete(MESSAGES)
    assert info.value.kind == "connection" and model.last_attempts == 3


def test_serve_model_cli_errors(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pytest_teach.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["serve-model", str(tmp_path / "missing")])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0], result.output
    assert lines[0].startswith("teach serve-model: error: ")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    result = runner.invoke(cli, ["serve-model", str(tmp_path / "broken")])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot load model" in lines[0], result.output
    assert runner.invoke(cli, ["serve-model", "--help"]).exit_code == 0


# -- scenarios end to end ----------------------------------------------------------------------


def run_scenarios(pytester: pytest.Pytester, db: Path, keyword: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        str(SCENARIOS), "-k", keyword, "--collect-training-data", "--teach-db", str(db),
        "--model", "openai:tiny", "-p", "no:cacheprovider", "-q",
    )  # fmt: skip


def test_tool_selection_against_served_model(
    pytester: pytest.Pytester, proxy: FaultProxy, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", proxy.url)
    db = pytester.path / "experience.db"
    result = run_scenarios(pytester, db, "weather-001 or weather-002")
    result.assert_outcomes(failed=2)  # the random tiny model's replies don't parse: agent fails
    episodes = list(open_store(db).episodes())
    assert len(episodes) == 2
    for episode in episodes:
        assert episode.model == "openai:tiny"
        assert episode.outcome == "intervention" and episode.label == 1
        assert episode.metrics["prompt_tokens"] > 0 and episode.metrics["completion_tokens"] > 0
        assert episode.metrics["cost_usd"] == 0.0 and episode.metrics["latency_ms"] > 0
        (step,) = episode.steps
        assert step.error["type"] == "unparseable_output"
        assert step.action == {"tools": []}
        assert step.messages[-1]["role"] == "assistant"
        assert step.messages[-1]["content"][:500] == step.error["output"]
    assert proxy.requests == 2


def test_tool_selection_server_errors_are_infrastructure(
    pytester: pytest.Pytester, proxy: FaultProxy, monkeypatch
) -> None:
    proxy.fail_always = True
    monkeypatch.setenv("OPENAI_BASE_URL", proxy.url)
    monkeypatch.setenv("TEACH_OPENAI_MAX_RETRIES", "1")
    db = pytester.path / "experience.db"
    result = run_scenarios(pytester, db, "weather-001 or weather-002")
    result.assert_outcomes(failed=2)
    episodes = list(open_store(db).episodes())
    assert [e.outcome for e in episodes] == ["error", "error"]
    for episode in episodes:
        assert episode.label is None
        (step,) = episode.steps
        assert step.error["type"] == "model_server_error" and "HTTP 500" in step.error["message"]
    assert proxy.requests == 4  # two scenarios, one retry each


def test_tool_selection_timeout_is_infrastructure(
    pytester: pytest.Pytester, proxy: FaultProxy, monkeypatch
) -> None:
    proxy.sleep = 3.0
    monkeypatch.setenv("OPENAI_BASE_URL", proxy.url)
    monkeypatch.setenv("TEACH_OPENAI_TIMEOUT", "1")
    db = pytester.path / "experience.db"
    result = run_scenarios(pytester, db, "weather-001")
    result.assert_outcomes(failed=1)
    (episode,) = open_store(db).episodes()
    assert episode.outcome == "error" and episode.label is None
    assert episode.steps[0].error["type"] == "model_timeout"


def test_teach_cache_records_then_replays_without_a_server(
    pytester: pytest.Pytester, proxy: FaultProxy, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", proxy.url)
    cache = pytester.path / "calls"
    first = pytester.path / "first.db"
    pytester.runpytest_subprocess(
        str(SCENARIOS), "-k", "weather-001 or weather-002", "--collect-training-data",
        "--teach-db", str(first), "--model", "openai:tiny", "--teach-cache", "record",
        "-o", f"teach_cache_dir={cache}", "-p", "no:cacheprovider", "-q",
    ).assert_outcomes(failed=2)  # fmt: skip
    assert len(list(cache.rglob("*.json"))) == 2, "one cached call per scenario"
    assert proxy.requests == 2
    # replay: the server is unreachable, and the answers come from the cache, identical
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    second = pytester.path / "second.db"
    result = pytester.runpytest_subprocess(
        str(SCENARIOS), "-k", "weather-001 or weather-002", "--collect-training-data",
        "--teach-db", str(second), "--model", "openai:tiny", "--teach-cache", "replay",
        "-o", f"teach_cache_dir={cache}", "-p", "no:cacheprovider", "-q",
    )  # fmt: skip
    result.assert_outcomes(failed=2)
    before = {e.scenario: e.steps[0].messages[-1] for e in open_store(first).episodes()}
    after = {e.scenario: e.steps[0].messages[-1] for e in open_store(second).episodes()}
    assert before == after and all(
        e.outcome == "intervention" for e in open_store(second).episodes()
    )
    assert proxy.requests == 2, "replay made no model call"
    # a miss in replay is an infrastructure error naming the key
    third = pytester.path / "third.db"
    pytester.runpytest_subprocess(
        str(SCENARIOS), "-k", "weather-003", "--collect-training-data", "--teach-db", str(third),
        "--model", "openai:tiny", "--teach-cache", "replay", "-o", f"teach_cache_dir={cache}",
        "-p", "no:cacheprovider", "-q",
    )  # fmt: skip
    (missed,) = open_store(third).episodes()
    assert missed.outcome == "error" and missed.steps[0].error["type"] == "model_cache_miss"


def test_hf_model_records_action_probabilities(pytester: pytest.Pytester, tiny_dir: Path) -> None:
    db = pytester.path / "hf.db"
    result = pytester.runpytest_subprocess(
        str(SCENARIOS), "-k", "weather-001", "--collect-training-data", "--teach-db", str(db),
        "--model", f"hf:{tiny_dir}", "-p", "no:cacheprovider", "-q",
    )  # fmt: skip
    result.assert_outcomes(failed=1)  # the random tiny model doesn't produce a valid plan
    (episode,) = open_store(db).episodes()
    (step,) = episode.steps
    assert episode.model == f"hf:{tiny_dir}" and episode.outcome == "intervention"
    assert set(step.probs) == set(step.valid_actions)
    assert abs(sum(step.probs.values()) - 1.0) < 1e-6
    assert 0.0 < step.entropy <= math.log(len(step.probs)) + 1e-9


# -- input no client may turn into a 5xx -------------------------------------------------------


def assert_openai_400(status: int, body: dict, param: str | None, *words: str) -> None:
    assert status == 400, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    for word in words:
        assert word in error["message"], error


def test_lone_surrogates_and_non_utf8_are_400(server: str) -> None:
    url = f"{server}/chat/completions"
    bad = "\ud800"  # json.dumps writes it as the escape \ud800
    cases = [
        ({"model": "tiny", "messages": [{"role": "user", "content": f"hi {bad}"}]},
         "messages.0.content"),
        ({"model": f"tiny{bad}", "messages": MESSAGES}, "model"),
        ({"model": "tiny", "messages": [{"role": bad, "content": "hi"}]}, "messages.0.role"),
        ({"model": "tiny", "messages": [{"role": "user",
          "content": [{"type": "text", "text": bad}]}]}, "messages.0.content.0.text"),
    ]  # fmt: skip
    for body, param in cases:
        status, answer = post_json(url, body)
        assert_openai_400(status, answer, param)
        message = answer["error"]["message"]  # ours, or pydantic's own refusal of the string
        assert "lone surrogate" in message or "unicode string" in message, message
    # raw bytes: invalid UTF-8, and a surrogate encoded as UTF-8 bytes (not valid UTF-8 either)
    for raw in (b'{"model": "tiny", "messages": [{"role": "user", "content": "\xff"}]}',
                b'{"model": "tiny\xed\xa0\x80", "messages": []}'):  # fmt: skip
        status, answer = post_json(url, raw)
        assert_openai_400(status, answer, None, "not UTF-8")
        assert answer["error"]["code"] == "not_utf8"
    assert get_json(f"{server.removesuffix('/v1')}/health")[0] == 200


def test_prompt_past_the_context_is_400_and_max_tokens_is_bounded(server: str) -> None:
    url = f"{server}/chat/completions"
    status, health = get_json(f"{server.removesuffix('/v1')}/health")
    context = health["contextLength"]
    assert status == 200 and context == 2048  # the tiny model's max_position_embeddings
    # a 240 KB prompt: refused before generating
    long = [{"role": "user", "content": "weather in Paris? " * 13_500}]
    status, answer = post_json(url, {"model": "tiny", "messages": long, "max_tokens": 1})
    assert_openai_400(status, answer, "messages", "maximum context length is 2048 tokens")
    assert answer["error"]["code"] == "context_length_exceeded"

    def prompt_tokens(repeat: int) -> int:
        body = {"model": "tiny", "max_tokens": 1,
                "messages": [{"role": "user", "content": "weather in Paris? " * repeat}]}  # fmt: skip
        status, reply = post_json(url, body, timeout=120)
        assert status == 200, reply
        return reply["usage"]["prompt_tokens"]

    # a prompt a few tokens short of the context: the reply gets only the room that is left
    base, per = prompt_tokens(0), (prompt_tokens(10) - prompt_tokens(0)) / 10
    repeat = int((context - 6 - base) / per)
    for _ in range(5):  # the tokenizer merges across repeats: converge on the target
        used = prompt_tokens(repeat)
        if context - 8 <= used <= context - 2:
            break
        repeat += int((context - 5 - used) / per) or (1 if used < context - 8 else -1)
    assert context - 8 <= used <= context - 2, used
    body = {"model": "tiny", "max_tokens": 100,
            "messages": [{"role": "user", "content": "weather in Paris? " * repeat}]}  # fmt: skip
    status, reply = post_json(url, body, timeout=120)
    assert status == 200, reply
    assert reply["usage"]["prompt_tokens"] == used
    assert reply["usage"]["completion_tokens"] <= context - used < 100
    if reply["usage"]["completion_tokens"] == context - used:
        assert reply["choices"][0]["finish_reason"] == "length"


def test_generation_stops_when_the_client_disconnects(server: str) -> None:
    """A client asks for 2,000 tokens (about a minute on CPU) and leaves: the server notices,
    stops generating, and the next request is served."""
    origin = server.removesuffix("/v1")
    before = get_json(f"{origin}/health")[1]["generations"]
    body = json.dumps({"model": "tiny", "messages": MESSAGES, "max_tokens": 2000}).encode()
    port = int(origin.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        time.sleep(1.0)  # generation is under way
    deadline = time.monotonic() + 60
    while True:
        after = get_json(f"{origin}/health")[1]["generations"]
        if after["cancelled"] > before["cancelled"]:
            break
        assert time.monotonic() < deadline, f"the generation was not stopped: {after}"
        time.sleep(0.1)
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["cancelledTokens"] - before["cancelledTokens"] < 2000
    status, reply = post_json(url := f"{server}/chat/completions",
                              {"model": "tiny", "messages": MESSAGES, "max_tokens": 2})  # fmt: skip
    assert status == 200 and reply["usage"]["completion_tokens"] <= 2, (url, reply)
    assert get_json(f"{origin}/health")[1]["generations"]["completed"] > before["completed"]


# -- schemathesis ------------------------------------------------------------------------------


def test_schemathesis_finds_no_server_errors(short_server: str) -> None:
    """Every operation in /openapi.json, positive and negative data, 60 examples each: no 5xx,
    and every error in OpenAI's shape. Positive bodies name the served model, so they reach
    generation; the server runs with --max-tokens 2, so each generation is short."""
    schemathesis = pytest.importorskip("schemathesis")
    from collections import Counter

    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error

    origin = short_server.removesuffix("/v1")
    schema = schemathesis.openapi.from_url(f"{origin}/openapi.json")
    seen: Counter[tuple[str, int]] = Counter()
    skipped: list[str] = []
    started = time.monotonic()

    def run(operation: Any, mode: Any) -> None:
        @settings(
            max_examples=60,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            if mode == GenerationMode.POSITIVE and isinstance(case.body, dict):
                case.body["model"] = "tiny"  # the served name: reach generation, not only 404
            response = case.call(base_url=origin, timeout=60)
            seen[(operation.label, response.status_code)] += 1
            assert response.status_code < 500, (case.as_curl_command(), response.text)
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code >= 400:
                error = response.json()["error"]
                assert set(error) == {"message", "type", "param", "code"}, error

        try:
            check()
        except Unsatisfiable:
            if mode != GenerationMode.NEGATIVE:
                raise
            skipped.append(operation.label)  # nothing to get wrong (GET /health)

    for result in schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run(result.ok(), mode)
    total = sum(seen.values())
    print(
        f"schemathesis: {total} requests in {time.monotonic() - started:.1f}s: "
        f"{dict(sorted(seen.items()))}; no negative data for {skipped}"
    )
    assert not [k for k in seen if k[1] >= 500]
    assert total >= 100
    posted = {s for (label, s) in seen if label == "POST /v1/chat/completions"}
    assert {200, 400} <= posted, seen
    assert get_json(f"{origin}/health")[0] == 200
