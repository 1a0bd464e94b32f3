"""The PostgreSQL backend's connection: psycopg 3 behind the small part of ``sqlite3``'s
interface the store uses (``execute``, ``executemany``, rows readable by name and position).

The store writes its SQL once, in SQLite's spelling; :func:`translate` turns a statement into
PostgreSQL's (placeholders, ``INSERT OR IGNORE``, ``BEGIN IMMEDIATE``), once per statement.
psycopg is imported only when a ``postgresql://`` store is opened, so the plugin stays light.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from ..redaction import REDACTED, redact, redact_url

SCHEMES = ("postgresql://", "postgres://")

#: How long opening a PostgreSQL store waits for the server before giving up, in seconds.
CONNECT_TIMEOUT_S = 10


def is_url(target: object) -> bool:
    """Whether ``target`` names a PostgreSQL store (a ``postgresql://`` URL), not a file."""
    return isinstance(target, str) and target.strip().lower().startswith(SCHEMES)


class Target:
    """A parsed ``postgresql://USER:PASSWORD@HOST:PORT/DBNAME`` URL, checked before connecting.

    ``location`` is the URL with its password masked: the only form that is ever printed.
    """

    def __init__(self, url: str) -> None:
        from ._store import StoreError

        self.url = url.strip()
        self.location, self._secret = _mask_userinfo(self.url)
        try:
            parts = urlsplit(self.url)
            port = parts.port
            if port == 0:
                raise ValueError("port 0")
        except ValueError as exc:  # urllib's reason may quote the password: never shown
            reason = (
                "the host is not a valid IPv6 address in brackets"
                if "IPv6" in str(exc)
                else "the port must be a number from 1 to 65535"
            )
            raise StoreError(
                f"malformed PostgreSQL URL {self.location}: {reason}{self._hint()}"
            ) from None
        if "@" in parts.netloc.rpartition("@")[0]:  # libpq and urllib split it differently
            raise StoreError(f"malformed PostgreSQL URL {self.location}: {_ENCODE.strip('; ')}")
        if parts.scheme.lower() not in ("postgresql", "postgres"):
            raise StoreError(
                f"malformed PostgreSQL URL {self.location}: the scheme must be postgresql"
            )
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname or "/" in dbname:
            raise StoreError(
                f"malformed PostgreSQL URL {self.location}: name one database after the host, "
                f"as in postgresql://USER@HOST:5432/DBNAME{self._hint()}"
            )
        self.host = parts.hostname or "localhost"
        self.port = port or 5432
        self.user = unquote(parts.username) if parts.username else None
        self.dbname = dbname
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                f"{self.location} is a PostgreSQL store and psycopg is not installed: "
                "pip install 'pytest-teach[postgres]'"
            ) from None
        try:
            psycopg.conninfo.conninfo_to_dict(self.url)
        except psycopg.Error as exc:
            raise StoreError(
                f"malformed PostgreSQL URL {self.location}: {self.scrub(_first_line(exc))}"
            ) from None

    def _hint(self) -> str:
        """How to spell the password, when it holds a character that ends a URL's part."""
        return _ENCODE if any(c in self._secret for c in "/?#@ ") else ""

    def scrub(self, text: str) -> str:
        """``text`` with the URL's password masked, however it was spelled."""
        for secret in {self._secret, unquote(self._secret)} - {""}:
            text = text.replace(secret, REDACTED)
        return redact(text)

    @property
    def server(self) -> str:
        """``HOST:PORT``, for messages."""
        return f"{self.host}:{self.port}"

    def connect(self) -> PgConnection:
        """Connect (autocommit), or raise :class:`StoreError` with one line saying why."""
        import psycopg

        from ._store import StoreError

        try:
            raw = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="pytest-teach",
            )
        except psycopg.Error as exc:
            raise StoreError(self.connect_error(exc)) from None
        return PgConnection(raw)

    def connect_error(self, exc: BaseException) -> str:
        """Why connecting failed, in one line that never holds the password."""
        text = str(exc)
        low = text.lower()
        if "password authentication failed" in low or "no password supplied" in low:
            return (
                f"PostgreSQL at {self.server} refused the login of user {self.user or '(none)'}: "
                "wrong password (the store was not touched)"
            )
        if "does not exist" in low and "database" in low:
            return (
                f"PostgreSQL at {self.server} has no database {self.dbname!r}; "
                f"create it (createdb -h {self.host} -p {self.port} {self.dbname}) or fix the URL"
            )
        if "timeout" in low or "timed out" in low:
            return (
                f"cannot reach PostgreSQL at {self.server}: no answer within "
                f"{CONNECT_TIMEOUT_S} s (is the server up and the port open?)"
            )
        reason = "connection refused" if "refused" in low else _first_line(exc)
        return (
            f"cannot reach PostgreSQL at {self.server}: {self.scrub(reason)} "
            "(is the server running?)"
        )


_ENCODE = "; percent-encode any / ? # @ % or space in the password (%2F %3F %23 %40 %25 %20)"


def _mask_userinfo(url: str) -> tuple[str, str]:
    """``url`` with its password masked, and the password as written ("" when none).

    The password is taken as everything between the user name's ``:`` and the *last* ``@``,
    so a password holding ``/``, ``?``, ``#`` or ``@`` (which should be percent-encoded but
    often isn't) is masked whole, not cut where a URL parser would stop reading it.
    """
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0:
        return redact_url(url), ""
    user, colon, secret = rest[:at].partition(":")
    if not colon:
        return redact_url(url), ""
    masked = f"{scheme}://{user}:{REDACTED}@{rest[at + 1 :]}"
    return redact(masked), secret


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return redact(lines[0] if lines else type(exc).__name__)


class _Row(tuple):
    """A result row read by position (``r[0]``) or by column name (``r["id"]``); ``dict(r)``
    gives ``{column: value}``, as :class:`sqlite3.Row` does."""

    __slots__ = ()
    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            key = self._index[key]
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        """The column names, in order."""
        return list(self._index)


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[_Row]:
    return type("Row", (_Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})


def _row_factory(cursor: Any) -> Any:
    description = cursor.description
    if description is None:
        return tuple
    return _row_class(tuple(c.name for c in description))


_INSERT_OR = re.compile(r"^\s*INSERT OR (IGNORE|REPLACE) INTO", re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def translate(sql: str, with_args: bool = True) -> str:
    """``sql`` in SQLite's spelling, as PostgreSQL takes it."""
    text = sql.strip()
    if text.upper() == "BEGIN IMMEDIATE":
        return "BEGIN"
    match = _INSERT_OR.match(text)
    if match:
        verb = match.group(1).upper()
        text = "INSERT INTO" + text[match.end() :]
        if verb == "IGNORE":
            text += " ON CONFLICT DO NOTHING"
        elif re.match(r"INSERT INTO meta\s*\(key, value\)", text):
            text += " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        else:  # pragma: no cover - a statement the store doesn't write
            raise ValueError(f"no PostgreSQL form of INSERT OR REPLACE for: {sql}")
    # placeholders, outside string literals
    pieces = text.split("'")
    for i in range(0, len(pieces), 2):
        piece = pieces[i].replace("%", "%%") if with_args else pieces[i]
        pieces[i] = piece.replace("?", "%s") if with_args else piece
    return "'".join(pieces)


class PgConnection:
    """A psycopg connection (autocommit) with the ``execute``/``executemany`` the store uses."""

    backend = "postgresql"

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, args: Sequence[Any] | None = ()) -> Any:
        """Run one statement; return its cursor (``fetchone``, ``fetchall``, iteration,
        ``rowcount``)."""
        cursor = self.raw.cursor(row_factory=_row_factory)
        if args:
            cursor.execute(translate(sql), tuple(args))
        else:
            cursor.execute(translate(sql, False))
        return cursor

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        """Run one statement for each row of arguments (pipelined)."""
        cursor = self.raw.cursor()
        cursor.executemany(translate(sql), [tuple(r) for r in rows])
        return cursor

    def table_names(self) -> set[str]:
        """The tables in the current schema."""
        rows = self.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()
        return {r[0] for r in rows}

    def columns(self, table: str) -> list[str]:
        """``table``'s column names."""
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        """Close the connection."""
        self.raw.close()


def database_errors() -> tuple[type[BaseException], ...]:
    """psycopg's error classes (empty when psycopg is not installed)."""
    try:
        import psycopg
    except ImportError:
        return ()
    return (psycopg.Error,)
