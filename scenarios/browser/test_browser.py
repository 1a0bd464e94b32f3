"""Browser tasks on the bundled shop, docs and booking sites, driven through Debian Chromium.

The agent sees each page as its accessibility snapshot and acts by refs; success is checked
against the site's own state. Record every run as training data:

    pytest scenarios/browser --model scripted:noisy-0.3 --collect-training-data
"""

from __future__ import annotations

import pytest

from pytest_teach.envs import browser as br

CASES = [
    pytest.param(
        task,
        id=task.id,
        marks=pytest.mark.scenario("browser", category=task.category, site=task.site),
    )
    for task in br.TASKS
]


@pytest.mark.parametrize("task", CASES)
def test_browser_task(task: br.Task, site, browser_page, policy, episode) -> None:
    session = br.BrowserSession(browser_page, base_url=site.origin)
    result = br.run_task(session, task, policy, episode, screenshots=episode.enabled)
    assert result.success, result.reason
