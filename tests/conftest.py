"""Shared fixtures: one app per test session (loading rules is the slow part), a client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service import create_app

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"

# Every test client reads each answer whole and closes it, as a server does once it has sent
# it: what the app releases on close (a batch's slot, service/api.py) is released in tests too.
_open = FlaskClient.open


def _open_buffered(self: FlaskClient, *args: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("buffered", True)
    return _open(self, *args, **kwargs)


FlaskClient.open = _open_buffered  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def app() -> Iterator[Flask]:
    app = create_app()
    app.config.update(TESTING=True)
    yield app


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def assess(app: Flask, presentation: dict[str, Any]) -> dict[str, Any]:
    """POST one presentation to the public API and return the assessment (it must be a 200)."""
    response = app.test_client().post("/v1/assessments", json=presentation)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json
