"""pytest fixtures for browser scenarios: ``site``, ``browser`` and ``browser_page``.

Importing this module is cheap: the site server and Playwright are loaded by the fixtures.
Use them from a ``conftest.py``::

    from pytest_teach.envs.browser.fixtures import browser, browser_page, site  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from ._server import SiteServer

__all__ = ["VIEWPORT", "browser", "browser_page", "chromium_setting", "site"]

#: The page size of ``browser_page`` (small screenshots, a layout that still shows the sidebar).
VIEWPORT = {"width": 1024, "height": 640}


def chromium_setting(config: pytest.Config) -> str | None:
    """The ini value ``teach_chromium``, or None when unset or not registered."""
    try:
        value = config.getini("teach_chromium")
    except ValueError:
        return None
    return str(value).strip() or None


@pytest.fixture(scope="session")
def site() -> Iterator[SiteServer]:
    """The bundled sites (``shop``, ``docs``, ``booking``) served on 127.0.0.1 for the session;
    ``site.url("shop", "cart.html")``."""
    from ._server import SiteServer

    server = SiteServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    """Headless Debian Chromium through Playwright, launched once per session (per xdist worker).

    Skips with a reason when no Chromium is found or Playwright is not installed; a browser that
    is found but won't start is an infrastructure error.
    """
    import os

    from ._session import NO_CHROMIUM, find_chromium, launch_browser

    configured = chromium_setting(request.config)
    executable = find_chromium(configured)
    if executable is None:
        explicit = configured or os.environ.get("TEACH_CHROMIUM")
        detail = f" ({explicit!r} is not an executable file)" if explicit else ""
        pytest.skip(NO_CHROMIUM + detail)
    try:
        import playwright  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"playwright is not installed ({exc}): pip install 'pytest-teach[browser]'")
    launched = launch_browser(executable)
    try:
        yield launched.browser
    finally:
        launched.close()


@pytest.fixture
def browser_page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context (its own cookies and storage), closed after the test."""
    context: Any = browser.new_context(viewport=VIEWPORT)
    try:
        yield context.new_page()
    finally:
        context.close()
