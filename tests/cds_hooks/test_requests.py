"""Malformed hook requests get a clear 4xx, with errors keyed by the member at fault."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cds_hooks.conftest import TODAY, VIGNETTES
from tests.cds_hooks.fhir_builder import fhir_record, hook_request

SERVICE = "/cds-services/msk-assessment"
IMAGING = "/cds-services/lumbar-imaging-appropriateness"
TOKEN = "secret-fhir-access-token-value"


def valid() -> dict[str, Any]:
    return hook_request("patient-view",
                        fhir_record(VIGNETTES["V01-acute-nonspecific"]["presentation"], TODAY))


def without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    node = body
    for name in path[:-1]:
        node = node[name]
    del node[path[-1]]
    return body


INVALID = {
    "no_hook": (without(valid(), "hook"), "hook"),
    "no_hook_instance": (without(valid(), "hookInstance"), "hookInstance"),
    "no_context": (without(valid(), "context"), "context"),
    "no_patient_id": (without(valid(), "context", "patientId"), "context.patientId"),
    "patient_id_not_a_string": ({**valid(), "context": {"userId": "Practitioner/1",
                                                        "patientId": 7}}, "context.patientId"),
    "hook_of_another_service": ({**valid(), "hook": "order-sign"}, "hook"),
    "fhir_server_not_a_url": ({**valid(), "fhirServer": "ehr.example.org"}, "fhirServer"),
    "authorization_without_server": ({**valid(), "fhirAuthorization": {
        "access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "x",
        "subject": "y"}}, "fhirServer"),
    "authorization_incomplete": ({**valid(), "fhirServer": "https://ehr.example.org/fhir",
                                  "fhirAuthorization": {"access_token": TOKEN}},
                                 "fhirAuthorization.token_type"),
    "prefetch_not_an_object": ({**valid(), "prefetch": ["x"]}, "prefetch"),
    "body_not_an_object": ([valid()], "body"),
}


@pytest.mark.parametrize(("body", "field"), INVALID.values(), ids=INVALID.keys())
def test_an_invalid_hook_request_is_422_naming_the_member(hooks, body, field):
    response = hooks.post(SERVICE, json=body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in response.json["errors"], response.json["errors"]
    assert TOKEN not in response.get_data(as_text=True)


@pytest.mark.parametrize(("context", "field"), [
    ({"userId": "Practitioner/1", "patientId": "p"}, "context.draftOrders"),
    ({"userId": "Practitioner/1", "patientId": "p", "draftOrders": {"resourceType": "Bundle"}},
     "context.selections"),
    ({"userId": "Practitioner/1", "patientId": "p", "selections": ["ServiceRequest/1"],
      "draftOrders": {"resourceType": "Patient"}}, "context.draftOrders"),
])
def test_an_order_select_without_its_orders_is_422(hooks, context, field):
    body = {"hook": "order-select", "hookInstance": "x", "context": context}
    response = hooks.post(IMAGING, json=body)
    assert response.status_code == 422
    assert field in response.json["errors"]


@pytest.mark.parametrize(("data", "content_type", "status"), [
    ("{not json", "application/json", 400),
    ('{"hook": "patient-view", "hook": "order-sign"}', "application/json", 400),
    ('{"x": NaN}', "application/json", 400),
    (b"\xff\xfe", "application/json", 400),
    ("{}", "text/plain", 415),
])
def test_a_body_that_is_not_strict_json_is_refused(hooks, data, content_type, status):
    response = hooks.post(SERVICE, data=data, content_type=content_type)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"


def test_unknown_members_and_extensions_are_ignored(hooks):
    body = {**valid(), "extension": {"com.example.x": 1}, "somethingNew": True}
    body["context"]["encounterId"] = "e1"
    body["context"]["futureField"] = "ignored"
    assert hooks.post(SERVICE, json=body).status_code == 200


def test_an_unknown_service_is_404(hooks):
    response = hooks.post("/cds-services/unknown", json=valid())
    assert response.status_code == 404
    assert response.json["type"] == "/problems/not-found"


def test_a_hook_request_may_be_larger_than_an_assessment(hooks):
    body = valid()
    body["extension"] = {"com.example.padding": "x" * 200_000}  # over the 64 KiB of /v1
    assert hooks.post(SERVICE, json=body).status_code == 200
