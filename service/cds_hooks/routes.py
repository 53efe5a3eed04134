"""The CDS Hooks 2.0 endpoints (discovery, service calls, feedback) and their workflows.

Knows nothing of durable-rules: it maps FHIR to a presentation, validates it with the core's
schema and asks the core's `Assessor`, like the REST API does. An order's `reasonCode` is
part of its indication, so orders with different reasons are assessed apart.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Mapping
from datetime import date
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from ..errors import NotFound, ValidationFailed
from ..http import current_assessor, read_json_body
from ..schemas import load_presentation
from .cards import data_needed_card, other_version_card, patient_view_cards, too_large_card
from .discovery import SERVICES, discovery_document, hooks_of
from .errors import Unauthorized
from .fetching import PatientRecord, gather
from .mapping import REQUIRED_FIELDS, MappedPresentation, codings, describe, read_chart
from .metrics import count_cards, count_feedback
from .ordering import (
    data_needed_order_card,
    imaging_orders,
    older_version_orders,
    order_card,
    what_would_change,
)
from .schemas import load_feedback, load_hook_request
from .security import KeyStore, TokenVerifier, fetch_https, replay_guard
from .settings import HookSettings

log = logging.getLogger(__name__)
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
            cached = (settings, TokenVerifier(keys, replay_guard(settings)))
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
        claims = _verifier(settings).verify(request.headers.get("Authorization"), audience)
        g.cds_issuer = claims.get("iss")  # whose FHIR servers this call may name
    except Unauthorized:
        response = Response(status=401, headers={"WWW-Authenticate": "Bearer"})
        del response.headers["Content-Type"]
        return response
    return None


@blueprint.get("/cds-services")
def discovery() -> Response:
    catalog = current_assessor().catalog
    return jsonify(discovery_document(catalog.version, catalog.digest))


def _chart(hook_request: dict[str, Any]) -> PatientRecord:
    return gather(hook_request, _settings(), g.get("cds_issuer"))


def _today() -> date:
    return _settings().clock().date()


def _assess(presentation: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a presentation read from a chart as the REST API does, and assess it. The
    mapping only keeps values the registry accepts; should one still be refused, it is left
    out (unknown) rather than the call failing."""
    try:
        return current_assessor().assess(load_presentation(presentation))
    except ValidationError as error:
        log.warning("a chart value was refused by the schema", extra={
            "fields": sorted(error.messages) if isinstance(error.messages, dict) else []})
        kept = copy.deepcopy(dict(presentation))
        for path in error.messages if isinstance(error.messages, dict) else []:
            section, _, name = str(path).partition(".")
            if path in REQUIRED_FIELDS:
                raise
            (kept.get(section) or {}).pop(name, None)
        return current_assessor().assess(load_presentation(kept))


def _positive_answers() -> dict[str, Any]:
    """Each red-flag finding's first positive answer, from the ruleset's red-flag model."""
    model = current_assessor().catalog.red_flag_model or {}
    return {entry["field"]: entry["positive"][0] for entry in model.get("findings", [])}


def _other_version(record: PatientRecord) -> bool:
    """The chart is in another FHIR version: some resources in DSTU2 form and no R4
    Condition read. A stray one in an R4 chart is only noted (fetching does)."""
    return record.dstu2 > 0 and not record.conditions


def _patient_view(hook_request: dict[str, Any]) -> dict[str, Any]:
    record = _chart(hook_request)
    bibliography = current_assessor().catalog.citations
    if _other_version(record):
        return {"cards": [other_version_card(record.dstu2, bibliography)]}
    mapped = read_chart(record.chart, _today())
    notes = record.notes + mapped.notes
    if "pain.sites" in mapped.missing_required:
        return {"cards": []}  # no low back or hip pain on record: nothing to say
    if mapped.missing_required:
        sites = mapped.presentation["pain"]["sites"]
        return {"cards": [data_needed_card(mapped.missing_required, notes, bibliography,
                                           sites)]}
    return {"cards": patient_view_cards(_assess(mapped.presentation), notes, bibliography,
                                        describe(mapped), hook_request["context"]["patient_id"])}


def _order_hook(hook_request: dict[str, Any]) -> dict[str, Any]:
    context = hook_request["context"]
    orders = imaging_orders(context["draft_orders"], context.get("selections"))
    if not orders:
        older = older_version_orders(context["draft_orders"])
        if older:
            bibliography = current_assessor().catalog.citations
            return {"cards": [other_version_card(older, bibliography)]}
        return {"cards": []}
    record = _chart(hook_request)
    bibliography = current_assessor().catalog.citations
    if _other_version(record):
        return {"cards": [other_version_card(record.dstu2, bibliography)]}
    settings = _settings()
    cards, actions = [], []
    assessed: dict[tuple[tuple[str, str], ...], tuple[MappedPresentation, dict[str, Any]]] = {}
    for order in orders:
        reasons = order.order.reasonCode or []
        key = tuple(sorted(c for concept in reasons for c in codings(concept)))
        if key not in assessed:
            mapped = read_chart(record.chart, _today(), reasons)
            assessed[key] = (mapped, {} if mapped.missing_required
                             else _assess(mapped.presentation))
        mapped, assessment = assessed[key]
        if mapped.missing_required:
            cards.append(data_needed_order_card(order, mapped.missing_required, bibliography))
            continue
        changes = what_would_change(order, mapped.presentation, assessment,
                                    _positive_answers(), _assess)
        card, action = order_card(order, assessment, bibliography, settings.pama_qcdsm,
                                  changes, mapped.presentation["pain"]["sites"])
        cards.append(card)
        if action is not None:
            actions.append(action)
    response: dict[str, Any] = {"cards": cards}
    if actions:
        # CDS Hooks 2.0 reads the top level; the Argonaut PAMA guide (and the public
        # sandbox's PAMA screen) reads extension.systemActions.
        response["systemActions"] = actions
        response["extension"] = {"systemActions": actions}
    return response


def _too_large(service_id: str) -> Response:
    """A hook body over the limit still gets a card: silence would read as "all clear"."""
    bibliography = current_assessor().catalog.citations
    hooks = hooks_of(service_id)
    card = too_large_card(_settings().max_body_bytes, bibliography)
    count_cards(service_id, hooks[0], [card])
    return jsonify({"cards": [card]})


def call_service(service_id: str) -> Response:
    hooks = hooks_of(service_id)
    try:
        body = read_json_body("hook request")
    except RequestEntityTooLarge:
        return _too_large(service_id)
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


# One route per service, as the contract documents them: an id discovery does not list is
# any other unknown path (404), and each path says in openapi.yaml which hooks it answers.
for _service in SERVICES:
    blueprint.add_url_rule(f"/cds-services/{_service.id}", endpoint=f"call_{_service.id}",
                           view_func=call_service, methods=["POST"],
                           defaults={"service_id": _service.id})


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
