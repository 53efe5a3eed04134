"""Median time of one assessment, in process and through HTTP, in the same run.

    .venv/bin/python benchmarks/latency.py [--requests 2000]

In process: Assessor.assess() on a mix of the public vignettes. Through HTTP: the same mix
POSTed one at a time over a keep-alive connection to gunicorn started as `make run` starts it
(gunicorn.conf.py, 2 workers), on a free loopback port. Also times GET /healthz the same way,
so the figures can be read as ratios on a noisy machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import create_app  # noqa: E402
from tests.cases import load_cases  # noqa: E402

CASES = [case["presentation"] for case in
         load_cases(ROOT.parent / "shared" / "vignettes" / "cases.yaml")]


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


def in_process(requests: int) -> list[float]:
    assessor = create_app().extensions["assessor"]
    for case in CASES:  # warm up
        assessor.assess(case)
    samples = []
    for i in range(requests):
        start = time.perf_counter()
        assessor.assess(CASES[i % len(CASES)])
        samples.append(time.perf_counter() - start)
    return samples


def _serve() -> tuple[subprocess.Popen, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "service:create_app()"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return server, port
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("gunicorn did not become ready")


def over_http(port: int, requests: int) -> tuple[list[float], list[float]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    bodies = [json.dumps(case) for case in CASES]
    headers = {"Content-Type": "application/json"}

    def timed(method: str, path: str, body: str | None) -> float:
        start = time.perf_counter()
        connection.request(method, path, body=body, headers=headers if body else {})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        return time.perf_counter() - start

    for body in bodies:  # warm up both workers
        timed("POST", "/v1/assessments", body)
    assessments = [timed("POST", "/v1/assessments", bodies[i % len(bodies)])
                   for i in range(requests)]
    health = [timed("GET", "/healthz", None) for _ in range(requests)]
    return assessments, health


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    print(f"{len(CASES)} public vignettes, {args.requests} requests each measurement")
    print(f"in process  assess():           {_percentiles(in_process(args.requests))}")
    server, port = _serve()
    try:
        assessments, health = over_http(port, args.requests)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"HTTP        POST /v1/assessments: {_percentiles(assessments)}")
    print(f"HTTP        GET /healthz:         {_percentiles(health)}")
    ratio = statistics.median(assessments) / statistics.median(health)
    print(f"median assessment / median healthz over HTTP: {ratio:.1f}x")


if __name__ == "__main__":
    main()
