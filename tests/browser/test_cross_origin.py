"""The pages served from one origin, calling the API on another: works only when allow-listed.

Two real apps on two loopback ports (two origins): the page server's `WEB_API_BASE` points at
the API server, whose `CORS_ALLOWED_ORIGINS` does, or does not, list the page server's origin.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from service import create_app
from tests.browser.conftest import Server, serve
from tests.browser.helpers import fill_presentation
from tests.browser.test_intake import EMERGENCY


def cors_allows(api: Server, origin: str) -> bool:
    """Whether the API answers a browser's preflight from `origin` (CORS support present)."""
    response = api.app.test_client().options("/v1/assessments", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    return response.headers.get("Access-Control-Allow-Origin") == origin


@pytest.fixture()
def origins(monkeypatch) -> Iterator[dict[str, Server]]:
    """pages: serves the pages; allowed: an API listing the pages' origin; other: one not."""
    with ExitStack() as stack:
        monkeypatch.delenv("CORS_ALLOWED_ORIGINS", raising=False)
        pages = stack.enter_context(serve(create_app()))
        monkeypatch.setenv("CORS_ALLOWED_ORIGINS", pages.origin)
        allowed = stack.enter_context(serve(create_app()))
        monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "http://127.0.0.1:1")
        other = stack.enter_context(serve(create_app()))
        monkeypatch.delenv("CORS_ALLOWED_ORIGINS")
        if not cors_allows(allowed, pages.origin):
            pytest.skip("create_app() does not honour CORS_ALLOWED_ORIGINS yet")
        assert not cors_allows(other, pages.origin)
        yield {"pages": pages, "allowed": allowed, "other": other}


def point_pages_at(servers: dict[str, Server], api: str) -> None:
    servers["pages"].app.config["WEB_API_BASE"] = servers[api].url


def test_allow_listed_origin_assesses_and_lists_rules(origins, page, screenshot):
    point_pages_at(origins, "allowed")
    pages, api = origins["pages"], origins["allowed"]
    assert pages.origin != api.origin
    page.goto(f"{pages.url}/intake")
    assert page.locator("body").get_attribute("data-api-base") == api.url
    fill_presentation(page, EMERGENCY)
    with page.expect_response(f"{api.url}/v1/assessments") as response:
        page.click("#assess")
    assert response.value.status == 200
    assert response.value.headers["access-control-allow-origin"] == pages.origin
    page.wait_for_selector("#urgency-banner")
    assert "urgency-emergency" in page.locator("#urgency-banner").get_attribute("class")
    screenshot("cross-origin-intake")

    with page.expect_response(f"{api.url}/v1/rules"):
        page.goto(f"{pages.url}/rules")
    page.wait_for_selector("#rule-list > li")
    assert page.locator("#rule-count").inner_text().startswith("Showing all")


def test_origin_not_allow_listed_is_refused_with_a_clear_message(origins, page, request,
                                                                  screenshot):
    request.node.allowed_console_errors = ("CORS policy", "Failed to load resource",
                                           "ERR_FAILED")
    point_pages_at(origins, "other")
    pages, api = origins["pages"], origins["other"]
    page.goto(f"{pages.url}/intake")
    fill_presentation(page, EMERGENCY)
    page.click("#assess")
    error = page.locator("#connection-error")
    error.wait_for()
    text = error.inner_text()
    assert f"Could not reach the assessment service at {api.url}" in text
    assert "CORS_ALLOWED_ORIGINS" in text and pages.origin in text
    assert page.locator("#result").is_hidden()
    assert page.locator("#form-status").inner_text() == "The assessment could not be requested."
    screenshot("cross-origin-refused")

    page.goto(f"{pages.url}/rules")
    page.locator("#connection-error").wait_for()
    assert page.locator("#rule-count").inner_text() == "The rules could not be loaded."


def test_same_origin_needs_no_cors(live_server, page):
    """The default: pages and API on one origin, no CORS header needed or sent."""
    page.goto(f"{live_server.url}/intake")
    fill_presentation(page, EMERGENCY)
    with page.expect_response("**/v1/assessments") as response:
        page.click("#assess")
    assert response.value.status == 200
    assert "access-control-allow-origin" not in response.value.headers
