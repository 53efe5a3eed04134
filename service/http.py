"""Helpers every blueprint shares: the assessor of this app, and the strict JSON body reader.

The body reader decodes strictly: `application/json` only, the whole body within the limit
that applies to the request (even when it arrives chunked), UTF-8, standard JSON (no NaN),
and no key repeated in an object.
"""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request
from gunicorn.http.errors import ParseException as ServerParseError
from werkzeug.exceptions import RequestEntityTooLarge

from .assessment import Assessor
from .errors import MalformedJSON, NotReady, UnsupportedMediaType


def current_assessor() -> Assessor:
    """The assessor of the app handling this request, or a 503 while there is none."""
    assessor = current_app.extensions.get("assessor")
    if assessor is None:
        raise NotReady("The rulesets are not loaded.")
    return assessor


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

    With Content-Length, Werkzeug refuses an oversized body (413) and reads exactly it.
    Without (chunked), Werkzeug silently stops at the limit, which would read a truncated
    body; the server-terminated stream is read here up to one byte past the limit instead.
    """
    try:
        if request.content_length is not None or "wsgi.input_terminated" not in request.environ:
            return request.get_data(cache=False)
        limit = request.max_content_length
        stream = request.environ["wsgi.input"]
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = stream.read(limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except _UNREADABLE as error:  # a malformed chunked body, a client gone mid-body
        raise MalformedJSON("The body could not be read: its transfer encoding is "
                            "malformed or it ended early.") from error
    if size > limit:
        raise RequestEntityTooLarge()
    return b"".join(chunks)


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
