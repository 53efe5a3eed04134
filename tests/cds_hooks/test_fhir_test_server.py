"""The test FHIR server, the Synthea-shaped records and the sandbox request builder."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.cds_hooks.fhir_server import FhirTestServer
from tests.cds_hooks.long_record import (
    FIXTURES,
    fixture_bundles,
    load_fixture,
    long_followed_patient,
)
from tests.cds_hooks.sandbox import (
    CLIENT_ID,
    CPT,
    DEFAULT_USER,
    complete_template,
    order_select_request,
    order_sign_request,
    pama_order_select_request,
    patient_view_request,
    prefetch_for,
)

LOW_BACK = "http://snomed.info/sct|278860009"
ALL_FIXTURES = [resource for n in range(1, 6) for resource in load_fixture(n)]


def get(url: str, token: str | None = None) -> tuple[int, dict[str, Any], str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=10) as response:
            return response.status, json.load(response), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, json.load(error), error.headers["Content-Type"]


def ids(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle["link"] if x["relation"] == relation), None)


@pytest.fixture(scope="module")
def server() -> Iterator[FhirTestServer]:
    with FhirTestServer(ALL_FIXTURES) as running:
        yield running


@pytest.fixture(autouse=True)
def _reset(server: FhirTestServer) -> None:
    server.fail.clear()
    server.delay_seconds = 0


# --- the fixtures ---------------------------------------------------------------------------

def test_fixture_files_are_what_the_generator_writes() -> None:
    # The JSON files are regenerated with `python -m tests.cds_hooks.long_record`.
    for name, bundle in fixture_bundles().items():
        assert json.loads((FIXTURES / name).read_text(encoding="utf-8")) == bundle
        assert (FIXTURES / name).stat().st_size < 250_000


def test_fixtures_are_valid_r4_and_reference_patient_ids() -> None:
    from fhir.resources.R4B.bundle import Bundle

    for number in range(1, 6):
        bundle = json.loads((FIXTURES / f"patient-{number}.json").read_text(encoding="utf-8"))
        Bundle.model_validate(bundle)
        for resource in load_fixture(number)[1:]:
            owner = resource.get("subject") or resource.get("patient")
            assert owner == {"reference": f"Patient/synthea-{number}"}


def test_patient_one_latest_bmi() -> None:
    bmis = [r for r in load_fixture(1) if r["resourceType"] == "Observation"
            and r["code"]["coding"][0]["code"] == "39156-5"]
    latest = max(bmis, key=lambda r: r["effectiveDateTime"])
    assert len(bmis) == 15 and latest["valueQuantity"]["value"] == 31.2
    assert len({r["valueQuantity"]["value"] for r in bmis}) > 1


def test_long_record_is_deterministic_and_sized() -> None:
    first = long_followed_patient("long-1", observations=500, years=15)
    assert first == long_followed_patient("long-1", observations=500, years=15)
    observations = [r for r in first if r["resourceType"] == "Observation"]
    assert len(observations) == 500
    years = {r["effectiveDateTime"][:4] for r in observations}
    assert len(years) >= 14 and max(years) <= "2026"
    assert len({r["code"]["coding"][0]["code"] for r in observations}) > 8


# --- reads and searches ---------------------------------------------------------------------

def test_metadata_and_read(server: FhirTestServer) -> None:
    status, body, content_type = get(f"{server.base_url}/metadata")
    assert status == 200 and body["fhirVersion"] == "4.0.1"
    assert content_type.startswith("application/fhir+json")
    status, body, _ = get(f"{server.base_url}/Patient/synthea-1")
    assert status == 200 and body["birthDate"] == "1981-03-14"
    status, body, _ = get(f"{server.base_url}/Patient/nobody")
    assert status == 404 and body["resourceType"] == "OperationOutcome"


def test_dstu2_metadata() -> None:
    with FhirTestServer([], fhir_version="1.0.2") as old:
        assert get(f"{old.base_url}/metadata")[1]["fhirVersion"] == "1.0.2"


@pytest.mark.parametrize(("query", "expected"), [
    (f"Condition?patient=synthea-2&code={LOW_BACK}", 1),
    ("Condition?patient=synthea-2&code=278860009,49436004", 2),
    ("Condition?patient=synthea-2&code=http://snomed.info/sct|", 3),
    ("Condition?patient=Patient/synthea-4&clinical-status=active", 3),
    ("Condition?patient=synthea-4&clinical-status=resolved", 1),
    (f"Condition?code={LOW_BACK}", 4),
    ("Condition?patient=synthea-5&code=278860009", 0),
    ("Observation?patient=synthea-1&code=http://loinc.org|39156-5&_count=100", 15),
    ("Observation?patient=synthea-4&category=vital-signs&code=85354-9&_count=100", 24),
    ("Observation?patient=synthea-2&category=laboratory,survey&_count=100", 16),
    ("MedicationRequest?patient=synthea-2&status=active", 2),
    ("MedicationRequest?patient=synthea-1&status=stopped", 1),
    ("MedicationRequest?patient=synthea-1&code=http://www.nlm.nih.gov/research/umls/rxnorm|"
     "849574", 1),
    ("AllergyIntolerance?patient=synthea-4&category=food", 1),
    ("ServiceRequest?patient=synthea-1", 0),
])
def test_search_filters(server: FhirTestServer, query: str, expected: int) -> None:
    status, bundle, _ = get(f"{server.base_url}/{query}")
    assert status == 200 and bundle["type"] == "searchset"
    assert bundle["total"] == expected == len(bundle.get("entry", []))


def test_date_prefixes(server: FhirTestServer) -> None:
    base = f"{server.base_url}/Observation?patient=synthea-1&code=39156-5"
    every = get(f"{base}&_count=100")[1]["total"]
    before = get(f"{base}&date=lt2020-01-01")[1]["total"]
    after = get(f"{base}&date=ge2020-01-01")[1]["total"]
    assert before and after and before + after == every
    dates = [e["resource"]["effectiveDateTime"]
             for e in get(f"{base}&date=ge2020-01-01&date=le2024-12-31")[1]["entry"]]
    assert dates and all("2020" <= d[:4] <= "2024" for d in dates)
    conditions = get(f"{server.base_url}/Condition?patient=synthea-4&date=gt2023-11-14")[1]
    assert [e["resource"]["code"]["coding"][0]["code"] for e in conditions["entry"]] == [
        "239872002"]


@pytest.mark.parametrize(("resource_type", "sort", "field"), [
    ("Observation", "-date", "effectiveDateTime"),
    ("Observation", "date", "effectiveDateTime"),
    ("Condition", "-recorded-date", "recordedDate"),
    ("MedicationRequest", "-authoredon", "authoredOn"),
])
def test_sorting(server: FhirTestServer, resource_type: str, sort: str, field: str) -> None:
    bundle = get(f"{server.base_url}/{resource_type}?patient=synthea-3&_sort={sort}")[1]
    values = [e["resource"][field] for e in bundle["entry"]]
    assert len(values) > 1 and values == sorted(values, reverse=sort.startswith("-"))


def test_missing_dates_sort_last() -> None:
    dated = {"resourceType": "Condition", "id": "a", "onsetDateTime": "2020-01-01",
             "subject": {"reference": "Patient/p"}}
    undated = {"resourceType": "Condition", "id": "b", "subject": {"reference": "Patient/p"}}
    with FhirTestServer([undated, dated]) as small:
        for sort in ("date", "-date"):
            assert ids(get(f"{small.base_url}/Condition?patient=p&_sort={sort}")[1]) == ["a", "b"]


def test_paging_follows_next_links() -> None:
    resources = long_followed_patient("long-1", observations=120)
    with FhirTestServer(resources) as big:
        url: str | None = f"{big.base_url}/Observation?patient=long-1&_sort=-date&_count=50"
        pages: list[dict[str, Any]] = []
        while url:
            pages.append(get(url)[1])
            url = link(pages[-1], "next")
        assert [len(p["entry"]) for p in pages] == [50, 50, 20]
        assert all(p["total"] == 120 for p in pages)
        seen = [i for p in pages for i in ids(p)]
        assert len(set(seen)) == 120
        next_query = parse_qs(urlsplit(link(pages[0], "next") or "").query)
        assert next_query["_getpagesoffset"] == ["50"] and next_query["_count"] == ["50"]
        assert next_query["patient"] == ["long-1"] and next_query["_sort"] == ["-date"]
        assert link(pages[1], "self") and link(pages[-1], "next") is None


def test_default_page_size_is_fifty(server: FhirTestServer) -> None:
    bundle = get(f"{server.base_url}/Observation?patient=synthea-4")[1]
    assert bundle["total"] == 144 and len(bundle["entry"]) == 50 and link(bundle, "next")


def test_unknown_parameter_is_refused_unless_lenient(server: FhirTestServer) -> None:
    status, body, _ = get(f"{server.base_url}/Condition?patient=synthea-1&onset-info=x")
    assert status == 400 and body["resourceType"] == "OperationOutcome"
    assert "onset-info" in body["issue"][0]["diagnostics"]
    with FhirTestServer(ALL_FIXTURES, lenient=True) as lenient:
        status, body, _ = get(f"{lenient.base_url}/Condition?patient=synthea-1&onset-info=x")
        assert status == 200 and body["total"] == 1


def test_bad_sort_and_count_are_refused(server: FhirTestServer) -> None:
    assert get(f"{server.base_url}/Condition?_sort=onset")[0] == 400
    assert get(f"{server.base_url}/Condition?_count=many")[0] == 400


def test_records_requests_authorization_failures_and_delay(server: FhirTestServer) -> None:
    start = len(server.requests)
    server.fail["/Observation"] = 500
    assert get(f"{server.base_url}/Observation?patient=synthea-1", token="t0k")[0] == 500
    assert get(f"{server.base_url}/Patient/synthea-1")[0] == 200
    assert server.requests[start:] == ["/Observation?patient=synthea-1", "/Patient/synthea-1"]
    assert server.authorizations[start:] == ["Bearer t0k", None]
    server.delay_seconds = 0.5
    with pytest.raises(TimeoutError):
        urllib.request.urlopen(f"{server.base_url}/Patient/synthea-1", timeout=0.1)


# --- the sandbox builder --------------------------------------------------------------------

DISCOVERY = {"hook": "patient-view", "id": "msk-assessment", "prefetch": {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}&code=" + LOW_BACK,
    "observations": "Observation?patient={{context.patientId}}&code=39156-5,72514-3",
    "practitioner": "Practitioner/{{userPractitionerId}}",
    "encounter": "Encounter/{{context.encounterId}}",
}}


def test_template_completion_matches_the_sandbox() -> None:
    context = {"patientId": "p1", "userId": "Practitioner/dr-7"}
    assert complete_template("Observation?subject={{context.patientId}}&code=a|1&code=b|2",
                             context) == "Observation?code=a%7C1%2Cb%7C2&subject=p1"
    assert complete_template("Practitioner/{{userPractitionerId}}", context) == (
        "Practitioner/dr-7")
    assert complete_template("Observation?date=ge{{today() - 90 days}}", context,
                             date(2026, 12, 1)) == "Observation?date=ge2026-09-02"
    assert complete_template("Encounter/{{context.encounterId}}", context) == (
        "Encounter/{{context.encounterId}}")


def test_prefetch_fills_reads_and_first_pages(server: FhirTestServer) -> None:
    start = len(server.requests)
    prefetch = prefetch_for(DISCOVERY, server.base_url, "synthea-1")
    # The practitioner is not on the server and the encounter token stays unresolved.
    assert set(prefetch) == {"patient", "conditions", "observations"}
    assert prefetch["patient"]["id"] == "synthea-1"
    assert prefetch["conditions"]["total"] == 1
    assert prefetch["observations"]["total"] == 30
    assert len(prefetch["observations"]["entry"]) == 30
    assert "/Condition?code=http%3A%2F%2Fsnomed.info%2Fsct%7C278860009&patient=synthea-1" in (
        server.requests[start:])
    assert not any(r.startswith("/Encounter") for r in server.requests[start:])


def test_prefetch_keeps_only_the_first_page() -> None:
    with FhirTestServer(long_followed_patient("long-1", observations=600)) as big:
        prefetch = prefetch_for(DISCOVERY, big.base_url, "long-1")
    assert prefetch["observations"]["total"] > 50
    assert len(prefetch["observations"]["entry"]) == 50
    assert link(prefetch["observations"], "next")


def test_failed_prefetch_query_leaves_its_key_out(server: FhirTestServer) -> None:
    server.fail["/Condition"] = 500
    prefetch = prefetch_for(DISCOVERY, server.base_url, "synthea-2", access_token="abc")
    assert set(prefetch) == {"patient", "observations"}
    assert server.authorizations[-1] == "Bearer abc"


def test_patient_view_request_shape(server: FhirTestServer) -> None:
    request = patient_view_request(server.base_url, "synthea-3", discovery_service=DISCOVERY,
                                   hook_instance="hi-1")
    assert list(request) == ["hookInstance", "hook", "fhirServer", "context", "prefetch"]
    assert request["context"] == {"patientId": "synthea-3", "userId": DEFAULT_USER}
    assert request["fhirServer"] == server.base_url and request["hook"] == "patient-view"
    secured = patient_view_request(server.base_url, "synthea-3", access_token="tok",
                                   encounter_id="enc-1")
    assert "prefetch" not in secured
    assert secured["fhirAuthorization"]["subject"] == CLIENT_ID
    assert secured["fhirAuthorization"]["token_type"] == "Bearer"
    assert secured["context"]["encounterId"] == "enc-1"


def test_no_prefetch_key_when_every_query_fails(server: FhirTestServer) -> None:
    server.fail["/"] = 503
    assert "prefetch" not in patient_view_request(server.base_url, "synthea-1",
                                                  discovery_service=DISCOVERY)


def test_pama_order_select_and_sign(server: FhirTestServer) -> None:
    request = pama_order_select_request(server.base_url, "synthea-4", "72148", ["279039007"])
    context = request["context"]
    assert list(context) == ["patientId", "userId", "selections", "draftOrders"]
    assert context["selections"] == ["ServiceRequest/example-request-id"]
    order = context["draftOrders"]["entry"][0]["resource"]
    assert order == {"resourceType": "ServiceRequest", "id": "example-request-id",
                     "status": "draft", "intent": "plan",
                     "code": {"coding": [{"code": "72148", "system": CPT}]},
                     "subject": {"reference": "Patient/synthea-4"},
                     "reasonCode": [{"coding": [{"code": "279039007",
                                                 "system": "http://snomed.info/sct"}]}]}
    signed = order_sign_request(server.base_url, "synthea-4", [order])
    assert signed["hook"] == "order-sign" and "selections" not in signed["context"]
    selected = order_select_request(server.base_url, "synthea-4", [order], ["ServiceRequest/x"])
    assert selected["context"]["selections"] == ["ServiceRequest/x"]
