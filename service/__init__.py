"""Decision support for low back and hip pain: a stateless REST service over durable-rules.

`create_app` is imported on first use, not with the package: gunicorn loads the worker class
(`service.serving`) in its master process, before gevent patches the standard library in each
worker, and the app's imports (ssl, sockets, threading) must only happen after that patch.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_app"]
