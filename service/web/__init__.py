"""Pages for people: the clinic intake form, the rule catalog and the trace viewer.

Plain HTML from Jinja templates, one stylesheet and a little vanilla JavaScript, served by the
service itself (no build step, nothing fetched from another site). The pages call the public
API from the browser: from the same origin by default, or from the origin in `WEB_API_BASE`
(which must then allow-list the pages' origin in its `CORS_ALLOWED_ORIGINS`).
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, render_template, request

from .examples import EXAMPLES
from .fields import GROUPS, RedFlagScreen, field_specs, form_groups, page_labels

blueprint = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

_API_BASE = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?$")


class WebConfigError(ValueError):
    """WEB_API_BASE is not an http(s) URL."""


def api_base_from(value: str | None) -> str:
    """Check and normalise an API base URL: '' (same origin) or http(s)://host[:port][/path]."""
    value = (value or "").strip().rstrip("/")
    if value and not _API_BASE.match(value):
        raise WebConfigError(f"WEB_API_BASE must be an http(s) URL, got {value!r}")
    return value


@blueprint.record_once
def _configure(state: Any) -> None:
    app: Flask = state.app
    app.config["WEB_API_BASE"] = api_base_from(
        app.config.get("WEB_API_BASE", os.environ.get("WEB_API_BASE")))


def _catalog() -> Any | None:
    assessor = current_app.extensions.get("assessor")
    return None if assessor is None else assessor.catalog


def _api_base() -> str:
    return api_base_from(current_app.config.get("WEB_API_BASE"))


def _page(template: str, **context: Any) -> str:
    catalog = _catalog()
    return render_template(
        template,
        api_base=_api_base(),
        labels=page_labels(None if catalog is None else catalog.vocabulary),
        ruleset_version=None if catalog is None else catalog.version,
        **context,
    )


@blueprint.get("/intake")
def intake() -> str:
    catalog = _catalog()
    red_flags = RedFlagScreen.from_rules(catalog.rules) if catalog is not None else RedFlagScreen()
    return _page("web/intake.html", page="intake", groups=form_groups(red_flags),
                 all_groups=GROUPS, specs=field_specs(), screen_count=len(red_flags.screens))


@blueprint.get("/rules")
def rules() -> str:
    return _page("web/rules.html", page="rules")


@blueprint.get("/trace")
def trace() -> str:
    return _page("web/trace.html", page="trace", examples=EXAMPLES)


@blueprint.after_request
def _page_headers(response: Response) -> Response:
    """A strict policy for the pages: scripts and styles from here only, API calls to the API."""
    if response.mimetype == "text/html":
        base = _api_base()
        api_origin = ""
        if base:
            parts = urlsplit(base)
            api_origin = f" {parts.scheme}://{parts.netloc}"
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self'{api_origin}; form-action 'self'; base-uri 'none'; "
            "frame-ancestors 'none'"
        )
        response.headers["Cache-Control"] = "no-cache"
    elif request.endpoint == "web.static":
        response.headers.setdefault("Cache-Control", "no-cache")
        if response.status_code == 200 and response.direct_passthrough:
            # Read the (small) file whole, so that it can be sent compressed like the pages;
            # a streamed file would be sent as it is.
            response.direct_passthrough = False
            response.make_sequence()
    return response
