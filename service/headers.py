"""Security headers on every response, and CORS only for allow-listed origins."""

from __future__ import annotations

from flask import Flask, Response, request
from flask_compress import Compress
from flask_cors import CORS

from .response_headers import DEFAULT_CSP, SECURITY_HEADERS

# Responses that carry a patient's assessment must not be kept by any cache.
_NO_STORE_PREFIXES = ("/v1/assessments", "/cds-services")


def install_security_headers(app: Flask) -> None:
    @app.after_request
    def _secure(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
        if request.path.startswith(_NO_STORE_PREFIXES):
            response.headers["Cache-Control"] = "no-store"
        return response


def install_cors(app: Flask, allowed_origins: tuple[str, ...]) -> None:
    """Allow cross-origin calls to the API from the listed origins only; none by default."""
    if not allowed_origins:
        return
    CORS(app, resources={r"/v1/*": {}, r"/cds-services*": {}},
         origins=list(allowed_origins), methods=["GET", "POST", "OPTIONS"],
         allow_headers=["Content-Type", "Authorization", "X-Request-ID"],
         expose_headers=["X-Request-ID"], max_age=600)


# Pages, their scripts and styles, and JSON answers are sent compressed (brotli or gzip) to a
# client that accepts it. Not a batch's answer: tens of MB compressed at once would hold the
# worker's CPU for a second or more, and batch callers are integrations on fast links.
_COMPRESSED_TYPES = ["text/html", "text/css", "text/javascript", "application/javascript",
                     "application/json", "application/problem+json"]
_NOT_COMPRESSED_ENDPOINTS = frozenset({"api.create_assessments_batch"})


def install_compression(app: Flask) -> None:
    app.config.update(COMPRESS_REGISTER=False, COMPRESS_ALGORITHM=["br", "gzip"],
                      COMPRESS_MIMETYPES=_COMPRESSED_TYPES, COMPRESS_STREAMS=False,
                      COMPRESS_MIN_SIZE=500)
    compress = Compress(app)

    @app.after_request
    def _compress(response: Response) -> Response:
        if request.endpoint in _NOT_COMPRESSED_ENDPOINTS:
            return response
        return compress.after_request(response)
