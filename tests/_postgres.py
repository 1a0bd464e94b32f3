"""A throwaway PostgreSQL server for the tests, started with pytest-postgresql's executor.

One server per test session (one per xdist worker): ``initdb`` into a fresh temporary folder,
``pg_ctl start`` on 127.0.0.1 and a free port, password authentication (SCRAM) for a test role,
and ``pg_ctl stop`` plus removal of the folder at the end, also when the session fails.

PostgreSQL refuses to run as root. As root, the server runs as the ``postgres`` system user:
``pg_ctl`` is called through a small wrapper that runs it with ``runuser -u postgres --``, and
the server's folder (data, socket, log) lives outside pytest's ``/tmp/pytest-of-root`` (mode
0700, which ``postgres`` can't enter) in a folder of its own that ``postgres`` owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - the postgres extra is missing
    psycopg = None  # type: ignore[assignment]

#: The environment variable that moves the store-facing tests onto PostgreSQL.
STORE_ENV = "TEACH_TEST_STORE"
#: The backends :data:`STORE_ENV` may name.
BACKENDS = ("sqlite", "postgresql")

HOST = "127.0.0.1"
USER = "teach"
#: The test role's password (a test server's, known on purpose: tests check that a wrong one
#: is refused and that this one never reaches the store, a report or a log).
PASSWORD = "pg-test-secret-5b1d"
#: The database the fixtures connect to in order to create and drop the tests' databases.
ADMIN_DB = "postgres"
NO_BINARIES = "PostgreSQL server binaries not found; install Debian's postgresql"
NO_PSYCOPG = "psycopg is not installed: pip install 'pytest-teach[postgres]'"
_SERVER_FILES = ("initdb", "postgres", "pg_ctl")
# test settings: no fsync (a crash of the test machine loses a throwaway server, nothing else)
_SERVER_OPTIONS = f"-c listen_addresses={HOST} -c fsync=off -c full_page_writes=off"


def store_backend() -> str:
    """The backend named by ``TEACH_TEST_STORE`` (``sqlite`` when unset).

    Raises ValueError naming the variable for any other value.
    """
    value = os.environ.get(STORE_ENV, "").strip().lower() or "sqlite"
    if value not in BACKENDS:
        raise ValueError(f"{STORE_ENV}={value!r}: expected one of {', '.join(BACKENDS)}")
    return value


def _has_server(bindir: str | Path) -> bool:
    return all(os.access(Path(bindir) / name, os.X_OK) for name in _SERVER_FILES)


def _version_key(bindir: str) -> tuple[int, ...]:
    version = Path(bindir).parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def find_bindir() -> Path | None:
    """The folder of the newest PostgreSQL server binaries (initdb, postgres, pg_ctl), or None.

    Looks where Debian installs them (``/usr/lib/postgresql/N/bin``), where ``pg_config`` says
    they are, and on PATH.
    """
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates: list[str] = list(debian)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        candidates.append(
            subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
        )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for bindir in candidates:
        if bindir and _has_server(bindir):
            return Path(bindir)
    return None


def _run_as() -> pwd.struct_passwd | None:
    """The user the server runs as when this process is root (``postgres``), else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def unavailable() -> str | None:
    """Why no test server can run here (one line), or None when it can."""
    if psycopg is None:
        return NO_PSYCOPG
    if find_bindir() is None:
        return NO_BINARIES
    if os.geteuid() == 0 and _run_as() is None:
        return "PostgreSQL refuses to run as root, and there is no 'postgres' user to run it as"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "PostgreSQL refuses to run as root, and there is no runuser to run it as 'postgres'"
    return None


@dataclass(frozen=True)
class PgServer:
    """A running test server: where it listens and who may log in."""

    host: str
    port: int
    user: str
    password: str
    #: the server's folder (data folder, socket, log); removed when the server stops
    root: Path

    def url(self, dbname: str) -> str:
        """The ``postgresql://`` URL of database ``dbname`` on this server, password included."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = ADMIN_DB, **kwargs: object) -> psycopg.Connection:
        """A psycopg connection to ``dbname`` as the test role (autocommit unless told)."""
        kwargs.setdefault("autocommit", True)
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
            connect_timeout=10,
            **kwargs,
        )

    def create_database(self) -> str:
        """Create a new, empty database with a unique name; return the name."""
        name = f"teach_{uuid.uuid4().hex[:16]}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, ending any session still connected to it."""
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A fresh, empty database for the ``with`` block; yields its URL, drops it after."""
        name = self.create_database()
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _prepare_root(owner: pwd.struct_passwd | None, bindir: Path) -> tuple[Path, Path, str]:
    """Make the server's folders; return (top folder, server folder, pg_ctl to call).

    As root the top folder is root's, traversable only (0711), and holds the ``pg_ctl``
    wrapper; the server folder inside it belongs to ``postgres``.
    """
    top = Path(tempfile.mkdtemp(prefix="pytest-teach-pg-"))
    pgdir = top / "pg"
    pgdir.mkdir(mode=0o700)
    pg_ctl = str(bindir / "pg_ctl")
    if owner is not None:
        top.chmod(0o711)
        os.chown(pgdir, owner.pw_uid, owner.pw_gid)
        wrapper = top / "pg_ctl"
        wrapper.write_text(
            "#!/bin/sh\n"
            "# PostgreSQL refuses root: run pg_ctl as the postgres user, from its own folder\n"
            f"cd {shlex.quote(str(pgdir))} || exit 1\n"
            f'exec runuser -u {shlex.quote(owner.pw_name)} -- {shlex.quote(pg_ctl)} "$@"\n',
            encoding="utf-8",
        )
        wrapper.chmod(0o755)
        pg_ctl = str(wrapper)
    return top, pgdir, pg_ctl


def _executor_class() -> type:
    """pytest-postgresql's executor, initialising its data folder with SCRAM passwords.

    pytest-postgresql's own ``initdb`` writes the password file to a private temporary file
    that the ``postgres`` user can't read when this process is root, and asks for plain
    ``password`` authentication; this one writes it into the server's folder, owned by the
    server's user, and asks for ``scram-sha-256``.
    """
    from pytest_postgresql.executors import PostgreSQLExecutor

    class ScramExecutor(PostgreSQLExecutor):
        owner: pwd.struct_passwd | None = None

        def init_directory(self) -> None:
            if Path(self.datadir).exists():
                return
            pwfile = Path(self.datadir).parent / "pwfile"
            pwfile.write_text(self.password + "\n", encoding="utf-8")
            pwfile.chmod(0o600)
            if self.owner is not None:
                os.chown(pwfile, self.owner.pw_uid, self.owner.pw_gid)
            options = [
                f"--username={self.user}",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",  # a throwaway server: no fsync of the new data folder
            ]
            env = {**os.environ, **self.envvars}
            env.pop("PGDATA", None)
            command = [self.executable, "initdb", "-D", self.datadir, "-o", shlex.join(options)]
            try:
                done = subprocess.run(
                    command,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
            finally:
                pwfile.unlink(missing_ok=True)
            if done.returncode:
                raise RuntimeError(
                    f"initdb failed ({done.returncode}): {(done.stderr or done.stdout).strip()}"
                )

    return ScramExecutor


def _log_tail(logfile: Path, lines: int = 20) -> str:
    try:
        return "\n".join(logfile.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _wait_until_ready(server: PgServer, timeout: float = 60.0) -> None:
    """Wait until the server takes connections (its port opens while it still starts up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with server.connect():
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def running_server(attempts: int = 3) -> Iterator[PgServer]:
    """Start a throwaway server, yield it, and always stop it and remove its folder.

    Raises RuntimeError with the server's log when it doesn't start.
    """
    reason = unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    bindir = find_bindir()
    assert bindir is not None
    owner = _run_as()
    executor_class = _executor_class()
    last_error = ""
    for _ in range(attempts):
        top, pgdir, pg_ctl = _prepare_root(owner, bindir)
        port = _free_port()
        executor = executor_class(
            executable=pg_ctl,
            host=HOST,
            port=port,
            datadir=str(pgdir / "data"),
            unixsocketdir=str(pgdir),
            logfile=str(pgdir / "postgresql.log"),
            startparams="-w",
            dbname=ADMIN_DB,
            user=USER,
            password=PASSWORD,
            postgres_options=_SERVER_OPTIONS,
        )
        executor.owner = owner
        started = False
        try:
            try:
                executor.start()
                started = True
            except Exception as exc:  # noqa: BLE001 - a port taken meanwhile: try another
                last_error = f"{exc}\n{_log_tail(pgdir / 'postgresql.log')}"
                continue
            server = PgServer(HOST, port, USER, PASSWORD, top)
            _wait_until_ready(server)
            yield server
            return
        finally:
            with contextlib.suppress(Exception):
                if started or executor.running():
                    executor.stop()
            shutil.rmtree(top, ignore_errors=True)
    raise RuntimeError(f"the test PostgreSQL server did not start: {last_error}")
