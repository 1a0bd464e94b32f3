"""Chat-model providers: prices, specs, the record/replay cache, HFChat on a tiny local model
(with and without a LoRA adapter), the tool-selection LLM planner, and a light package import."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import pytest

from pytest_teach.agents import (
    PROVIDERS,
    Agent,
    CachedChat,
    ChatModel,
    Completion,
    HFChat,
    ModelCallError,
    ModelSpecError,
    OpenAIChat,
    ReplayChat,
    chat_model,
    check_model_spec,
    model_provider,
    parse_model_spec,
)
from pytest_teach.agents._cache import cache_key
from pytest_teach.agents._prices import PRICES, cost_usd, load_prices, price_for
from pytest_teach.envs import tool_selection as ts
from pytest_teach.errors import InfrastructureError

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is 2 + 2?"},
]
ACTIONS = ["4", "five", "click the button"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("TEACH_PRICES", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


class FakeChat(ChatModel):
    """A scripted chat model for the cache and planner tests (counts its calls)."""

    def __init__(self, reply: str, spec: str = "openai:fake") -> None:
        self.spec = spec
        self.reply = reply
        self.calls = 0

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        valid_actions: Sequence[str] | None = None,
    ) -> Completion:
        self.calls += 1
        probs = (
            None if valid_actions is None else {a: 1 / len(valid_actions) for a in valid_actions}
        )
        return Completion(self.reply, 11, 7, 12.5, 0.001, action_probs=probs)


# -- prices ------------------------------------------------------------------------------------


def test_price_table_and_cost() -> None:
    assert PRICES["gpt-4o-mini"] == {"input": 0.15, "output": 0.60}
    assert cost_usd("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert price_for("gpt-4o-mini-2024-07-18") == price_for("gpt-4o-mini")  # dated snapshot
    assert price_for("gpt-4o-2024-08-06") == (2.5, 10.0)  # longest stem wins, not gpt-4o-mini
    assert cost_usd("tiny", 500, 500) == 0.0  # local / unknown models are free
    assert price_for("my-local-llama") == (0.0, 0.0)


def test_price_override_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"tiny": {"input": 1.0, "output": 3.0}, "gpt-4o": {"input": 9}}))
    monkeypatch.setenv("TEACH_PRICES", str(prices))
    table = load_prices()
    assert cost_usd("tiny", 2_000_000, 1_000_000, table) == pytest.approx(5.0)
    assert table["gpt-4o"] == {"input": 9.0, "output": 0.0}
    assert table["gpt-4o-mini"] == PRICES["gpt-4o-mini"]  # the rest of the table stays


@pytest.mark.parametrize(
    "content, needle",
    [
        ('{"tiny": {"input": 1,', "malformed JSON"),
        ("[1, 2]", "expected an object"),
        ('{"tiny": {"input": "cheap"}}', "'tiny'.input must be a non-negative number"),
        ('{"tiny": {"input": 1, "outptu": 2}}', "unknown keys ['outptu']"),
    ],
)
def test_bad_price_file_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, needle: str
) -> None:
    prices = tmp_path / "my-prices.json"
    prices.write_text(content)
    monkeypatch.setenv("TEACH_PRICES", str(prices))
    with pytest.raises(ValueError, match="my-prices.json") as info:
        load_prices()
    assert needle in str(info.value)
    with pytest.raises(ValueError, match="my-prices.json"):  # surfaces when the provider is built
        chat_model("openai:gpt-4o-mini")


def test_missing_price_file_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEACH_PRICES", str(tmp_path / "nope.json"))
    with pytest.raises(ValueError, match=r"nope\.json.*cannot read"):
        load_prices()


# -- specs and errors --------------------------------------------------------------------------


def test_registry_and_spec_errors(tmp_path: Path) -> None:
    assert list(PROVIDERS) == ["scripted", "openai", "hf", "replay"]
    chat = {name: p.load() for name, p in PROVIDERS.items() if p.chat}
    assert chat == {"openai": OpenAIChat, "hf": HFChat, "replay": ReplayChat}
    with pytest.raises(ValueError, match="no chat model"):
        PROVIDERS["scripted"].load()
    assert isinstance(chat_model("openai:gpt-4o-mini"), OpenAIChat)
    assert chat_model(parse_model_spec("openai:gpt-4o-mini")).spec == "openai:gpt-4o-mini"
    with pytest.raises(ValueError, match="scripted agents come from the scenario family"):
        chat_model("scripted:oracle")
    with pytest.raises(ModelSpecError, match="unknown provider 'bogus'"):
        chat_model("bogus:thing")
    with pytest.raises(ModelSpecError, match="PROVIDER:NAME"):
        chat_model("gpt-4o")
    with pytest.raises(ValueError, match="cache mode 'sometimes'"):
        chat_model("openai:gpt-4o-mini", cache="sometimes")
    with pytest.raises(ValueError, match="does not exist"):
        chat_model(f"hf:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"not a transformers model directory \(no config.json\)"):
        chat_model(f"hf:{tmp_path / 'empty'}")
    with pytest.raises(ValueError, match="adapter directory .* does not exist"):
        chat_model(f"hf:{tmp_path / 'empty'}+{tmp_path / 'no-adapter'}")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="no base_model_name_or_path"):
        chat_model(f"hf:{tmp_path / 'adapter'}")


def test_model_call_error() -> None:
    exc = ModelCallError("server_error", "HTTP 500 from the endpoint")
    assert isinstance(exc, InfrastructureError)
    assert exc.kind == "server_error"
    assert exc.as_step_error() == {
        "type": "model_server_error",
        "message": "HTTP 500 from the endpoint",
    }
    assert "HTTP 500" in str(exc)
    again = pickle.loads(pickle.dumps(exc))  # crosses xdist/process boundaries intact
    assert (again.kind, again.message) == (exc.kind, exc.message)
    with pytest.raises(ValueError, match="unknown model call error kind"):
        ModelCallError("oops", "x")


def test_openai_needs_a_key_for_remote_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    model = OpenAIChat("gpt-4o-mini", base_url="https://api.example.invalid/v1")
    with pytest.raises(ModelCallError) as info:
        model.complete(MESSAGES)
    assert info.value.kind == "bad_request"
    assert "OPENAI_API_KEY is not set" in str(info.value)


def test_openai_key_never_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    secret = "sk-test-SUPERSECRET0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    model = OpenAIChat("gpt-4o-mini", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1,
                       backoff=0.01)  # fmt: skip
    with pytest.raises(ModelCallError) as info:
        model.complete(MESSAGES)
    assert info.value.kind == "connection"
    assert model.last_attempts == 2
    for text in (str(info.value), repr(info.value), repr(model), json.dumps(
        info.value.as_step_error())):  # fmt: skip
        assert "SUPERSECRET" not in text
    assert all("SUPERSECRET" not in repr(v) for k, v in vars(model).items() if k != "_client")


def test_openai_env_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:9/v1/")
    monkeypatch.setenv("TEACH_OPENAI_TIMEOUT", "2.5")
    monkeypatch.setenv("TEACH_OPENAI_MAX_RETRIES", "5")
    monkeypatch.setenv("TEACH_OPENAI_BACKOFF", "0.1")
    model = chat_model("openai:tiny")
    assert (model.base_url, model.timeout, model.max_retries, model.backoff) == (
        "http://localhost:9/v1", 2.5, 5, 0.1
    )  # fmt: skip
    monkeypatch.setenv("TEACH_OPENAI_MAX_RETRIES", "lots")
    with pytest.raises(ValueError, match="TEACH_OPENAI_MAX_RETRIES='lots' is not an integer"):
        chat_model("openai:tiny")


# -- the cache ---------------------------------------------------------------------------------


def test_cache_record_then_replay(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    inner = FakeChat('{"tools": ["calculator"]}')
    recorder = CachedChat(inner, "record", cache_dir)
    first = recorder.complete(MESSAGES, max_tokens=64, valid_actions=ACTIONS)
    assert inner.calls == 1 and not first.cached
    key = cache_key("openai:fake", MESSAGES, 64, 0.0, ACTIONS)
    entry = cache_dir / key[:2] / f"{key}.json"
    assert entry.is_file()
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temp files left

    replayer = CachedChat(FakeChat("never called"), "replay", cache_dir)
    again = replayer.complete(MESSAGES, max_tokens=64, valid_actions=ACTIONS)
    assert again.cached
    assert (again.text, again.prompt_tokens, again.completion_tokens, again.latency_ms) == (
        first.text, 11, 7, 12.5
    )  # fmt: skip
    assert again.cost_usd == first.cost_usd and again.action_probs == first.action_probs
    assert replayer.inner.calls == 0

    # any part of the request changes the key
    for kwargs in ({"max_tokens": 65}, {"temperature": 0.7}, {"valid_actions": None}):
        with pytest.raises(ModelCallError) as info:
            replayer.complete(MESSAGES, **{"max_tokens": 64, "valid_actions": ACTIONS, **kwargs})
        assert info.value.kind == "cache_miss"
    with pytest.raises(ModelCallError) as info:
        replayer.complete([{"role": "user", "content": "something new"}])
    miss = str(info.value)
    new_key = cache_key("openai:fake", [{"role": "user", "content": "something new"}], 256, 0.0,
                        None)  # fmt: skip
    assert new_key[:12] in miss and "--teach-cache record" in miss and str(cache_dir) in miss


def test_chat_model_replay_needs_no_key_or_server(tmp_path: Path) -> None:
    inner = FakeChat("hello", spec="openai:gpt-4o-mini")
    CachedChat(inner, "record", tmp_path).complete(MESSAGES)
    model = chat_model("openai:gpt-4o-mini", cache="replay", cache_dir=tmp_path)
    assert isinstance(model, CachedChat) and isinstance(model.inner, OpenAIChat)
    reply = model.complete(MESSAGES)  # no OPENAI_API_KEY, remote default URL: never called
    assert reply.text == "hello" and reply.cached


def test_corrupt_cache_entry(tmp_path: Path) -> None:
    CachedChat(FakeChat("ok"), "record", tmp_path).complete(MESSAGES)
    key = cache_key("openai:fake", MESSAGES, 256, 0.0, None)
    entry = tmp_path / key[:2] / f"{key}.json"
    replayer = CachedChat(FakeChat("x"), "replay", tmp_path)
    for garbage in ('{"format": 1, "completion": {"te', '{"format": 1, "completion": {}}', "[]",
                    '{"format": 1, "completion": {"text": "a", "prompt_tokens": "many"}}'):  # fmt: skip
        entry.write_text(garbage)
        with pytest.raises(ModelCallError, match="corrupt cache entry") as info:
            replayer.complete(MESSAGES)
        assert info.value.kind == "cache_miss"
        assert str(entry) in str(info.value)


# -- HFChat on a tiny local model --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny random Qwen2 model per module (never modified)."""
    pytest.importorskip("transformers")
    from pytest_teach.train.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny")


@pytest.fixture(scope="module")
def adapter_dir(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter over the tiny model, with non-zero weights so it changes the outputs."""
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    config = LoraConfig(
        r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(base, config)
    out = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(out)
    return out


def _teacher_forced_logprob(chat: HFChat, messages: list[dict[str, str]], action: str) -> float:
    """Reference: one unbatched forward pass over prompt + action + end-of-turn."""
    import torch

    from pytest_teach.agents._hf import _load

    loaded = _load(chat.base, chat.adapter)
    prompt = chat._prompt_ids(loaded, messages)
    ids = prompt + loaded.tokenizer(action, add_special_tokens=False)["input_ids"]
    ids += loaded.eos_ids[:1]
    with torch.inference_mode():
        logp = loaded.model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    return sum(logp[i - 1, ids[i]].item() for i in range(len(prompt), len(ids)))


def test_hf_greedy_completion(tiny_dir: Path) -> None:
    model = chat_model(f"hf:{tiny_dir}")
    assert isinstance(model, HFChat)
    first = model.complete(MESSAGES, max_tokens=12)
    assert isinstance(first.text, str)
    assert first.prompt_tokens > 0 and 0 < first.completion_tokens <= 12
    assert first.cost_usd == 0.0 and first.latency_ms > 0 and first.action_probs is None
    prompt = model.tokenizer.apply_chat_template(MESSAGES, tokenize=False,
                                                 add_generation_prompt=True)  # fmt: skip
    assert first.prompt_tokens == len(model.tokenizer(prompt, add_special_tokens=False).input_ids)
    second = model.complete(MESSAGES, max_tokens=12)
    assert (second.text, second.completion_tokens) == (first.text, first.completion_tokens)
    generation = model.generate(MESSAGES, max_tokens=3)
    assert generation.finish_reason in ("stop", "length") and generation.completion_tokens <= 3


def test_hf_model_loads_once(tiny_dir: Path) -> None:
    from pytest_teach.agents._hf import _load

    a, b = HFChat(str(tiny_dir)), chat_model(f"hf:{tiny_dir}")
    assert _load(a.base, a.adapter) is _load(b.base, b.adapter)


def test_hf_action_probs(tiny_dir: Path) -> None:
    model = HFChat(str(tiny_dir))
    reply = model.complete(MESSAGES, max_tokens=4, valid_actions=ACTIONS)
    probs = reply.action_probs
    assert probs is not None and list(probs) == ACTIONS
    assert math.isclose(sum(probs.values()), 1.0, rel_tol=1e-5)
    assert all(0.0 <= p <= 1.0 for p in probs.values())
    # the batched, padded pass equals one teacher-forced pass per action, softmaxed
    scores = [_teacher_forced_logprob(model, MESSAGES, a) for a in ACTIONS]
    top = max(scores)
    expected = [math.exp(s - top) for s in scores]
    total = sum(expected)
    for action, weight in zip(ACTIONS, expected, strict=True):
        assert probs[action] == pytest.approx(weight / total, rel=1e-3, abs=1e-6)


def test_hf_with_lora_adapter(tiny_dir: Path, adapter_dir: Path) -> None:
    plain = HFChat(str(tiny_dir))
    implicit = chat_model(f"hf:{adapter_dir}")  # base read from adapter_config.json
    explicit = chat_model(f"hf:{tiny_dir}+{adapter_dir}")
    assert implicit.adapter == explicit.adapter == str(adapter_dir.resolve())
    assert implicit.base == explicit.base == str(tiny_dir.resolve())

    from peft import PeftModel

    from pytest_teach.agents._hf import _load

    assert isinstance(_load(implicit.base, implicit.adapter).model, PeftModel)
    reply = implicit.complete(MESSAGES, max_tokens=6, valid_actions=ACTIONS)
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0
    assert math.isclose(sum(reply.action_probs.values()), 1.0, rel_tol=1e-5)
    base_probs = plain.complete(MESSAGES, max_tokens=1, valid_actions=ACTIONS).action_probs

    def log_odds(probs: dict[str, float]) -> list[float]:
        return [math.log(probs[a] / probs[ACTIONS[0]]) for a in ACTIONS[1:]]

    # the adapter is applied: the actions' relative likelihoods move
    assert log_odds(reply.action_probs) != pytest.approx(log_odds(base_probs), abs=1e-3)
    assert explicit.complete(MESSAGES, max_tokens=6).text == reply.text


def test_hf_cache_round_trip(tiny_dir: Path, tmp_path: Path) -> None:
    recorded = chat_model(f"hf:{tiny_dir}", cache="record", cache_dir=tmp_path).complete(
        MESSAGES, max_tokens=5, valid_actions=ACTIONS
    )
    replayed = chat_model(f"hf:{tiny_dir}", cache="replay", cache_dir=tmp_path).complete(
        MESSAGES, max_tokens=5, valid_actions=ACTIONS
    )
    assert replayed.cached and not recorded.cached
    assert replayed.text == recorded.text
    assert replayed.action_probs == pytest.approx(recorded.action_probs)
    assert replayed.latency_ms == recorded.latency_ms


# -- the tool-selection LLM planner ------------------------------------------------------------


def test_planner_for_specs(tiny_dir: Path, tmp_path: Path) -> None:
    scripted = ts.planner_for(Agent(parse_model_spec("scripted:oracle")))
    assert isinstance(scripted, ts.OraclePlanner)
    case = ts.SCENARIOS[0]
    assert scripted.plan(case).error is None and scripted.plan(case).tools == list(case.expected)

    llm = ts.planner_for(Agent(parse_model_spec(f"hf:{tiny_dir}")))
    assert isinstance(llm, ts.LLMPlanner)
    plan = llm.plan(case)  # a random tiny model: its reply never parses
    assert plan.tools == []
    assert plan.error is not None and plan.error["type"] == "unparseable_output"
    assert plan.error["output"] == plan.text[:500] and plan.error["message"]
    assert plan.prompt_tokens > 0 and plan.completion_tokens > 0 and plan.cost_usd == 0.0
    assert plan.messages[:-1] == ts.planner_messages(case.query)
    assert plan.messages[-1] == {"role": "assistant", "content": plan.text}

    cached = ts.planner_for(
        Agent(parse_model_spec("openai:gpt-4o-mini")), cache="replay", cache_dir=tmp_path
    )
    with pytest.raises(ModelCallError) as info:
        cached.plan(case)
    assert info.value.kind == "cache_miss"
    with pytest.raises(ValueError, match="does not exist"):
        ts.planner_for(Agent(parse_model_spec(f"hf:{tmp_path / 'missing'}")))


def test_llm_planner_parses_a_good_reply() -> None:
    case = ts.SCENARIOS[0]
    chat = FakeChat(" " + ts.format_plan(reversed(case.expected)) + "\n")
    plan = ts.LLMPlanner(chat).plan(case)
    assert plan.tools == sorted(case.expected) and plan.error is None
    assert (plan.prompt_tokens, plan.completion_tokens, plan.latency_ms, plan.cost_usd) == (
        11, 7, 12.5, 0.001
    )  # fmt: skip
    assert ts.check(case, plan.tools).passed
    bad = ts.LLMPlanner(FakeChat('{"tools": ["teleport"]}')).plan(case)
    assert bad.tools == [] and bad.error["type"] == "unparseable_output"
    assert "teleport" in bad.error["message"]


# -- import weight -----------------------------------------------------------------------------


def test_agents_import_stays_light() -> None:
    code = (
        "import sys\n"
        "import pytest_teach.agents, pytest_teach.envs.tool_selection, pytest_teach.plugin\n"
        "heavy = [m for m in ('torch', 'transformers', 'openai', 'httpx', 'fastapi', 'peft')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_registry_loads_a_provider_only_when_a_spec_names_it() -> None:
    code = (
        "import sys\n"
        "import pytest_teach.agents as agents\n"
        "mods = ('_hf', '_openai', '_replay', '_cache')\n"
        "before = [m for m in mods if 'pytest_teach.agents.' + m in sys.modules]\n"
        "agents.chat_model('replay:@pool')\n"
        "after = [m for m in mods if 'pytest_teach.agents.' + m in sys.modules]\n"
        "print(before, after)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] ['_replay']", out.stdout + out.stderr


def test_chat_module_imports_no_provider() -> None:
    """The providers import ``_chat``; ``_chat`` finds them through the registry, so there is
    no cycle, and each provider module imports on its own."""
    import grimp

    graph = grimp.build_graph("pytest_teach")
    for provider in ("_hf", "_openai", "_replay"):
        module = f"pytest_teach.agents.{provider}"
        assert graph.direct_import_exists(importer=module, imported="pytest_teach.agents._chat")
        assert not graph.direct_import_exists(importer="pytest_teach.agents._chat", imported=module)
        code = f"import {module} as m; print(m.__name__)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr


def test_model_provider_registers_a_lazy_provider() -> None:
    class EchoChat(ChatModel):
        def __init__(self, name: str) -> None:
            self.spec = f"echo:{name}"

        def complete(self, messages, **kwargs):  # type: ignore[no-untyped-def]
            return Completion(messages[-1]["content"])

    loaded: list[str] = []

    @model_provider("echo")
    def _echo() -> type[ChatModel]:
        loaded.append("echo")
        return EchoChat

    try:
        assert loaded == []  # registering imports nothing
        assert check_model_spec("echo:x").provider == "echo"
        model = chat_model("echo:x")
        assert (
            isinstance(model, EchoChat) and model.complete(MESSAGES).text == MESSAGES[-1]["content"]
        )
        assert loaded == ["echo"]
    finally:
        del PROVIDERS["echo"]
    with pytest.raises(ModelSpecError, match="unknown provider 'echo'"):
        parse_model_spec("echo:x")
    with pytest.raises(ValueError, match="provider name"):
        model_provider("has:colon")
