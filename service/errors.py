"""Map every error to one shape: RFC 9457 problem details, `application/problem+json`.

Nothing about the request body or the server's internals goes into a problem: a 500 says
only that something went wrong and gives the request's id to quote.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

from .observability import count_validation_failure, request_id

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class ProblemError(Exception):
    """An error that becomes a problem+json response; subclasses fix status and type."""

    status = 500
    slug = "internal-error"
    title = "Internal Server Error"

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None,
                 left_out: int = 0) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors, self.left_out = _bounded(errors, left_out)

    def without_errors(self) -> None:
        """Keep the problem, count its errors instead of listing them (a spent budget)."""
        self.left_out += len(self.errors or {})
        self.errors = {} if self.errors is not None else None


# An answer lists at most this many fields with errors, and this many messages each; how
# many more there were is said (`errors_left_out`), so a hostile body cannot make a huge one.
MAX_ERROR_FIELDS = 50
MAX_MESSAGES_PER_FIELD = 3


def _bounded(errors: dict[str, list[str]] | None,
             left_out: int) -> tuple[dict[str, list[str]] | None, int]:
    if errors is None:
        return None, left_out
    paths = list(errors)
    kept = {path: list(errors[path])[:MAX_MESSAGES_PER_FIELD]
            if isinstance(errors[path], list) else errors[path]
            for path in paths[:MAX_ERROR_FIELDS]}
    return kept, left_out + max(0, len(paths) - MAX_ERROR_FIELDS)


class MalformedJSON(ProblemError):
    status, slug, title = 400, "malformed-json", "Bad Request"


class NotFound(ProblemError):
    status, slug, title = 404, "not-found", "Not Found"


class UnsupportedMediaType(ProblemError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported Media Type"


class ValidationFailed(ProblemError):
    status, slug, title = 422, "validation-error", "Unprocessable Content"


class RequestTimeout(ProblemError):
    """The body did not arrive by the server's deadline (service.serving closes the connection)."""

    status, slug, title = 408, "request-timeout", "Request Timeout"


class BodiesBusy(ProblemError):
    """This worker already holds as many request bodies as it may; retry in a moment."""

    status, slug, title = 503, "server-busy", "Service Unavailable"
    retry_after_seconds = 1


class BatchBusy(ProblemError):
    status, slug, title = 429, "batch-busy", "Too Many Requests"
    retry_after_seconds = 5


class NotReady(ProblemError):
    status, slug, title = 503, "not-ready", "Service Unavailable"


# Werkzeug's own HTTP errors (405, 413, routing 404) get stable slugs too.
_HTTP_SLUGS = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}


def _body(status: int, slug: str, title: str, detail: str,
          errors: dict[str, list[str]] | None = None, left_out: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title, "status": status,
                            "detail": detail}
    if errors is not None:
        body["errors"] = errors
    if left_out:
        body["detail"] = f"{detail} {left_out} more fields with errors are not listed."
        body["errors_left_out"] = left_out
    return body


def problem_body(error: ProblemError) -> dict[str, Any]:
    """The problem details of an error, as a JSON object (e.g. one item of a batch)."""
    return _body(error.status, error.slug, error.title, error.detail, error.errors,
                 error.left_out)


def problem(status: int, slug: str, title: str, detail: str,
            errors: dict[str, list[str]] | None = None, left_out: int = 0) -> Response:
    """Build a problem+json response."""
    return Response(json.dumps(_body(status, slug, title, detail, errors, left_out)),
                    status=status,
                    mimetype=PROBLEM_JSON)


# Refusals of a request body before the engine runs, counted for the operators.
_VALIDATION_STATUSES = (400, 413, 415, 422)
_LOGGED_FRAMES = 12
_LOGGED_FRAME_CHARS = 4000


def register_error_handlers(app: Flask) -> None:
    """Install handlers so that no error leaves the service in any other shape."""

    @app.errorhandler(ProblemError)
    def _problem(error: ProblemError) -> Response:
        if error.status in _VALIDATION_STATUSES:
            count_validation_failure(error.status, error.errors or {})
        response = problem(error.status, error.slug, error.title, error.detail, error.errors,
                           error.left_out)
        if isinstance(error, BatchBusy | BodiesBusy):
            response.headers["Retry-After"] = str(error.retry_after_seconds)
        return response

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        detail = error.description or error.name
        if status in _VALIDATION_STATUSES:
            count_validation_failure(status)
        if status == 413:  # the limit that applied: batch and hook requests have their own
            detail = f"The request body is larger than {request.max_content_length} bytes."
        response = problem(status, _HTTP_SLUGS.get(status, "http-error"), error.name, detail)
        # Keep the headers the error defines (Allow on 405, Content-Range on 416).
        for name, value in error.get_headers():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # The message of an exception may quote the patient's data (durable-rules quotes
        # whole facts), so only its type and the stack frames are logged.
        # The innermost frames, bounded: a deep recursion would otherwise log megabytes.
        frames = "".join(traceback.format_tb(error.__traceback__, limit=-_LOGGED_FRAMES))
        frames = frames[-_LOGGED_FRAME_CHARS:]
        log.error("unhandled %s", type(error).__name__,
                  extra={"request_id": request_id(), "frames": frames})
        return problem(500, "internal-error", "Internal Server Error",
                       "The service could not complete the request. This is a defect; "
                       f"quote request id {request_id()}.")
