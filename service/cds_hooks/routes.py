"""HTTP only: the CDS Hooks 2.0 endpoints (discovery, service calls, feedback).

Knows nothing of durable-rules: it maps FHIR to a presentation, validates it with the core's
schema and asks the core's `Assessor`, like the REST API does.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import ValidationError

from ..errors import NotFound, ValidationFailed
from ..http import current_assessor, read_json_body
from ..schemas import load_presentation
from .cards import data_needed_card, patient_view_cards
from .discovery import discovery_document, hooks_of
from .errors import Unauthorized
from .fetching import gather
from .mapping import MappedPresentation, to_presentation
from .metrics import count_cards, count_feedback
from .ordering import data_needed_order_card, imaging_orders, order_card
from .schemas import load_feedback, load_hook_request
from .security import KeyStore, ReplayGuard, TokenVerifier, fetch_https
from .settings import HookSettings

blueprint = Blueprint("cds_hooks", __name__)
_verifier_lock = threading.Lock()


def _settings() -> HookSettings:
    return current_app.extensions.get("cds_hooks") or HookSettings()


def _verifier(settings: HookSettings) -> TokenVerifier:
    """One verifier per settings object (tests swap settings on a running app)."""
    with _verifier_lock:
        cached = current_app.extensions.get("cds_hooks_verifier")
        if cached is None or cached[0] is not settings:
            keys = KeyStore(settings.issuers, settings.jwks_fetch or fetch_https)
            cached = (settings, TokenVerifier(keys, ReplayGuard(settings.replay_db)))
            current_app.extensions["cds_hooks_verifier"] = cached
        return cached[1]


@blueprint.before_request
def _authenticate() -> Response | None:
    settings = _settings()
    request.max_content_length = settings.max_body_bytes
    if not settings.auth or request.method == "OPTIONS":  # a CORS preflight carries no token
        return None
    try:
        audience = f"{settings.public_url}{request.path}" if settings.public_url else None
        _verifier(settings).verify(request.headers.get("Authorization"), audience)
    except Unauthorized:
        response = Response(status=401, headers={"WWW-Authenticate": "Bearer"})
        del response.headers["Content-Type"]
        return response
    return None


@blueprint.get("/cds-services")
def discovery() -> Response:
    catalog = current_assessor().catalog
    return jsonify(discovery_document(catalog.version, catalog.digest))


def _read_record(hook_request: dict[str, Any]) -> tuple[MappedPresentation, list[str]]:
    record = gather(hook_request, _settings())
    mapped = to_presentation(record.patient, record.conditions, record.observations,
                             _settings().clock().date())
    return mapped, record.notes + mapped.notes


def _patient_view(hook_request: dict[str, Any]) -> dict[str, Any]:
    mapped, notes = _read_record(hook_request)
    bibliography = current_assessor().catalog.citations
    if "pain.sites" in mapped.missing_required:
        return {"cards": []}  # no low back or hip pain on record: nothing to say
    if mapped.missing_required:
        sites = mapped.presentation["pain"]["sites"]
        return {"cards": [data_needed_card(mapped.missing_required, notes, bibliography,
                                           sites)]}
    assessment = current_assessor().assess(load_presentation(mapped.presentation))
    return {"cards": patient_view_cards(assessment, notes, bibliography)}


def _order_hook(hook_request: dict[str, Any]) -> dict[str, Any]:
    context = hook_request["context"]
    orders = imaging_orders(context["draft_orders"], context.get("selections"))
    if not orders:
        return {"cards": []}
    mapped, _ = _read_record(hook_request)
    bibliography = current_assessor().catalog.citations
    if mapped.missing_required:
        return {"cards": [data_needed_order_card(order, mapped.missing_required, bibliography)
                          for order in orders]}
    assessment = current_assessor().assess(load_presentation(mapped.presentation))
    rated = [order_card(order, assessment, bibliography) for order in orders]
    response: dict[str, Any] = {"cards": [card for card, _ in rated]}
    actions = [action for _, action in rated if action is not None]
    if actions:
        response["systemActions"] = actions
    return response


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    hooks = hooks_of(service_id)
    if not hooks:
        raise NotFound(f"No CDS Service has the id {service_id!r}.")
    body = read_json_body("hook request")
    try:
        hook_request = load_hook_request(body, hooks)
    except ValidationError as error:
        raise ValidationFailed("The hook request breaks CDS Hooks 2.0; see errors.",
                               errors=error.messages) from None
    current_assessor()  # 503 before any FHIR server is asked, when there are no rules to apply
    if hook_request["hook"] == "patient-view":
        response = _patient_view(hook_request)
    else:
        response = _order_hook(hook_request)
    count_cards(service_id, hook_request["hook"], response["cards"])
    return jsonify(response)


@blueprint.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    if not hooks_of(service_id):
        raise NotFound(f"No CDS Service has the id {service_id!r}.")
    try:
        items = load_feedback(read_json_body("hook request"))
    except ValidationError as error:
        raise ValidationFailed("The feedback breaks CDS Hooks 2.0; see errors.",
                               errors=error.messages) from None
    count_feedback(service_id, items)
    return jsonify({"acknowledged": len(items)})
