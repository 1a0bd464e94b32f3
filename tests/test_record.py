"""`teach record`: a scripted demonstration lands in the store as good steps, a step correction
turns it into SFT and DPO rows that `datasets` loads, and a person's clicks are captured, in a
real headed Chromium window on Xvfb too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_teach import open_store
from pytest_teach.cli import cli
from pytest_teach.envs import browser as br
from pytest_teach.envs.browser import (
    Demonstration,
    InteractiveRecorder,
    ScriptError,
    find,
    load_script,
    parse_snapshot,
    record_to_store,
)
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
    return CliRunner().invoke(cli, ["record", *args])


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


def test_record_to_store_checks_before_writing(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "experience.db"
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ValueError, match=r"^no display for a browser window"):
        record_to_store("shop", "t", db)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"type": "hover", "ref": "e1"}]')
    with pytest.raises(ScriptError, match="action #1: unknown action type 'hover'"):
        record_to_store("shop", "t", db, headless=True, script=bad)
    with pytest.raises(ScriptError, match="cannot import 'no_such_module_x'"):
        record_to_store("shop", "t", db, headless=True, drive="no_such_module_x:person")
    assert not db.exists()


@needs_chromium
def test_record_to_store_saves_a_scripted_demonstration(tmp_path: Path, script: Path) -> None:
    db = tmp_path / "experience.db"
    episode = record_to_store(
        "shop", TASK, db, headless=True, script=script, start="/shop/index.html"
    )
    store = open_store(db)
    (stored,) = store.episodes()
    assert stored.id == episode.id and stored.params == {"site": "shop", "start": "index.html"}
    (session,) = store.sessions()
    assert session["id"] == stored.session_id and session["argv"][:4] == [
        "teach",
        "record",
        "--site",
        "shop",
    ]
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps([{"type": "click", "role": "button", "name": "Buy now"}]))
    with pytest.raises(ScriptError, match=r'^script action #1: no button "Buy now"'):
        record_to_store("shop", TASK, db, headless=True, script=missing)
    assert len(list(open_store(db).episodes())) == 1


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


# -- headed, in a real window on a virtual X display -------------------------------------------

XVFB = shutil.which("Xvfb")
needs_xvfb = pytest.mark.skipif(
    XVFB is None,
    reason="neither Xvfb nor xvfb-run is installed (apt-get install xvfb, or make browser): "
    "the headed-window test needs a display",
)

#: Plays the person in the test below: real mouse clicks at the elements' centres and real key
#: presses, through the headed page's input pipeline. Before acting it notes how the browser
#: runs (user agent, window chrome, the Chromium processes on this display).
DRIVER = textwrap.dedent(
    """
    import json, os
    from pathlib import Path

    def _centre(page, role, name):
        box = page.get_by_role(role, name=name).bounding_box()
        return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def _chromium_on_this_display():
        display = ("DISPLAY=" + os.environ["DISPLAY"]).encode()
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\\0")
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\\0")
            except OSError:
                continue
            if display in environ and "chrom" in os.path.basename(argv[0]):
                found.append(argv)
        return found

    def person(page):
        seen = page.evaluate(
            "() => ({ua: navigator.userAgent, outer: window.outerHeight, inner: window.innerHeight})"
        )
        seen["processes"] = _chromium_on_this_display()
        Path(os.environ["TEACH_TEST_SEEN"]).write_text(json.dumps(seen))
        page.mouse.click(*_centre(page, "button", "Accept all"))
        yield
        page.mouse.click(*_centre(page, "searchbox", "Search products"))
        page.keyboard.type("blue mug", delay=15)
        page.keyboard.press("Enter")
        page.wait_for_url("**/index.html?q=blue+mug")
        yield
        page.mouse.click(*_centre(page, "button", "Add Blue Mug to cart"))
        yield
    """
)


@pytest.fixture
def display() -> Iterator[str]:
    """A fresh Xvfb on a display number it picks itself (-displayfd); always stopped."""
    read, write = os.pipe()
    server = subprocess.Popen(
        [XVFB, "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        with os.fdopen(read) as numbers:
            number = numbers.readline().strip()
        assert number.isdigit(), f"Xvfb did not report a display (exit {server.poll()})"
        yield f":{number}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@needs_chromium
@needs_xvfb
def test_headed_record_under_xvfb_with_real_input(tmp_path: Path, display: str) -> None:
    (tmp_path / "person_at_window.py").write_text(DRIVER)
    db, seen = tmp_path / "experience.db", tmp_path / "seen.json"
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "DISPLAY": display, "PYTHONPATH": path, "TEACH_TEST_SEEN": str(seen)}
    env.pop("WAYLAND_DISPLAY", None)
    argv = ["record", "--site", "shop", "--task", TASK, "--db", str(db), "--drive", "person_at_window:person"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "pytest_teach.cli", *argv], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    episode_id = done.stdout.strip()

    # the browser ran in a window on this display, not headless
    browser = json.loads(seen.read_text())
    assert "Chrome/" in browser["ua"] and "HeadlessChrome" not in browser["ua"]
    assert browser["outer"] > browser["inner"]  # a window with the browser's own toolbar
    assert browser["processes"], "no Chromium process found on the Xvfb display"
    assert not any(arg.startswith("--headless") for argv in browser["processes"] for arg in argv)

    # the listener captured the real clicks and typing, each against the page it was done on
    store = open_store(db)
    (episode,) = store.episodes()
    assert episode.id == episode_id and episode.meta["source"] == "driver"
    actions = [step.action for step in episode.steps]
    assert [a["type"] for a in actions] == ["click", "fill", "press", "click", "done"]
    assert actions[1]["text"] == "blue mug" and actions[2]["key"] == "Enter"
    targets = [("button", "Accept all"), ("searchbox", "Search products"),
               ("searchbox", "Search products"), ("button", "Add Blue Mug to cart")]  # fmt: skip
    for step, (role, name) in zip(episode.steps, targets, strict=False):
        nodes = parse_snapshot(step.observation["snapshot"])
        assert find(nodes, {"role": role, "name": name}).ref == step.action["ref"]
    assert episode.steps[3].observation["url"] == "/shop/index.html?q=blue+mug"
    assert "Cart (1)" in episode.steps[-1].observation["snapshot"]

    # and the demonstration exports as chat rows
    out = tmp_path / "demo.jsonl"
    exported = CliRunner().invoke(cli, ["export", "--db", str(db), "--format", "sft", "-o", str(out)])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [json.loads(row["messages"][-1]["content"]) for row in rows] == actions


@pytest.mark.parametrize(
    "args, message",
    [
        (["--drive", "nodots"], "--drive 'nodots': expected MODULE:FUNCTION"),
        (["--drive", "no_such_module_x:person"], "cannot import 'no_such_module_x'"),
        (["--drive", "json:person"], "json has no function 'person'"),
        (["--drive", "json:loads", "--script", "x.json"], "--script and --drive both play"),
    ],
)
def test_bad_driver_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    db = tmp_path / "experience.db"
    result = record("--site", "shop", "--task", "t", "--db", str(db), "--headless", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not db.exists()
