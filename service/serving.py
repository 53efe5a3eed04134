"""The server side of HTTP: gunicorn's gevent worker, hardened against slow and broken clients.

Why gevent rather than threads: with a thread per request, a client that sends its request a
byte at a time holds a thread for as long as it likes, and a handful of them left no thread for
real requests or the liveness probe. Here an unfinished request costs a greenlet (a few KB of
memory) and nothing else, and both halves of a request have a total deadline:

- the header fields must be complete within `keepalive` seconds of connecting or of the
  previous answer (gunicorn's own timeout around its header parser), or the connection closes;
- the body must arrive within REQUEST_BODY_TIMEOUT seconds of the headers, or reading it raises
  TimeoutError, which the app answers with 408.

The rule evaluation itself is CPU-bound, so a worker still assesses one request at a time (as it
did under the GIL with threads); the batch endpoint yields between items so probes are answered.

Errors gunicorn raises itself (a malformed request line, a header too large, both
Content-Length and Transfer-Encoding...) are answered as problem+json with the security headers,
like every answer of the app, and logged without the request line (its query may carry data).

This module must not import the app: gunicorn loads the worker class in its master process,
before gevent patches the standard library in each worker.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from datetime import datetime
from ssl import SSLError
from typing import Any

import gevent
from gevent.server import StreamServer
from gunicorn import util
from gunicorn.http.errors import (
    ConfigurationProblem,
    ExpectationFailed,
    ForbiddenProxyRequest,
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    LimitRequestHeaders,
    LimitRequestLine,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.http.message import Request
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers import ggevent
from gunicorn.workers.ggevent import GeventWorker

from .response_headers import DEFAULT_CSP, SECURITY_HEADERS

DEFAULT_BODY_SECONDS = 20.0
# Each send of an answer must finish within this: a client that stops reading its answer
# would otherwise keep it (up to tens of MB for a batch) in the worker's memory for ever.
SEND_SECONDS = 30.0
_LOGGED_FRAMES = 12

# Anything else gunicorn raises, and a header the app got wrong: a defect of the service.
_DEFECT = (500, "Internal Server Error", "internal-error",
           "The service could not complete the request. This is a defect.")
# (exception, status, reason phrase, problem slug, detail) for what gunicorn refuses itself;
# the first that matches applies. No detail quotes the request: it may carry patient data.
_REFUSALS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], int, str, str, str],
                 ...] = (
    ((InvalidResponseHeader, InvalidResponseHeaderName), *_DEFECT),
    (ConfigurationProblem, 500, "Internal Server Error", "internal-error",
     "The server is misconfigured. This is a defect."),
    (LimitRequestLine, 414, "URI Too Long", "uri-too-long",
     "The request line is longer than the server accepts."),
    (LimitRequestHeaders, 431, "Request Header Fields Too Large", "header-fields-too-large",
     "The request has more header fields, or larger ones, than the server accepts."),
    (UnsupportedTransferCoding, 501, "Not Implemented", "not-implemented",
     "The transfer coding is not supported: send the body with Content-Length or chunked."),
    (ExpectationFailed, 417, "Expectation Failed", "expectation-failed",
     "Only 'Expect: 100-continue' is supported."),
    (ForbiddenProxyRequest, 403, "Forbidden", "forbidden",
     "The proxy header comes from an address that is not trusted."),
    ((ParseException, SSLError), 400, "Bad Request", "malformed-request",
     "The request is not valid HTTP/1.1: its request line, a header field or its framing "
     "(e.g. both Content-Length and Transfer-Encoding, or a bad chunk) is malformed."),
)


def refusal(error: BaseException) -> tuple[int, str, str, str]:
    """The status, reason, problem slug and detail that answer an error gunicorn raised."""
    for kinds, status, reason, slug, detail in _REFUSALS:
        if isinstance(error, kinds):
            return status, reason, slug, detail
    return _DEFECT


def problem_response(status: int, reason: str, slug: str, detail: str) -> bytes:
    """A whole HTTP/1.1 problem+json answer that closes the connection."""
    body = json.dumps({"type": f"/problems/{slug}", "title": reason, "status": status,
                       "detail": detail}).encode()
    headers = {"Connection": "close", "Content-Type": "application/problem+json",
               "Content-Length": str(len(body)), "Cache-Control": "no-store",
               **SECURITY_HEADERS, "Content-Security-Policy": DEFAULT_CSP}
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"HTTP/1.1 {status} {reason}\r\n{head}\r\n".encode("latin-1") + body


class _InputWithDeadline:
    """wsgi.input whose reads fail with TimeoutError once the body's deadline has passed."""

    def __init__(self, stream: Any, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline
        self.timed_out = False

    def _within(self, read: Any, *args: Any) -> Any:
        remaining = self._deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError(_LATE)
            # gevent's Timeout interrupts a blocked read wherever it waits, however the bytes
            # trickle in; a socket timeout would only bound each recv.
            with gevent.Timeout(remaining, TimeoutError(_LATE)):
                return read(*args)
        except TimeoutError:
            self.timed_out = True
            raise

    def read(self, size: int | None = None) -> bytes:
        return self._within(self._stream.read, size)

    def readline(self, size: int | None = None) -> bytes:
        return self._within(self._stream.readline, size)

    def readlines(self, hint: int | None = None) -> list[bytes]:
        return self._within(self._stream.readlines, hint)

    def __iter__(self) -> Any:
        while line := self.readline():
            yield line


_LATE = "The request body did not arrive in time."


class BodyDeadline:
    """WSGI middleware: the request body must arrive within `seconds` of the headers.

    A connection whose body missed its deadline is closed after the answer: the rest of the
    body is never read.
    """

    def __init__(self, app: Any, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        stream = environ.get("wsgi.input")
        if stream is None:
            return self.app(environ, start_response)
        body = _InputWithDeadline(stream, time.monotonic() + self.seconds)
        environ["wsgi.input"] = body

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # gunicorn ignores a Connection header from the app; its response object, whose
            # method start_response is, closes the connection when told to.
            if body.timed_out and hasattr(getattr(start_response, "__self__", None),
                                          "force_close"):
                start_response.__self__.force_close()
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def body_seconds() -> float:
    """REQUEST_BODY_TIMEOUT: seconds a client has to send the body once its headers are in."""
    raw = os.environ.get("REQUEST_BODY_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_BODY_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 600:
        raise SystemExit(f"REQUEST_BODY_TIMEOUT must be a number of seconds in (0, 600], "
                         f"not {raw!r}")
    return seconds


ACCEPTS_PER_TURN = 4


class _StreamServer(StreamServer):
    """gevent's server, accepting up to ACCEPTS_PER_TURN waiting connections per turn of the
    event loop. gunicorn sets 1 with several workers, so that one idle worker does not take a
    whole burst of connections; but under load a turn is one request on every busy
    connection, and new connections then waited a second for their first request (wrk, 16
    connections: p99 0.5-1.1 s). 4 keeps both (p99 ~0.1 s, the workers still balanced)."""

    @property
    def max_accept(self) -> int:
        return ACCEPTS_PER_TURN

    @max_accept.setter
    def max_accept(self, _value: int) -> None:
        pass  # gunicorn's 1


class _NoRequestText(logging.Filter):
    """gunicorn logs a client gone mid-headers with the bytes it had read (at debug level):
    the request line and headers, query and Authorization included. Keep the event, not them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Ignored premature client disconnection"):
            record.msg, record.args = "Ignored premature client disconnection.", ()
        return True


class Worker(GeventWorker):
    """gunicorn's gevent worker with a body deadline and problem+json for its own errors."""

    def init_process(self) -> None:
        self.log.error_log.addFilter(_NoRequestText())
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = BodyDeadline(self.wsgi, body_seconds())

    def run(self) -> None:
        ggevent.StreamServer = _StreamServer  # the name gunicorn builds its servers with
        super().run()

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        # gunicorn's gevent worker makes the socket blocking with no timeout; with one, each
        # send of an answer (gevent's sendall: the whole answer) has a deadline. Reads have
        # their own, shorter ones (the header parser's and the body's).
        client.settimeout(SEND_SECONDS)
        super(GeventWorker, self).handle(listener, client, addr)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> None:
        try:
            super().handle_request(listener_name, req, sock, addr)
        except TimeoutError:
            self.log.info("Closed a connection whose client did not read its answer in time.")
            raise StopIteration() from None
        # Fairness: a keep-alive client whose next request is already waiting would be served
        # again at once, for as long as it keeps up, while every other connection waits.
        # Yield first, so the requests already waiting on other connections go before it.
        gevent.sleep(0)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        started = datetime.now()
        address = addr or ("", -1)  # a unix socket has no peer address
        status, reason, slug, detail = refusal(exc)
        if status < 500:
            # The kind of error only: gunicorn's own message quotes the request line.
            self.log.warning("Refused a malformed request from ip=%s: %s", address[0],
                             type(exc).__name__)
        else:
            frames = "".join(traceback.format_tb(exc.__traceback__, limit=-_LOGGED_FRAMES))
            self.log.error("Error handling a request: %s\n%s", type(exc).__name__, frames)
        if req is None and isinstance(getattr(exc, "req", None), Request):
            req = exc.req  # a header error knows its request (a request-line error, a string)
        if req is not None:
            environ = default_environ(req, client, self.cfg)
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = address[0], str(address[1])
            response = Response(req, client, self.cfg)
            response.status = f"{status} {reason}"
            response.response_length = 0
            self.log.access(response, req, environ, datetime.now() - started)
        try:
            util.write_nonblock(client, problem_response(status, reason, slug, detail))
        except Exception:  # the client is gone: nothing to answer
            self.log.debug("Could not send the error answer.")
