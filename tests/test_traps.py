"""What a new user trips on: scenario globs as users write them, an export of nothing, the
cache-miss hint, and the ARIA snapshot in the report."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_teach import open_store
from pytest_teach.cli import cli
from pytest_teach.export import export
from pytest_teach.recorder import EpisodeRecorder
from pytest_teach.report import build_report
from pytest_teach.store import Episode, new_id

from .conftest import REPO

SCENARIOS = [
    "tool_selection[weather-001]",
    "tool_selection[weather-002]",
    "tool_selection[calc-001]",
    "browser[shop-blue-mug]",
    "plain_check",
]


def _episode(scenario: str, outcome: str = "success", obs: object = "weather in Oslo?") -> Episode:
    rec = EpisodeRecorder(enabled=True)
    rec.step(obs, '{"tools": ["weather"]}')
    return rec.build(
        episode_id=new_id(),
        nodeid=f"t.py::{scenario}",
        scenario=scenario,
        outcome=outcome,
        reason="wrong tool" if outcome == "intervention" else None,
        model="scripted:oracle",
        category="research",
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "experience.db"
    with open_store(path, create=True) as store:
        for name in SCENARIOS:
            store.write_episode(_episode(name))
    return path


def teach(*args: str):
    return CliRunner().invoke(cli, list(args))


# -- scenario globs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("weather-*", {"tool_selection[weather-001]", "tool_selection[weather-002]"}),
        ("weather-00?", {"tool_selection[weather-001]", "tool_selection[weather-002]"}),
        ("calc-001", {"tool_selection[calc-001]"}),
        ("tool_selection", set(SCENARIOS[:3])),
        (
            "tool_selection[weather-*",
            {"tool_selection[weather-001]", "tool_selection[weather-002]"},
        ),
        ("tool_selection[calc-001]", {"tool_selection[calc-001]"}),
        ("*mug*", {"browser[shop-blue-mug]"}),
        ("plain_*", {"plain_check"}),
        ("eather-*", set()),  # a glob, not a substring search
        ("[weather-001]", set()),  # brackets are literal: no such whole name
    ],
)
def test_scenario_globs_match_names_as_users_write_them(
    db: Path, pattern: str, expected: set[str]
) -> None:
    with open_store(db) as store:
        assert {e.scenario for e in store.episodes(scenario=pattern)} == expected
        assert store.count(scenario=pattern) == len(expected)


def test_export_by_case_id_glob(db: Path, tmp_path: Path) -> None:
    """The README's `teach export --scenario 'weather-*'` finds the weather scenarios."""
    out = tmp_path / "train.jsonl"
    r = teach("export", "--db", str(db), "--format", "openai", "-o", str(out), "--scenario",
              "weather-*")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"wrote 2 rows to {out}")
    assert len(out.read_text().splitlines()) == 2


def test_an_empty_export_is_one_error_line_and_writes_nothing(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "train.jsonl"
    out.parent.mkdir()
    out.write_text("the user's own file\n")
    r = teach("export", "--db", str(db), "--format", "openai", "-o", str(out), "--scenario",
              "wether-*")  # fmt: skip
    assert r.exit_code != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"teach export: error: nothing written to {out}: ")
    assert "no scenario matches 'wether-*'; the nearest: tool_selection[weather-001]" in lines[0]
    assert "--allow-empty" in lines[0]
    assert out.read_text() == "the user's own file\n"
    assert [p.name for p in out.parent.iterdir()] == ["train.jsonl"]  # no temporary file left

    # a directory format, and filters that exclude everything
    iv = tmp_path / "iv"
    r = teach("export", "--db", str(db), "--format", "interventions", "-o", str(iv), "--label",
              "intervention")  # fmt: skip
    assert r.exit_code != 0 and not iv.exists()
    assert "no episode matches the filters (label=intervention" in r.stderr

    # episodes match, but the format has no row for them (no bad step: no DPO pair)
    r = teach("export", "--db", str(db), "--format", "dpo", "-o", str(tmp_path / "d.jsonl"))
    assert r.exit_code != 0 and "5 episode(s) match the filters but give no dpo rows" in r.stderr
    assert not (tmp_path / "d.jsonl").exists()


def test_allow_empty_writes_an_empty_export(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "none.jsonl"
    r = teach("export", "--db", str(db), "--format", "openai", "-o", str(out), "--scenario",
              "nothing-*", "--allow-empty")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"wrote 0 rows to {out}") and out.read_text() == ""
    iv = tmp_path / "iv"
    r = teach("export", "--db", str(db), "--format", "interventions", "-o", str(iv), "--label",
              "intervention", "--allow-empty")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads((iv / "manifest.json").read_text())["counts"]["total"] == 0


def test_the_library_export_still_writes_empty_files_by_default(db: Path, tmp_path: Path) -> None:
    with open_store(db) as store:
        result = export(store, "openai", tmp_path / "x.jsonl", scenario="nothing-*")
    assert result.rows == 0 and result.path.read_text() == ""


def test_closest_scenarios() -> None:
    from pytest_teach.export import closest_scenarios

    assert closest_scenarios("wether-00*", SCENARIOS) == [
        "tool_selection[weather-001]",
        "tool_selection[weather-002]",
    ]
    assert closest_scenarios("tool_selecton[calc-001]", SCENARIOS)[0] == "tool_selection[calc-001]"
    assert closest_scenarios("zzz", SCENARIOS) == []
    assert len(closest_scenarios("tool_selection[*", SCENARIOS * 2)) == 3


# -- the cache-miss hint names the flag ----------------------------------------------------------


def test_cache_miss_names_the_flag_to_type(pytester: pytest.Pytester) -> None:
    """A replay miss tells the user what to type: `--teach-cache record`."""
    db = pytester.path / "replay.db"
    pytester.runpytest_subprocess(
        str(REPO / "scenarios" / "tool_selection"), "-k", "weather-001", "--collect-training-data",
        "--teach-db", str(db), "--model", "openai:gpt-4o-mini", "--teach-cache", "replay",
        "-o", f"teach_cache_dir={pytester.path / 'cache'}", "-p", "no:cacheprovider", "-q",
    )  # fmt: skip
    (missed,) = open_store(db).episodes()
    error = missed.steps[0].error
    assert missed.outcome == "error" and error["type"] == "model_cache_miss"
    assert "run the suite with --teach-cache record against the live model" in error["message"]
    assert "cache='record'" not in json.dumps(error)


# -- the ARIA snapshot in the report -------------------------------------------------------------

SNAPSHOT = (
    "- generic [ref=e1]:\n"
    '  - button "Accept <b>cookies</b>" [ref=e2]\n'
    '  - link "Learn more" [ref=e3]:\n'
    "    - /url: /about?token=sk-proj-AbCdEf0123456789xyzXYZ\n"
)


def _observation_blocks(page: str) -> list[str]:
    return re.findall(r'<pre class="observation">(.*?)</pre>', page, flags=re.S)


def test_report_shows_the_aria_snapshot_as_a_tree() -> None:
    obs = {"url": "/shop", "title": "Shop & more", "snapshot": SNAPSHOT, "scroll": [0, 120]}
    page = build_report([_episode("browser[shop-cookies]", "intervention", obs=obs)])
    (raw,) = _observation_blocks(page)
    assert "\\n" not in raw  # no JSON string with escaped newlines
    assert "<b>" not in raw and "&lt;b&gt;cookies&lt;/b&gt;" in raw  # escaped
    assert "sk-proj" not in raw and "[REDACTED]" in raw  # redacted
    text = html.unescape(raw)
    assert text.splitlines() == [
        "url: /shop",
        "title: Shop & more",
        "snapshot:",
        "  - generic [ref=e1]:",
        '    - button "Accept <b>cookies</b>" [ref=e2]',
        '    - link "Learn more" [ref=e3]:',
        "      - /url: /about?token=[REDACTED]",
        "scroll: [0, 120]",
    ]


def test_report_keeps_json_for_values_without_multiline_text() -> None:
    obs = {"city": "Zürich", "tools": ["weather"]}
    (raw,) = _observation_blocks(build_report([_episode("t[x]", "intervention", obs=obs)]))
    assert json.loads(html.unescape(raw)) == obs


def test_aria_tree_survives_truncation_markers() -> None:
    long_snapshot = "".join(f"- listitem [ref=e{i}]: item {i}\n" for i in range(2000))
    obs = {"url": "/docs", "snapshot": long_snapshot}
    (raw,) = _observation_blocks(build_report([_episode("b[y]", "intervention", obs=obs)]))
    text = html.unescape(raw)
    assert text.startswith("url: /docs\nsnapshot:\n  - listitem [ref=e0]: item 0\n")
    assert "more characters]" in text and "\\n" not in raw
