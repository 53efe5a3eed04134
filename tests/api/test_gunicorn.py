"""The real server: metrics across workers, logs without patient data, graceful shutdown."""

from __future__ import annotations

import re
import signal
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.api.test_observability import DISTINCTIVE, leaks
from tests.gunicorn_server import post_json, running_gunicorn

MINIMAL = {"patient": {"age": 40}, "pain": {"sites": ["low_back"], "duration_days": 3}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("gunicorn") / "server.log"
    # Access log and debug level on: the most a deployment could log.
    with running_gunicorn(log_path, WEB_CONCURRENCY="2", GUNICORN_ACCESSLOG="-",
                          LOG_LEVEL="debug") as running:
        yield running


def test_metrics_add_up_across_worker_processes(server):
    requests = 40
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: post_json(f"{server.url}/v1/assessments", MINIMAL)[0],
                                 range(requests)))
    assert statuses == [200] * requests
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    count = re.search(r'^http_requests_total\{method="POST",route="/v1/assessments",'
                      r'status="200"\} (\S+)$', text, re.M)
    assert count and float(count.group(1)) == requests
    log = server.log_path.read_text()
    assert len(set(re.findall(r"Booting worker with pid: (\d+)", log))) == 2


def test_server_logs_carry_no_patient_data(server):
    assert post_json(f"{server.url}/v1/assessments", DISTINCTIVE)[0] == 200
    bad = {**DISTINCTIVE, "patient": {"age": "SECRET-AGE-77"}}
    try:
        post_json(f"{server.url}/v1/assessments", bad)
    except urllib.error.HTTPError as error:
        assert error.code == 422
    time.sleep(0.5)  # let the workers flush their log lines
    log = server.log_path.read_text()
    assert '"route": "/v1/assessments"' in log
    assert leaks(log) == []


def test_sigterm_lets_an_in_flight_request_finish(tmp_path):
    with running_gunicorn(tmp_path / "server.log", WEB_CONCURRENCY="1") as running:
        outcome: dict = {}

        def long_batch() -> None:
            outcome["status"], body = post_json(f"{running.url}/v1/assessments/batch",
                                            {"presentations": [MINIMAL] * 1000}, timeout=60)
            outcome["results"] = len(body["results"])

        client = threading.Thread(target=long_batch)
        client.start()
        time.sleep(0.3)
        assert outcome == {}, "the batch must still be in flight when SIGTERM arrives"
        running.process.send_signal(signal.SIGTERM)
        client.join(timeout=60)
        assert outcome == {"status": 200, "results": 1000}
        assert running.process.wait(timeout=40) == 0


def test_recycled_workers_keep_their_counts_and_leave_no_files(tmp_path):
    """Dead workers' counters are folded into one archive file per kind (gunicorn.conf.py)."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with running_gunicorn(tmp_path / "server.log", WEB_CONCURRENCY="2",
                          GUNICORN_MAX_REQUESTS="10",
                          PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)) as running:
        # A gevent worker past its max_requests stops accepting and takes a second or so to
        # exit, so requests go on until several have been replaced (or a minute has passed).
        requests, booted, deadline = 0, 0, time.monotonic() + 60
        while booted <= 5 and time.monotonic() < deadline:
            for _ in range(20):
                assert post_json(f"{running.url}/v1/assessments", MINIMAL)[0] == 200
            requests += 20
            booted = len(re.findall(r"Booting worker with pid", running.log_path.read_text()))
        time.sleep(2)  # the last recycled worker's files are archived by the master
        with urllib.request.urlopen(f"{running.url}/metrics", timeout=10) as response:
            text = response.read().decode()
    count = re.search(r'^http_requests_total\{method="POST",route="/v1/assessments",'
                      r'status="200"\} (\S+)$', text, re.M)
    assert count and float(count.group(1)) == requests
    assert booted > 4, "workers were expected to recycle"
    files = sorted(path.name for path in metrics_dir.glob("*.db"))
    # at most: the live workers' files and one archive per kind
    assert len(files) <= 2 * 3 + 2, files
    assert {"counter_archive.db", "histogram_archive.db"} <= set(files)


def test_a_malformed_chunked_body_is_a_400_not_a_500(server):
    import socket
    from urllib.parse import urlsplit
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"POST /v1/assessments HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert b" 500 " not in status_line
    assert status_line.split()[1] in (b"400", b"411", b"413")
