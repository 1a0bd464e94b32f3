"""`teach record`: a scripted demonstration lands in the store as good steps, a step correction
turns it into SFT and DPO rows that `datasets` loads, and a person's clicks are captured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_teach import open_store
from pytest_teach.cli._record import record_cmd
from pytest_teach.envs import browser as br
from pytest_teach.envs.browser._aria import find, parse_snapshot
from pytest_teach.envs.browser._demo import Demonstration, InteractiveRecorder, load_script
from pytest_teach.envs.browser.fixtures import VIEWPORT
from pytest_teach.export import export

from .conftest import CHROMIUM, needs_chromium

# imported at module level on purpose: pytester unloads modules a test imports in its body
datasets = pytest.importorskip("datasets")

SCRIPT = [
    {"type": "click", "target": {"role": "button", "name": "Accept all"}},
    {
        "type": "fill",
        "target": {"role": "searchbox", "name": "Search products"},
        "text": "blue mug",
    },
    {"type": "press", "key": "Enter", "role": "searchbox", "name": "Search products"},
    {"type": "click", "target": {"role": "button", "name": "Add Blue Mug to cart"}},
    {"type": "click", "target": {"role": "link", "name": "Cart", "match": "prefix"}},
]
TASK = "Accept the cookies, then add one Blue Mug to the cart."


def record(*args: str) -> object:
    return CliRunner().invoke(record_cmd, list(args))


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(SCRIPT))
    return path


@needs_chromium
def test_scripted_demonstration_becomes_training_data(tmp_path: Path, script: Path) -> None:
    db = tmp_path / "store" / "experience.db"
    args = ["--site", "shop", "--task", TASK, "--db", str(db), "--headless", "--script"]
    result = record(*args, str(script))
    assert result.exit_code == 0, result.output
    episode_id = result.stdout.strip()

    store = open_store(db)
    (episode,) = store.episodes()
    assert episode.id == episode_id
    assert (episode.scenario, episode.model, episode.outcome, episode.label) == (
        "record:shop",
        "human",
        "success",
        0,
    )
    assert episode.meta["task"] == TASK and episode.meta["source"] == "script"
    assert episode.reward == 1.0 and episode.metrics["steps"] == 6
    actions = [step.action for step in episode.steps]
    assert [a["type"] for a in actions] == ["click", "fill", "press", "click", "click", "done"]
    assert actions[1]["text"] == "blue mug" and actions[2]["key"] == "Enter"
    for step in episode.steps:
        assert step.label == "good" and step.error is None
        # the ref was taken from the snapshot the step was decided on
        assert (
            step.action["type"] == "done"
            or f"[ref={step.action['ref']}]" in (step.observation["snapshot"])
        )
        assert store.artifact_path(step.screenshot).read_bytes()[:4] == b"\x89PNG"
        assert step.messages[-1] == {"role": "assistant", "content": json.dumps(step.action, separators=(", ", ": "))}  # fmt: skip
        assert f"Goal: {TASK}" in step.messages[1]["content"]
    urls = [step.observation["url"] for step in episode.steps]
    assert urls[0] == "/shop/index.html" and urls[3] == "/shop/index.html?q=blue+mug"
    assert urls[-1] == "/shop/cart.html"
    assert "Cart total: $9.50" in episode.steps[-1].observation["snapshot"]

    # a person corrects step 1 (the search text): it becomes an SFT row and a DPO pair
    correction = {"type": "fill", "ref": actions[1]["ref"], "text": "Blue Mug"}
    store.add_feedback(episode_id, step=1, correct_action=correction)
    sft = export(store, "openai", tmp_path / "sft.jsonl")
    dpo = export(store, "dpo", tmp_path / "dpo.jsonl")
    assert sft.rows == 7 and dpo.rows == 1  # six good steps and the correction; one pair

    cache = str(tmp_path / "hf-cache")
    rows = datasets.load_dataset("json", data_files=str(sft.path), split="train", cache_dir=cache)
    assert rows.column_names == ["messages"] and len(rows) == 7
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]
    assert json.loads(rows[6]["messages"][-1]["content"]) == correction

    pairs = datasets.load_dataset("json", data_files=str(dpo.path), split="train", cache_dir=cache)
    assert sorted(pairs.column_names) == ["chosen", "prompt", "rejected"]
    pair = pairs[0]
    assert [m["role"] for m in pair["prompt"]] == ["system", "user"]
    assert "Current page: /shop/index.html" in pair["prompt"][1]["content"]
    assert json.loads(pair["chosen"][0]["content"]) == correction
    assert json.loads(pair["rejected"][0]["content"]) == actions[1]


@pytest.mark.parametrize(
    "args, content, message",
    [
        (
            ["--site", "mall"],
            None,
            "--site 'mall': unknown site; choose one of shop, docs, booking",
        ),
        ([], "missing", "cannot read script"),
        ([], '[{"type": "click",', "not valid JSON (Expecting"),
        ([], "{}", "expected a non-empty JSON list of actions"),
        ([], '[{"type": "click"}]', "action #1: click needs a 'ref' or a 'target'"),
        ([], '[{"type": "hover", "ref": "e1"}]', "action #1: unknown action type 'hover'"),
        ([], '[{"type": "done"}, 3]', "action #2: expected an object"),
        ([], '[{"type": "click", "target": "Accept"}]', 'a target is {"role": ..., "name": ...}'),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, args: list[str], content: str | None, message: str
) -> None:
    db = tmp_path / "experience.db"
    script = tmp_path / "demo.json"
    if content not in (None, "missing"):
        script.write_text(content)
    elif content is None:
        script.write_text(json.dumps(SCRIPT))
    base = {"--site": "shop", "--task": "t", "--db": str(db), "--script": str(script)}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = [x for kv in base.items() for x in kv] + ["--headless"]
    result = record(*argv)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "record: error: " in lines[0], result.stderr
    assert message in lines[0]
    assert not db.exists()


def test_headless_needs_a_script_and_headed_needs_a_display(tmp_path: Path, monkeypatch) -> None:
    result = record("--site", "docs", "--task", "t", "--db", str(tmp_path / "db"), "--headless")
    assert result.exit_code == 2 and "--headless needs --script FILE" in result.stderr
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = record("--site", "docs", "--task", "t", "--db", str(tmp_path / "db"))
    assert result.exit_code == 2 and "DISPLAY is not set" in result.stderr
    assert not (tmp_path / "db").exists()


@needs_chromium
def test_script_target_missing_writes_nothing(tmp_path: Path) -> None:
    script = tmp_path / "demo.json"
    script.write_text(json.dumps([{"type": "click", "role": "button", "name": "Buy now"}]))
    db = tmp_path / "experience.db"
    result = record("--site", "shop", "--task", "t", "--db", str(db), "--headless", "--script", str(script))  # fmt: skip
    assert result.exit_code == 2
    assert 'script action #1: no button "Buy now" on /shop/index.html' in result.stderr
    assert not db.exists()


def test_load_script_accepts_refs_and_targets(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    steps = [{"type": "click", "ref": "e12"}, *SCRIPT, {"type": "done", "answer": "ok"}]
    path.write_text(json.dumps(steps))
    assert load_script(path) == steps


@needs_chromium
def test_a_persons_actions_are_captured_with_their_refs() -> None:
    """The headed recorder's listener, driven headless by real mouse and keyboard events."""
    with br.SiteServer() as server, br.launch_browser(CHROMIUM) as launched:
        page = launched.new_page(viewport=VIEWPORT)
        session = br.BrowserSession(page, base_url=server.origin)
        session.goto("/shop/index.html")
        demo = Demonstration(TASK)
        recorder = InteractiveRecorder(session, demo, idle_refresh_s=0.0)
        recorder.install()
        first = recorder.observation

        page.get_by_role("button", name="Accept all").click()
        assert recorder.poll(50)
        page.get_by_role("searchbox", name="Search products").fill("blue mug")
        page.get_by_role("searchbox", name="Search products").press("Enter")
        page.wait_for_url("**/index.html?q=blue+mug")
        assert recorder.poll(100)
        results = recorder.observation
        page.get_by_role("button", name="Add Blue Mug to cart").click()
        page.get_by_label("Sort by").select_option("price-asc")
        assert recorder.poll(100)
        page.context.close()
        assert not recorder.poll(10)
        recorder.finish()

    actions = [step.action for step in demo.recorder.steps]
    assert [a["type"] for a in actions] == ["click", "fill", "press", "click", "select", "done"]

    def ref(observation, role: str, name: str) -> str:
        return find(parse_snapshot(observation.snapshot), {"role": role, "name": name}).ref

    assert actions[0] == {"type": "click", "ref": ref(first, "button", "Accept all")}
    assert actions[1]["text"] == "blue mug" and actions[2]["key"] == "Enter"
    assert actions[1]["ref"] == actions[2]["ref"]
    assert actions[3] == {"type": "click", "ref": ref(results, "button", "Add Blue Mug to cart")}
    assert actions[4] == {"type": "select", "ref": ref(results, "combobox", "Sort by"), "value": "price-asc"}  # fmt: skip
    assert recorder.unresolved == 0
    steps = demo.recorder.steps
    assert steps[0].observation["url"] == "/shop/index.html"
    assert steps[3].observation["url"] == "/shop/index.html?q=blue+mug"
    assert all(step.screenshot and step.label == "good" for step in steps)
