"""The stories family: parsing replies, the scripted baselines on every intent, checks that catch
real defects, the generators, and the `stories` export of a recorded run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_teach import open_store
from pytest_teach.agents import POOL_SLOT as SLOT
from pytest_teach.agents import Agent, ModelCallError, parse_model_spec
from pytest_teach.cli import cli
from pytest_teach.envs import browser as br
from pytest_teach.envs import stories as st
from pytest_teach.envs.stories import _page as st_page
from pytest_teach.export._stories import MIN_REWARD_GAP

from .conftest import CHROMIUM, NO_BROWSER, REPO, needs_chromium

SUITE = str(REPO / "scenarios" / "stories")
ACCESSIBLE = st.scripted_generator("accessible")
DIV_SOUP = st.scripted_generator("div-soup")


def agent(spec: str) -> Agent:
    return Agent(parse_model_spec(spec))


# -- one page for the module: sync Playwright can't run twice at once in one process ----------


@pytest.fixture(scope="module")
def page():
    if NO_BROWSER is not None:
        pytest.skip(NO_BROWSER)
    with br.launch_browser(CHROMIUM) as running:
        story_page = running.new_page()
        yield story_page


def failed(result: st.StoryResult) -> set[str]:
    return {check.check for check in result.failures}


# -- the prompt and parsing --------------------------------------------------------------------


def test_intents_cover_the_issue() -> None:
    ids = set(st.INTENTS_BY_ID)
    assert len(st.INTENTS) >= 12 and len(ids) == len(st.INTENTS)
    assert {"button", "toggle-switch", "card", "dialog", "tabs", "form-field-error"} <= ids
    assert {"nav-menu", "accordion"} <= ids
    messages = st.story_messages(st.INTENTS_BY_ID["dialog"])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "```html" in messages[0]["content"] and "Escape" in messages[1]["content"]


@pytest.mark.parametrize(
    "reply, html",
    [
        ("```html\n<button>Save</button>\n```", "<button>Save</button>"),
        ("  ```HTML\n<p>a</p>\n<p>b</p>\n```\n", "<p>a</p>\n<p>b</p>"),
        ("<nav><a href='/'>Home</a></nav>", "<nav><a href='/'>Home</a></nav>"),
        ("\n<!doctype html><html lang='en'></html>\n", "<!doctype html><html lang='en'></html>"),
    ],
)
def test_parse_html_accepts_one_snippet(reply: str, html: str) -> None:
    assert st.parse_html(reply) == html


@pytest.mark.parametrize(
    "reply, message",
    [
        ("", "empty reply"),
        ("Here you go:\n```html\n<b>x</b>\n```", "neither a ```html fenced block nor raw HTML"),
        ("```js\nalert(1)\n```", "must be tagged html"),
        ("```html\n<b>x</b>\n```\n```html\n<i>y</i>\n```", "more than one fenced block"),
        ("```html\n<b>x</b>", "unterminated"),
        ("```html\n```", "is empty"),
        ("<b>x</b> and that's it", "must start with '<' and end with '>'"),
        ("Sorry, I can't help with that.", "neither"),
    ],
)
def test_parse_html_rejects_anything_else(reply: str, message: str) -> None:
    with pytest.raises(st.StoryParseError) as info:
        st.parse_html(reply)
    assert message in str(info.value)


# -- the baselines on every intent --------------------------------------------------------------


@needs_chromium
@pytest.mark.parametrize("intent", st.INTENTS, ids=[i.id for i in st.INTENTS])
def test_accessible_passes_and_div_soup_fails(page, intent: st.Intent) -> None:
    good = st.check_story(page, intent, ACCESSIBLE.generate(intent).html)
    assert good.passed, good.message
    assert good.reward.value >= 0.9 and not good.violations
    assert set(good.reward.components) == set(st.COMPONENTS)
    bad = st.check_story(page, intent, DIV_SOUP.generate(intent).html)
    assert not bad.passed
    assert bad.reward.value <= good.reward.value - 0.4, bad.to_dict()
    assert bad.reward.components["semantics"] <= 0.25 and bad.reward.components["keyboard"] <= 0.5
    assert bad.reward.value > 0  # partial credit: axe and the visible content


@needs_chromium
def test_result_is_deterministic_and_json_ready(page) -> None:
    intent = st.INTENTS_BY_ID["tabs"]
    html = ACCESSIBLE.html_for(intent)
    first, second = st.check_story(page, intent, html), st.check_story(page, intent, html)
    assert first.to_dict() == second.to_dict()
    data = json.loads(json.dumps(first.to_dict()))
    assert data["weights"] == st.REWARD_WEIGHTS and data["passed"] is True
    assert {c["component"] for c in data["checks"]} == {"semantics", "keyboard", "assertions"}
    soup = st.check_story(
        page, st.INTENTS_BY_ID["card"], DIV_SOUP.html_for(st.INTENTS_BY_ID["card"])
    )
    assert {"id": "image-alt", "impact": "critical"}.items() <= soup.violations[0].items()
    assert "image-alt (critical)" in soup.message


# -- checks that catch defects -----------------------------------------------------------------

TOGGLE_WITHOUT_STATE = """\
<button type="button" id="t">Dark mode</button>
<script>document.getElementById("t").onclick = (e) => e.target.classList.toggle("on");</script>"""

DIALOG_WITHOUT_ESCAPE = """\
<button type="button" id="open">Delete file</button>
<div role="dialog" aria-modal="true" aria-labelledby="title" id="dlg" hidden>
  <h2 id="title">Delete file?</h2><p>report.pdf will be deleted.</p>
  <button type="button" id="cancel">Cancel</button><button type="button">Delete</button>
</div>
<script>
const opener = document.getElementById("open"), dialog = document.getElementById("dlg");
opener.onclick = () => { dialog.hidden = false; document.getElementById("cancel").focus(); };
document.getElementById("cancel").onclick = () => { dialog.hidden = true; opener.focus(); };
</script>"""

DIALOG_WITH_ESCAPE = DIALOG_WITHOUT_ESCAPE.replace(
    "</script>",
    'dialog.addEventListener("keydown", (e) => { if (e.key === "Escape") '
    "{ dialog.hidden = true; opener.focus(); } });\n</script>",
)

FAKE_DISABLED = """\
<label for="title">Post title</label><input id="title">
<button type="button" class="disabled" id="publish">Publish</button>
<p role="status" id="out"></p>
<script>
document.getElementById("publish").onclick = () => {
  document.getElementById("out").textContent = "Published";
};
</script>"""

ARIA_DISABLED = """\
<label for="title">Post title</label><input id="title">
<button type="button" aria-disabled="true" id="publish">Publish</button>
<p role="status" id="out"></p>
<script>
const title = document.getElementById("title"), publish = document.getElementById("publish");
title.oninput = () => publish.setAttribute("aria-disabled", String(!title.value.trim()));
publish.onclick = () => {
  if (publish.getAttribute("aria-disabled") === "true") return;
  document.getElementById("out").textContent = "Published";
};
</script>"""

TABS_WITHOUT_ARROWS = (
    st.scripted_generator("accessible")
    .html_for(st.INTENTS_BY_ID["tabs"])
    .replace('tab.addEventListener("keydown"', 'tab.addEventListener("x-never"')
)

ERROR_NOT_TIED = """\
<label for="email">Email</label>
<input type="email" id="email" value="not-an-email" required aria-invalid="true">
<p>Enter a valid email address</p>"""


@needs_chromium
def test_toggle_without_a_state_fails_semantics_and_keyboard(page) -> None:
    result = st.check_story(page, st.INTENTS_BY_ID["toggle-switch"], TOGGLE_WITHOUT_STATE)
    assert not result.passed
    assert (
        "its on/off state is exposed (aria-checked, aria-pressed or a native checkbox)"
        in failed(result)
    )
    assert {"Space turns it on", "it is off at first"} <= failed(result)
    assert "Tab focuses the switch" not in failed(result)  # a real button: focusable
    assert result.reward.components["keyboard"] < 1 and result.reward.components["semantics"] < 1


@needs_chromium
def test_dialog_that_ignores_escape_fails_keyboard_only(page) -> None:
    intent = st.INTENTS_BY_ID["dialog"]
    result = st.check_story(page, intent, DIALOG_WITHOUT_ESCAPE)
    assert not result.passed
    assert failed(result) == {
        "Escape closes the dialog",
        "closing returns focus to 'Delete file'",
    }, result.message
    assert result.reward.components["semantics"] == 1.0
    assert result.reward.components["keyboard"] < 1.0
    fixed = st.check_story(page, intent, DIALOG_WITH_ESCAPE)  # a div dialog done right passes
    assert fixed.passed, fixed.message


@needs_chromium
def test_disabled_button_that_still_works_fails_states(page) -> None:
    intent = st.INTENTS_BY_ID["disabled-button"]
    result = st.check_story(page, intent, FAKE_DISABLED)
    assert not result.passed
    assert {
        "the button is exposed as disabled while the title is empty",
        "clicking it while disabled does nothing",
        "Enter and Space do nothing while it is disabled",
    } <= failed(result), result.message
    assert result.reward.components["assertions"] <= 0.6
    aria = st.check_story(page, intent, ARIA_DISABLED)  # focusable aria-disabled, done right
    assert aria.passed, aria.message


@needs_chromium
def test_more_defects_are_caught(page) -> None:
    tabs = st.check_story(page, st.INTENTS_BY_ID["tabs"], TABS_WITHOUT_ARROWS)
    assert "ArrowRight moves focus to 'Specs'" in failed(tabs)
    field = st.check_story(page, st.INTENTS_BY_ID["form-field-error"], ERROR_NOT_TIED)
    assert failed(field) == {
        "the error message is tied to it (aria-describedby or aria-errormessage)"
    }
    broken = ACCESSIBLE.html_for(st.INTENTS_BY_ID["button"]) + "<script>missing();</script>"
    errors = st.check_story(page, st.INTENTS_BY_ID["button"], broken)
    assert failed(errors) == {"no uncaught script errors"}
    assert "missing is not defined" in errors.message


@needs_chromium
def test_each_check_starts_from_a_fresh_page(page) -> None:
    intent = st.INTENTS_BY_ID["button"]
    html = """\
<button type="button" id="save">Save changes</button>
<p role="status" id="status"></p>
<img src="http://stories.invalid/logo.png" alt="">
<script>
const status = document.getElementById("status");
let saves = 0;
document.getElementById("save").addEventListener("click", () => {
  saves += 1;
  status.textContent = saves === 1 ? "Saved" : "Saved again";
});
</script>"""
    # top-level const/let would collide, and a second click count would differ, if the
    # window survived between checks
    results = [st.check_story(page, intent, html) for _ in range(3)]
    assert all(r.passed for r in results), results[-1].message
    assert len({json.dumps(r.to_dict()) for r in results}) == 1


@needs_chromium
def test_leaving_the_page_fails_the_same_way_every_time(page) -> None:
    intent = st.INTENTS_BY_ID["search-field"]
    leaky = ACCESSIBLE.html_for(intent).replace("event.preventDefault();", "")
    popup = ACCESSIBLE.html_for(st.INTENTS_BY_ID["button"]).replace(
        'status.textContent = "Saved";', 'window.open("about:blank?saved");'
    )
    results = [st.check_story(page, intent, leaky) for _ in range(2)]
    assert results[0].to_dict() == results[1].to_dict()
    assert failed(results[0]) == {
        "typing and Enter show 'Results for \"mugs\"' without leaving the page"
    }
    assert "the story left the page" in results[0].message
    opened = st.check_story(page, st.INTENTS_BY_ID["button"], popup)
    assert "the story left the page" in opened.message and len(page.context.pages) == 1
    assert st.check_story(page, intent, ACCESSIBLE.html_for(intent)).passed


@needs_chromium
def test_a_runaway_script_is_stopped_and_the_page_recovers(
    page, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(st_page, "CHECK_DEADLINE_S", 0.5)
    intent = st.INTENTS_BY_ID["button"]
    good = ACCESSIBLE.html_for(intent)
    while_loading = st.check_story(page, intent, good + "<script>while (true) {}</script>")
    assert not while_loading.passed and while_loading.reward.value == 0.0
    assert "a script ran away" in while_loading.message
    on_enter = st.check_story(
        page, intent, good.replace('status.textContent = "Saved";', "while (true) {}")
    )
    assert failed(on_enter) == {"Enter shows 'Saved' in the status region", "no script runs away"}
    assert st.check_story(page, intent, good).passed


@needs_chromium
def test_empty_html_scores_zero_and_unknown_intents_are_refused(page) -> None:
    result = st.check_story(page, st.INTENTS_BY_ID["card"], "")
    assert not result.passed and result.reward.value == 0.0
    assert "no HTML to check" in result.message
    stranger = st.Intent("carousel", "Carousel", "A carousel.", roles=("region",))
    with pytest.raises(ValueError, match="no story check for intent 'carousel'"):
        st.check_story(page, stranger, "<div></div>")


# -- generators --------------------------------------------------------------------------------


def test_generator_for_maps_specs(tmp_path: Path) -> None:
    assert isinstance(st.generator_for(agent("scripted:accessible")), st.ScriptedGenerator)
    with pytest.raises(ValueError, match="valid names: 'accessible', 'div-soup'"):
        st.generator_for(agent("scripted:oracle"))
    reply = tmp_path / "reply.txt"
    reply.write_text("```html\n<button>Save changes</button>\n```", encoding="utf-8")
    generator = st.generator_for(agent(f"replay:{reply}"))
    assert isinstance(generator, st.LLMGenerator)
    gen = generator.generate(st.INTENTS_BY_ID["button"])
    assert gen.html == "<button>Save changes</button>" and gen.error is None
    assert gen.messages[-1] == {"role": "assistant", "content": reply.read_text()}
    assert gen.messages[:-1] == st.story_messages(st.INTENTS_BY_ID["button"])


def test_llm_generator_calls_the_model_once_and_never_raises_on_bad_output() -> None:
    generator = st.generator_for(agent("replay:@pool"))
    intent = st.INTENTS_BY_ID["alert"]
    try:
        SLOT.arm("I would use a div with role alert.")
        gen = generator.generate(intent)
        assert SLOT.calls == 1
        assert gen.html == "" and gen.error["type"] == "unparseable_output"
        assert "neither a ```html fenced block" in gen.error["message"]
        assert gen.messages[-1]["content"] == "I would use a div with role alert."
        SLOT.arm(None)
        with pytest.raises(ModelCallError):
            generator.generate(intent)
    finally:
        SLOT.arm(None)


def test_scripted_replies_parse_back() -> None:
    for intent in st.INTENTS:
        for generator in (ACCESSIBLE, DIV_SOUP):
            gen = generator.generate(intent)
            assert st.parse_html(gen.text) == gen.html == generator.html_for(intent).strip()
            assert gen.messages[-1] == {"role": "assistant", "content": gen.text}


# -- the recorded suite and the `stories` export ----------------------------------------------


def teach(*args: str):
    return CliRunner().invoke(cli, list(args))


@needs_chromium
def test_recorded_run_exports_trajectories_and_preferences(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    db = tmp_path / "experience.db"
    result = pytester.runpytest_subprocess(
        SUITE, "-p", "no:cacheprovider", "-q", "--tb=no", "--collect-training-data",
        "--teach-db", str(db), "--ab", "scripted:accessible,scripted:div-soup",
    )  # fmt: skip
    result.assert_outcomes(passed=len(st.INTENTS), failed=len(st.INTENTS))
    episodes = list(open_store(db).episodes())
    assert {e.category for e in episodes} == {"story"}
    assert {e.scenario for e in episodes} == {f"stories[{i.id}]" for i in st.INTENTS}

    out = tmp_path / "exports" / "stories"
    for _ in range(2):  # a second export replaces the directory in one rename
        r = teach("export", "--db", str(db), "--format", "stories", "-o", str(out))
        assert r.exit_code == 0, r.output
        assert f"wrote {2 * len(st.INTENTS)} story runs" in r.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["stories"]
    assert sorted(p.name for p in out.iterdir()) == [
        "dpo-preferences.jsonl", "manifest.json", "trajectories.jsonl",
    ]  # fmt: skip

    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * len(st.INTENTS)
    for row in rows:
        intent = st.INTENTS_BY_ID[row["intent"]]
        assert row["messages"][:-1] == st.story_messages(intent)
        assert row["messages"][-1]["role"] == "assistant"
        story = row["storyResult"]
        assert story["intent"] == intent.id and story["reward"] == row["reward"]
        assert set(story["components"]) == set(st.COMPONENTS)
        assert story["weights"] == st.REWARD_WEIGHTS and story["checks"]
        assert story["passed"] is row["passed"] is (row["model"] == "scripted:accessible")

    pairs = [json.loads(line) for line in (out / "dpo-preferences.jsonl").read_text().splitlines()]
    assert len(pairs) == len(st.INTENTS)
    rewards = {(r["intent"], r["messages"][-1]["content"]): r["reward"] for r in rows}
    for pair in pairs:
        assert set(pair) == {"prompt", "chosen", "rejected"}
        (intent,) = [i for i in st.INTENTS if pair["prompt"] == st.story_messages(i)]
        assert pair["chosen"] == [
            {"role": "assistant", "content": ACCESSIBLE.generate(intent).text}
        ]
        assert pair["rejected"] == [
            {"role": "assistant", "content": DIV_SOUP.generate(intent).text}
        ]
        gap = (
            rewards[intent.id, pair["chosen"][0]["content"]]
            - rewards[intent.id, pair["rejected"][0]["content"]]
        )
        assert gap >= MIN_REWARD_GAP

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {
        "trajectories": 2 * len(st.INTENTS), "passed": len(st.INTENTS),
        "pairs": len(st.INTENTS), "intents": len(st.INTENTS),
    }  # fmt: skip
    assert manifest["sources"]["db"] == str(db)

    only_good = tmp_path / "good"
    r = teach("export", "--db", str(db), "--format", "stories", "-o", str(only_good),
              "--model", "scripted:accessible")  # fmt: skip
    assert r.exit_code == 0 and (only_good / "dpo-preferences.jsonl").read_text() == ""


def test_stories_export_without_story_episodes_is_one_error_line(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    open_store(db, create=True)
    out = tmp_path / "out"
    r = teach("export", "--db", str(db), "--format", "stories", "-o", str(out))
    assert r.exit_code != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("teach export: error: no story episodes to export in ")
    assert "pytest scenarios/stories --collect-training-data" in lines[0]
    assert not out.exists()


def test_importing_the_family_is_light() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import sys, pytest_teach.envs.stories, pytest_teach.export; "
        "print(any(m.split('.')[0] in ('playwright', 'axe_playwright_python') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})  # fmt: skip
    assert out.stdout.strip() == "False"
    assert sorted(st.__all__) == sorted(set(st.__all__))
