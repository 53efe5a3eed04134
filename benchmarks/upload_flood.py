"""Worker memory while many clients upload full-size batches at once (issue 12, item 2).

    .venv/bin/python benchmarks/upload_flood.py [--clients 40] [--rate BYTES_PER_S]
        [--checkout PATH ...]

Starts gunicorn as `make run` does with one worker (from this checkout, or from each
--checkout in turn), then has --clients clients each send a whole 8 MB batch body (1,000
valid presentations padded with JSON whitespace) all at once, at full speed or at --rate
bytes a second each (uploads over a slow link, all being read at the same time). Prints how the
uploads were answered and the worker's peak resident memory (VmHWM) against the pod's limit
of 512 MiB for two workers.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections import Counter
from pathlib import Path

from _common import add_checkout_option, checkouts, gunicorn, machine, worker_pids

ITEM = {"patient": {"age": 40}, "pain": {"sites": ["low_back"], "duration_days": 3}}
BATCH_BYTES = 8 * 1024 * 1024


def _body() -> bytes:
    item = json.dumps(ITEM)
    padding = " " * (BATCH_BYTES // 1000 - len(item) - 16)
    return json.dumps({"presentations": []}).replace(
        "[]", "[" + ",".join(item + padding for _ in range(1000)) + "]").encode()


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def flood(root: Path, clients: int, rate: int) -> None:
    body = _body()
    assert len(body) <= BATCH_BYTES, len(body)
    statuses: Counter[str] = Counter()
    with gunicorn({"WEB_CONCURRENCY": "1", "GUNICORN_MAX_REQUESTS": "0"}, root=root) as (
            server, port):
        (worker,) = worker_pids(server.pid)
        before = _peak_kib(worker)

        def upload() -> None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
                    sock.sendall(b"POST /v1/assessments/batch HTTP/1.1\r\nHost: x\r\n"
                                 b"Content-Type: application/json\r\nConnection: close\r\n"
                                 + f"Content-Length: {len(body)}\r\n\r\n".encode())
                    step = rate // 10 if rate else len(body)
                    for start in range(0, len(body), step):
                        sock.sendall(body[start:start + step])
                        if rate:
                            time.sleep(0.1)
                    answer = sock.recv(64)
                statuses[answer.split(b" ", 2)[1].decode() if answer else "closed"] += 1
            except OSError as error:
                statuses[type(error).__name__] += 1

        threads = [threading.Thread(target=upload) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = _peak_kib(worker)
    speed = f"{rate / 1e6:.1f} MB/s each" if rate else "full speed"
    print(f"{root}: {clients} x {len(body) / 1e6:.1f} MB at once, {speed} -> {dict(statuses)}; "
          f"worker "
          f"peak RSS {before / 1024:.0f} MiB idle, {after / 1024:.0f} MiB after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--rate", type=int, default=0, help="bytes a second per client")
    add_checkout_option(parser)
    args = parser.parse_args()
    print(machine())
    for root in checkouts(args):
        flood(root, args.clients, args.rate)


if __name__ == "__main__":
    main()
