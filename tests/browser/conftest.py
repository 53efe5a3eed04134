"""Run the real app on loopback and drive it with headless Chromium (Debian's, via Playwright).

Chromium comes from the system (`make test` installs Debian's `chromium` when it can); a
browser download never works here. Without it every browser test is skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from service import create_app

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    """CHROMIUM_PATH when set, else Debian's Chromium; None when it is not installed."""
    if "CHROMIUM_PATH" in os.environ:
        candidates = [os.environ["CHROMIUM_PATH"]]
    else:
        candidates = ["/usr/bin/chromium", shutil.which("chromium") or ""]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


SKIP_REASON = (
    "Chromium is not installed (Debian's package `chromium`, or CHROMIUM_PATH; `make test` "
    "installs it when run as root with apt-get): the browser tests are skipped")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say so at the end of the run, where it cannot be missed, when the browser was absent."""
    if chromium_path() is None:
        terminalreporter.write_line(f"WARNING: {SKIP_REASON}", yellow=True, bold=True)


@dataclass
class Server:
    app: Flask
    url: str
    server: BaseWSGIServer

    @property
    def origin(self) -> str:
        return self.url


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # the app logs its requests
        pass


@contextmanager
def serve(app: Flask) -> Iterator[Server]:
    """Serve an app with werkzeug on a free loopback port in a background thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(app, f"http://127.0.0.1:{server.server_port}", server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server() -> Iterator[Server]:
    """The real app (create_app()), same origin for the pages and the API."""
    with serve(create_app()) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.skip(SKIP_REASON)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is in the test extra
        pytest.skip("playwright (Python) is not installed: browser tests skipped")
    # Playwright gives every launch a fresh, empty profile (user-data) directory of its own.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page (own context) that fails the test on any script error or console error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  locale="en-GB", java_script_enabled=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" else None)
    page.console_problems = problems  # type: ignore[attr-defined]
    yield page
    context.close()
    allowed = getattr(request.node, "allowed_console_errors", ())
    unexpected = [p for p in problems if not any(a in p for a in allowed)]
    assert unexpected == [], unexpected


@pytest.fixture()
def screenshot(page: Any) -> Callable[..., Path]:
    """Save a screenshot (whole page by default) to tests/artifacts/ (git-ignored)."""
    def take(name: str, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path
    return take
