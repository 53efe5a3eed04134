"""Fixtures for the vignette suites."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def catalog(app) -> set[str]:
    """The ids of every rule in GET /v1/rules."""
    response = app.test_client().get("/v1/rules")
    assert response.status_code == 200
    return {rule["id"] for rule in response.json["rules"]}
