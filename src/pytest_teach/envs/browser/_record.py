"""A demonstration recorded on a bundled site and saved to the experience store (``teach
record``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import InfrastructureError
from ._demo import ScriptError, load_driver, load_script

if TYPE_CHECKING:
    from ...store import Episode

__all__ = ["record_to_store"]


def _start_page(site: str, start: str) -> str:
    start = start.lstrip("/")
    return start[len(site) + 1 :] if start.startswith(f"{site}/") else start


def record_to_store(
    site: str,
    task: str,
    db: str | os.PathLike[str],
    *,
    headless: bool = False,
    script: str | Path | None = None,
    drive: str | None = None,
    start: str = "index.html",
    announce: Callable[[str], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> Episode:
    """Record a demonstration of ``task`` on ``site`` and save it to the store at ``db`` (created
    when missing) as one successful episode by ``model="human"`` in a session of its own.

    The demonstration is the actions of the JSON ``script`` (see :func:`load_script`), else the
    input of the person at a Chromium window (played by the generator function ``drive``,
    ``MODULE:FUNCTION``, when given) until the window is closed. ``start`` is the page of the
    site to open (``shop/cart.html`` and ``cart.html`` are the same). ``announce`` receives the
    site's URL once a person can begin; ``note`` receives a line about actions whose element the
    snapshot lacked. Nothing is written to the store unless something was recorded.

    Raises:
        ScriptError: the script or the driver cannot be loaded, or a scripted action failed.
        ValueError: a window is wanted but there is no display, or nothing was recorded.
        InfrastructureError: Chromium is missing or won't start.
    """
    from ... import __version__
    from ...store import new_id, open_store
    from ._demo import record_demonstration
    from ._session import NO_CHROMIUM, find_chromium

    start = _start_page(site, start)
    steps = load_script(script) if script else None
    driver = load_driver(drive) if drive else None
    if not headless and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ValueError(
            "no display for a browser window (DISPLAY is not set); use --headless --script "
            "FILE, or run under Xvfb (xvfb-run teach record ...)"
        )
    executable = find_chromium()
    if executable is None:
        raise InfrastructureError(NO_CHROMIUM)
    source = "script" if steps is not None else "driver" if driver is not None else "person"
    try:
        demo, recorder = record_demonstration(
            site,
            task,
            executable=executable,
            headless=headless,
            steps=steps,
            driver=driver,
            start=start,
            announce=None if driver is not None else announce,
        )
    except ScriptError as exc:
        raise ScriptError(f"script {exc}") from None
    if recorder is not None and recorder.unresolved and note is not None:
        note(
            f"note: {recorder.unresolved} action(s) kept their role and name "
            "because no element of the snapshot matched them"
        )
    if demo.steps <= 1:
        raise ValueError("nothing was recorded: no action was taken in the browser")
    session_id = new_id()
    episode = demo.build(episode_id=new_id(), site=site, start=start, source=source,
                         session_id=session_id)  # fmt: skip
    store = open_store(db, create=True)
    try:
        store.start_session(
            session_id,
            argv=["teach", "record", "--site", site, "--task", task],
            version=__version__,
            git_commit=None,
            rootdir=os.getcwd(),
        )
        refs = [
            store.save_artifact_file(data, media) for data, media in demo.recorder.blobs.values()
        ]
        store.write_episode(episode, refs)
        store.finish_session(session_id, 0)
    finally:
        store.close()
    return episode
