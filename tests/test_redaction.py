"""One redaction for everything shown or stored for display: what it masks (property-based, with
secrets embedded in arbitrary text), what it leaves alone, and every place it is applied: the
report, the stored session argv, the terminal summary, logs, exports, the ``teach`` CLI's errors
and pytest's usage errors."""

from __future__ import annotations

import base64
import json
import logging
import string
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pytest_teach import open_store
from pytest_teach.export import export
from pytest_teach.recorder import EpisodeRecorder
from pytest_teach.redaction import (
    REDACTED,
    RedactingFilter,
    is_secret_name,
    redact,
    redact_argv,
    redact_logs,
    redact_url,
    redact_value,
)
from pytest_teach.store import new_id

from .conftest import store_dump

#: Examples per property (16 properties: 8,000 examples in all).
EXAMPLES = 500
PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

UPPER, LOWER, DIGITS = string.ascii_uppercase, string.ascii_lowercase, string.digits
ALNUM = UPPER + LOWER + DIGITS

# -- secrets, in the shapes real ones have -----------------------------------------------------


def _body(chars: str, min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """A key body as issued: random characters with at least one upper-case letter, one
    lower-case letter and one digit (true of real keys of these lengths)."""
    return st.builds(
        lambda rest, u, lo, d: rest[::2] + u + rest[1::2] + lo + d,
        st.text(alphabet=chars, min_size=min_size - 3, max_size=max_size - 3),
        st.sampled_from(UPPER),
        st.sampled_from(LOWER),
        st.sampled_from(DIGITS),
    )


def _prefixed(prefix: str, body: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return body.map(lambda b: prefix + b)


KEYS: dict[str, st.SearchStrategy[str]] = {
    "openai": _prefixed("sk-", _body(ALNUM, 40, 64)),
    "openai-project": _prefixed("sk-proj-", _body(ALNUM + "_-", 40, 160)),
    "anthropic": _prefixed("sk-ant-api03-", _body(ALNUM + "_-", 40, 100)),
    "huggingface": _prefixed("hf_", _body(ALNUM, 34, 34)),
    "aws-access-key-id": st.builds(
        lambda p, b: p + b,
        st.sampled_from(["AKIA", "ASIA"]),
        st.text(alphabet=UPPER + DIGITS, min_size=16, max_size=16),
    ),
    "github": st.builds(
        lambda p, b: p + b,
        st.sampled_from(["ghp_", "gho_", "ghs_", "ghu_", "ghr_"]),
        _body(ALNUM, 36, 36),
    ),
    "github-fine-grained": st.builds(
        lambda a, b: f"github_pat_{a}_{b}", _body(ALNUM, 22, 22), _body(ALNUM, 59, 59)
    ),
    "slack": st.builds(
        lambda kind, a, b, c: f"xox{kind}-{a}-{b}-{c}",
        st.sampled_from("abposr"),
        st.text(alphabet=DIGITS, min_size=10, max_size=13),
        st.text(alphabet=DIGITS, min_size=10, max_size=13),
        _body(ALNUM, 24, 32),
    ),
    "stripe": st.builds(
        lambda p, b: p + b,
        st.sampled_from(["sk_live_", "sk_test_", "rk_live_", "rk_test_"]),
        _body(ALNUM, 24, 99),
    ),
}

#: Values tied to a name by ``=``/``:``/an option: anything up to whitespace, a quote or a
#: delimiter of query strings and JSON (and, for options, not starting with ``-``).
VALUE = st.text(alphabet=ALNUM + "!#$%*+./:=?@^_|~-", min_size=8, max_size=40).filter(
    lambda v: not v.startswith("-")
)
#: Quoted values: anything but the quote, a backslash or a line break.
QUOTED = st.text(
    alphabet=st.characters(blacklist_characters="\"'\\\n\r", blacklist_categories=["Cs"]),
    min_size=8,
    max_size=40,
)
#: Values tied to a name by nothing but a space: credential-shaped (CREDENTIAL_SHAPE).
CREDENTIAL = st.one_of(
    st.builds(
        lambda a, d, b: a + d + b,
        st.text(alphabet=ALNUM + "_.~+/-", min_size=5, max_size=30),
        st.sampled_from(DIGITS),
        st.text(alphabet=ALNUM + "_.~+/-", max_size=30),
    ),
    _body(UPPER + LOWER, 16, 48).map(lambda s: s.replace("0", "x").replace("1", "y")),
)
PASSWORD = st.text(alphabet=ALNUM + "!$%&*+,;=:._~-", min_size=8, max_size=30)


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


#: (template, value strategy): the template's ``{}`` is where the secret stands.
NAMED: dict[str, tuple[list[str], st.SearchStrategy[str]]] = {
    "option": (
        [
            "--token {}",
            "--token={}",
            "--api-key {}",
            "--api_key={}",
            "--password {}",
            "--teach-secret {}",
            "--client-secret\t{}",
        ],
        VALUE,
    ),
    "key=value": (
        [
            "api_key={}",
            "OPENAI_API_KEY={}",
            "secret: {}",
            "password = {}",
            "x-api-key: {}",
            "aws_secret_access_key={}",
            "bearer={}",
            "Authorization: Bearer {}",
            "authorization: token {}",
            "/callback?access_token={}&page=2",
        ],
        VALUE,
    ),
    "quoted": (
        ['"token": "{}"', "{{'api_key': '{}'}}", '"password":"{}"', '\\"secret\\": \\"{}\\"'],
        QUOTED,
    ),
    "spaced": (
        ["token {}", "api-key {}", "password {}", "Bearer {}", "bearer  {}", "client_secret {}"],
        CREDENTIAL,
    ),
    "url-encoded": (["Bearer%20{}", "bearer+{}", "Authorization=Bearer%20{}"], VALUE),
}

#: Surrounding text: anything, and sometimes a letter or digit right before the secret.
BEFORE = st.one_of(
    st.text(max_size=30),
    st.builds(
        lambda t, g: t + g, st.text(max_size=30), st.text(alphabet=ALNUM, min_size=1, max_size=3)
    ),
)
AFTER = st.text(max_size=30)


def _assert_masked(text: str, secret: str, before: str, after: str) -> None:
    assume(secret not in before and secret not in after and secret not in REDACTED)
    out = redact(before + text + after)
    assert secret not in out, (before + text + after, out)


@pytest.mark.parametrize("shape", sorted(KEYS))
def test_a_key_never_comes_out_wherever_it_stands(shape: str) -> None:
    @PROPERTY
    @given(key=KEYS[shape], before=BEFORE, after=AFTER)
    def check(key: str, before: str, after: str) -> None:
        _assert_masked(key, key, before, after)

    check()


@pytest.mark.parametrize("shape", sorted(NAMED))
def test_a_named_value_never_comes_out(shape: str) -> None:
    templates, values = NAMED[shape]

    @PROPERTY
    @given(template=st.sampled_from(templates), value=values, before=BEFORE, after=AFTER)
    def check(template: str, value: str, before: str, after: str) -> None:
        assume(value not in template)
        _assert_masked(template.format(value), value, before, after)

    check()


def test_basic_credentials_never_come_out() -> None:
    @PROPERTY
    @given(
        template=st.sampled_from(["Basic {}", "Authorization: Basic {}", "basic%20{}", "Basic+{}"]),
        user=st.text(alphabet=ALNUM + "._-", min_size=1, max_size=12),
        password=PASSWORD,
        before=BEFORE,
        after=st.one_of(
            st.just(""), st.text(alphabet=" ,;\n", min_size=1).map(lambda s: s + "rest")
        ),
    )
    def check(template: str, user: str, password: str, before: str, after: str) -> None:
        encoded = _basic(user, password)
        _assert_masked(template.format(encoded), encoded, before, after)

    check()


def test_a_url_password_never_comes_out_and_the_user_stays() -> None:
    @PROPERTY
    @given(
        scheme=st.sampled_from(["https", "postgresql", "redis", "mongodb+srv", "s3"]),
        user=st.text(alphabet=ALNUM + "._~-", min_size=1, max_size=12),
        password=st.text(alphabet=ALNUM + "!$%&*+,;=:._~-", min_size=8, max_size=30),
        host=st.sampled_from(["api.internal", "db:5432", "10.0.0.7", "[::1]:6379"]),
        before=BEFORE,
        after=AFTER,
    )
    def check(scheme: str, user: str, password: str, host: str, before: str, after: str) -> None:
        assume(password not in f"{scheme}://{user}:" and password not in host)
        url = f"{scheme}://{user}:{password}@{host}/v1"
        _assert_masked(url, password, before, after)
        assert redact(url) == f"{scheme}://{user}:{REDACTED}@{host}/v1"

    check()


# -- ordinary text -----------------------------------------------------------------------------

#: Words and phrases next to the secret shapes that are not secrets.
NEAR_MISSES = [
    "tokens",
    "tokenizer",
    "tokenize(text)",
    "max_tokens=32",
    "token_count: 3",
    "prompt_tokens: 12",
    "--max-tokens 32",
    "--token-file tokens.txt",
    "password_reset_page",
    "the token budget is 4096",
    "enter your password below",
    "if token is None:",
    "def login(password):",
    "Bearer of bad news",
    "Basic instructions",
    "basic%20instructions",
    "the secret ingredient",
    "secretary",
    "keyboard monkey",
    "key: value",
    "auth: required",
    "ask the task-manager for a desk",
    "task-management-system-v2",
    "skill-set",
    "sk-short",
    "hf_hub_download",
    "gh_pages",
    "ghost_town",
    "AKIA",
    "xox",
    "user@example.com",
    "https://example.com/docs?page=2&sort=asc",
    "ssh://git@github.com/org/repo.git",
    "tests/test_app.py::test_login[chromium-1]",
    "10:30",
    "x = 1",
]
#: The last word of these names a secret: in ordinary text a plain word follows it.
_SECRETISH_TAIL = ("token", "secret", "password", "passwd", "key", "bearer", "basic", "credential")

ORDINARY_ITEM = st.one_of(
    st.sampled_from(NEAR_MISSES),
    st.text(alphabet=LOWER, min_size=1, max_size=12),
    st.text(alphabet=UPPER + LOWER, min_size=1, max_size=12),
    st.integers(0, 99_999).map(str),
    st.binary(min_size=20, max_size=20).map(lambda b: "commit " + b.hex()),
    st.uuids().map(lambda u: f"run {u}"),
)


@st.composite
def ordinary_text(draw: st.DrawFn) -> str:
    """Sentences of ordinary words, near misses, numbers, hashes and ids; a word that names a
    secret is followed by a plain word, as in prose."""
    items = draw(st.lists(ORDINARY_ITEM, max_size=30))
    seps = draw(st.lists(st.sampled_from([" ", ", ", ". ", "\n", " ("]), min_size=len(items)))
    out: list[str] = []
    for item, sep in zip(items, seps, strict=False):
        out.append(item + sep)
        if item.lower().endswith(_SECRETISH_TAIL):
            out.append("the ")
    return "".join(out)


@PROPERTY
@given(text=ordinary_text())
def test_ordinary_text_comes_out_unchanged(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_each_near_miss_is_left_alone(text: str) -> None:
    assert redact(text) == text


# -- the helpers -------------------------------------------------------------------------------


def test_the_leaks_that_were_reported() -> None:
    token = "Zq8vN3pL0wXy7RtK2mB5cD9eF1gH4jSa"
    text = (
        f"run tool --token {token} --api-key plainvalue0123 "
        f"failed at https://svc:{token}@api.internal for abcsk-proj-{token} "
        f"bearer={token} Bearer%20{token} token {token} api-key {token}"
    )
    out = redact(text)
    assert token not in out and "plainvalue0123" not in out
    assert out.count(REDACTED) == 8
    assert "https://svc:[REDACTED]@api.internal" in out


def test_text_whose_lower_case_is_longer_is_masked_too() -> None:
    text = f"İstanbul: --token {X} and Bearer {X} in `api_key = {X}`"
    assert len(text.lower()) != len(text)
    assert redact(text) == (
        "İstanbul: --token [REDACTED] and Bearer [REDACTED] in `api_key = [REDACTED]`"
    )


def test_redact_argv_masks_the_value_after_a_secret_option() -> None:
    argv = [
        "-q",
        "--token",
        "abc def",
        "--api-key=Y",
        "--password",
        "-v",
        "tests",
        "--max-tokens",
        "32",
    ]
    assert redact_argv(argv) == [
        "-q",
        "--token",
        REDACTED,
        "--api-key=[REDACTED]",
        "--password",
        "-v",
        "tests",
        "--max-tokens",
        "32",
    ]


def test_redact_url_keeps_user_host_and_path() -> None:
    assert (
        redact_url("postgresql://bob:p@ss:word@db:5432/app?sslmode=require&password=x")
        == "postgresql://bob:[REDACTED]@db:5432/app?sslmode=require&password=[REDACTED]"
    )
    assert redact_url("https://example.com/a?page=2") == "https://example.com/a?page=2"


def test_redact_value_masks_values_of_secret_keys() -> None:
    value = {
        "token": 123456,
        "meta": {"api_key": "k", "n": ["sk-abcdefghijklmnop0123"]},
        "ok": True,
    }
    assert redact_value(value) == {
        "token": REDACTED,
        "meta": {"api_key": REDACTED, "n": [REDACTED]},
        "ok": True,
    }


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("--api-key", True),
        ("OPENAI_API_KEY", True),
        ("x-api-key", True),
        ("client_secret", True),
        ("max_tokens", False),
        ("--token-file", False),
        ("tokenizer", False),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_a_log_record_is_masked_in_message_args_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("pytest_teach.test-redaction")
    redact_logs(log, log)
    assert sum(isinstance(f, RedactingFilter) for f in log.filters) == 1
    with caplog.at_level(logging.INFO, logger=log.name):
        log.info("calling %s with --token %s", "https://u:pw12345678@host", "abc123XYZ")
        try:
            raise RuntimeError("401 for api_key=sekrit-value")
        except RuntimeError:
            log.exception("failed")
    assert "pw12345678" not in caplog.text and "abc123XYZ" not in caplog.text
    assert "sekrit-value" not in caplog.text
    assert "https://u:[REDACTED]@host" in caplog.text


def test_the_product_loggers_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    import pytest_teach.agents._openai  # noqa: F401 - registers its logger's filter
    import pytest_teach.rewards  # noqa: F401

    with caplog.at_level(logging.INFO):
        logging.getLogger("pytest_teach.rewards").warning("worker said: --api-key %s", "Y0123456")
        logging.getLogger("pytest_teach.agents.openai").warning("retrying Bearer %s", "T0123456789")
    assert "Y0123456" not in caplog.text and "T0123456789" not in caplog.text


def test_uvicorn_access_lines_are_masked_and_keep_their_format() -> None:
    pytest.importorskip("fastapi")
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG
    from uvicorn.logging import AccessFormatter

    import pytest_teach.trainer._app  # noqa: F401 - registers the uvicorn filters

    uvicorn.Config(app=lambda *a: None, log_config=LOGGING_CONFIG)  # uvicorn's own dictConfig
    access = logging.getLogger("uvicorn.access")
    assert any(isinstance(f, RedactingFilter) for f in access.filters)
    record = access.makeRecord(
        access.name,
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/runs?token=abc123XYZ&page=2", "1.1", 200),
        None,
    )
    assert access.filter(record)
    line = AccessFormatter('%(client_addr)s "%(request_line)s" %(status_code)s').format(record)
    assert line == '127.0.0.1:5000 "GET /runs?token=[REDACTED]&page=2 HTTP/1.1" 200 OK'


# -- where it is applied -----------------------------------------------------------------------

X = "Zq8vN3pL0wXy7RtK2mB5cD9eF1gH4jSa"  # a 32-character bearer token
Y = "yv4lue0123456789"  # an api key without a known prefix


def test_report_and_stored_argv_never_show_the_secrets(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_addoption(parser):
            parser.addoption("--token")
            parser.addoption("--api-key")
        """
    )
    pytester.makepyfile(
        f"""
        def test_calls_the_tool(episode, request):
            token = request.config.getoption("token")
            episode.step("run tool --token " + token + " --api-key {Y}", "call")
            assert False, "upstream refused: https://svc:" + token + "@api.internal/v1"
        """
    )
    db = pytester.path / ".teach" / "experience.db"
    result = pytester.runpytest(
        "--collect-training-data",
        "-p",
        "no:cacheprovider",
        "--token",
        X,
        "--api-key",
        Y,
        "--teach-report=report.html",
    )
    result.assert_outcomes(failed=1)
    html = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert "run tool --token [REDACTED]" in html  # the observation is in the report, masked
    assert html.count(X) == 0 and html.count(Y) == 0
    teach_lines = [line for line in result.outlines if line.startswith("pytest-teach")]
    assert len(teach_lines) == 2 and not any(X in line for line in teach_lines)
    with open_store(db) as store:
        (session,) = store.sessions()
    argv = session["argv"]
    at = argv.index("--token")
    assert argv[at : at + 4] == ["--token", REDACTED, "--api-key", REDACTED]
    sessions = [line for line in store_dump(db) if 'INTO "sessions"' in line]
    assert sessions and not any(X in line or Y in line for line in sessions)


def test_recorded_steps_and_failures_never_store_a_key(pytester: pytest.Pytester) -> None:
    key = "sk-proj-" + X + "Q7"
    pytester.makepyfile(
        f"""
        def test_leaky_agent(episode):
            episode.step(
                {{"page": "settings", "shown": "{key}"}},
                "type(e3, {key})",
                messages=[{{"role": "assistant", "content": "use {key}"}}],
                valid_actions=["click(e1)", "type(e3, {key})"],
            )
            assert False, "the agent pasted {key} into the form"
        """
    )
    db = pytester.path / ".teach" / "experience.db"
    result = pytester.runpytest("--collect-training-data", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert not [line for line in store_dump(db) if key in line]
    with open_store(db) as store:
        (episode,) = store.episodes()
    step = episode.steps[0]
    assert step.observation == {"page": "settings", "shown": REDACTED}
    assert step.action == f"type(e3, {REDACTED})" and step.valid_actions[0] == "click(e1)"
    assert REDACTED in (episode.label_reason or "") and key not in (episode.error or "")


def test_terminal_summary_masks_secrets(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(episode): episode.step('o', 'a')")
    where = pytester.path / f"token={X}"
    result = pytester.runpytest(
        "--collect-training-data", "-p", "no:cacheprovider", "--teach-db", str(where / "s.db")
    )
    assert result.ret == 0
    summary = result.stdout.str()
    assert "episodes recorded" in summary and "token=[REDACTED]" in summary
    assert X not in summary


def test_usage_errors_mask_secrets(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest("--model", f"gpt-4 --api-key {Y}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--model: model spec*--api-key [[]REDACTED[]]*"])
    assert Y not in result.stderr.str()


def test_teach_cli_errors_mask_secrets(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pytest_teach.cli import cli

    where = tmp_path / f"password={X}" / "missing.db"
    result = CliRunner().invoke(cli, ["stats", "--db", str(where)])
    assert result.exit_code != 0
    assert "password=[REDACTED]" in result.output
    assert X not in result.output


def test_export_metadata_is_masked(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with open_store(path, create=True) as store:
        rec = EpisodeRecorder(enabled=True)
        rec.step("page", "click")
        episode = rec.build(
            episode_id=new_id(),
            nodeid="t.py::t",
            scenario="s",
            outcome="intervention",
            reason=f"401 with --token {X}",
            model="scripted:a",
            category="c",
        )
        episode = replace(episode, meta={"endpoint": f"https://svc:{X}@api.internal", "api_key": Y})
        store.write_episode(episode)
        export(store, "grpo", tmp_path / "grpo.jsonl")
        export(store, "interventions", tmp_path / "iv")
    row = json.loads((tmp_path / "grpo.jsonl").read_text(encoding="utf-8"))
    assert json.loads(row["meta"]) == {
        "api_key": REDACTED,
        "endpoint": "https://svc:[REDACTED]@api.internal",
    }
    written = (tmp_path / "iv" / "interventions.json").read_text(encoding="utf-8")
    assert "--token [REDACTED]" in written
    for text in (row["meta"], written):
        assert X not in text and Y not in text


def test_drained_output_is_redacted_even_when_a_secret_spans_two_reads() -> None:
    import os
    import threading

    from pytest_teach.redaction import drain_redacted

    key = "sk-proj-Zq8vX2kLmN4pQ7rT1uW9aB3cD5eF"
    read_fd, write_fd = os.pipe()
    out: list[bytes] = []
    reader = threading.Thread(target=drain_redacted, args=(read_fd, out.append))
    reader.start()
    os.write(write_fd, f"calling with {key[:12]}".encode())
    time.sleep(0.1)  # the reader sees the first half on its own
    os.write(write_fd, f"{key[12:]} done\nlast line without newline --token abc123def".encode())
    os.close(write_fd)
    reader.join(timeout=10)
    text = b"".join(out).decode()
    assert "calling with [REDACTED] done\n" in text
    assert text.endswith("--token [REDACTED]")
    assert key[:12] not in text and key[12:] not in text and "abc123def" not in text
