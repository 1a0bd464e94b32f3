"""A reward worker: one pytest session that scores candidate completions with the suite's tests.

Started by :class:`~pytest_teach.rewards.RewardPool` as
``python -m pytest_teach.rewards._worker FD -- PYTEST_ARGS...``. It runs a
:class:`~pytest_teach.rewards._session.CheckSession` over the suite and serves the pool over the
socket ``FD``:

- ``("prompt", nodeid)``: the prompt the test sends (:meth:`CheckSession.prompt`).
- ``("score", nodeid, completion, timeout)``: the reward ``completion`` earns
  (:meth:`CheckSession.score`).
- ``("stop",)``: tear the fixtures down and end the session.
"""

from __future__ import annotations

import sys
from contextlib import suppress
from multiprocessing.connection import Connection

import pytest

from ._session import CheckSession, CheckTimeout, session_args, short_error

__all__ = ["CheckTimeout", "main"]


class ServePlugin(CheckSession):
    """Serves score and prompt requests from the socket ``conn``."""

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn

    def note(self, message: str) -> None:
        self.conn.send(("log", message))

    def serve(self) -> None:
        if self.collect_error:
            self.conn.send(("error", self.collect_error))
            return
        self.conn.send(("ready", list(self.items)))
        while True:
            try:
                request = self.conn.recv()
            except (EOFError, OSError):
                return
            kind = request[0]
            if kind == "stop":
                return
            if kind == "prompt":
                self.conn.send(self.prompt(request[1]))
            elif kind == "score":
                _, nodeid, completion, timeout = request
                self.conn.send(self.score(nodeid, completion, timeout))
            else:
                self.conn.send(("error", f"unknown request {kind!r}"))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    fd = int(args.pop(0))
    if args and args[0] == "--":
        args.pop(0)
    conn = Connection(fd)
    plugin = ServePlugin(conn)
    try:
        code = pytest.main(session_args(args), plugins=[plugin])
    except BaseException as exc:  # noqa: BLE001
        with suppress(OSError):
            conn.send(("error", f"the worker's pytest session failed: {short_error(exc)}"))
        return 1
    if plugin.session is None:  # usage error or nothing collected: the pool learns why
        with suppress(OSError):
            conn.send(("error", f"pytest could not collect the suite (exit status {int(code)})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
