"""The tests' PostgreSQL server: real, isolated, password-protected, local, and always stopped."""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ._postgres import NO_BINARIES, PASSWORD, PgServer
from .conftest import NO_POSTGRES, REPO

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")

ENSURE = REPO / "scripts" / "ensure-postgres.sh"


def _user_tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    return [row[0] for row in rows]


def _exists(server: PgServer, dbname: str) -> bool:
    with server.connect() as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
    return row is not None


def test_each_pg_url_is_a_fresh_empty_database_dropped_after(pg_server: PgServer, pg_url: str):
    parts = urlsplit(pg_url)
    assert (parts.scheme, parts.hostname, parts.port) == ("postgresql", "127.0.0.1", pg_server.port)
    assert (parts.username, parts.password) == (pg_server.user, pg_server.password)
    with pg_server.database() as other:
        name, other_name = parts.path.lstrip("/"), urlsplit(other).path.lstrip("/")
        assert name != other_name
        assert _user_tables(pg_url) == [] and _user_tables(other) == []
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE marker (x int)")
            conn.execute("INSERT INTO marker VALUES (1)")
        assert _user_tables(pg_url) == ["public.marker"]
        assert _user_tables(other) == []
        # a connection a test leaves open does not keep its database alive
        left_open = psycopg.connect(other)
        left_open.execute("SELECT 1")
    assert not _exists(pg_server, other_name)
    assert _exists(pg_server, name)
    left_open.close()


def test_a_wrong_password_is_refused_by_the_server(pg_server: PgServer, pg_url: str):
    dbname = urlsplit(pg_url).path.lstrip("/")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (
            pg_server.user,
            dbname,
        )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_url.replace(f":{PASSWORD}@", ":not-the-password@"))
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(
            host=pg_server.host, port=pg_server.port, user=pg_server.user, dbname=dbname
        )
    with pg_server.connect() as conn:
        methods = conn.execute(
            "SELECT DISTINCT type, auth_method FROM pg_hba_file_rules ORDER BY 1"
        ).fetchall()
    assert ("host", "scram-sha-256") in methods
    assert all(method not in ("trust", "password") for _, method in methods)


def _listening(table: Path, port: int) -> list[str]:
    """The local addresses in /proc/net/tcp or tcp6 that listen on ``port``."""
    found = []
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        address, port_hex = fields[1].split(":")
        if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
            continue
        raw = b"".join(
            int(address[i : i + 8], 16).to_bytes(4, sys.byteorder)
            for i in range(0, len(address), 8)
        )
        family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
        found.append(socket.inet_ntop(family, raw))
    return found


def test_the_server_listens_on_127_0_0_1_only(pg_server: PgServer):
    with pg_server.connect() as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SELECT host(inet_server_addr())").fetchone() == ("127.0.0.1",)
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to list the listening sockets")
    assert _listening(Path("/proc/net/tcp"), pg_server.port) == ["127.0.0.1"]
    if Path("/proc/net/tcp6").exists():
        assert _listening(Path("/proc/net/tcp6"), pg_server.port) == []


@pytest.mark.parametrize("store_target", ["sqlite", "postgresql"], indirect=True)
def test_store_target_is_a_sqlite_path_or_a_fresh_database(
    store_target: Path | str, tmp_path: Path, request: pytest.FixtureRequest
):
    if request.node.callspec.params["store_target"] == "sqlite":
        assert store_target == tmp_path / "experience.db"
        assert not store_target.exists()
    else:
        assert isinstance(store_target, str) and store_target.startswith("postgresql://")
        assert _user_tables(store_target) == []


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, waiting for its parent to reap it, doesn't)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _ends(pid: int, within: float = 30.0) -> bool:
    """Whether process ``pid`` ends within ``within`` seconds.

    ``pg_ctl stop`` returns once the server has removed its pid file, a moment before the
    process itself is gone.
    """
    deadline = time.monotonic() + within
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_server_stops_and_its_folder_goes_when_the_session_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    if NO_POSTGRES is not None:
        pytest.skip(NO_POSTGRES)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    pytester.makeconftest("from tests.conftest import pg_server, pg_url  # noqa: F401\n")
    pytester.makepyfile(
        test_inner=textwrap.dedent(
            """
            import json
            from pathlib import Path


            def test_fails(pg_server, pg_url):
                data = pg_server.root / "pg" / "data"
                pid = int((data / "postmaster.pid").read_text().split()[0])
                Path("server.json").write_text(json.dumps(
                    {"port": pg_server.port, "root": str(pg_server.root), "pid": pid}
                ))
                raise AssertionError("a failing test")
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    server = json.loads((pytester.path / "server.json").read_text())
    assert not Path(server["root"]).exists()
    assert _ends(server["pid"]), f"the server process {server['pid']} still runs"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", server["port"])) != 0


def test_an_unknown_test_store_backend_is_refused_before_any_test_runs():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_postgres_infra.py", "--co", "-q"],
        cwd=REPO,
        env={**os.environ, "TEACH_TEST_STORE": "mysql"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "TEACH_TEST_STORE='mysql': expected one of sqlite, postgresql" in done.stderr


def test_the_postgresql_pass_runs_only_the_tests_whose_store_moves(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    pytester.makeconftest(
        "from tests.conftest import (  # noqa: F401\n"
        "    collect, pg_server, pg_url, pytest_collection_modifyitems, store_target\n"
        ")\n"
    )
    pytester.makepyfile(
        test_mixed="""
        def test_collects(collect): pass
        def test_opens(store_target): pass
        def test_plain(tmp_path): pass
        """
    )
    monkeypatch.delenv("TEACH_TEST_STORE", raising=False)
    pytester.runpytest("--co", "-q").stdout.fnmatch_lines(["3 tests collected*"])
    monkeypatch.setenv("TEACH_TEST_STORE", "postgresql")
    result = pytester.runpytest("--co", "-q")
    result.stdout.fnmatch_lines(
        ["test_mixed.py::test_collects", "test_mixed.py::test_opens", "2/3 tests collected*"]
    )
    assert "test_plain" not in result.stdout.str()


def test_ensure_postgres_does_nothing_when_the_server_is_installed():
    if NO_POSTGRES == NO_BINARIES:
        pytest.skip(NO_BINARIES)
    done = subprocess.run(["bash", str(ENSURE)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_ensure_postgres_without_binaries_or_root_gives_a_notice_not_an_error():
    """Run the script as ``nobody`` with the server binaries hidden (a private mount)."""
    if os.geteuid() != 0 or not Path("/usr/lib/postgresql").is_dir():
        pytest.skip("hiding the server binaries needs root and Debian's /usr/lib/postgresql")
    if shutil.which("unshare") is None or shutil.which("runuser") is None:
        pytest.skip("needs unshare and runuser")
    hide = "mount -t tmpfs none /usr/lib/postgresql && runuser -u nobody -- bash -s"
    with ENSURE.open("rb") as script:
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", hide],
            stdin=script,
            capture_output=True,
            text=True,
            timeout=60,
        )
    denied = ("not permitted", "permission denied")
    if done.returncode and any(word in done.stderr.lower() for word in denied):
        pytest.skip(f"no private mount here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "pytest-teach: no PostgreSQL server binaries; install with 'sudo apt-get install"
        " postgresql' (the PostgreSQL tests skip until then)"
    )


#: Store-facing test files that stay off the PostgreSQL pass, and why.
SQLITE_ONLY = {
    "test_store_broken.py": "damage to a SQLite file",
}


def _uses_store_fixture(path: Path) -> bool:
    """Whether a test in ``path`` takes ``collect``, or ``store_target`` with the backend that
    ``TEACH_TEST_STORE`` chooses (not parametrized over both backends itself)."""

    def both_backends(test: ast.FunctionDef) -> bool:
        return any(
            isinstance(mark, ast.Call)
            and getattr(mark.func, "attr", "") == "parametrize"
            and ast.literal_eval(mark.args[0]) == "store_target"
            for mark in test.decorator_list
        )

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
            continue
        takes = {arg.arg for arg in node.args.args}
        if "collect" in takes or ("store_target" in takes and not both_backends(node)):
            return True
    return False


def test_make_test_runs_every_store_facing_file_again_on_postgresql():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    (line,) = [ln for ln in makefile.splitlines() if ln.startswith("STORE_TESTS :=")]
    listed = {Path(word).name for word in line.split(":=", 1)[1].split()}
    store_facing = {
        path.name
        for path in (REPO / "tests").glob("test_*.py")
        if path.name not in SQLITE_ONLY and _uses_store_fixture(path)
    }
    assert listed == store_facing
    assert "TEACH_TEST_STORE=postgresql $(PY) -m pytest $(STORE_TESTS)" in makefile
