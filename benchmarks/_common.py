"""Shared by the benchmarks: the vignette mix and a gunicorn started as `make run` starts it."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.cases import load_cases  # noqa: E402

VIGNETTE_FILES = (
    ROOT.parent / "shared" / "vignettes" / "cases.yaml",
    ROOT / "tests" / "vignettes" / "low_back_cases.yaml",
    ROOT / "tests" / "vignettes" / "hip_cases.yaml",
)


def vignette_bodies() -> list[dict[str, Any]]:
    """Every vignette presentation, as a client would POST it (before validation)."""
    return [case["presentation"] for case in load_cases(*VIGNETTE_FILES)]


def add_checkout_option(parser: Any) -> None:
    """--checkout PATH, repeatable: serve another checkout (a git worktree of an older commit)
    instead of this one, so that before and after are measured in one run."""
    parser.add_argument("--checkout", type=Path, action="append",
                        help="serve this checkout (e.g. a git worktree of an older commit); "
                             "repeat to compare them in one run")


def checkouts(args: Any) -> list[Path]:
    """The checkouts --checkout names, or this one."""
    return [path.resolve() for path in args.checkout or [ROOT]]


def machine() -> str:
    """One line on the conditions of the run: cores and load from other work."""
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"{os.cpu_count()} cores, load average {load} at start"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


@contextmanager
def gunicorn(extra_env: dict[str, str] | None = None,
             root: Path = ROOT) -> Iterator[tuple[subprocess.Popen, int]]:
    """Serve the app as `make run` does, on a free loopback port, until the block ends.

    `python -m gunicorn --config gunicorn.conf.py 'service:create_app()'` with the default
    workers and threads of gunicorn.conf.py; the server's log goes to a temporary file whose
    tail is printed if the server fails to become ready. `root` serves another checkout (a
    git worktree of an older commit) for an A/B run.
    """
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", **(extra_env or {})}
    with tempfile.TemporaryDirectory(prefix="bench-gunicorn-") as tmp:
        log_path = Path(tmp) / "gunicorn.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py",
                 "service:create_app()"],
                cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(OSError):
                    if _get(port, "/readyz") == 200:
                        break
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    raise SystemExit(f"gunicorn did not become ready; its log ends:\n{tail}")
                time.sleep(0.2)
            yield server, port
        finally:
            server.terminate()
            try:
                server.wait(timeout=40)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def worker_pids(master_pid: int) -> list[int]:
    """The gunicorn worker processes (children of the master)."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) one process has used so far."""
    return sum(int(value) for value in _stat(pid)[11:13]) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(master_pid: int) -> float:
    """CPU time (user + system) used so far by a gunicorn master and all its workers.

    Counts the live workers and, through the master's cutime/cstime, every worker that has
    already exited (recycled after max_requests), so the figure stays right across restarts.
    """
    fields = _stat(master_pid)
    total = sum(int(value) for value in fields[11:15])
    for pid in worker_pids(master_pid):
        # A worker that exited in between is counted by the master once reaped.
        with contextlib.suppress(FileNotFoundError):
            total += sum(int(value) for value in _stat(pid)[11:13])
    return total / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set size (VmRSS) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def ensure_wrk() -> str:
    """Return the path of wrk, installing the Debian package if it is missing (needs root)."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it with apt-get", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


def json_bodies() -> list[str]:
    return [json.dumps(body) for body in vignette_bodies()]
