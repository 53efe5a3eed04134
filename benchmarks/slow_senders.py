"""Good requests and /healthz while slow senders trickle their requests (issue 12, item 1).

    .venv/bin/python benchmarks/slow_senders.py [--senders 64] [--duration 15]
        [--checkout PATH ...]

Starts gunicorn as `make run` does (from this checkout, or from each --checkout given, e.g. a
git worktree of an older commit, one after the other), opens --senders connections that send
their header fields (half of them) or their body (the other half) one byte a second, and
reconnect whenever the server cuts them off; then, for --duration seconds, sends one good
POST /v1/assessments and one GET /healthz after the other, each with a 3 s timeout. Prints,
per endpoint, how many were answered, how many within 1 s (a liveness probe's usual
timeout), and the p50, p99 and worst latency of those answered; and how the slow senders
were cut off (header deadline, 408 for a late body, or never).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

from _common import add_checkout_option, checkouts, gunicorn, machine

GOOD = {"patient": {"age": 40}, "pain": {"sites": ["low_back"], "duration_days": 3}}


class SlowSender(threading.Thread):
    def __init__(self, port: int, part: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.part, self.stop = port, part, stop
        self.outcomes: Counter[str] = Counter()

    def run(self) -> None:
        opening = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " if self.part == "headers"
                   else b"POST /v1/assessments HTTP/1.1\r\nHost: x\r\nContent-Type: "
                        b"application/json\r\nContent-Length: 50000\r\n\r\n{")
        while not self.stop.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            except OSError:
                time.sleep(0.2)
                continue
            with sock:
                try:
                    sock.sendall(opening)
                    while not self.stop.is_set():
                        try:
                            answer = sock.recv(4096)
                        except TimeoutError:
                            sock.sendall(b"a" if self.part == "headers" else b" ")
                            continue
                        self.outcomes[answer.split(b" ", 2)[1].decode() if answer
                                      else "closed"] += 1
                        break
                except OSError:
                    self.outcomes["reset"] += 1


def _timed(call) -> float | None:
    started = time.monotonic()
    try:
        call()
    except OSError:
        return None
    return time.monotonic() - started


def measure(root: Path, senders: int, duration: float) -> None:
    with gunicorn(root=root) as (_, port):
        url = f"http://127.0.0.1:{port}"
        body = json.dumps(GOOD).encode()

        def assess() -> None:
            request = urllib.request.Request(f"{url}/v1/assessments", data=body,
                                             headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=3).read()

        def probe() -> None:
            urllib.request.urlopen(f"{url}/healthz", timeout=3).read()

        stop = threading.Event()
        slow = [SlowSender(port, "headers" if n % 2 else "body", stop) for n in range(senders)]
        for sender in slow:
            sender.start()
        time.sleep(1.5)
        timings: dict[str, list[float | None]] = {"POST /v1/assessments": [], "GET /healthz": []}
        ends = time.monotonic() + duration
        while time.monotonic() < ends:
            timings["POST /v1/assessments"].append(_timed(assess))
            timings["GET /healthz"].append(_timed(probe))
        stop.set()
        for sender in slow:
            sender.join(timeout=5)
    print(f"\n{root} with {senders} slow senders for {duration:.0f} s")
    for name, times in timings.items():
        answered = sorted(t for t in times if t is not None)
        within = sum(t < 1 for t in answered)
        if answered:
            p99 = answered[min(len(answered) - 1, int(len(answered) * 0.99))]
            figures = (f"p50 {statistics.median(answered) * 1e3:7.1f} ms, p99 {p99 * 1e3:7.1f} "
                       f"ms, worst {answered[-1] * 1e3:7.1f} ms")
        else:
            figures = "none answered"
        print(f"  {name:22s} sent {len(times):5d}, answered {len(answered):5d}, within 1 s "
              f"{within:5d}; {figures}")
    outcomes = sum((sender.outcomes for sender in slow), Counter())
    print(f"  slow senders cut off: {dict(outcomes)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=64)
    parser.add_argument("--duration", type=float, default=15)
    add_checkout_option(parser)
    args = parser.parse_args()
    print(machine())
    for root in checkouts(args):
        measure(root, args.senders, args.duration)


if __name__ == "__main__":
    main()
