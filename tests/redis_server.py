"""A real redis-server for the tests, on a free loopback port, with nothing kept on disk.

`make test` installs Debian's redis-server when it is missing; without it these tests fail
(they never skip): the shared replay store is what they check.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_redis(directory: Path) -> Iterator[str]:
    """Yield the redis:// URL of a fresh redis-server; stop it afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run `make test`, which installs "
                           "Debian's redis-server (as root, with apt-get)")
    port = _free_port()
    log = (directory / "redis.log").open("wb")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory), "--daemonize", "no"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        client = redis.Redis.from_url(url, socket_timeout=1)
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start: "
                                       + (directory / "redis.log").read_text()[-2000:]) from None
                time.sleep(0.1)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
