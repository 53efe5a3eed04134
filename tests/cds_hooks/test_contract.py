"""Every CDS Hooks answer conforms to openapi.yaml (and the 2.0 shapes), status by status."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cds_hooks.conftest import TODAY, VIGNETTES
from tests.cds_hooks.fhir_builder import draft_orders, fhir_record, hook_request, imaging_order
from tests.cds_hooks.shapes import shape_errors
from tests.contract.test_openapi import exchange, openapi  # noqa: F401 - openapi is a fixture

SERVICE = "/cds-services/msk-assessment"
IMAGING = "/cds-services/lumbar-imaging-appropriateness"


def patient_view(case: str = "V03-saddle-anaesthesia") -> dict[str, Any]:
    return hook_request("patient-view", fhir_record(VIGNETTES[case]["presentation"], TODAY))


def order_select() -> dict[str, Any]:
    prefetch = fhir_record(VIGNETTES["V01-acute-nonspecific"]["presentation"], TODAY)
    return hook_request("order-select", prefetch, selections=["ServiceRequest/imaging-1"],
                        draftOrders=draft_orders(imaging_order("30679-5")))


FEEDBACK = {"feedback": [
    {"card": "4e0a3a1e-3283-4575-ab82-028d55fe2719", "outcome": "accepted",
     "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
     "outcomeTimestamp": "2026-06-15T10:05:31Z"}]}

CASES: dict[str, tuple[int, str, str, dict[str, Any]]] = {
    "discovery": (200, "GET", "/cds-services", {}),
    "patient_view": (200, "POST", SERVICE, {"json": patient_view()}),
    "patient_view_screened_out": (200, "POST", SERVICE, {"json": patient_view(
        "V01-acute-nonspecific")}),
    "order_select_with_system_actions": (200, "POST", IMAGING, {"json": order_select()}),
    "feedback": (200, "POST", f"{IMAGING}/feedback", {"json": FEEDBACK}),
    "not_json": (400, "POST", SERVICE, {"data": "{", "content_type": "application/json"}),
    # An unknown service id is no path of the spec (each service has its own): its 404 is
    # checked in tests/contract/test_openapi.py.
    "unknown_service_feedback": (404, "POST", "/cds-services/nope/feedback",
                                 {"json": FEEDBACK}),
    "no_prefetch_no_server": (412, "POST", SERVICE, {"json": hook_request("patient-view", {})}),
    # A key the service asked for holding no resource is the client's defect, not "no data".
    "prefetch_not_a_resource": (422, "POST", SERVICE, {"json": hook_request(
        "patient-view", {"patient": {"id": "1"}, "medications": []})}),
    # Over the hook limit: not read, and a card says so (silence would read as all clear).
    "too_large": (200, "POST", SERVICE, {"data": json.dumps({"x": "x" * 1_100_000}),
                                         "content_type": "application/json"}),
    "text_plain": (415, "POST", SERVICE, {"data": "{}", "content_type": "text/plain"}),
    "no_context": (422, "POST", SERVICE, {"json": {"hook": "patient-view",
                                                   "hookInstance": "x"}}),
    "bad_feedback": (422, "POST", f"{SERVICE}/feedback", {"json": {"feedback": [
        {"card": "x", "outcome": "accepted", "outcomeTimestamp": "2026-06-15T10:05:31Z"}]}}),
}


@pytest.mark.parametrize(("status", "method", "path", "kwargs"), CASES.values(),
                         ids=CASES.keys())
def test_cds_hooks_answers_conform(hooks, openapi, status, method, path, kwargs):  # noqa: F811
    response = exchange(hooks, openapi, method, path, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    if status == 200 and path == "/cds-services":
        assert shape_errors("discovery", response.json) == []
    elif status == 200 and not path.endswith("/feedback"):
        assert shape_errors("response", response.json) == []
    elif status != 200:
        assert response.mimetype == "application/problem+json"


def test_the_feedback_example_is_cds_hooks_feedback():
    assert shape_errors("feedback", FEEDBACK) == []


def test_a_refused_token_conforms(secured, openapi):  # noqa: F811
    response = exchange(secured, openapi, "POST", SERVICE, json=patient_view())
    assert response.status_code == 401
    response = exchange(secured, openapi, "GET", "/cds-services")
    assert response.status_code == 401


@pytest.mark.parametrize(("method", "path"), [("GET", "/cds-services"), ("POST", SERVICE)])
def test_not_ready_is_a_503_problem(app, hooks, openapi, monkeypatch, method,  # noqa: F811
                                    path):
    monkeypatch.delitem(app.extensions, "assessor")
    kwargs = {"json": patient_view()} if method == "POST" else {}
    assert exchange(hooks, openapi, method, path, **kwargs).status_code == 503
