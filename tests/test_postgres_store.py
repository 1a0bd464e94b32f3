"""A PostgreSQL store against a real throwaway server: bad input is one line and changes nothing,
the URL's password reaches no store, export, report or log, artifacts live in the database
(chunked, deduplicated, streamed), and old stores migrate on both backends."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import socket
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from pytest_teach import open_store
from pytest_teach.recorder import EpisodeRecorder
from pytest_teach.redaction import REDACTED
from pytest_teach.store import _schema, _store, new_id

from ._postgres import PgServer

WRONG_PASSWORD = "wrong-pw-7c3e-not-it"


# -- helpers -----------------------------------------------------------------------------------


def _write(store: Any, scenario: str, outcome: str = "success", **fields: Any) -> str:
    rec = EpisodeRecorder(enabled=True)
    rec.step("obs", "act")
    rec.artifacts.update(fields.pop("artifacts", {}))
    ep = rec.build(
        episode_id=new_id(), nodeid=f"t::{scenario}", scenario=scenario, outcome=outcome,
        reason=None if outcome == "success" else "it failed", **fields,
    )  # fmt: skip
    store.write_episode(ep)
    return ep.id


def _seeded(url: str) -> None:
    """Make ``url`` a store holding one session and two episodes."""
    store = open_store(url, create=True)
    try:
        store.start_session("s1", argv=["-q"], version="0", git_commit=None, rootdir="/r")
        _write(store, "kept", "success")
        _write(store, "kept", "intervention")
        store.finish_session("s1", 0)
    finally:
        store.close()


def pg_dump(url: str) -> dict[str, Any]:
    """A logical dump of a PostgreSQL database: every table's columns and rows (sorted), and
    every index; two dumps are equal when nothing was written."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        tables = sorted(
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        )
        dump: dict[str, Any] = {}
        for table in tables:
            columns = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s "
                "ORDER BY ordinal_position",
                (table,),
            ).fetchall()
            rows = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
            dump[table] = (columns, sorted(repr(tuple(r)) for r in rows))
        dump["(indexes)"] = sorted(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            ).fetchall()
        )
    return dump


def text_cells(url: str) -> list[tuple[str, str, str]]:
    """Every non-NULL text-like cell of every table, as (table, column, text)."""
    import psycopg
    from psycopg import sql

    cells: list[tuple[str, str, str]] = []
    with psycopg.connect(url, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() "
            "AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')"
        ).fetchall()
        assert columns, "no text columns found: the dump is looking in the wrong place"
        for table, column in columns:
            query = sql.SQL("SELECT {} FROM {} WHERE {} IS NOT NULL").format(
                sql.Identifier(column), sql.Identifier(table), sql.Identifier(column)
            )
            cells.extend((table, column, str(r[0])) for r in conn.execute(query))
    return cells


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def teach(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the ``teach`` command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_teach.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def one_error_line(code: int, out: str, err: str) -> str:
    """The one error line a refused command printed (and checks it exited non-zero, printed
    no traceback and nothing else)."""
    assert code not in (0, None), (out, err)
    assert "Traceback" not in out + err, out + err
    lines = [line for line in (out + "\n" + err).splitlines() if line.strip()]
    assert len(lines) == 1, out + err
    return lines[0]


SUITE = """
def test_ok(episode):
    episode.step("obs", "act")
"""


def _refusals(pytester: pytest.Pytester, db: str, *, every_verb: bool = True) -> list[str]:
    """Refused ``teach`` verbs and ``pytest --collect-training-data`` on ``db``: their lines
    (``teach stats`` alone unless ``every_verb``)."""
    lines = []
    verbs = (["stats"], ["stats", "--json"], ["store", "check"]) if every_verb else (["stats"],)
    for verb in verbs:
        done = teach(*verb, "--db", db, cwd=pytester.path)
        line = one_error_line(done.returncode, done.stdout, done.stderr)
        assert line.startswith(f"teach {' '.join(v for v in verb if v != '--json')}: error: ")
        lines.append(line)
    if every_verb:
        out = pytester.path / "out.jsonl"
        done = teach("export", "--db", db, "--format", "openai", "-o", str(out), cwd=pytester.path)
        lines.append(one_error_line(done.returncode, done.stdout, done.stderr))
        assert not out.exists(), "a refused export writes nothing"
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(
        "--collect-training-data", "--teach-db", db, "-p", "no:cacheprovider"
    )
    line = one_error_line(result.ret, result.stdout.str(), result.stderr.str())
    assert line.startswith("ERROR: --teach-db: "), line
    lines.append(line)
    return lines


# -- item 6: bad input, each one line, the store unchanged ---------------------------------------


def test_an_unreachable_server_is_one_line_naming_host_and_port(
    pytester: pytest.Pytester, pg_server: PgServer, pg_url: str
) -> None:
    _seeded(pg_url)
    before = pg_dump(pg_url)
    port = _closed_port()
    url = f"postgresql://{pg_server.user}:{WRONG_PASSWORD}@127.0.0.1:{port}/teach"
    for line in _refusals(pytester, url):
        assert f"127.0.0.1:{port}" in line, line
        assert "cannot reach PostgreSQL" in line, line
        assert WRONG_PASSWORD not in line
    assert pg_dump(pg_url) == before


def test_a_server_that_never_answers_is_one_line_after_the_timeout(
    pytester: pytest.Pytester, pg_server: PgServer
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # takes connections, never answers
        port = silent.getsockname()[1]
        url = f"postgresql://{pg_server.user}:{WRONG_PASSWORD}@127.0.0.1:{port}/teach"
        lines = _refusals(pytester, url, every_verb=False)
    for line in lines:
        assert f"cannot reach PostgreSQL at 127.0.0.1:{port}: no answer within" in line, line
        assert WRONG_PASSWORD not in line


def test_a_wrong_password_is_refused_without_echoing_it(
    pytester: pytest.Pytester, pg_server: PgServer, pg_url: str
) -> None:
    _seeded(pg_url)
    before = pg_dump(pg_url)
    url = _with_password(pg_url, WRONG_PASSWORD)
    for line in _refusals(pytester, url):
        assert "wrong password" in line and pg_server.user in line, line
        assert WRONG_PASSWORD not in line, line
        assert f"{pg_server.host}:{pg_server.port}" in line, line
    # the same through TEACH_DB, and with the password as a query parameter
    parts = urlsplit(pg_url)
    query_url = urlunsplit(
        parts._replace(
            netloc=f"{parts.username}@{parts.hostname}:{parts.port}",
            query=f"password={WRONG_PASSWORD}",
        )
    )
    for env_url in (url, query_url):
        done = teach("stats", cwd=pytester.path, env={"TEACH_DB": env_url})
        line = one_error_line(done.returncode, done.stdout, done.stderr)
        assert "wrong password" in line, line
        assert WRONG_PASSWORD not in done.stdout + done.stderr
    assert pg_dump(pg_url) == before
    # the right password still works: the refusal was the password's, not the server's
    done = teach("stats", "--json", "--db", pg_url, cwd=pytester.path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["episodes"] == 2


def test_a_newer_schema_is_refused_by_every_reader_and_writer(
    pytester: pytest.Pytester, pg_server: PgServer, pg_url: str
) -> None:
    _seeded(pg_url)
    with pg_server.connect(urlsplit(pg_url).path.lstrip("/")) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    before = pg_dump(pg_url)
    sessions = before["sessions"][1]
    for line in _refusals(pytester, pg_url):
        assert "schema 99" in line and "newer than this pytest-teach supports" in line, line
        assert pg_server.password not in line
    after = pg_dump(pg_url)
    assert after["sessions"][1] == sessions, "pytest added no session row"
    assert after == before


@pytest.mark.parametrize(
    ("netloc_path", "says"),
    [
        ("{user}:{pw}@127.0.0.1:99999/teach", "the port must be a number from 1 to 65535"),
        ("{user}:{pw}@127.0.0.1:notaport/teach", "the port must be a number from 1 to 65535"),
        ("{user}:{pw}@127.0.0.1:0/teach", "the port must be a number from 1 to 65535"),
        ("{user}:{pw}@[::1/teach", "not a valid IPv6 address"),
        ("{user}:{pw}@127.0.0.1:5432/", "name one database"),
        ("{user}:{pw}@127.0.0.1:5432", "name one database"),
        ("{user}:{pw}@127.0.0.1:5432/a/b", "name one database"),
    ],
)
def test_a_malformed_url_is_one_line(
    pytester: pytest.Pytester, pg_server: PgServer, pg_url: str, netloc_path: str, says: str
) -> None:
    _seeded(pg_url)
    before = pg_dump(pg_url)
    url = "postgresql://" + netloc_path.format(user=pg_server.user, pw=WRONG_PASSWORD)
    for line in _refusals(pytester, url, every_verb=netloc_path.endswith("/")):
        assert "malformed PostgreSQL URL" in line and says in line, line
        assert WRONG_PASSWORD not in line
    assert pg_dump(pg_url) == before


@pytest.mark.parametrize("char", ["/", "?", "#", "@", " "])
@pytest.mark.parametrize("rest", ["{host}:{port}/{db}", "{host}:{port}"])
def test_a_password_with_a_character_that_ends_a_url_part_is_never_shown(
    pytester: pytest.Pytester, pg_server: PgServer, pg_url: str, char: str, rest: str
) -> None:
    """A password that should have been percent-encoded: masked whole, not cut where a URL
    parser stops reading it, and refused with a hint (never sent to another host or port)."""
    _seeded(pg_url)
    before = pg_dump(pg_url)
    head, tail = "Pq4Wn", "Zq9Xk7"
    parts = urlsplit(pg_url)
    target = rest.format(host=parts.hostname, port=parts.port, db=parts.path.lstrip("/"))
    url = f"postgresql://{parts.username}:{head}{char}{tail}@{target}"
    for line in _refusals(pytester, url, every_verb=False):
        assert "malformed PostgreSQL URL" in line, line
        assert f"postgresql://{parts.username}:{REDACTED}@{target}" in line, line
        assert head not in line and tail not in line, line
        if char != " ":  # libpq's own message says how to write a space
            assert "percent-encode" in line, line
    assert pg_dump(pg_url) == before


# -- item 6: the password reaches no store, export, report or log ---------------------------------

SECRET_SUITE = """
import logging

import pytest

SHOT = {png!r}


def test_pass(episode):
    logging.getLogger("suite").debug("a debug line from the suite")
    episode.step("page", "click", screenshot=SHOT)
    episode.attach("notes", "plain text")


def test_fail(episode):
    episode.step("page", "wrong")
    assert 1 == 2, "picked the cookie banner"


@pytest.mark.parametrize("case", ["a", "b"])
def test_cases(episode, case):
    episode.step(case, "act")
"""


def _png(width: int = 4, height: int = 4) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_the_password_reaches_no_store_export_report_or_log(
    pytester: pytest.Pytester,
    pg_server: PgServer,
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = pg_server.password
    assert secret in pg_url
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))  # where a PostgreSQL store's journals go
    pytester.makepyfile(test_suite=SECRET_SUITE.format(png=_png()))
    result = pytester.runpytest_subprocess(
        "--collect-training-data",
        "--teach-db",
        pg_url,
        "--teach-report",
        "out.html",
        "-p",
        "no:cacheprovider",
        "-o",
        "log_cli=true",
        "--log-level=DEBUG",
        "--log-file=pytest.log",
        "--log-file-level=DEBUG",
        "-rA",
    )
    result.assert_outcomes(passed=3, failed=1)
    # a second run names the store as --teach-db=URL, a third as the ini key under xdist
    second = pytester.runpytest_subprocess(
        f"--teach-db={pg_url}",
        "--collect-training-data",
        "-p",
        "no:cacheprovider",
        "test_suite.py::test_pass",
    )
    second.assert_outcomes(passed=1)
    third = pytester.runpytest_subprocess(
        "-o",
        f"teach_db={pg_url}",
        "--collect-training-data",
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        "test_suite.py::test_cases",
    )
    third.assert_outcomes(passed=2)  # two xdist workers, each with its own connection

    store = open_store(pg_url)
    try:
        sessions = store.sessions()
        episodes = list(store.episodes())
        shot = next(e for e in episodes if e.nodeid.endswith("test_pass")).steps[0].screenshot
        assert store.read_artifact(shot) == _png()
    finally:
        store.close()
    assert len(sessions) == 3 and len(episodes) == 7
    argvs = [" ".join(s["argv"]) for s in sessions]
    for argv in argvs:
        assert REDACTED in argv, argvs  # the URL was recorded, masked
        assert f"{pg_server.host}:{pg_server.port}" in argv, argvs

    places: dict[str, str] = {}
    for table, column, text in text_cells(pg_url):
        places[f"{table}.{column}: {text[:60]}"] = text
    places["pytest output"] = result.stdout.str() + result.stderr.str()
    places["second pytest output"] = second.stdout.str() + second.stderr.str()
    places["third pytest output"] = third.stdout.str() + third.stderr.str()
    places["log file"] = (pytester.path / "pytest.log").read_text()
    assert "a debug line from the suite" in places["log file"], "the log file holds the run's logs"
    report = (pytester.path / "out.html").read_text()
    assert "test_fail" in report
    places["report"] = report

    exports = pytester.path / "exports"
    exports.mkdir()
    for fmt, name in (
        ("openai", "openai.jsonl"),
        ("sft", "sft.jsonl"),
        ("dpo", "dpo.jsonl"),
        ("grpo", "grpo.jsonl"),
        ("interventions", "interventions"),
        ("stories", "stories"),
    ):
        done = teach(
            "export", "--db", pg_url, "--format", fmt, "-o", str(exports / name), "--allow-empty",
            cwd=pytester.path,
        )  # fmt: skip
        assert done.returncode == 0, (fmt, done.stderr)
        places[f"teach export --format {fmt} output"] = done.stdout + done.stderr
    written = _files_under(exports)
    assert len(written) >= 6, written
    for path in written:
        places[f"export {path.relative_to(exports)}"] = path.read_text(errors="replace")
    for verb in (["stats"], ["stats", "--json"], ["store", "check"], ["history"]):
        done = teach(*verb, "--db", pg_url, cwd=pytester.path)
        assert done.returncode == 0, (verb, done.stderr)
        places[f"teach {' '.join(verb)}"] = done.stdout + done.stderr
    assert json.loads(places["teach stats --json"])["episodes"] == 7
    report2 = pytester.path / "report2.html"
    done = teach("report", "--db", pg_url, "-o", str(report2), cwd=pytester.path)
    assert done.returncode == 0, done.stderr
    places["teach report"] = report2.read_text() + done.stdout + done.stderr
    assert cache.is_dir(), "the run's journals went to the cache folder"
    for path in _files_under(cache) + _files_under(pytester.path / ".teach"):
        places[f"file {path}"] = path.read_text(errors="replace")

    leaked = [where for where, text in places.items() if secret in text]
    assert leaked == []


# -- item 2: artifacts live in a PostgreSQL store, chunked, deduplicated, streamed --------------


def _count(url: str, sql_text: str, args: tuple[Any, ...] = ()) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql_text, args).fetchone()[0]


def _read_in_pieces(f: Any, size: int) -> bytes:
    pieces = []
    while piece := f.read(size):
        assert len(piece) <= size
        pieces.append(piece)
    return b"".join(pieces)


def test_a_multi_chunk_artifact_round_trips_is_stored_once_and_checked(
    pytester: pytest.Pytester, pg_url: str
) -> None:
    chunk = _store.CHUNK
    data = random.Random(7).randbytes(3 * chunk + chunk // 2)
    store = open_store(pg_url, create=True)
    try:
        assert store.backend == "postgresql" and store.artifacts_dir is None
        sha = store.put_artifact(data, "application/octet-stream")
        assert sha == hashlib.sha256(data).hexdigest()
        # saved again, by both ways in: nothing new is stored
        assert store.put_artifact(data, "application/octet-stream") == sha
        ref = store.save_artifact_file(data, "image/png")
        assert ref.sha256 == sha and ref.size == len(data)
        _write(store, "with_artifact", artifacts={"blob": sha})
        assert store.read_artifact(sha) == data
        with store.open_artifact(sha) as f:
            assert f.read(10) == data[:10]
            assert _read_in_pieces(f, 65_537) == data[10:]
        with store.open_artifact(sha) as f:
            assert _read_in_pieces(f, 4096) == data
        with pytest.raises(_store.StoreError, match="lives in the database"):
            store.artifact_path(sha)
    finally:
        store.close()
    assert _count(pg_url, "SELECT COUNT(*) FROM artifacts WHERE sha256 = %s", (sha,)) == 1
    chunks = math.ceil(len(data) / chunk)
    assert chunks == 4
    assert _count(pg_url, "SELECT COUNT(*) FROM artifact_chunks WHERE sha256 = %s", (sha,)) == (
        chunks
    )
    assert _count(pg_url, "SELECT MAX(octet_length(data)) FROM artifact_chunks") == chunk
    assert not any(pytester.path.rglob("*")), "nothing was written to the working folder"

    done = teach("store", "check", "--db", pg_url, cwd=pytester.path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok" in done.stdout.lower()
    with psycopg_connect(pg_url) as conn:
        conn.execute("DELETE FROM artifact_chunks WHERE sha256 = %s AND seq = 1", (sha,))
    done = teach("store", "check", "--db", pg_url, cwd=pytester.path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert sha in done.stdout and f"{len(data) - chunk} of its {len(data)} bytes" in done.stdout
    # a reader never takes the chunks before a missing one for the whole artifact
    store = open_store(pg_url)
    try:
        with pytest.raises(_store.StoreError, match=f"artifact {sha}"):
            store.read_artifact(sha)
    finally:
        store.close()


def psycopg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


def test_a_sqlite_store_keeps_its_artifacts_as_files(tmp_path: Path) -> None:
    data = random.Random(8).randbytes(_store.CHUNK + 123)
    store = open_store(tmp_path / "experience.db", create=True)
    try:
        assert store.backend == "sqlite"
        sha = store.put_artifact(data, "image/png")
        assert store.put_artifact(data, "image/png") == sha
        path = tmp_path / "artifacts" / sha[:2] / f"{sha}.png"
        assert store.artifact_path(sha) == path
        assert path.read_bytes() == data
        assert store.read_artifact(sha) == data
        with store.open_artifact(sha) as f:
            assert _read_in_pieces(f, 1000) == data
        tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
        assert "artifact_chunks" not in tables
        assert store.conn.execute("SELECT COUNT(*) FROM artifacts").fetchone()[0] == 1
    finally:
        store.close()
    assert [p.name for p in (tmp_path / "artifacts").rglob("*") if p.is_file()] == [path.name]


# -- migrations run on both backends ------------------------------------------------------------


def table_rows(target: Path | str) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows as ``{column: value}``, on either backend."""
    if isinstance(target, Path):
        import sqlite3

        conn = sqlite3.connect(target)
        conn.row_factory = sqlite3.Row
        try:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'"
                )
            ]
            return {n: [dict(r) for r in conn.execute(f'SELECT * FROM "{n}"')] for n in names}
        finally:
            conn.close()
    from psycopg import sql
    from psycopg.rows import dict_row

    with psycopg_connect(target) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        cur = conn.cursor(row_factory=dict_row)
        return {
            n: cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(n))).fetchall()
            for n in names
        }


def _projected(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    return sorted(repr(tuple(r[c] for c in columns)) for r in rows)


@pytest.mark.parametrize("store_target", ["sqlite", "postgresql"], indirect=True)
def test_a_store_at_schema_3_migrates_to_the_current_version_with_its_data(
    store_target: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _schema.SCHEMA_VERSION > 3
    old = {version: m for version, m in _schema.MIGRATIONS.items() if version <= 3}
    monkeypatch.setattr(_store, "MIGRATIONS", old)
    monkeypatch.setattr(_store, "SCHEMA_VERSION", 3)
    # episodes are written as a schema-3 writer wrote them: without the step count of schema 7
    row = _store._episode_row
    monkeypatch.setattr(_store, "_episode_row", lambda e: row(e)[:-1])
    monkeypatch.setattr(
        _store,
        "_INSERT_EPISODE",
        _store._INSERT_EPISODE.replace("created_at, n_steps)", "created_at)").replace(
            "VALUES (" + "?," * 20 + "?)", "VALUES (" + "?," * 19 + "?)"
        ),
    )
    store = open_store(store_target, create=True)
    try:
        assert store.schema_version == 3
        store.start_session("s1", argv=["-q"], version="0", git_commit="abc", rootdir="/r")
        ids = [
            _write(store, f"scenario_{i}", "success" if i % 2 else "intervention", session_id="s1")
            for i in range(5)
        ]
        store.add_feedback(ids[0], rating=4, comment="close", step=0, correct_action="act")
        store.insert_record(
            "improvement_jobs",
            {
                "id": "job1",
                "agent": "a",
                "strategy": "from_runs",
                "status": "created",
                "created_at": 1.0,
                "updated_at": 1.0,
            },
        )
        store.finish_session("s1", 0)
    finally:
        store.close()
    if isinstance(store_target, str):
        assert "artifact_chunks" not in table_rows(store_target)
    before = table_rows(store_target)
    monkeypatch.undo()

    store = open_store(store_target)
    try:
        assert store.schema_version == _schema.SCHEMA_VERSION
        assert [e.id for e in store.episodes()] == ids, "kept, in the order they were recorded"
        assert [e.steps[0].action for e in store.episodes()] == ["act"] * 5
        assert [f.comment for f in store.feedback(ids[0])] == ["close"]
        assert [r["id"] for r in store.list_records("improvement_jobs")] == ["job1"]
        # the migrated store takes new episodes and artifacts where its backend keeps them
        sha = store.put_artifact(b"after the migration", "text/plain")
        new = _write(store, "after", artifacts={"notes": sha})
        assert [e.id for e in store.episodes()] == [*ids, new]
        assert store.read_artifact(sha) == b"after the migration"
    finally:
        store.close()
    after = table_rows(store_target)
    for table, rows in before.items():
        columns = list(rows[0]) if rows else []
        kept = [r for r in after[table] if table != "meta" or r["key"] != "schema_version"]
        if table == "meta":
            rows = [r for r in rows if r["key"] != "schema_version"]
        if table in ("episodes", "artifacts", "episode_artifacts", "steps", "labels"):
            kept = [r for r in kept if r.get("episode_id", r.get("id")) != new]
            kept = [r for r in kept if table != "artifacts" or r["sha256"] != sha]
        assert _projected(kept, columns) == _projected(rows, columns), table
    version = [r["value"] for r in after["meta"] if r["key"] == "schema_version"]
    assert version == [str(_schema.SCHEMA_VERSION)]
