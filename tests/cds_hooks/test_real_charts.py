"""Synthea-style R4 charts on a FHIR server, called as the public CDS Hooks sandbox calls.

The patients are tests/cds_hooks/synthea/ (see its README); the requests are built by
tests/cds_hooks/sandbox.py from this service's own discovery document, so the prefetch is
whatever these templates return from a real FHIR search. The expectations come from the
clinical brief, written before looking at what the service answers.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.cds_hooks.fetching import MAX_PAGES
from service.cds_hooks.terminology import (
    CPT,
    FIELD_SYSTEM,
    PAMA_CONSULT_ID_URL,
    PAMA_QCDSM_URL,
    PAMA_RATING_SYSTEM,
    PAMA_RATING_URL,
)
from tests.cds_hooks.conftest import hook_client
from tests.cds_hooks.fhir_server import FhirTestServer
from tests.cds_hooks.long_record import load_fixture, long_followed_patient
from tests.cds_hooks.sandbox import (
    coding,
    order_select_request,
    pama_order_select_request,
    pama_service_request,
    patient_view_request,
)
from tests.cds_hooks.shapes import shape_errors

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # the fixtures' reference day
ASSESS = "/cds-services/msk-assessment"
IMAGING = "/cds-services/lumbar-imaging-appropriateness"
SNOMED = "http://snomed.info/sct"


def _at_reference_day() -> datetime:
    return NOW


@pytest.fixture()
def ehr(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    yield hook_client(app, monkeypatch, _at_reference_day)


@pytest.fixture()
def server() -> Iterator[FhirTestServer]:
    resources = [r for n in range(1, 6) for r in load_fixture(n)]
    with FhirTestServer(resources) as running:
        yield running


def discovery(client: FlaskClient, service_id: str, hook: str) -> dict[str, Any]:
    services = client.get("/cds-services").json["services"]
    return next(s for s in services if s["id"] == service_id and s["hook"] == hook)


def patient_view(client: FlaskClient, server: FhirTestServer, patient_id: str
                 ) -> list[dict[str, Any]]:
    service = discovery(client, "msk-assessment", "patient-view")
    request = patient_view_request(server.base_url, patient_id, discovery_service=service)
    assert set(request["prefetch"]) == set(service["prefetch"])  # every search answered
    response = client.post(ASSESS, json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert shape_errors("response", response.json) == []
    return response.json["cards"]


def section(card: dict[str, Any], title: str) -> str:
    """The text of one bold-titled section of a card's detail."""
    detail = card["detail"]
    start = detail.find(f"**{title}")
    assert start >= 0, f"{title!r} not in the card"
    end = detail.find("\n\n**", start + 1)
    return detail[start:end if end > 0 else None]


def test_every_patient_with_back_or_hip_pain_gets_a_card_and_the_control_none(ehr, server):
    for patient_id in ("synthea-1", "synthea-2", "synthea-3", "synthea-4"):
        cards = patient_view(ehr, server, patient_id)
        assert cards, patient_id
        assert "red-flag questions open" in cards[-1]["summary"], patient_id
    assert patient_view(ehr, server, "synthea-5") == []  # no back or hip pain on record


def test_chronic_low_back_pain_reads_the_latest_bmi_and_the_nsaid_already_taken(ehr, server):
    [card] = patient_view(ehr, server, "synthea-1")
    assert card["indicator"] == "info"
    assert card["summary"].endswith("Nonspecific low back pain (chronic): primary care")
    read = section(card, "Read from the record")
    assert "Body mass index: 31.2 (Observation" in read  # the latest of fifteen, not a conflict
    assert "conflicting" not in card["detail"] and "same day" not in card["detail"]
    assert "already prescribed an NSAID" in section(card, "Not read from the record")


def test_an_88_year_old_on_warfarin_is_not_offered_an_nsaid(ehr, server):
    [card] = patient_view(ehr, server, "synthea-2")
    assert "Takes an anticoagulant: yes (MedicationRequest: Warfarin" in card["detail"]
    assert "Chronic kidney disease: yes (Condition" in card["detail"]
    assert "NSAID" not in section(card, "First-line plan")
    assert "Oral NSAID" in section(card, "Avoid")


def test_a_treated_cancer_stays_a_history_of_cancer(ehr, server):
    cards = patient_view(ehr, server, "synthea-3")
    urgent = next(c for c in cards if c["indicator"] == "warning")
    assert "Spinal malignancy" in urgent["summary"]
    assert "History of cancer: yes (Condition: Malignant neoplasm of breast" in cards[-1][
        "detail"]
    assert "Long-term corticosteroids: yes (MedicationRequest" in cards[-1]["detail"]


def test_back_pain_and_hip_osteoarthritis_are_both_assessed(ehr, server):
    [card] = patient_view(ehr, server, "synthea-4")
    assert "Where it hurts: low back (or buttock), hip (or groin)" in card["detail"]
    assert "Radiograph, hip and pelvis" in section(card, "Imaging")
    # The chart says where it hurts, not how the hip pain presents: asked, not assumed.
    assert "Where hip pain is felt" in section(card, "Not recorded in the chart")


def test_a_provisional_cauda_equina_diagnosis_is_an_emergency_with_an_mri_to_order(ehr):
    resources = load_fixture(1)
    back = next(r for r in resources if r["resourceType"] == "Condition")
    ces = copy.deepcopy(back)
    ces.update(id="ces-provisional", code={"coding": [coding(SNOMED, "192970008",
                                                             "Cauda equina syndrome")]},
               verificationStatus={"coding": [{
                   "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                   "code": "provisional"}]}, onsetDateTime="2026-11-30T09:00:00-05:00")
    with FhirTestServer([*resources, ces]) as server:
        cards = patient_view(ehr, server, "synthea-1")
        emergency = cards[0]
        assert emergency["indicator"] == "critical"
        assert emergency["summary"].startswith("Emergency: Cauda equina syndrome suspected")
        [order] = emergency["suggestions"]
        [create] = order["actions"]
        assert create["type"] == "create" and create["resource"]["priority"] == "stat"
        assert create["resource"]["subject"] == {"reference": "Patient/synthea-1"}
        # Ordering MRI for it is appropriate, today.
        request = pama_order_select_request(server.base_url, "synthea-1", "72148",
                                            ["279039007"], discovery_service=discovery(
                                                ehr, "lumbar-imaging-appropriateness",
                                                "order-select"))
        body = ehr.post(IMAGING, json=request).json
        [action] = body["extension"]["systemActions"]
        assert rating(action) == "appropriate"
        assert body["cards"][0]["indicator"] == "critical"


def rating(action: dict[str, Any]) -> str:
    [extension] = [e for e in action["resource"]["extension"] if e["url"] == PAMA_RATING_URL]
    return next(c["code"] for c in extension["valueCodeableConcept"]["coding"]
                if c["system"] == PAMA_RATING_SYSTEM)


def connectathon_chart() -> list[dict[str, Any]]:
    """The PAMA connectathon case: 49 years old, 4 months of low back pain, nothing else."""
    return [
        {"resourceType": "Patient", "id": "pama-49", "gender": "male",
         "birthDate": "1977-06-02"},
        {"resourceType": "Condition", "id": "lbp-4-months",
         "clinicalStatus": {"coding": [{
             "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
             "code": "active"}]},
         "category": [{"coding": [{
             "system": "http://terminology.hl7.org/CodeSystem/condition-category",
             "code": "problem-list-item"}]}],
         "code": {"coding": [coding(SNOMED, "279039007", "Low back pain")]},
         "subject": {"reference": "Patient/pama-49"}, "onsetDateTime": "2026-08-01"},
    ]


def test_the_pama_connectathon_case_ct_72133_is_not_appropriate_as_the_guide_asks(ehr):
    with FhirTestServer(connectathon_chart()) as server:
        service = discovery(ehr, "lumbar-imaging-appropriateness", "order-select")
        request = pama_order_select_request(server.base_url, "pama-49", "72133", ["279039007"],
                                            discovery_service=service)
        response = ehr.post(IMAGING, json=request)
    assert response.status_code == 200
    body = response.json
    assert shape_errors("response", body) == []
    [action] = body["extension"]["systemActions"]  # where the sandbox's PAMA screen reads it
    assert action["type"] == "update" and action["resource"]["id"] == "example-request-id"
    assert rating(action) == "not-appropriate"
    extensions = {e["url"]: e for e in action["resource"]["extension"]}
    assert extensions[PAMA_QCDSM_URL]["valueString"] == "G1011"
    assert extensions[PAMA_CONSULT_ID_URL]["valueUri"].startswith("urn:uuid:")
    # Nothing else on the order changes.
    assert {k: v for k, v in action["resource"].items() if k != "extension"} == {
        k: v for k, v in request["context"]["draftOrders"]["entry"][0]["resource"].items()}
    [card] = body["cards"]
    assert card["indicator"] == "warning"
    assert "best effort" in card["summary"]
    assert "does not answer" in card["detail"]  # what the rating assumed
    assert card["suggestions"][0]["label"] == "Cancel the order and start conservative care"


@pytest.mark.parametrize(("cpt", "expected"), [
    ("72131", "not-appropriate"), ("72132", "not-appropriate"), ("72148", "not-appropriate"),
    ("72149", "no-criteria-apply"), ("72158", "not-appropriate"), ("72100", "not-appropriate"),
    ("62304", "not-appropriate"),
])
def test_every_lumbar_cpt_code_is_rated_for_the_connectathon_case(ehr, cpt, expected):
    with FhirTestServer(connectathon_chart()) as server:
        request = pama_order_select_request(server.base_url, "pama-49", cpt, ["279039007"])
        body = ehr.post(IMAGING, json=request).json
    [action] = body["extension"]["systemActions"]
    assert rating(action) == expected


def test_a_hip_mri_by_the_leg_joint_code_is_rated_when_the_reason_says_hip(ehr, server):
    for reason, rated in (("239872002", True), ("279039007", False)):
        order = pama_service_request("synthea-4", coding(CPT, "73721"),
                                     [coding(SNOMED, reason)])
        request = order_select_request(server.base_url, "synthea-4", [order],
                                       ["ServiceRequest/example-request-id"])
        body = ehr.post(IMAGING, json=request).json
        assert ("extension" in body) is rated, reason
        assert bool(body["cards"]) is rated, reason  # a knee or ankle MRI is not ours


def observation_searches(server: FhirTestServer) -> list[str]:
    return [r for r in server.requests if r.startswith("/Observation")]


def test_a_record_too_long_for_one_prefetch_page_needs_only_its_newest_page(ehr):
    """Fifteen years of chronic low back pain, 3,000 BMIs, pain scores, blood pressures and
    labs on the server: the prefetch holds the newest measurements, and since only the latest
    counts no older page is fetched; the labs and vital signs the mapping does not read are
    never asked for."""
    resources = long_followed_patient("long-1", observations=3000)
    with FhirTestServer(resources) as server:
        [card] = patient_view(ehr, server, "long-1")
        searches = observation_searches(server)
    assert card["summary"].endswith("Nonspecific low back pain (chronic): primary care")
    latest_bmi = max((r for r in resources if r["resourceType"] == "Observation"
                      and r["code"]["coding"][0]["code"] == "39156-5"),
                     key=lambda r: r["effectiveDateTime"])
    assert f"Body mass index: {latest_bmi['valueQuantity']['value']} (" in card["detail"]
    assert len(searches) == 2  # the sandbox's two prefetch searches; the service adds none
    assert "only the first pages" not in card["detail"]


def test_finding_pages_are_followed_on_the_server_up_to_a_bound(ehr):
    resources = long_followed_patient("long-2", observations=300)
    patient_id = "long-2"
    for i in range(MAX_PAGES * 100 + 50):  # more intake answers than the service reads
        resources.append({"resourceType": "Observation", "id": f"fall-{i}", "status": "final",
                          "code": {"coding": [{"system": FIELD_SYSTEM, "code": "history.fall"}]},
                          "subject": {"reference": f"Patient/{patient_id}"},
                          "effectiveDateTime": f"2026-11-{1 + i % 28:02d}",
                          "valueBoolean": False})
    with FhirTestServer(resources) as server:
        [card] = patient_view(ehr, server, patient_id)
        searches = observation_searches(server)
    assert len(searches) == 1 + MAX_PAGES  # measurements once, findings page by page
    assert "only the first pages of the observations could be read" in card["detail"]
    assert "Fall before the pain began: no" in card["detail"]


def test_an_unbounded_prefetch_over_the_limit_still_gets_a_card(ehr):
    resources = long_followed_patient("long-3", observations=3000)
    patient = resources[0]
    conditions = [r for r in resources if r["resourceType"] == "Condition"]
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    request = {"hook": "patient-view", "hookInstance": "x", "context": {
        "userId": "Practitioner/1", "patientId": "long-3"}, "prefetch": {
        "patient": patient, "conditions": bundle(conditions),
        "observations": bundle(observations)}}
    body = json.dumps(request)
    assert len(body) > 1024 * 1024
    response = ehr.post(ASSESS, data=body, content_type="application/json")
    assert response.status_code == 200
    [card] = response.json["cards"]
    assert card["summary"] == ("No MSK assessment: the record sent with this call was too "
                               "large to read")


def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset",
            "entry": [{"resource": r} for r in resources]}


def test_a_dstu2_record_gets_a_card_saying_r4_is_needed(ehr):
    dstu2_condition = {"resourceType": "Condition", "id": "c1",
                       "patient": {"reference": "Patient/d2"}, "clinicalStatus": "active",
                       "verificationStatus": "confirmed",
                       "code": {"coding": [coding(SNOMED, "279039007")]},
                       "onsetDateTime": "2026-10-01"}
    request = {"hook": "patient-view", "hookInstance": "x", "context": {
        "userId": "Practitioner/1", "patientId": "d2"}, "prefetch": {
        "patient": {"resourceType": "Patient", "id": "d2", "birthDate": "1970-01-01"},
        "conditions": bundle([dstu2_condition]), "pastConditions": None,
        "observations": None, "medications": None, "allergies": None}}
    response = ehr.post(ASSESS, json=request)
    assert response.status_code == 200
    [card] = response.json["cards"]
    assert "FHIR DSTU2" in card["summary"] and "FHIR R4" in card["summary"]


def test_one_stray_old_style_condition_does_not_hide_an_emergency(ehr):
    resources = load_fixture(1)
    back = next(r for r in resources if r["resourceType"] == "Condition")
    ces = copy.deepcopy(back)
    ces.update(id="ces", code={"coding": [coding(SNOMED, "192970008")]},
               onsetDateTime="2026-11-30")
    stray = copy.deepcopy(back)
    stray.update(id="stray", clinicalStatus="active")  # plain-text status, as in DSTU2
    with FhirTestServer([*resources, ces]) as server:
        service = discovery(ehr, "msk-assessment", "patient-view")
        request = patient_view_request(server.base_url, "synthea-1", discovery_service=service)
        request["prefetch"]["conditions"]["entry"].append({"resource": stray})
        cards = ehr.post(ASSESS, json=request).json["cards"]
    assert cards[0]["indicator"] == "critical"
    assert "1 current conditions in FHIR DSTU2 or STU3 form were ignored" in cards[-1]["detail"]


def test_imaging_ordered_as_a_stu3_procedure_request_gets_a_card(ehr):
    order = {"resourceType": "ProcedureRequest", "id": "p1", "status": "draft",
             "intent": "order", "code": {"coding": [coding(CPT, "72148")]},
             "subject": {"reference": "Patient/synthea-1"}}
    request = {"hook": "order-select", "hookInstance": "x", "context": {
        "userId": "Practitioner/1", "patientId": "synthea-1", "selections": ["ProcedureRequest/p1"],
        "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": order}]}}}
    [card] = ehr.post(IMAGING, json=request).json["cards"]
    assert "reads FHIR R4" in card["summary"]


@pytest.mark.parametrize("how", ["included", "contained"])
def test_warfarin_named_by_reference_is_read_as_an_anticoagulant(ehr, how):
    resources = load_fixture(2)  # 88, warfarin and naproxen
    warfarin = next(r for r in resources if r["resourceType"] == "MedicationRequest"
                    and r["medicationCodeableConcept"]["coding"][0]["code"] == "855332")
    medication = {"resourceType": "Medication", "id": "warfarin-5",
                  "code": warfarin.pop("medicationCodeableConcept")}
    if how == "included":
        warfarin["medicationReference"] = {"reference": "Medication/warfarin-5"}
        resources.append(medication)
    else:
        warfarin["contained"] = [medication]
        warfarin["medicationReference"] = {"reference": "#warfarin-5"}
    with FhirTestServer(resources) as server:
        [card] = patient_view(ehr, server, "synthea-2")
    assert "Takes an anticoagulant: yes (MedicationRequest" in card["detail"]
    assert "NSAID" not in section(card, "First-line plan")


def test_an_allergy_to_the_nsaid_the_service_would_suggest_is_read(ehr):
    resources = load_fixture(1)
    resources.append({
        "resourceType": "AllergyIntolerance", "id": "naproxen-allergy",
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
            "code": "active"}]},
        "code": {"coding": [coding("http://www.nlm.nih.gov/research/umls/rxnorm", "7258",
                                   "Naproxen")]},
        "patient": {"reference": "Patient/synthea-1"}})
    with FhirTestServer(resources) as server:
        [card] = patient_view(ehr, server, "synthea-1")
    assert "NSAID hypersensitivity: yes (AllergyIntolerance: Naproxen)" in card["detail"]
    assert "NSAID" not in section(card, "First-line plan")


def test_a_lumbar_order_is_cancelled_for_conservative_care_though_the_hip_is_imaged(ehr, server):
    # synthea-4: back pain and hip osteoarthritis; a hip radiograph is indicated, no lumbar
    # study is: the lumbar CT still gets the conservative-care suggestion.
    request = pama_order_select_request(server.base_url, "synthea-4", "72131", ["279039007"])
    [card] = ehr.post(IMAGING, json=request).json["cards"]
    assert card["suggestions"][0]["label"] == "Cancel the order and start conservative care"
