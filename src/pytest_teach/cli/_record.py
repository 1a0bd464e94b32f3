"""``teach record``: record a human demonstration on one of the bundled sites."""

from __future__ import annotations

import os

import click

from ._common import DB_OPTION, TeachCommand, fail


@click.command("record", cls=TeachCommand)
@click.option("--site", required=True, metavar="NAME", help="the site: shop, docs or booking")
@click.option("--task", "task", required=True, metavar="TEXT", help="the goal being demonstrated")
@DB_OPTION
@click.option("--headless", is_flag=True, help="run Chromium without a window (needs --script)")
@click.option(
    "--script",
    metavar="FILE",
    help="a JSON list of actions to carry out instead of a person, targets given as refs or "
    'as {"role": ..., "name": ...}',
)
@click.option(
    "--start",
    default="index.html",
    show_default=True,
    metavar="PATH",
    help="the page of the site to start on",
)
def record_cmd(
    site: str, task: str, db: str, headless: bool, script: str | None, start: str
) -> None:
    """Record a demonstration: what a person (or a script) does on a bundled site.

    Serves the site on 127.0.0.1 and opens Chromium on it (with a window unless --headless).
    Each action is logged with the page as it was when it was chosen (snapshot, URL, title and
    a screenshot) as a good step of one successful episode by model "human", scenario
    record:SITE, with the task text in its metadata. Close the browser window (or press Ctrl+C)
    to finish. Prints the episode id.

    \b
    Script format (--script), in the agent's action format:
      [{"type": "click", "target": {"role": "button", "name": "Accept all"}},
       {"type": "fill", "target": {"role": "searchbox", "name": "Search products"},
        "text": "blue mug"},
       {"type": "press", "key": "Enter"},
       {"type": "done"}]
    """
    from ..envs.browser._server import SITES

    if site not in SITES:
        fail(f"--site {site!r}: unknown site; choose one of {', '.join(SITES)}")
    if not task.strip():
        fail("--task is empty: say what the demonstration does")
    if headless and not script:
        fail("--headless needs --script FILE: nobody can click in a browser without a window")
    start = start.lstrip("/")
    if start.startswith(f"{site}/"):
        start = start[len(site) + 1 :]
    from ..envs.browser._demo import ScriptError, load_script

    try:
        steps = load_script(script) if script else None
    except ScriptError as exc:
        fail(str(exc))
    if not headless and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        fail("no display for a browser window (DISPLAY is not set); use --headless --script FILE")
    _record(site, task.strip(), db, headless=headless, steps=steps, start=start)


def _record(
    site: str,
    task: str,
    db: str,
    *,
    headless: bool,
    steps: list[dict] | None,
    start: str,
) -> None:
    from .. import __version__
    from ..envs.browser._demo import Demonstration, InteractiveRecorder, ScriptError, run_script
    from ..envs.browser._server import SiteServer
    from ..envs.browser._session import NO_CHROMIUM, BrowserSession, find_chromium, launch_browser
    from ..envs.browser.fixtures import VIEWPORT
    from ..errors import InfrastructureError
    from ..store import new_id, open_store

    executable = find_chromium()
    if executable is None:
        fail(NO_CHROMIUM)
    demo = Demonstration(task)
    source = "script" if steps is not None else "person"
    try:
        with SiteServer() as server, launch_browser(executable, headless=headless) as launched:
            page = launched.new_page(viewport=VIEWPORT)
            session = BrowserSession(page, base_url=server.origin)
            if steps is not None:
                session.goto(f"/{site}/{start}")
                run_script(session, steps, demo)
            else:
                recorder = InteractiveRecorder(session, demo)
                session.goto(f"/{site}/{start}")
                recorder.install()
                click.echo(
                    f"recording on {server.url(site, start)}: do the task in the browser, "
                    "then close its window (or press Ctrl+C here) to save",
                    err=True,
                )
                recorder.run()
                recorder.finish()
                if recorder.unresolved:
                    click.echo(
                        f"note: {recorder.unresolved} action(s) kept their role and name "
                        "because no element of the snapshot matched them",
                        err=True,
                    )
    except ScriptError as exc:
        fail(f"script {exc}")
    except InfrastructureError as exc:
        fail(str(exc))
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
