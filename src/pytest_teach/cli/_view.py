"""``teach view``: the live viewer and review queue."""

from __future__ import annotations

import click

from ._common import DB_OPTION, TeachCommand, fail


@click.command("view", cls=TeachCommand)
@DB_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind")
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="TCP port"
)
@click.option(
    "--token",
    envvar="TEACH_VIEW_TOKEN",
    metavar="TOKEN",
    help="require this token on every request (env TEACH_VIEW_TOKEN); needed to bind an "
    "address other than loopback",
)
def view_cmd(db: str, host: str, port: int, token: str | None) -> None:
    """Browse the store in a local web viewer, and review episodes.

    Pages: sessions, episodes (filter, sort, search; live while a run records), one episode as
    a timeline, A/B pairs, and a review queue (j/k move, g/b good/bad, c correction, ? help).
    Feedback given there is the feedback `teach feedback add` writes: `teach export --format
    dpo` turns each correction into a preference pair.

    Binds 127.0.0.1 unless told otherwise; another address needs --token, and every request
    must then carry it (open the URL once with ?token=TOKEN, or send Authorization: Bearer).
    """
    try:
        from ..serve import PortInUseError
        from ..view import ViewerError, check_bind, serve_viewer
    except ImportError as exc:  # pragma: no cover - the serve extra is missing
        fail(f"the viewer needs fastapi and uvicorn ({exc}); install pytest-teach[serve]")
    try:
        check_bind(host, token)
        serve_viewer(db, host=host, port=port, token=token)
    except (ViewerError, PortInUseError) as exc:
        fail(str(exc), code=1)
