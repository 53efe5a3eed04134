"""Security headers on every response, and CORS only for allow-listed origins."""

from __future__ import annotations

from flask import Flask, Response, request
from flask_cors import CORS

# JSON answers are never rendered as pages; HTML pages (if any) set their own policy first.
_DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'"
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# Responses that carry a patient's assessment must not be kept by any cache.
_NO_STORE_PREFIXES = ("/v1/assessments", "/cds-services")


def install_security_headers(app: Flask) -> None:
    @app.after_request
    def _secure(response: Response) -> Response:
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", _DEFAULT_CSP)
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
