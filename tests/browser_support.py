"""A real browser for the `e3eval view` tests: Playwright driving Debian's Chromium, and a viewer server to point it at.

Playwright's own browser download does not work offline, so the tests launch the installed Chromium
(`$E3EVAL_CHROMIUM`, default /usr/lib/chromium/chromium; `apt-get install -y chromium`). A missing browser or
Playwright fails the tests with one line saying how to install them, never skips them: a green run must mean the
pages were driven.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("E3EVAL_CHROMIUM", "/usr/lib/chromium/chromium")
INSTALL = (
    "run `make browser` (apt-get install -y chromium; pip install playwright==1.65.2), or point E3EVAL_CHROMIUM at "
    "a Chromium executable"
)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (each test opens its own context and page)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"playwright is not installed: {INSTALL}", pytrace=False)
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: {INSTALL}", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def viewer(run_dirs: list[Path]) -> Iterator[Any]:
    """`e3eval view` over `run_dirs` on 127.0.0.1 and a free port, served on a thread; yields the server."""
    from e3eval.view.payload import Views
    from e3eval.view.server import make_server

    views = Views(run_dirs)
    server = make_server(views, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Watched:
    """A page with every dialog, request and console error it saw recorded (dialogs are dismissed)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, url: str) -> Any:
        """Go to `url` and wait until the page says it has rendered (body[data-ready=yes])."""
        self.page.goto(url)
        return self.ready()

    def ready(self, state: str = "yes") -> Any:
        """Wait until the page has rendered the route now in its address bar (`state`: "yes", or "error")."""
        self.page.wait_for_function(
            "(state) => document.body.dataset.ready === state && document.body.dataset.hash === location.hash",
            arg=state,
            timeout=20_000,
        )
        return self.page

    def after(self, key: str) -> str:
        """Press `key`, wait until the address bar's route changed and the page rendered it; returns the new hash."""
        before = self.page.evaluate("location.hash")
        self.page.keyboard.press(key)
        self.page.wait_for_function("(before) => location.hash !== before", arg=before, timeout=20_000)
        self.ready()
        return self.page.evaluate("location.hash")


def rendered_before(page: Any, selector: str) -> str:
    """The text of the trace before the element `selector` (text nodes only: the cut labels are CSS content)."""
    return page.evaluate(
        """(selector) => {
            const mark = document.querySelector(selector);
            const range = document.createRange();
            range.setStart(document.getElementById("trace"), 0);
            range.setEndBefore(mark);
            return range.toString();
        }""",
        selector,
    )
