"""``teach record``: record a human demonstration on one of the bundled sites."""

from __future__ import annotations

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
    from ..envs.browser import SITES, record_to_store
    from ..errors import InfrastructureError

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
    try:
        episode = record_to_store(
            site,
            task.strip(),
            db,
            headless=headless,
            script=script,
            drive=drive,
            start=start,
            announce=_announce,
            note=lambda line: click.echo(line, err=True),
        )
    except (ValueError, InfrastructureError) as exc:
        fail(str(exc))
    click.echo(episode.id)


def _announce(url: str) -> None:
    click.echo(
        f"recording on {url}: do the task in the browser, "
        "then close its window (or press Ctrl+C here) to save",
        err=True,
    )
