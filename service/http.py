"""Helpers every blueprint shares: the assessor of this app, and the strict JSON body reader.

The body reader decodes strictly: `application/json` only, the whole body within the limit
that applies to the request (even when it arrives chunked), UTF-8, standard JSON (no NaN),
and no key repeated in an object.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from flask import Flask, current_app, g, request
from gunicorn.http.errors import ParseException as ServerParseError
from werkzeug.exceptions import RequestEntityTooLarge

from .assessment import Assessor
from .errors import BodiesBusy, MalformedJSON, NotReady, RequestTimeout, UnsupportedMediaType


def current_assessor() -> Assessor:
    """The assessor of the app handling this request, or a 503 while there is none."""
    assessor = current_app.extensions.get("assessor")
    if assessor is None:
        raise NotReady("The rulesets are not loaded.")
    return assessor


class BodyBudget:
    """Bytes of request bodies one worker process may hold at once, across its requests.

    With gevent any number of uploads are read at the same time, so the sum, not each body,
    must be bounded to keep the worker inside the pod's memory. Bytes are taken as they
    arrive (a slow upload holds only what it has sent) and given back when its request ends.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self.held + size > self.limit:
                return False
            self.held += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self.held -= size


def install_body_budget(app: Flask, limit: int) -> None:
    budget = BodyBudget(limit)
    app.extensions["body_budget"] = budget

    @app.teardown_request
    def _give_back(_error: BaseException | None) -> None:
        held = g.pop("body_bytes_held", 0)
        if held:
            budget.give_back(held)


def _hold(size: int) -> None:
    budget: BodyBudget | None = current_app.extensions.get("body_budget")
    if budget is None:
        return
    if not budget.take(size):
        raise BodiesBusy("The service is reading as many request bodies as it can hold; "
                         "retry in a moment.")
    g.body_bytes_held = g.get("body_bytes_held", 0) + size


def _release(size: int) -> None:
    budget: BodyBudget | None = current_app.extensions.get("body_budget")
    if budget is not None:
        budget.give_back(size)
        g.body_bytes_held -= size


def read_json_body(what: str) -> Any:
    """Decode the request body strictly; `what` names it in the 415 message."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(f"Send the {what} as application/json.")
    raw = _read_body()
    try:
        text = raw.decode("utf-8")
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys,
                          parse_constant=_refuse_constant)
    except UnicodeDecodeError as error:
        raise MalformedJSON("The body is not valid UTF-8.") from error
    except RecursionError as error:
        raise MalformedJSON("The JSON is nested too deeply.") from error
    except json.JSONDecodeError as error:
        raise MalformedJSON(f"The body is not valid JSON: {error.msg} at line "
                            f"{error.lineno}, column {error.colno}.") from error
    except ValueError as error:  # an integer literal too long to convert
        raise MalformedJSON("The body holds a number too long to read.") from error


# What reading a body can raise when the client sent it badly: gunicorn's parse errors (bad
# chunk sizes, missing terminators) and the OSError of a body cut short.
_UNREADABLE = (ServerParseError, OSError, ValueError)


def _read_body() -> bytes:
    """Read the whole body, refusing one over the limit even when it arrives chunked.

    Read here rather than by Werkzeug: without Content-Length (chunked), Werkzeug silently
    stops at the limit, which would read a truncated body, and it turns every read error into
    "client disconnected", hiding the server's body deadline (TimeoutError) behind a 400.
    """
    limit = request.max_content_length or 0
    length = request.content_length
    if length is not None and length > limit:
        raise RequestEntityTooLarge()
    if length is None and "wsgi.input_terminated" not in request.environ:
        return b""  # neither a length nor a server-terminated stream: no body (WSGI)
    wanted = length if length is not None else limit + 1  # one byte past: too large
    stream = request.environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    try:
        while size < wanted:
            # Counted before it is read: the server buffers what a read asks for while the
            # bytes arrive, so a slow upload holds at most one step more than it has sent.
            step = min(wanted - size, _READ_SIZE)
            _hold(step)
            chunk = stream.read(step)
            if len(chunk) < step:
                _release(step - len(chunk))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except TimeoutError as error:  # the server's body deadline (service.serving) passed
        raise RequestTimeout("The request body did not arrive in time; send it at once, "
                             "then wait for the answer.") from error
    except _UNREADABLE as error:  # a malformed chunked body, a client gone mid-body
        raise MalformedJSON(_CUT_SHORT) from error
    if length is None and size > limit:
        raise RequestEntityTooLarge()
    if length is not None and size < length:
        raise MalformedJSON(_CUT_SHORT)
    return b"".join(chunks)


_READ_SIZE = 64 * 1024
_CUT_SHORT = ("The body could not be read: its transfer encoding is malformed or it ended "
              "early.")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Called for every object of the body: dict() and len() run in C, the loop only on error.
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MalformedJSON(f"The JSON object repeats the key {key!r}.")
            seen.add(key)
    return found


def _refuse_constant(name: str) -> Any:
    raise MalformedJSON(f"{name} is not valid JSON.")
