"""The real server (gunicorn.conf.py, service/serving.py) against slow and broken clients.

Slow senders must cost them, not the service: 64 clients trickling their headers or bodies a
byte at a time for 15 s leave good requests and /healthz answering promptly, and each of them
is cut off by a deadline. Errors gunicorn raises itself are problem+json like every answer,
and no log line quotes a request's query.
"""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
import urllib.request
from collections import Counter
from urllib.parse import urlsplit

import pytest

from tests.gunicorn_server import post_json, running_gunicorn

MINIMAL = {"patient": {"age": 40}, "pain": {"sites": ["low_back"], "duration_days": 3}}
QUERY_MARKER = "patientname=SECRETVALUE"
BODY_SECONDS = 3
HEADER_SECONDS = 5  # gunicorn.conf.py keepalive


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("hostile") / "server.log"
    with running_gunicorn(log_path, WEB_CONCURRENCY="2", GUNICORN_ACCESSLOG="-",
                          REQUEST_BODY_TIMEOUT=str(BODY_SECONDS)) as running:
        yield running


def _address(server) -> tuple[str, int]:
    parts = urlsplit(server.url)
    return parts.hostname, parts.port


def _exchange(server, raw: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(_address(server), timeout=timeout) as sock:
        sock.sendall(raw)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def _status_and_headers(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


class _SlowSender(threading.Thread):
    """Opens a connection and sends one byte a second, reconnecting whenever it is cut off."""

    def __init__(self, server, part: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.address, self.part, self.stop = _address(server), part, stop
        self.cut_after: list[float] = []  # seconds each connection lasted before the cut
        self.statuses: Counter[int] = Counter()

    def _opening(self) -> bytes:
        if self.part == "headers":  # the header fields never end
            return f"GET /healthz?{QUERY_MARKER} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode()
        return (f"POST /v1/assessments?{QUERY_MARKER} HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/json\r\nContent-Length: 50000\r\n\r\n{").encode()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                sock = socket.create_connection(self.address, timeout=1)
            except OSError:
                time.sleep(0.2)
                continue
            opened = time.monotonic()
            with sock:
                try:
                    sock.sendall(self._opening())
                    while not self.stop.is_set():
                        try:
                            answer = sock.recv(4096)
                        except TimeoutError:  # nothing yet: trickle one more byte
                            sock.sendall(b"a" if self.part == "headers" else b" ")
                            continue
                        if answer.startswith(b"HTTP/1.1 "):
                            self.statuses[int(answer.split()[1])] += 1
                        break  # answered or closed: the server cut this sender off
                except OSError:
                    pass
            if not self.stop.is_set():
                self.cut_after.append(time.monotonic() - opened)


def _timed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_64_slow_senders_for_15_s_do_not_starve_good_requests_or_healthz(server):
    stop = threading.Event()
    senders = [_SlowSender(server, "headers" if n % 2 else "body", stop) for n in range(64)]
    for sender in senders:
        sender.start()
    time.sleep(1)  # all 64 connected and trickling
    assessments, probes = [], []
    try:
        ends = time.monotonic() + 15
        while time.monotonic() < ends:
            assessments.append(_timed(lambda: post_json(f"{server.url}/v1/assessments",
                                                        MINIMAL, timeout=5)))
            probes.append(_timed(lambda: urllib.request.urlopen(f"{server.url}/healthz",
                                                                timeout=5).read()))
            time.sleep(0.2)
    finally:
        stop.set()
        for sender in senders:
            sender.join(timeout=10)
    assert len(assessments) > 30 and len(probes) > 30
    # Every good request was answered, promptly (before: none within 5 s), and well within
    # a liveness probe's timeout even on a loaded machine.
    assert statistics.median(assessments) < 0.1 and max(assessments) < 2.5, sorted(assessments)
    assert statistics.median(probes) < 0.1 and max(probes) < 2.5, sorted(probes)
    header_cuts = [cut for s in senders if s.part == "headers" for cut in s.cut_after]
    body_cuts = [cut for s in senders if s.part == "body" for cut in s.cut_after]
    body_statuses = sum((s.statuses for s in senders if s.part == "body"), Counter())
    # Each slow sender was cut off by its deadline, not served and not left hanging.
    assert header_cuts and max(header_cuts) < HEADER_SECONDS + 2.5, header_cuts
    assert body_cuts and max(body_cuts) < BODY_SECONDS + 2.5, body_cuts
    assert set(body_statuses) == {408}, body_statuses
    assert QUERY_MARKER not in server.log_path.read_text()


def test_a_body_that_misses_its_deadline_gets_a_408_problem(server):
    with socket.create_connection(_address(server), timeout=10) as sock:
        sock.sendall(b"POST /v1/assessments HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{")
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, headers, body = _status_and_headers(answer)
    assert status == 408
    assert BODY_SECONDS - 0.5 < time.monotonic() - started < BODY_SECONDS + 2
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert json.loads(body)["type"] == "/problems/request-timeout"


@pytest.mark.parametrize(("raw", "status", "slug"), [
    pytest.param(f"POST /v1/assessments?{QUERY_MARKER} HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: 2\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                 400, "malformed-request", id="content-length-and-transfer-encoding"),
    pytest.param(f"GET /healthz?{QUERY_MARKER}&{'a' * 5000} HTTP/1.1\r\nHost: x\r\n\r\n",
                 414, "uri-too-long", id="request-line-too-long"),
    pytest.param(f"GET /healthz?{QUERY_MARKER} HTTP/1.1\r\nHost: x\r\n"
                 + "".join(f"X-Field-{n}: v\r\n" for n in range(120)) + "\r\n",
                 431, "header-fields-too-large", id="too-many-header-fields"),
    pytest.param(f"POST /v1/assessments?{QUERY_MARKER} HTTP/1.1\r\nHost: x\r\n"
                 "Transfer-Encoding: x-private\r\n\r\n",
                 501, "not-implemented", id="unsupported-transfer-coding"),
    pytest.param(f"GET /healthz?{QUERY_MARKER} HTTP/9.9\r\nHost: x\r\n\r\n",
                 400, "malformed-request", id="bad-http-version"),
    pytest.param(f"G\x01T /healthz?{QUERY_MARKER} HTTP/1.1\r\nHost: x\r\n\r\n",
                 400, "malformed-request", id="bad-method"),
    pytest.param(f"GET healthz?{QUERY_MARKER} HTTP/1.1\r\nHost: x\r\n\r\n",
                 400, "malformed-request", id="target-without-a-slash"),
    pytest.param(f"GET /x?{QUERY_MARKER}&name=J\xf6ns HTTP/1.1\r\nHost: x\r\n\r\n",
                 400, "malformed-request", id="target-not-ascii"),
])
def test_errors_the_server_raises_itself_are_problems_with_security_headers(
        server, raw, status, slug):
    answer = _exchange(server, raw.encode("latin-1"))
    got_status, headers, body = _status_and_headers(answer)
    assert got_status == status
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert headers["content-security-policy"].startswith("default-src 'none'")
    problem = json.loads(body)
    assert problem == {"type": f"/problems/{slug}", "title": problem["title"],
                       "status": status, "detail": problem["detail"]}
    assert "SECRETVALUE" not in problem["detail"]
    time.sleep(0.2)  # the worker writes its log line after answering
    assert "SECRETVALUE" not in server.log_path.read_text()


def test_a_bad_body_deadline_stops_the_server_before_any_worker_boots(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "service:create_app()"],
        cwd=ROOT, env={**os.environ, "PORT": "0", "REQUEST_BODY_TIMEOUT": "20s"},
        capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "REQUEST_BODY_TIMEOUT must be a number of seconds" in result.stderr
    assert "Booting worker" not in result.stderr
    assert time.monotonic() - started < 30


def test_the_access_log_gives_the_path_without_its_query(server):
    with urllib.request.urlopen(f"{server.url}/healthz?{QUERY_MARKER}", timeout=5) as response:
        assert response.status == 200
    time.sleep(0.2)
    log = server.log_path.read_text()
    assert '"GET /healthz HTTP/1.1" 200' in log
    assert "SECRETVALUE" not in log


def test_a_long_batch_does_not_stop_its_worker_answering_the_probe(tmp_path):
    """One worker: the batch's seconds of CPU yield between items, so /healthz still answers."""
    batch = {"presentations": [MINIMAL] * 1000}
    with running_gunicorn(tmp_path / "server.log", WEB_CONCURRENCY="1") as one_worker:
        took: list[float] = []
        started = time.monotonic()

        def run_batch() -> None:
            post_json(f"{one_worker.url}/v1/assessments/batch?trace=true", batch, timeout=60)
            took.append(time.monotonic() - started)

        worker = threading.Thread(target=run_batch)
        worker.start()
        time.sleep(0.3)
        answered_at, waits = [], []
        while worker.is_alive():
            waits.append(_timed(lambda: urllib.request.urlopen(f"{one_worker.url}/healthz",
                                                               timeout=10).read()))
            answered_at.append(time.monotonic() - started)
        worker.join()
    assert took and took[0] > 1.0, "the batch must outlast several probes"
    # Most of a batch's time is its items. Without a yield between them the worker answers
    # nothing until they are all done; with it, probes are answered all along. (Building and
    # sending the 58 MB answer at the end, and the garbage collector, can still hold one for
    # a second or two, within the liveness probe's 5 s timeout.)
    during_the_items = [at for at in answered_at if at < took[0] / 2]
    assert len(during_the_items) >= 5, (took, answered_at)
    assert statistics.median(waits) < 0.5, sorted(waits)
    assert max(waits) < 5, sorted(waits)[-5:]
