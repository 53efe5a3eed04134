"""Throughput and latency over HTTP: POST /v1/assessments against GET /healthz, in one run.

    .venv/bin/python benchmarks/http_load.py [--duration 15] [--connections 16] [--rounds 1]
        [--checkout PATH ...]

For each endpoint in turn (GET /healthz, then POST /v1/assessments with a Lua script rotating
through every vignette body), starts gunicorn exactly as `make run` does (gunicorn.conf.py
defaults: 2 gevent workers, recycled after ~10,000 requests) on a free loopback port,
waits for /readyz, warms up for 2 s, then runs wrk (installed with apt-get if missing) for
--duration seconds at --connections connections. Prints req/s, p50 and p99 latency of both,
the throughput ratio, and the server CPU time per request (the gunicorn processes' CPU over
the requests they answered, which other load on a shared machine inflates far less than
wall-clock figures). wrk runs on the same 2 cores as the server.

With the default max_requests, /healthz at ~1,500 req/s usually recycles both workers during
its window (about 1 s of CPU each, shown in the last column), which lowers its figure;
--no-recycle (GUNICORN_MAX_REQUESTS=0) measures the steady state instead.

Targets (issue 12): assessment throughput at least 0.65x /healthz throughput; assessment p99
<= 30 ms at 16 connections.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from _common import (
    add_checkout_option,
    checkouts,
    ensure_wrk,
    gunicorn,
    json_bodies,
    machine,
    server_cpu_seconds,
    worker_pids,
)

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
RATIO_TARGET = 0.65
P99_TARGET_MS = 30


@dataclass
class Result:
    name: str
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: str
    server_cpu_ms: float
    restarts: int


def _lua_script(bodies: list[str]) -> str:
    entries = []
    for body in bodies:
        assert "]==]" not in body
        entries.append(f"[==[{body}]==]")
    return (
        "local bodies = {\n" + ",\n".join(entries) + "\n}\n"
        "local headers = {[\"Content-Type\"] = \"application/json\"}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #bodies + 1\n"
        "  return wrk.format(\"POST\", \"/v1/assessments\", headers, bodies[i])\n"
        "end\n"
    )


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def _wrk(wrk: str, url: str, duration: int, connections: int, script: str | None) -> dict:
    command = [wrk, "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script:
        command += ["-s", script]
    output = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)\s*$", output, re.MULTILINE))
    errors = []
    for pattern in (r"Socket errors:.*", r"Non-2xx or 3xx responses: \d+"):
        found = re.search(pattern, output)
        if found:
            errors.append(found.group(0))
    return {
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": _ms(percentiles["50"]),
        "p99": _ms(percentiles["99"]),
        "errors": "; ".join(errors),
    }


def _measure(name: str, wrk: str, url: str, duration: int, connections: int,
             script: str | None, master: int) -> Result:
    workers, before = set(worker_pids(master)), server_cpu_seconds(master)
    got = _wrk(wrk, url, duration, connections, script)
    used = server_cpu_seconds(master) - before
    restarts = len(set(worker_pids(master)) - workers)
    return Result(name, got["requests"], got["rps"], got["p50"], got["p99"], got["errors"],
                  used / max(got["requests"], 1) * 1e3, restarts)


def _report(label: str, rounds: list[tuple[Result, Result]]) -> bool:
    print(f"\n{label}")
    print(f"{'':22s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'server CPU ms/req':>18s}"
          f" {'workers recycled':>17s}")
    ok = True
    for health, assess in rounds:
        for result in (health, assess):
            print(f"{result.name:22s} {result.rps:8.0f} {result.p50_ms:8.2f} "
                  f"{result.p99_ms:8.2f} {result.server_cpu_ms:18.2f} {result.restarts:17d}"
                  + (f"   ERRORS: {result.errors}" if result.errors else ""))
            ok = ok and not result.errors
        ratio = assess.rps / health.rps
        cpu_ratio = assess.server_cpu_ms / health.server_cpu_ms
        print(f"throughput ratio assessments/healthz: {ratio:.2f} "
              f"(target >= {RATIO_TARGET}: {'PASS' if ratio >= RATIO_TARGET else 'FAIL'}); "
              f"server CPU per request {cpu_ratio:.1f}x healthz")
        p99_ok = "PASS" if assess.p99_ms <= P99_TARGET_MS else "FAIL"
        print(f"assessment p99 {assess.p99_ms:.1f} ms (target <= {P99_TARGET_MS} ms: {p99_ok})")
    if len(rounds) > 1:
        ratios = sorted(assess.rps / health.rps for health, assess in rounds)
        p99s = sorted(assess.p99_ms for _, assess in rounds)
        rps = sorted(assess.rps for _, assess in rounds)
        cpu = sorted(assess.server_cpu_ms / health.server_cpu_ms for health, assess in rounds)
        middle = len(rounds) // 2
        ratio_ok = "PASS" if ratios[middle] >= RATIO_TARGET else "FAIL"
        p99_ok = "PASS" if p99s[middle] <= P99_TARGET_MS else "FAIL"
        print(f"median of {len(rounds)} rounds: assessments {rps[middle]:.0f} req/s; "
              f"throughput ratio {ratios[middle]:.2f} (target >= {RATIO_TARGET}: {ratio_ok}); "
              f"assessment p99 {p99s[middle]:.1f} ms (target <= {P99_TARGET_MS} ms: {p99_ok}); "
              f"server CPU per request {cpu[middle]:.1f}x healthz")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the healthz/assessment pair (figures of every round, "
                             "then the median round's)")
    parser.add_argument("--no-recycle", action="store_true",
                        help="GUNICORN_MAX_REQUESTS=0: steady state, no worker restarts")
    add_checkout_option(parser)  # repeated, the checkouts take turns in every round
    args = parser.parse_args()
    server_env = {"GUNICORN_MAX_REQUESTS": "0"} if args.no_recycle else {}
    roots = checkouts(args)
    wrk = ensure_wrk()
    print(f"{machine()}; wrk -t2 -c{args.connections} -d{args.duration}s, same machine"
          + ("; GUNICORN_MAX_REQUESTS=0" if args.no_recycle else ""))

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "assessments.lua"
        bodies = json_bodies()
        script.write_text(_lua_script(bodies))
        endpoints = (("GET /healthz", "/healthz", None),
                     ("POST /v1/assessments", "/v1/assessments", str(script)))
        rounds: dict[Path, list[tuple[Result, Result]]] = {root: [] for root in roots}
        for _ in range(args.rounds):
            for root in roots:
                results = []
                for name, path, lua in endpoints:
                    # A fresh server per endpoint: workers recycle after ~10,000 requests
                    # (as configured), and a restart (~1 s of CPU) landing in the other
                    # endpoint's window would be charged to it.
                    with gunicorn(server_env, root=root) as (server, port):
                        workers = len(worker_pids(server.pid))
                        url = f"http://127.0.0.1:{port}{path}"
                        _wrk(wrk, url, 2, args.connections, lua)  # warm up
                        results.append(_measure(name, wrk, url, args.duration,
                                                args.connections, lua, server.pid))
                rounds[root].append((results[0], results[1]))

    print(f"{len(bodies)} vignette bodies rotated; {workers} workers")
    ok = all([_report(str(root), measured) for root, measured in rounds.items()])
    if not ok:
        raise SystemExit("some requests failed")


if __name__ == "__main__":
    main()
