"""A local HTTP server for the bundled sites (standard library only)."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["SITES", "SITES_DIR", "SiteServer"]

SITES_DIR = Path(__file__).with_name("sites")
SITES = ("shop", "docs", "booking")


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without logging each request, and without caching."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class SiteServer:
    """Serves ``sites/`` (or ``root``) on 127.0.0.1 at a free port.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`::

        with SiteServer() as server:
            page.goto(server.url("shop"))
    """

    def __init__(self, root: str | Path | None = None, host: str = "127.0.0.1") -> None:
        self.root = Path(root) if root is not None else SITES_DIR
        self.host = host
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (it must be started)."""
        if self._server is None:
            raise RuntimeError("the site server is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> SiteServer:
        """Bind a free port and serve in a background thread. Idempotent."""
        if self._server is not None:
            return self
        if not self.root.is_dir():
            raise FileNotFoundError(f"no sites directory at {self.root}")
        handler = functools.partial(_QuietHandler, directory=str(self.root))
        self._server = _Server((self.host, 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="teach-site-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket. Idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def url(self, site: str, path: str = "") -> str:
        """The URL of ``path`` inside ``site`` (``url("shop", "cart.html")``).

        ``site`` is one of :data:`SITES` (or a folder under ``root``); ``path`` may carry a
        query string and fragment.
        """
        if not (self.root / site).is_dir():
            raise ValueError(f"unknown site {site!r}; choose one of {', '.join(self.sites())}")
        return f"{self.origin}/{site}/{path.lstrip('/')}"

    def sites(self) -> list[str]:
        """The sites this server can serve."""
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def __enter__(self) -> SiteServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.origin if self._server is not None else "stopped"
        return f"SiteServer({str(self.root)!r}, {state})"
