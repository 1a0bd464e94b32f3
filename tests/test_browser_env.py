"""The browser family: the sites, the session's actions and step errors, the task checks, the
scripted policies on every task, and what a recorded run leaves in the store."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pytest_teach import open_store
from pytest_teach.agents import Agent, parse_model_spec
from pytest_teach.envs import browser as br
from pytest_teach.envs.browser._aria import find, parse_snapshot, resolve_action
from pytest_teach.envs.browser.fixtures import VIEWPORT
from pytest_teach.errors import InfrastructureError
from pytest_teach.recorder import EpisodeRecorder

from .conftest import CHROMIUM, NO_BROWSER, REPO, needs_chromium

SUITE = str(REPO / "scenarios" / "browser")


def agent(spec: str) -> Agent:
    return Agent(parse_model_spec(spec))


# -- module-scoped browser: sync Playwright can't run twice at once in one process, so this one
# -- is closed before another test module starts its own


@pytest.fixture(scope="module")
def launched():
    if NO_BROWSER is not None:
        pytest.skip(NO_BROWSER)
    with br.launch_browser(CHROMIUM) as running:
        yield running


@pytest.fixture(scope="module")
def server():
    with br.SiteServer() as running:
        yield running


@pytest.fixture
def session(launched, server):
    page = launched.new_page(viewport=VIEWPORT)
    try:
        yield br.BrowserSession(page, base_url=server.origin, timeout_ms=600)
    finally:
        page.context.close()


def ref_of(observation: br.Observation, role: str, name: str, **kw: Any) -> str:
    node = find(parse_snapshot(observation.snapshot), {"role": role, "name": name, **kw})
    assert node is not None, f'no {role} "{name}" in\n{observation.snapshot}'
    return node.ref


# -- action parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, action",
    [
        ('{"type": "click", "ref": "e12"}', {"type": "click", "ref": "e12"}),
        (' {"type":"fill","ref":"f1e3","text":"blue mug"}\n', None),
        ('```json\n{"type": "done", "answer": "8080"}\n```', {"type": "done", "answer": "8080"}),
        ('{"type": "press", "key": "Enter"}', {"type": "press", "key": "Enter"}),
        ('{"type": "scroll", "direction": "down"}', None),
        ('{"type": "navigate", "url": "/shop/cart.html"}', None),
    ],
)
def test_parse_action_accepts_one_action(text: str, action: dict | None) -> None:
    parsed = br.parse_action(text)
    assert parsed == (action or json.loads(text.strip()))


@pytest.mark.parametrize(
    "text, message",
    [
        ("click e12", "not valid JSON"),
        ("", "empty reply"),
        ('[{"type": "click", "ref": "e1"}]', "an action is a JSON object"),
        ('{"type": "tap", "ref": "e1"}', "unknown action type 'tap'"),
        ('{"type": "fill", "ref": "e1"}', "fill: missing 'text'"),
        ('{"type": "click", "ref": 12}', "'ref' must be a string"),
        ('{"type": "click", "ref": "e1", "why": "x"}', "unexpected key(s) why"),
        ('{"type": "scroll", "direction": "left"}', "direction must be 'up' or 'down'"),
        ('{"type": "click", "ref": "the blue button"}', "is not a ref like 'e12'"),
        ('{"type": "click", "ref": "e1"} {"type": "done"}', "not valid JSON"),
    ],
)
def test_parse_action_rejects_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        br.parse_action(text)
    assert message in str(info.value)


# -- snapshots and targets ---------------------------------------------------------------------

SNAPSHOT = """\
- generic [active] [ref=e1]:
  - 'button "Foo: bar" [ref=e2]'
  - button "Say \\"hi\\"" [ref=e3]
  - navigation "Account" [ref=e4]:
    - link "Cart (2)" [ref=e5] [cursor=pointer]:
      - /url: cart.html
  - list "Search results" [ref=e6]:
    - listitem [ref=e7]:
      - link "Plugins" [ref=e8] [cursor=pointer]
  - navigation "Documentation" [ref=e9]:
    - link "Plugins" [ref=f1e10]
  - combobox "Guests" [ref=e11]:
    - option "1 guest" [selected]
  - textbox "Email" [invalid] [ref=e12]: x@y
"""


def test_parse_snapshot_reads_roles_names_refs_and_nesting() -> None:
    nodes = parse_snapshot(SNAPSHOT)
    by_ref = {n.ref: n for n in nodes if n.ref}
    assert by_ref["e2"].role == "button" and by_ref["e2"].name == "Foo: bar"
    assert by_ref["e3"].name == 'Say "hi"'
    assert by_ref["e12"].attrs == {"invalid": ""} and by_ref["e12"].text == "x@y"
    assert nodes[by_ref["e5"].parent].ref == "e4"
    assert [n.name for n in nodes if n.role == "option"] == ["1 guest"]  # options carry no ref
    assert br.find(nodes, {"role": "link", "name": "Cart", "match": "prefix"}).ref == "e5"
    assert br.find(nodes, {"role": "link", "name": "Cart"}) is None
    results = {"role": "list", "name": "Search results"}
    sidebar = {"role": "navigation", "name": "Documentation"}
    assert br.find(nodes, {"role": "link", "name": "Plugins", "within": results}).ref == "e8"
    assert br.find(nodes, {"role": "link", "name": "Plugins", "within": sidebar}).ref == "f1e10"
    assert br.find(nodes, {"role": "link", "name": "Plugins", "nth": 1}).ref == "f1e10"


def test_resolve_action_turns_targets_into_current_refs() -> None:
    step = {"type": "fill", "target": {"role": "textbox", "name": "Email"}, "text": "a@b.co"}
    assert resolve_action(step, SNAPSHOT) == {"type": "fill", "ref": "e12", "text": "a@b.co"}
    assert resolve_action({"type": "click", "role": "button", "name": "Foo: bar"}, SNAPSHOT) == {
        "type": "click",
        "ref": "e2",
    }
    assert (
        resolve_action({"type": "click", "target": {"role": "button", "name": "No"}}, SNAPSHOT)
        is None
    )
    assert resolve_action({"type": "click", "ref": "e99", "decoy": {}}, SNAPSHOT) == {
        "type": "click",
        "ref": "e99",
    }


# -- finding Chromium, serving the sites -------------------------------------------------------


def test_find_chromium_prefers_explicit_settings(tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.delenv("TEACH_CHROMIUM", raising=False)
    assert br.find_chromium(str(fake)) == str(fake)
    assert br.find_chromium(str(tmp_path / "missing")) is None  # a typo is not papered over
    monkeypatch.setenv("TEACH_CHROMIUM", str(fake))
    assert br.find_chromium() == str(fake)
    assert br.find_chromium(str(fake)) == str(fake)
    monkeypatch.setenv("TEACH_CHROMIUM", str(tmp_path))  # a directory is not an executable
    assert br.find_chromium() is None


def test_site_server_serves_every_site_and_stops() -> None:
    server = br.SiteServer().start()
    try:
        for site in br.SITES:
            with urllib.request.urlopen(server.url(site), timeout=5) as response:
                body = response.read().decode()
            assert response.status == 200 and "<script" in body
        with pytest.raises(ValueError, match="unknown site 'nope'"):
            server.url("nope")
        url = server.url("shop", "/cart.html")
        assert url == f"{server.origin}/shop/cart.html"
    finally:
        server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
    server.stop()  # idempotent


def test_sites_have_no_external_urls() -> None:
    for path in br.SITES_DIR.rglob("*"):
        if path.suffix in (".html", ".js", ".css"):
            text = path.read_text(encoding="utf-8")
            text = text.replace("http://proxy.internal:3128", "")  # an example in the docs
            assert "https://" not in text and "http://" not in text, path


# -- the session -------------------------------------------------------------------------------


def test_observe_gives_url_title_snapshot_and_screenshot(session: br.BrowserSession) -> None:
    session.goto("/shop/index.html")
    observation = session.observe()
    assert set(observation.data) == {"url", "title", "snapshot"}
    assert observation.url == "/shop/index.html"
    assert observation.data["title"] == "Products – Northwind Goods"
    assert 'dialog "We value your privacy"' in observation.snapshot
    assert observation.screenshot.startswith(b"\x89PNG\r\n\x1a\n")
    assert session.observe(screenshot=False).screenshot is None
    state = session.state()
    assert state["site"] == "shop" and state["cookies"] is None and state["cart"] == []


def test_actions_drive_the_real_page(session: br.BrowserSession) -> None:
    session.goto("/shop/index.html")
    obs = session.observe(screenshot=False)
    assert session.act({"type": "click", "ref": ref_of(obs, "button", "Accept all")}) is None
    obs = session.observe(screenshot=False)
    assert "We value your privacy" not in obs.snapshot
    box = ref_of(obs, "searchbox", "Search products")
    assert session.act({"type": "fill", "ref": box, "text": "mug"}) is None
    assert session.act({"type": "press", "key": "Enter", "ref": box}) is None
    obs = session.observe(screenshot=False)
    assert obs.url == "/shop/index.html?q=mug"
    assert session.state()["listing"]["results"] == [
        "blue-mug-xl",
        "blue-mug",
        "red-mug",
        "red-mug-set",
    ]
    assert (
        session.act(
            {"type": "select", "ref": ref_of(obs, "combobox", "Sort by"), "value": "price-asc"}
        )
        is None
    )
    assert session.act({"type": "click", "ref": ref_of(obs, "button", "Apply filters")}) is None
    obs = session.observe(screenshot=False)
    assert session.state()["listing"]["results"][0] == "red-mug"
    assert (
        session.act({"type": "click", "ref": ref_of(obs, "button", "Add Red Mug to cart")}) is None
    )
    assert session.act({"type": "scroll", "direction": "down"}) is None
    assert session.act({"type": "navigate", "url": "cart.html"}) is None
    obs = session.observe(screenshot=False)
    assert obs.url == "/shop/cart.html" and "Cart total: $8.00" in obs.snapshot
    assert session.act({"type": "done", "answer": "ok"}) is None
    assert session.state()["cart"] == [{"id": "red-mug", "name": "Red Mug", "price": 8.0, "qty": 1}]


def test_stale_ref_after_navigation(session: br.BrowserSession) -> None:
    session.goto("/docs/index.html")
    old = session.observe(screenshot=False)
    link = ref_of(
        old, "link", "Installation", within={"role": "navigation", "name": "Documentation"}
    )
    assert session.act({"type": "click", "ref": link}) is None
    # acting again before looking: the ref was in the last snapshot, but the page moved on
    error = session.act({"type": "click", "ref": ref_of(old, "link", "FAQ")})
    assert error["type"] == "stale_ref" and "changed since the snapshot" in error["message"]
    new = session.observe(screenshot=False)
    assert new.url == "/docs/page.html?p=installation"
    error = session.act({"type": "click", "ref": link})
    assert error["type"] == "stale_ref" and "earlier snapshot" in error["message"]


def test_not_found_invalid_action_and_navigation_refused(session: br.BrowserSession) -> None:
    session.goto("/booking/index.html")
    obs = session.observe(screenshot=False)
    error = session.act({"type": "click", "ref": "e9999"})
    assert error["type"] == "not_found" and "e9999" in error["message"]
    for bad in ({"type": "tap", "ref": "e1"}, {"type": "fill", "ref": "e1"}, "click e1", None):
        error = session.act(bad)
        assert error["type"] == "invalid_action", bad
    button = ref_of(obs, "button", "Book now")
    error = session.act({"type": "fill", "ref": button, "text": "hello"})
    assert error["type"] == "invalid_action" and "Book now" in error["message"]
    assert error["cause"]
    error = session.act({"type": "press", "key": "NotAKey"})
    assert error["type"] == "invalid_action"
    for url in ("https://example.com/", "http://127.0.0.1:1/shop/", "javascript:alert(1)"):
        error = session.act({"type": "navigate", "url": url})
        assert error["type"] == "navigation_refused", url
    assert session.page.url.endswith("/booking/index.html")
    error = session.act({"type": "navigate", "url": "/booking/nope.html"})
    assert error["type"] == "not_found" and "404" in error["message"]


def test_covered_element_and_missing_option(session: br.BrowserSession) -> None:
    session.timeout_ms = 1500  # long enough for Playwright to try the click even under load
    session.goto("/shop/index.html")
    obs = session.observe(screenshot=False)
    error = session.act({"type": "click", "ref": ref_of(obs, "button", "Add Blue Mug to cart")})
    assert error["type"] == "not_visible"
    assert "intercepts the click" in error["message"] and "cookie" in error["message"]
    assert session.state()["cart"] == []
    error = session.act(
        {"type": "select", "ref": ref_of(obs, "combobox", "Category"), "value": "toys"}
    )
    assert error["type"] == "not_found" and "kitchen" in error["message"]


def test_booking_validation_is_accessible(session: br.BrowserSession) -> None:
    session.goto("/booking/index.html")
    obs = session.observe(screenshot=False)
    session.act({"type": "fill", "ref": ref_of(obs, "textbox", "Email"), "text": "sam@example"})
    session.act({"type": "click", "ref": ref_of(obs, "button", "Book now")})
    obs = session.observe(screenshot=False)
    assert 'textbox "Email" [invalid]' in obs.snapshot
    assert "- alert" in obs.snapshot and "like name@example.com" in obs.snapshot
    state = session.state()
    assert state["attempts"] == 1 and "email" in state["errorFields"]
    assert state["confirmed"] is None


# -- tasks and their checks --------------------------------------------------------------------


def test_tasks_are_well_formed() -> None:
    assert len(br.TASKS) >= 20
    assert len(br.TASKS_BY_ID) == len(br.TASKS)
    assert {t.site for t in br.TASKS} == set(br.SITES)
    for task in br.TASKS:
        assert task.plan[-1]["type"] == "done", task.id
        assert (br.SITES_DIR / task.site / task.start).is_file(), task.id
        for step in task.plan:
            probe = {
                k: v for k, v in step.items() if k not in ("target", "decoy", "answer_pattern")
            }
            if "target" in step:
                probe["ref"] = "e1"
            br.validate_action(probe)
    assert sum(1 for t in br.TASKS if any("decoy" in s for s in t.plan)) >= 15
    catalogue = br.catalogue()
    names = {p["name"] for p in catalogue["products"]}
    assert {"Blue Mug", "Blue Mug XL"} <= names


def test_checks_read_the_state_not_the_claims() -> None:
    task = br.TASKS_BY_ID["shop-accept-blue-mug"]
    wrong = {
        "cookies": "accepted",
        "cart": [{"id": "blue-mug-xl", "name": "Blue Mug XL", "price": 12.0, "qty": 1}],
        "answer": "added the Blue Mug",
    }
    ok, message = task.check(None, wrong)
    assert not ok and "Blue Mug XL" in message
    right = {**wrong, "cart": [{"id": "blue-mug", "name": "Blue Mug", "price": 9.5, "qty": 1}]}
    assert task.check(None, right)[0]
    ok, message = task.check(None, {**right, "cookies": None})
    assert not ok and "cookie choice is not made" in message

    port = br.TASKS_BY_ID["docs-default-port"]
    assert not port.check(None, {"visited": ["introduction"], "answer": "8080"})[0]
    assert not port.check(None, {"visited": ["dev-server"], "answer": "8000"})[0]
    assert port.check(None, {"visited": ["dev-server"], "answer": "8080"})[0]

    fix = br.TASKS_BY_ID["booking-fix-email"]
    booked = {"name": "Sam Lee", "email": "sam.lee@example.com", "room": "standard", "guests": 1}
    ok, message = fix.check(None, {"confirmed": booked, "errorFields": []})
    assert not ok and "never reported an error on email" in message
    assert fix.check(None, {"confirmed": booked, "errorFields": ["email"]})[0]
    ok, message = fix.check(None, {"confirmed": None, "errors": [{"message": "Enter a name"}]})
    assert not ok and "Enter a name" in message


# -- policies ----------------------------------------------------------------------------------


def test_browser_policy_for_resolves_specs() -> None:
    task = br.TASKS[0]
    assert isinstance(br.browser_policy_for(agent("scripted:oracle"), task), br.OraclePolicy)
    noisy = br.browser_policy_for(agent("scripted:noisy-0.25"), task, seed=3)
    assert isinstance(noisy, br.NoisyOraclePolicy) and noisy.p == 0.25 and noisy.seed == 3
    assert isinstance(br.browser_policy_for(agent("openai:gpt-4o-mini"), task), br.LLMPolicy)
    assert isinstance(br.browser_policy_for(agent("hf:./models/tiny"), task), br.LLMPolicy)
    for bad in ("scripted:keyword", "scripted:noisy-2", "scripted:noisy-x"):
        with pytest.raises(ValueError, match="scripted"):
            br.browser_policy_for(agent(bad), task)


def test_noisy_draw_is_seeded_and_realistic() -> None:
    def draws(p: float, seed: int) -> list[tuple]:
        policies = [br.NoisyOraclePolicy(t, p, seed) for t in br.TASKS]
        return [(n.mistake, n.at, n.recover) for n in policies]

    assert draws(0.3, 0) == draws(0.3, 0)
    assert draws(0.3, 0) != draws(0.3, 1)
    assert all(m is None for m, _, _ in draws(0.0, 0))
    everything = draws(1.0, 0)
    assert all(m in ("decoy", "loop") for m, _, _ in everything)
    assert {r for _, _, r in everything} == {True, False}


@pytest.mark.parametrize("task", br.TASKS, ids=[t.id for t in br.TASKS])
def test_oracle_solves_every_task(task: br.Task, session: br.BrowserSession) -> None:
    session.timeout_ms = 2000
    episode = EpisodeRecorder(enabled=True)
    result = br.run_task(session, task, br.OraclePolicy(task), episode, screenshots=False)
    assert result.success, result.reason
    assert result.ended == "done" and result.steps == len(task.plan)
    assert all(step.error is None for step in episode.steps)
    assert episode.rewards == (1.0, {"check": 1.0, "done": 1.0, "efficiency": 1.0})
    assert not episode.labels


class _Scripted(br.BrowserPolicy):
    """A policy replaying fixed actions (the last one forever)."""

    def __init__(self, task: br.Task, actions: list[Any]) -> None:
        super().__init__(task)
        self.actions = actions

    def decide(self, observation, messages, last_error) -> br.Decision:
        action = self.actions[min(len(self.history), len(self.actions) - 1)]
        if callable(action):
            action = action(observation, len(self.history))
        return self.scripted(action, messages)


def test_loop_is_detected_and_labeled(session: br.BrowserSession) -> None:
    task = br.TASKS_BY_ID["docs-cli-reference"]
    episode = EpisodeRecorder(enabled=True)
    policy = _Scripted(task, [{"type": "scroll", "direction": "down"}])
    result = br.run_task(session, task, policy, episode, screenshots=False)
    assert not result.success and result.ended == "loop" and result.steps == 3
    assert [(lb.kind, lb.reason.split(" repeated")[0]) for lb in episode.labels] == [
        ("intervention", 'loop: {"type":"scroll","direction":"down"}')
    ]
    assert "on /docs/index.html" in result.reason and "expected 'cli-reference'" in result.reason
    assert episode.rewards[0] == 0.0 and episode.rewards[1]["done"] == 0.0


def test_max_steps_ends_the_episode(session: br.BrowserSession) -> None:
    task = br.TASKS_BY_ID["docs-default-port"]

    def typing(observation: br.Observation, n: int) -> dict:  # a new text each time: no loop
        return {
            "type": "fill",
            "ref": ref_of(observation, "searchbox", "Search docs"),
            "text": f"port {n}",
        }

    episode = EpisodeRecorder(enabled=True)
    result = br.run_task(
        session, task, _Scripted(task, [typing]), episode, max_steps=4, screenshots=False
    )
    assert not result.success and result.ended == "max_steps" and result.steps == 4
    assert episode.labels[0].kind == "intervention"
    assert episode.labels[0].reason.startswith("max_steps 4 reached without done")
    assert episode.metrics["steps"] == 4


def test_step_errors_are_recorded_and_fed_back(session: br.BrowserSession) -> None:
    task = br.TASKS_BY_ID["docs-cli-reference"]
    seen: list[Any] = []

    def then_cli(observation: br.Observation, n: int) -> dict:
        return {"type": "click", "ref": ref_of(observation, "link", "CLI reference")}

    class Watching(_Scripted):
        def decide(self, observation, messages, last_error):
            seen.append(last_error)
            return super().decide(observation, messages, last_error)

    actions = [
        {"type": "click", "ref": "e4242"},
        {"type": "navigate", "url": "https://x.org"},
        then_cli,
        {"type": "done"},
    ]
    episode = EpisodeRecorder(enabled=True)
    result = br.run_task(session, task, Watching(task, actions), episode, screenshots=True)
    assert result.success, result.reason
    assert [s.error["type"] if s.error else None for s in episode.steps] == [
        "not_found",
        "navigation_refused",
        None,
        None,
    ]
    assert seen[1]["type"] == "not_found" and seen[2]["type"] == "navigation_refused"
    assert episode.metrics["step_errors"] == 2
    assert all(s.screenshot for s in episode.steps)
    prompt = episode.steps[2].messages[1]["content"]
    assert "-> error not_found" in prompt and "-> error navigation_refused" in prompt
    assert episode.rewards[1]["efficiency"] == 0.5


class FakeCompletion:
    def __init__(self, text: str) -> None:
        self.text = text
        self.prompt_tokens = 100
        self.completion_tokens = 10
        self.latency_ms = 5.0
        self.cost_usd = 0.001


class FakeChatModel:
    """Answers like a model would: first rambling, then the link's ref read off the prompt."""

    def __init__(self) -> None:
        self.calls: list[list[dict]] = []

    def complete(self, messages, *, max_tokens=256, temperature=0.0, valid_actions=None):
        self.calls.append(messages)
        if len(self.calls) == 1:
            return FakeCompletion("I will click the CLI reference link.")
        if (
            "p=cli-reference"
            not in messages[-1]["content"].split("Current page:")[1].split("\n")[0]
        ):
            ref = find(parse_snapshot(messages[-1]["content"].split("Snapshot:\n", 1)[1]),
                       {"role": "link", "name": "CLI reference"}).ref  # fmt: skip
            return FakeCompletion(json.dumps({"type": "click", "ref": ref}))
        return FakeCompletion('```json\n{"type": "done"}\n```')


def test_llm_policy_with_a_fake_model(session: br.BrowserSession) -> None:
    task = br.TASKS_BY_ID["docs-cli-reference"]
    model = FakeChatModel()
    policy = br.LLMPolicy(task, "openai:fake", model=model)
    episode = EpisodeRecorder(enabled=True)
    result = br.run_task(session, task, policy, episode, screenshots=False)
    assert result.success, result.reason
    first = episode.steps[0]
    assert first.action == "I will click the CLI reference link."
    assert first.error["type"] == "invalid_action" and "not valid JSON" in first.error["message"]
    assert first.messages[-1] == {"role": "assistant", "content": first.action}
    assert (
        first.messages[0]["role"] == "system"
        and "Goal: Open the CLI reference" in first.messages[1]["content"]
    )
    assert "unusable reply" in model.calls[1][1]["content"]  # the error was shown to the model
    assert episode.metrics["prompt_tokens"] == 300 and episode.metrics["completion_tokens"] == 30
    assert episode.metrics["cost_usd"] == pytest.approx(0.003)


class _Down(InfrastructureError):
    def as_step_error(self) -> dict:
        return {"type": "model_error", "kind": "timeout", "message": "model timeout"}


def test_model_failure_is_infrastructure_not_agent(session: br.BrowserSession) -> None:
    class Broken:
        def complete(self, *args, **kwargs):
            raise _Down("model timeout")

    task = br.TASKS_BY_ID["docs-cli-reference"]
    episode = EpisodeRecorder(enabled=True)
    with pytest.raises(_Down):
        br.run_task(session, task, br.LLMPolicy(task, "openai:x", model=Broken()), episode)
    assert episode.steps[0].error["type"] == "model_error" and episode.steps[0].action is None


# -- recorded runs -----------------------------------------------------------------------------


@needs_chromium
def test_noisy_run_records_both_labels_with_screenshots(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    db = tmp_path / "experience.db"
    chosen = "shop-accept-blue-mug or shop-cheapest-kitchen or shop-red-mug-qty-3 or docs-cli-reference or docs-upgrading"
    result = pytester.runpytest_subprocess(
        SUITE, "-p", "no:cacheprovider", "-q", "--tb=no", "-k", chosen,
        "--model", "scripted:noisy-0.5", "--collect-training-data", "--teach-db", str(db),
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=3, deselected=19)
    store = open_store(db)
    episodes = {e.scenario: e for e in store.episodes()}
    assert set(episodes) == {
        "browser[shop-accept-blue-mug]",
        "browser[shop-cheapest-kitchen]",
        "browser[shop-red-mug-qty-3]",
        "browser[docs-cli-reference]",
        "browser[docs-upgrading]",
    }
    assert {e.label for e in episodes.values()} == {0, 1}
    wrong = episodes["browser[shop-accept-blue-mug]"]
    assert wrong.outcome == "intervention" and "Blue Mug XL" in wrong.label_reason
    stuck = episodes["browser[shop-red-mug-qty-3]"]
    assert stuck.label_reason.startswith("loop: ") and "/shop/cookies.html" in stuck.label_reason
    learn_more = [
        s
        for s in stuck.steps
        if (
            link := find(
                parse_snapshot(s.observation["snapshot"]), {"role": "link", "name": "Learn more"}
            )
        )
        and s.action == {"type": "click", "ref": link.ref}
    ]
    assert len(learn_more) == 1
    recovered = episodes["browser[shop-cheapest-kitchen]"]
    assert recovered.outcome == "success" and recovered.reward == 1.0
    assert {"type": "navigate", "url": "/shop/index.html"} in [s.action for s in recovered.steps]
    assert recovered.reward_components["efficiency"] < 1.0
    for episode in episodes.values():
        assert episode.model == "scripted:noisy-0.5" and episode.category
        assert episode.meta["site"] in br.SITES and episode.meta["goal"]
        assert episode.metrics["steps"] == len(episode.steps) > 0
        for step in episode.steps:
            assert set(step.observation) == {"url", "title", "snapshot"}
            assert step.valid_actions == list(br.ACTION_TYPES)
            assert step.messages[-1]["role"] == "assistant"
            assert store.artifact_path(step.screenshot).read_bytes()[:4] == b"\x89PNG"


def test_browser_suite_skips_cleanly_without_chromium(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        SUITE, "-p", "no:cacheprovider", "-q", "-rs", "-k", "docs-cli-reference",
        "-o", f"teach_chromium={pytester.path / 'no-such-chromium'}",
    )  # fmt: skip
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no Chromium found: install Debian's chromium*no-such-chromium*"])


def test_fixtures_module_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pytest_teach.envs.browser, pytest_teach.envs.browser.fixtures; "
        "print(any(m.startswith('playwright') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})  # fmt: skip
    assert out.stdout.strip() == "False"
    exported = {name for names in br._EXPORTS.values() for name in names}
    assert sorted(br.__all__) == sorted(exported)  # every public name loads on first use
    assert all(getattr(br, name) is not None for name in br.__all__)
