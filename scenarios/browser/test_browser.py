"""Browser tasks on the bundled shop, docs and booking sites, driven through Debian Chromium.

The agent sees each page as its accessibility snapshot and acts by refs; success is checked
against the site's own state. Record every run as training data:

    pytest scenarios/browser --model scripted:noisy-0.3 --collect-training-data
"""

from __future__ import annotations

import pytest

from pytest_teach.envs import browser as br
from pytest_teach.envs.browser.fixtures import VIEWPORT

CASES = [
    pytest.param(
        task,
        id=task.id,
        marks=pytest.mark.scenario("browser", category=task.category, site=task.site),
    )
    for task in br.TASKS
]


@pytest.mark.parametrize("task", CASES)
def test_browser_task(task: br.Task, site, browser, policy, episode) -> None:
    # A fresh page for every run: the reward pool runs this test again for each candidate with
    # its fixtures kept, and a replayed trajectory needs the page's refs and the site's storage
    # to start afresh each time.
    context = browser.new_context(viewport=VIEWPORT)
    try:
        session = br.BrowserSession(context.new_page(), base_url=site.origin)
        result = br.run_task(session, task, policy, episode, screenshots=episode.enabled)
    finally:
        context.close()
    assert result.success, result.reason
