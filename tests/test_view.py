"""`teach view`: the viewer over HTTP, served by a real uvicorn on a free 127.0.0.1 port.

The A/B store comes from a real pytest run of the bundled tool-selection suite under
``--ab scripted:noisy-0.3,scripted:oracle``; a second, small store is written through the store's
API with hostile strings, probabilities, a screenshot and live-predictor scores. Every server is
stopped.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_teach.export import export, reply_of, text_of
from pytest_teach.store import Episode, Step, Store, new_id

from .conftest import REPO

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from pytest_teach.serve import bind_socket  # noqa: E402
from pytest_teach.view import CSP, ViewerError, check_bind, create_app  # noqa: E402

SUITE = str(REPO / "scenarios" / "tool_selection")
KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUv0123456789"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
    b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7V\xbd\xfa\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


# -- a real server -------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class Client:
    """Requests to one running viewer; redirects are returned, not followed."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(
        self,
        path: str,
        *,
        method: str = "GET",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, str]:
        request = urllib.request.Request(
            self.base + path, data=body, method=method, headers=headers or {}
        )
        try:
            with _OPENER.open(request, timeout=30) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read().decode()

    def page(self, path: str) -> str:
        status, _, body = self.call(path)
        assert status == 200, (path, status, body[:500])
        return body

    def csrf(self) -> str:
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', self.page("/"))
        assert found is not None
        return found.group(1)

    def post_json(self, data: dict[str, Any], csrf: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if csrf is not None:
            headers["X-CSRF-Token"] = csrf
        status, _, body = self.call(
            "/api/feedback", method="POST", body=json.dumps(data).encode(), headers=headers
        )
        return status, json.loads(body)


@contextlib.contextmanager
def serving(store: Store, **options: Any) -> Iterator[Client]:
    """The viewer for ``store`` on a free 127.0.0.1 port, stopped on exit."""
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(
        uvicorn.Config(create_app(store, **options), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.02)
        assert server.started, "the viewer did not start"
        yield Client(f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


# -- stores --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ab_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store recorded by a real pytest run of the tool-selection suite under --ab."""
    folder = tmp_path_factory.mktemp("ab")
    db = folder / "experience.db"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            SUITE,
            "-p",
            "no:cacheprovider",
            "-q",
            "--tb=no",
            "--ab",
            "scripted:noisy-0.3,scripted:oracle",
            "--collect-training-data",
            "--teach-db",
            str(db),
        ],  # fmt: skip
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert db.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return db


@pytest.fixture
def ab_store(ab_db: Path) -> Iterator[Store]:
    with Store.open(ab_db) as store:
        yield store


@pytest.fixture
def ab_client(ab_store: Store) -> Iterator[Client]:
    with serving(ab_store) as client:
        yield client


def _episode(session: str, scenario: str, outcome: str, **fields: Any) -> Episode:
    return Episode(
        id=new_id(),
        nodeid=f"test_x.py::test_x[{scenario}]",
        scenario=scenario,
        outcome=outcome,
        session_id=session,
        model=fields.pop("model", "scripted:oracle"),
        label={"success": 0, "intervention": 1}.get(outcome),
        **fields,
    )


@pytest.fixture
def crafted(tmp_path: Path) -> Iterator[tuple[Store, dict[str, Any]]]:
    """A store written through the store's API: hostile strings, probabilities, a screenshot,
    and steps scored by a live intervention predictor."""
    store = Store.open(tmp_path / "crafted.db", create=True)
    session = new_id()
    store.start_session(
        session,
        argv=["tests", "--api-key", KEY, "--note", "<script>alert('argv')</script>"],
        version="0",
        git_commit="abc123",
        rootdir=None,
    )
    shot = store.put_artifact(PNG, "image/png")
    note = store.put_artifact(b"not an image", "text/plain")
    hostile = _episode(
        session,
        "<script>alert(1)</script>",
        "intervention",
        label_reason=f'<img src=x onerror="alert(2)"> leaked {KEY}',
        error="Traceback: Bearer abcdefgh12345678XYZ",
        reward=0.25,
        reward_components={"exact": 0.0, "valid": 1.0},
        metrics={"latency_ms": 12.5},
        steps=[
            Step(
                index=0,
                observation={
                    "url": "https://x.test",
                    "aria": '- button "Pay"\n- link "<b>home</b>"',
                },
                action={"click": "<svg onload=alert(3)>"},
                valid_actions=["click Pay", "click <b>home</b>", "type sk-secret"],
                probs=[0.7, 0.2, 0.1],
                screenshot=shot,
                intervention_p=0.9,
            ),
            Step(
                index=1,
                observation="x" * 5000,
                action="answer",
                messages=[{"role": "user", "content": f"my key is {KEY}"}],
                intervention_p=0.52,
            ),
        ],
        artifacts={"note": note},
    )
    unsure = _episode(
        session,
        "calm[unsure]",
        "success",
        reward=1.0,
        steps=[Step(index=0, observation="o", action="a", intervention_p=0.49)],
    )
    plain = _episode(
        session,
        "calm[plain]",
        "success",
        reward=1.0,
        steps=[Step(index=0, observation="o", action="a")],
    )
    store.write_episodes([hostile, unsure, plain])
    store.finish_session(session, 0)
    try:
        yield (
            store,
            {
                "session": session,
                "hostile": hostile,
                "unsure": unsure,
                "plain": plain,
                "shot": shot,
                "note": note,
            },
        )
    finally:
        store.close()


# -- pages ---------------------------------------------------------------------------------------


def test_pages_render_and_filter_on_the_server(ab_store: Store, ab_client: Client) -> None:
    status, headers, home = ab_client.call("/")
    assert status == 200 and headers["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    (session,) = ab_store.sessions()
    assert session["id"] in home and "--ab scripted:noisy-0.3,scripted:oracle" in home
    assert f'data-field="total">{ab_store.count(session=session["id"])}<' in home

    listed = ab_client.page("/episodes?outcome=intervention")
    assert f'<span id="total">{ab_store.count(outcome="intervention")}</span>' in listed
    outcomes = re.findall(r'<tr data-rowid="\d+" data-outcome="(\w+)">', listed)
    assert len(outcomes) == 50 and set(outcomes) == {"intervention"}

    glob = ab_client.page("/episodes?scenario=weather-*&model=scripted:oracle")
    total = ab_store.count(scenario="weather-*", model="scripted:oracle")
    assert 0 < total < ab_store.count() and f'<span id="total">{total}</span>' in glob

    found = ab_client.page("/episodes?q=WEATHER-003")
    assert '<span id="total">2</span>' in found and found.count("tool_selection[weather-003]") == 2

    first = re.findall(r'data-rowid="(\d+)"', ab_client.page("/episodes"))
    second = re.findall(r'data-rowid="(\d+)"', ab_client.page("/episodes?offset=50"))
    assert len(first) == len(second) == 50 and not set(first) & set(second)
    assert [int(r) for r in first] == sorted(map(int, first), reverse=True)

    lowest = ab_client.page("/episodes?sort=reward&dir=asc")
    rewards = [
        float(r)
        for r in re.findall(r'<td class="num">([0-9.]+)</td>\s*<td class="num">\d+</td>', lowest)
    ]
    assert rewards and rewards[0] == min(
        e.reward for e in ab_store.episodes() if e.reward is not None
    )
    assert rewards == sorted(rewards)

    status, _, bad = ab_client.call("/episodes?label=maybe")
    assert status == 400 and "label &#39;maybe&#39; is not one of success, intervention" in bad


def test_episode_page_is_a_timeline(crafted: tuple[Store, dict[str, Any]]) -> None:
    store, made = crafted
    with serving(store) as client:
        page = client.page(f"/episodes/{made['hostile'].id}")
        assert page.count('<meter min="0" max="1" value="0.7">') == 1
        assert "entropy 0.802 nats" in page  # -(0.7 ln 0.7 + 0.2 ln 0.2 + 0.1 ln 0.1)
        assert f'<img class="shot" src="/artifacts/{made["shot"]}"' in page
        assert "- button &#34;Pay&#34;" in page  # the ARIA snapshot, as lines
        assert '<th>exact</th><td class="num">0</td>' in page and "latency_ms" in page
        assert "Traceback: Bearer [REDACTED]" in page
        # the 5,000-character step starts collapsed; the short one open
        steps = re.findall(r'<li class="step" id="step-(\d)".*?<details( open)?>', page, re.S)
        assert steps == [("0", " open"), ("1", "")]

        status, headers, data = _raw(client, f"/artifacts/{made['shot']}")
        assert status == 200 and headers["Content-Type"] == "image/png" and data == PNG
        assert client.call(f"/artifacts/{made['note']}")[0] == 415
        for path in (
            "/artifacts/..%2F..%2F..%2Fetc%2Fpasswd",
            "/artifacts/" + "0" * 64,
            "/static/..%2F_app.py",
            "/static/view.py",
            "/episodes/..%2F..%2Fetc",
        ):
            assert client.call(path)[0] == 404, path


def _raw(client: Client, path: str) -> tuple[int, Any, bytes]:
    with _OPENER.open(client.base + path, timeout=30) as response:
        return response.status, response.headers, response.read()


def test_hostile_strings_come_back_escaped_and_redacted(
    crafted: tuple[Store, dict[str, Any]],
) -> None:
    store, made = crafted
    with serving(store) as client:
        pages = [
            client.page("/"),
            client.page("/episodes"),
            client.page(f"/episodes/{made['hostile'].id}"),
            client.page("/queue?order=failures"),
        ]
        live = client.page("/api/episodes?after=0")
        for page in [*pages, live]:
            assert KEY not in page and "abcdefgh12345678XYZ" not in page
            assert "<script>alert" not in page and "<img src=x" not in page and "<svg" not in page
        episode = pages[2]
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in episode
        assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt; leaked [REDACTED]" in episode
        assert "&lt;svg onload=alert(3)&gt;" in episode and "my key is [REDACTED]" in episode
        assert "--api-key [REDACTED]" in pages[0]
        assert json.loads(live)["rows"][0]["reason"].endswith("leaked [REDACTED]")


def test_a_step_correction_becomes_a_dpo_pair(
    ab_store: Store, ab_client: Client, tmp_path: Path
) -> None:
    csrf = ab_client.csrf()
    failed = next(ab_store.episodes(outcome="intervention", model="scripted:noisy-0.3"))
    right = {"tools": failed.meta["expected"]}
    status, saved = ab_client.post_json(
        {
            "episode": failed.id,
            "step": 0,
            "verdict": "bad",
            "correction": json.dumps(right),
            "comment": "wrong tool",
        },
        csrf,
    )
    assert status == 200 and saved["verdict"] == "bad" and saved["step"] == 0

    # the same row `teach feedback add --step --correct-action` writes ...
    (fb,) = ab_store.feedback(failed.id)
    assert (fb.step, fb.correct_action, fb.comment) == (0, right, "wrong tool")
    # ... so the DPO export has the pair at once
    out = tmp_path / "dpo.jsonl"
    export(ab_store, "dpo", out, ids=[failed.id])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows} == {
        (text_of(right), reply_of(failed.steps[0]))
    }

    # a form post picks the correction among the valid actions, and comes back to the page
    other = list(ab_store.episodes(outcome="intervention", model="scripted:noisy-0.3"))[1]
    form = f"csrf={csrf}&episode={other.id}&step=0&verdict=bad&choice=2&rating=2".encode()
    status, headers, _ = ab_client.call(
        "/api/feedback", method="POST", body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert status == 303 and headers["location"] == f"/episodes/{other.id}#step-0"
    (picked,) = ab_store.feedback(other.id)
    assert picked.correct_action == other.steps[0].valid_actions[2] and picked.rating == 2

    # good confirms the step's own action; a rating without a step rates the run
    passed = next(ab_store.episodes(outcome="success"))
    assert ab_client.post_json({"episode": passed.id, "step": 0, "verdict": "good"}, csrf)[0] == 200
    assert (
        ab_client.post_json({"episode": passed.id, "rating": 5, "comment": "fine"}, csrf)[0] == 200
    )
    good, run = ab_store.feedback(passed.id)
    assert (good.step, good.correct_action) == (0, passed.steps[0].action)
    assert (run.step, run.rating, run.comment) == (None, 5, "fine")

    # bad without a correction, and a correction equal to the action, are refused
    status, body = ab_client.post_json({"episode": passed.id, "step": 0, "verdict": "bad"}, csrf)
    assert status == 400 and "needs its correction" in body["error"]
    assert len(ab_store.feedback(passed.id)) == 2


def test_writing_without_the_csrf_token_is_403(ab_store: Store, ab_client: Client) -> None:
    episode = next(ab_store.episodes(outcome="success"))
    before = len(ab_store.feedback())
    for token in (None, "forged"):
        status, body = ab_client.post_json({"episode": episode.id, "rating": 1}, token)
        assert status == 403 and "CSRF" in body["error"]
    status, _, _ = ab_client.call(
        "/api/feedback",
        method="POST",
        body=f"episode={episode.id}&rating=1".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 403
    assert len(ab_store.feedback()) == before


def test_ab_page_names_oracle_the_winner(ab_client: Client) -> None:
    page = ab_client.page("/ab")  # the newest A/B run: A noisy-0.3, B oracle
    assert '<strong id="winner">scripted:oracle</strong>' in page
    assert 'data-verdict="APPROVE"' in page and "McNemar exact p = " in page
    statuses = re.findall(r'<tr data-status="(\w+)">', page)
    assert statuses[0] == "improvement" and "same" in statuses
    assert statuses == sorted(statuses, key=["regression", "improvement", "differs", "same"].index)

    swapped = ab_client.page("/ab?a=scripted:oracle&b=scripted:noisy-0.3&only=differences")
    assert '<strong id="winner">scripted:oracle</strong>' in swapped
    assert 'data-verdict="REJECT"' in swapped
    statuses = re.findall(r'<tr data-status="(\w+)">', swapped)
    assert statuses and statuses[0] == "regression" and "same" not in statuses

    status, _, body = ab_client.call("/ab?a=scripted:oracle&b=nobody:here")
    assert status == 400 and "neither a session id nor a model" in body


def test_review_queue_orders_and_counts(crafted: tuple[Store, dict[str, Any]]) -> None:
    store, made = crafted
    with serving(store) as client:
        csrf = client.csrf()
        unsure = client.page("/queue?order=uncertainty")
        assert f'data-episode="{made["unsure"].id}"' in unsure  # p = 0.49, closest to 0.5
        assert '<strong id="progress">0 of 3 reviewed</strong>' in unsure
        failures = client.page("/queue?order=failures")
        assert f'data-episode="{made["hostile"].id}"' in failures
        newest = client.page("/queue?order=time")
        assert f'data-episode="{made["plain"].id}"' in newest

        status, _ = client.post_json(
            {"episode": made["unsure"].id, "step": 0, "verdict": "good"}, csrf
        )
        assert status == 200
        after = client.page("/queue?order=uncertainty")
        assert '<strong id="progress">1 of 3 reviewed</strong>' in after
        assert f'data-episode="{made["hostile"].id}"' in after  # p = 0.52 next
        assert f'data-episode="{made["plain"].id}"' in client.page(
            "/queue?order=uncertainty&position=1"
        )
        done = client.page("/queue?order=uncertainty&position=2")
        assert "Nothing left to review" in done
        assert client.call("/queue?order=random")[0] == 400


def test_live_endpoints_show_new_episodes(crafted: tuple[Store, dict[str, Any]]) -> None:
    store, made = crafted
    with serving(store) as client:
        page = client.page("/episodes")
        live_url = re.search(r'data-live-url="([^"]+)"', page).group(1).replace("&amp;", "&")
        assert json.loads(client.page(live_url)) == {"total": 3, "rows": []}
        with Store.open(store.path) as writer:  # another connection, as a running pytest
            writer.write_episode(_episode(made["session"], "late[one]", "intervention"))
        grown = json.loads(client.page(live_url))
        assert grown["total"] == 4 and [r["scenario"] for r in grown["rows"]] == ["late[one]"]
        counts = json.loads(client.page("/api/sessions"))["sessions"][0]["counts"]
        assert counts == {"intervention": 2, "success": 2}


# -- security ------------------------------------------------------------------------------------


def test_a_non_loopback_bind_needs_a_token(tmp_path: Path) -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        check_bind(host, None)
    with pytest.raises(ViewerError, match=r"refusing to bind 0.0.0.0.*--token\)"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "t0ken")

    Store.open(tmp_path / "s.db", create=True).close()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_teach.cli",
            "view",
            "--db",
            str(tmp_path / "s.db"),
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in __import__("os").environ.items() if k != "TEACH_VIEW_TOKEN"},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "teach view: error: refusing to bind 0.0.0.0: it is reachable from other machines; give "
        "the viewer a token (TEACH_VIEW_TOKEN or --token), which every request must then carry, "
        "or bind 127.0.0.1"
    ]


def test_a_busy_port_is_one_line(tmp_path: Path) -> None:
    Store.open(tmp_path / "s.db", create=True).close()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest_teach.cli",
                "view",
                "--db",
                str(tmp_path / "s.db"),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"teach view: error: port {port} on 127.0.0.1 is already in use; stop what listens "
        "there or pass another --port"
    )


def test_with_a_token_every_request_needs_it(crafted: tuple[Store, dict[str, Any]]) -> None:
    store, _ = crafted
    token = "view-token-2468"
    with serving(store, token=token, loopback_only=False) as client:
        for path in ("/", "/episodes", "/static/view.js", "/api/sessions", "/nowhere"):
            status, _, body = client.call(path)
            assert status == 401 and token not in body, path
        assert client.call("/?token=wrong")[0] == 401
        status, headers, _ = client.call("/episodes?token=" + token + "&outcome=success")
        assert status == 303 and headers["location"] == "/episodes?outcome=success"
        cookie = headers["set-cookie"].split(";")[0]
        assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
        assert client.call("/episodes", headers={"Cookie": cookie})[0] == 200
        assert client.call("/", headers={"Authorization": f"Bearer {token}"})[0] == 200
        status, _, _ = client.call(
            "/api/feedback",
            method="POST",
            body=b"{}",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        assert status == 403  # the token lets it in; writing still needs the CSRF token


def test_a_loopback_viewer_answers_loopback_hosts_only(
    crafted: tuple[Store, dict[str, Any]],
) -> None:
    store, _ = crafted
    with serving(store) as client:
        assert client.call("/", headers={"Host": "evil.example:80"})[0] == 403
        assert client.call("/", headers={"Host": "localhost"})[0] == 200


def test_the_plugin_and_the_package_load_no_web_framework() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pytest_teach.plugin, pytest_teach.view, pytest_teach.cli; "
            "print([m for m in ('fastapi', 'starlette', 'uvicorn') if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("store_target", ["sqlite", "postgresql"], indirect=True)
def test_store_pages_answer_alike_on_both_backends(store_target: Any) -> None:
    from pytest_teach.store import (
        EpisodeFilter,
        episode_page,
        episodes_after,
        review_queue,
        session_counts,
    )

    with Store.open(store_target, create=True) as store:
        session = new_id()
        store.start_session(session, argv=["x"], version="0", git_commit=None, rootdir=None)
        written = [
            _episode(
                session,
                "fam[a_1]",
                "success",
                reward=1.0,
                steps=[Step(0, "o", "a", intervention_p=0.8)],
            ),
            _episode(session, "fam[a%1]", "intervention", reward=None, label_reason="Missing Tool"),
            _episode(
                session,
                "other[b]",
                "intervention",
                reward=0.5,
                steps=[Step(0, "o", "a", intervention_p=0.45)],
            ),
            _episode(session, "other[c]", "error"),
        ]
        for e in written:  # one by one: insertion order is the recording order
            store.write_episode(e)
        ids = [e.id for e in written]

        page = episode_page(store, EpisodeFilter(), sort="reward", descending=False)
        assert [r.id for r in page.rows] == [ids[2], ids[0], ids[1], ids[3]]  # no reward last
        assert page.total == 4 and not page.has_next
        assert [r.id for r in episode_page(store, limit=2, offset=1).rows] == [ids[2], ids[1]]
        assert [r.id for r in episode_page(store, text="A_1").rows] == [ids[0]]  # _ is literal
        assert [r.id for r in episode_page(store, text="a%1").rows] == [ids[1]]  # so is %
        assert [r.id for r in episode_page(store, text="missing tool").rows] == [ids[1]]
        glob = episode_page(store, EpisodeFilter(scenario="other", outcome="intervention"))
        assert [r.id for r in glob.rows] == [ids[2]] and glob.total == 1
        second = next(r.rowid for r in page.rows if r.id == ids[1])
        assert [r.id for r in episodes_after(store, second)] == [ids[2], ids[3]]
        assert [r.id for r in episodes_after(store, 0, EpisodeFilter(outcome="intervention"))] == [
            ids[1],
            ids[2],
        ]
        assert session_counts(store, [session, "none"]) == {
            session: {"success": 1, "intervention": 2, "error": 1}
        }
        unsure = review_queue(store, EpisodeFilter(include_errors=False), order="uncertainty")
        assert (unsure.total, unsure.reviewed, unsure.episode_id) == (3, 0, ids[2])
        failures = review_queue(store, order="failures", position=1)
        assert failures.episode_id == ids[1] and failures.total == 4
        store.add_feedback(ids[2], rating=4)
        assert review_queue(store, order="time").reviewed == 1
        assert review_queue(store, order="time").episode_id == ids[3]


def test_the_default_ab_page_is_the_newest_ab_run_only(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "two-runs.db", create=True)
    ab_run, other_run = new_id(), new_id()
    for sid in (ab_run, other_run):
        store.start_session(sid, argv=["tests"], version="0", git_commit=None, rootdir=None)
    other = [
        _episode(other_run, f"solo-{i}", "intervention", model="m-a", created_at=1.0 + i)
        for i in range(5)
    ]
    ab = [
        _episode(ab_run, f"paired-{i}", outcome, model=model, arm=arm, created_at=10.0 + i)
        for i in range(3)
        for model, arm, outcome in (("m-a", "A", "intervention"), ("m-b", "B", "success"))
    ]
    store.write_episodes(other + ab)
    with serving(store) as client:
        page = client.page("/ab")
        # the 5 scenarios only the other run of m-a played are not pairs of this A/B run
        assert "3 scenario(s)" in page and "solo-" not in page
        assert "0 regression(s) in 3 pairs" in page
        everything = client.page("/ab?a=m-a&b=m-b")
        assert "8 scenario(s)" in everything
    store.close()
