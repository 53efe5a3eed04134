"""Start the real server as `make run` does (gunicorn.conf.py), on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import ROOT


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def post_json(url: str, body: Any, timeout: float = 30) -> tuple[int, Any]:
    """POST a JSON body; return the status and the decoded answer (HTTPError on 4xx/5xx)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_gunicorn(log_path: Path, **env: str) -> Iterator[Server]:
    """Yield a ready gunicorn server; its stdout and stderr go to log_path."""
    port = _free_port()
    environment = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", **env}
    if "PROMETHEUS_MULTIPROC_DIR" not in env:
        environment.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each server gets its own
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py",
             "service:create_app()"],
            cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    server = Server(process=process, port=port, log_path=log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/readyz", timeout=1):
                    break
            except OSError as error:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start: {log_path.read_text()[-2000:]}"
                                       ) from error
                time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=40)
