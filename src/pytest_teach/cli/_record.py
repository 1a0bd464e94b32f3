"""``teach record``: record a human demonstration on one of the bundled sites."""

from __future__ import annotations

import os
from typing import Any

import click

from ._common import DB_OPTION, TeachCommand, fail


@click.command("record", cls=TeachCommand)
@click.option("--site", required=True, metavar="NAME", help="the site: shop, docs or booking")
@click.option("--task", "task", required=True, metavar="TEXT", help="the goal being demonstrated")
@DB_OPTION
@click.option(
    "--headless", is_flag=True, help="run Chromium without a window (needs --script or --drive)"
)
@click.option(
    "--script",
    metavar="FILE",
    help="a JSON list of actions to carry out instead of a person, targets given as refs or "
    'as {"role": ..., "name": ...}',
)
@click.option(
    "--drive",
    metavar="MODULE:FUNCTION",
    help="play the person with a Python generator function: it gets the Playwright page, acts "
    "with real input (page.mouse, page.keyboard) and yields after each action; the recorder "
    "logs that input as it logs a person's (for unattended runs of the headed recorder)",
)
@click.option(
    "--start",
    default="index.html",
    show_default=True,
    metavar="PATH",
    help="the page of the site to start on",
)
def record_cmd(
    site: str,
    task: str,
    db: str,
    headless: bool,
    script: str | None,
    drive: str | None,
    start: str,
) -> None:
    """Record a demonstration: what a person (or a script) does on a bundled site.

    Serves the site on 127.0.0.1 and opens Chromium on it (with a window unless --headless).
    Each action is logged with the page as it was when it was chosen (snapshot, URL, title and
    a screenshot) as a good step of one successful episode by model "human", scenario
    record:SITE, with the task text in its metadata. Close the browser window (or press Ctrl+C)
    to finish. Prints the episode id.

    A window needs a display: on a machine without one, run under Xvfb
    (xvfb-run teach record ...).

    \b
    Script format (--script), in the agent's action format:
      [{"type": "click", "target": {"role": "button", "name": "Accept all"}},
       {"type": "fill", "target": {"role": "searchbox", "name": "Search products"},
        "text": "blue mug"},
       {"type": "press", "key": "Enter"},
       {"type": "done"}]

    \b
    Driver (--drive mymodule:person, mymodule importable):
      def person(page):
          box = page.get_by_role("button", name="Accept all").bounding_box()
          page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
          yield
          page.keyboard.type("blue mug")
          yield
    """
    from ..envs.browser._server import SITES

    if site not in SITES:
        fail(f"--site {site!r}: unknown site; choose one of {', '.join(SITES)}")
    if not task.strip():
        fail("--task is empty: say what the demonstration does")
    if script and drive:
        fail("--script and --drive both play the demonstration: give one")
    if headless and not (script or drive):
        fail(
            "--headless needs --script FILE (or --drive MODULE:FUNCTION): nobody can click in "
            "a browser without a window"
        )
    start = start.lstrip("/")
    if start.startswith(f"{site}/"):
        start = start[len(site) + 1 :]
    from ..envs.browser._demo import ScriptError, load_driver, load_script

    try:
        steps = load_script(script) if script else None
        driver = load_driver(drive) if drive else None
    except ScriptError as exc:
        fail(str(exc))
    if not headless and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        fail(
            "no display for a browser window (DISPLAY is not set); use --headless --script "
            "FILE, or run under Xvfb (xvfb-run teach record ...)"
        )
    _record(site, task.strip(), db, headless=headless, steps=steps, driver=driver, start=start)


def _announce(url: str) -> None:
    click.echo(
        f"recording on {url}: do the task in the browser, "
        "then close its window (or press Ctrl+C here) to save",
        err=True,
    )


def _record(
    site: str,
    task: str,
    db: str,
    *,
    headless: bool,
    steps: list[dict] | None,
    driver: Any,
    start: str,
) -> None:
    from .. import __version__
    from ..envs.browser import NO_CHROMIUM, find_chromium
    from ..envs.browser._demo import ScriptError, record_demonstration
    from ..errors import InfrastructureError
    from ..store import new_id, open_store

    executable = find_chromium()
    if executable is None:
        fail(NO_CHROMIUM)
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
            announce=None if driver is not None else _announce,
        )
    except ScriptError as exc:
        fail(f"script {exc}")
    except InfrastructureError as exc:
        fail(str(exc))
    if recorder is not None and recorder.unresolved:
        click.echo(
            f"note: {recorder.unresolved} action(s) kept their role and name "
            "because no element of the snapshot matched them",
            err=True,
        )
    if demo.steps <= 1:
        fail("nothing was recorded: no action was taken in the browser")
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
    click.echo(episode.id)
