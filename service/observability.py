"""Request ids, structured logs and Prometheus metrics, without any patient data.

A log line carries the request id, method, route template (never the raw path or query),
status, duration and ruleset version; nothing from a request body ever reaches a log or a
metric label. Metrics work across gunicorn worker processes through prometheus_client's
multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py sets it).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from pythonjsonlogger.json import JsonFormatter

from .presentation import INPUT_FIELDS, SECTIONS

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id is echoed only if it is short and plain, so it cannot inject into logs.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

REQUESTS = Counter("http_requests_total", "HTTP requests answered",
                   ["method", "route", "status"])
LATENCY = Histogram("http_request_duration_seconds", "Time to answer a request",
                    ["method", "route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                             5, 10, 30))
RULE_FIRINGS = Counter("rule_firings_total", "Rule firings in answered assessments", ["rule"])
VALIDATION_FAILURES = Counter("validation_failures_total",
                              "Requests refused before the engine ran, by HTTP status",
                              ["status"])
FIELD_ERRORS = Counter("validation_field_errors_total",
                       "Schema errors by field path (unknown names are counted as 'other')",
                       ["field"])
# The only field labels allowed: names from the contract, never a name a client invented.
_FIELD_LABELS = frozenset(INPUT_FIELDS) | frozenset(SECTIONS) | {"body", "presentations"}

log = logging.getLogger("service.requests")


class _StderrHandler(logging.StreamHandler):
    """Write to whatever sys.stderr is at the time, not the stream it was at creation."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(level: str) -> None:
    """Send the service's logs to stderr as one JSON object per line."""
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter(
        "{asctime}{levelname}{name}{message}", style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    root = logging.getLogger("service")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


# Each rule's counter, looked up once: `labels()` takes a lock and checks its arguments on
# every call, and an assessment counts ~15 firings.
_RULE_FIRING_COUNTERS: dict[str, Any] = {}


def count_rule_firings(rule_ids: Iterable[str]) -> None:
    for rule_id in rule_ids:
        counter = _RULE_FIRING_COUNTERS.get(rule_id)
        if counter is None:
            counter = _RULE_FIRING_COUNTERS.setdefault(rule_id, RULE_FIRINGS.labels(rule_id))
        counter.inc()


def count_validation_failure(status: int, fields: Iterable[str] = ()) -> None:
    VALIDATION_FAILURES.labels(str(status)).inc()
    for field in fields:
        # Only registry paths become labels: an unknown name is request data.
        FIELD_ERRORS.labels(field if field in _FIELD_LABELS else "other").inc()


def metrics_response() -> Response:
    """Render every worker's metrics (multiprocess) or this process's (single process)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest()
    return Response(body, content_type=CONTENT_TYPE_LATEST)


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def request_id() -> str:
    return g.get("request_id", "-")


def install_request_observers(app: Flask, ruleset_version: str) -> None:
    """Give every request an id, and log and measure it when it is answered."""

    @app.before_request
    def _start() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = request_id()
        duration = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        # A client can send any method name: outside HTTP's own set it is "other", so
        # invented methods cannot grow the metrics or put their text in the logs.
        method = request.method if request.method in KNOWN_METHODS else "other"
        REQUESTS.labels(method, route, str(response.status_code)).inc()
        LATENCY.labels(method, route).observe(duration)
        fields: dict[str, Any] = {
            "request_id": request_id(), "method": method, "route": route,
            "status": response.status_code, "duration_ms": round(duration * 1000, 2),
            "ruleset_version": ruleset_version,
        }
        log.info("request", extra=fields)
        return response
