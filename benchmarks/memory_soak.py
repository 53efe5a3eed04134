"""Memory soak: 50,000 assessments over HTTP, and each gunicorn worker's RSS growth.

    .venv/bin/python benchmarks/memory_soak.py [--requests 50000] [--warmup 5000]

Starts gunicorn as `make run` does (gunicorn.conf.py: 2 workers x 2 threads) but with
GUNICORN_MAX_REQUESTS=0, so workers are never recycled and any growth stays visible. A client
of 16 threads, each on its own keep-alive connection (reopened every 25 requests so that both
workers keep getting connections), POSTs the vignette bodies in rotation to /v1/assessments
in steps of --step requests. Each worker's VmRSS is read from /proc/<pid>/status after the
warm-up (--warmup requests) and after every step; the growth of each worker from the warm-up
to the end must stay under 10%. The soak fails if a worker was replaced, a worker was left
idle, or any request was not answered 200.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

from _common import gunicorn, json_bodies, machine, process_cpu_seconds, rss_kib, worker_pids

TARGET_GROWTH = 0.10
CLIENTS = 16
RECONNECT_EVERY = 25


class _Client:
    """Send a number of POSTs from CLIENTS threads, counting any answer that is not 200."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bodies = [body.encode() for body in json_bodies()]
        self.sent = itertools.count()
        self.failures: list[str] = []
        self.lock = threading.Lock()

    def _send(self, count: int) -> None:
        connection = None
        for i in range(count):
            if i % RECONNECT_EVERY == 0:
                if connection:
                    connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            body = self.bodies[next(self.sent) % len(self.bodies)]
            connection.request("POST", "/v1/assessments", body=body,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                with self.lock:
                    self.failures.append(str(response.status))
        if connection:
            connection.close()

    def send(self, requests: int) -> None:
        shares = [requests // CLIENTS + (i < requests % CLIENTS) for i in range(CLIENTS)]
        with ThreadPoolExecutor(CLIENTS) as pool:
            for future in [pool.submit(self._send, share) for share in shares]:
                future.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--step", type=int, default=5_000)
    args = parser.parse_args()
    print(f"{machine()}; GUNICORN_MAX_REQUESTS=0; {CLIENTS} client threads")

    with gunicorn({"GUNICORN_MAX_REQUESTS": "0"}) as (server, port):
        pids = worker_pids(server.pid)
        client = _Client(port)
        start = {pid: rss_kib(pid) for pid in pids}
        client.send(args.warmup)
        done = args.warmup
        warm = {pid: rss_kib(pid) for pid in pids}
        cpu_warm = {pid: process_cpu_seconds(pid) for pid in pids}
        samples = [(done, warm)]
        while done < args.requests and not client.failures:
            step = min(args.step, args.requests - done)
            client.send(step)
            done += step
            samples.append((done, {pid: rss_kib(pid) for pid in pids}))
        cpu = {pid: process_cpu_seconds(pid) - cpu_warm[pid] for pid in pids}
        replaced = worker_pids(server.pid) != pids

    print(f"{'requests':>9s} " + " ".join(f"{f'worker {pid} RSS MiB':>20s}" for pid in pids))
    print(f"{'started':>9s} " + " ".join(f"{start[pid] / 1024:20.1f}" for pid in pids))
    for count, rss in samples:
        print(f"{count:9d} " + " ".join(f"{rss[pid] / 1024:20.1f}" for pid in pids))
    end = samples[-1][1]
    idle = [pid for pid in pids if cpu[pid] < 0.1 * sum(cpu.values())]
    ok = not client.failures and not replaced and not idle and done >= args.requests
    for pid in pids:
        growth = (end[pid] - warm[pid]) / warm[pid]
        passed = growth < TARGET_GROWTH
        ok = ok and passed
        print(f"worker {pid}: {warm[pid] / 1024:.1f} MiB after {samples[0][0]} requests -> "
              f"{end[pid] / 1024:.1f} MiB after {done}: growth {growth:+.1%} "
              f"(target < {TARGET_GROWTH:.0%}: {'PASS' if passed else 'FAIL'}); "
              f"{cpu[pid]:.0f} s CPU after the warm-up")
    print(f"server CPU per request after the warm-up: "
          f"{sum(cpu.values()) / (done - samples[0][0]) * 1e3:.2f} ms (both workers)")
    if client.failures:
        print(f"FAIL: {len(client.failures)} requests not answered 200: "
              f"{sorted(set(client.failures))}")
    if replaced:
        print("FAIL: a worker was replaced during the soak; its growth is not measured")
    if idle:
        print(f"FAIL: worker(s) {idle} did almost no work; the soak did not cover them")
    print("memory soak:", "PASS" if ok else "FAIL")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
