"""What one worker holds of request bodies at once is bounded (MAX_BODY_BYTES_IN_FLIGHT).

gevent reads any number of uploads at the same time, so the sum of the bodies a worker holds,
not only each body, must stay inside the pod's memory. In process: the budget is given back
by every request, whatever its answer; a body that would exceed it gets 503 problem+json
with Retry-After. Under gunicorn: ten large uploads at once, only what fits is held.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import create_app
from service.config import ConfigError
from tests.gunicorn_server import running_gunicorn

MINIMAL = {"patient": {"age": 40}, "pain": {"sites": ["low_back"], "duration_days": 3}}


@pytest.fixture(scope="module")
def budget_app():
    return create_app()


@settings(max_examples=40, deadline=None)
@given(body=st.one_of(
    st.just(json.dumps(MINIMAL)),
    st.just(json.dumps({**MINIMAL, "patient": {"age": 400}})),  # 422
    st.just("{"),                                                # 400
    st.text(max_size=200),
    st.just("x" * 70_000),                                       # 413
), path=st.sampled_from(["/v1/assessments", "/v1/assessments/batch",
                         "/cds-services/msk-assessment"]))
def test_every_request_gives_back_what_its_body_held(budget_app, body, path):
    budget = budget_app.extensions["body_budget"]
    budget_app.test_client().post(path, data=body, content_type="application/json")
    assert budget.held == 0


def test_a_body_beyond_what_the_worker_may_hold_gets_a_503_and_nothing_is_assessed(
        budget_app, monkeypatch):
    budget = budget_app.extensions["body_budget"]
    monkeypatch.setattr(budget, "held", budget.limit - 10)  # other uploads hold the rest
    client = budget_app.test_client()
    response = client.post("/v1/assessments", json=MINIMAL)
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == "/problems/server-busy"
    assert response.headers["Retry-After"] == "1"
    assert "urgency" not in response.get_json()
    assert budget.held == budget.limit - 10  # its partial hold was given back
    assert client.get("/healthz").status_code == 200  # a request without a body is served


def test_the_budget_must_hold_at_least_one_full_batch():
    with pytest.raises(ConfigError):
        create_app(max_bodies_in_flight_bytes=1024, max_batch_body_bytes=4096)


def test_the_budget_must_hold_at_least_one_full_hook_call(monkeypatch):
    monkeypatch.setenv("CDS_HOOKS_MAX_BODY_BYTES", str(32 * 1024 * 1024))
    with pytest.raises(ConfigError, match="CDS_HOOKS_MAX_BODY_BYTES"):
        create_app()


def test_under_gunicorn_ten_big_uploads_at_once_hold_only_what_fits(tmp_path):
    """Each upload sends 90% of a 2 MB batch, then waits: the 4 MB budget holds a few."""
    batch_limit, in_flight = 2 * 1024 * 1024, 4 * 1024 * 1024
    with running_gunicorn(tmp_path / "server.log", WEB_CONCURRENCY="1",
                          MAX_BATCH_BODY_BYTES=str(batch_limit),
                          MAX_BODY_BYTES_IN_FLIGHT=str(in_flight),
                          REQUEST_BODY_TIMEOUT="6") as server:
        parts = urlsplit(server.url)
        statuses: list[int] = []

        def upload() -> None:
            with socket.create_connection((parts.hostname, parts.port), timeout=15) as sock:
                sock.sendall(b"POST /v1/assessments/batch HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Type: application/json\r\n"
                             + f"Content-Length: {batch_limit}\r\n\r\n".encode())
                try:
                    sock.sendall(b" " * int(batch_limit * 0.9))
                    answer = sock.recv(4096)
                except OSError:  # refused mid-upload: the server closed on us
                    answer = b""
                statuses.append(int(answer.split()[1]) if answer else 0)

        uploads = [threading.Thread(target=upload) for _ in range(10)]
        started = time.monotonic()
        for thread in uploads:
            thread.start()
        for thread in uploads:
            thread.join()
        elapsed = time.monotonic() - started
    # Those the budget holds wait for their body's deadline (408); the rest, more than half,
    # are refused as soon as their bytes would exceed it (503). 18 MB sent, at most 4 held.
    assert set(statuses) == {408, 503}, sorted(statuses)
    assert statuses.count(503) >= 5, sorted(statuses)
    assert elapsed < 6 + 4
