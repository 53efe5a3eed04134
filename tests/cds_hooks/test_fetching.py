"""Prefetch, or the client's FHIR server when a key is missing; 412 when neither works."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from service.cds_hooks.fetching import PREFETCH
from service.cds_hooks.terminology import FIELD_SYSTEM
from tests.cds_hooks.conftest import TODAY, VIGNETTES
from tests.cds_hooks.fhir_builder import PATIENT_ID, bundle, fhir_record, hook_request

URL = "/cds-services/msk-assessment"
TOKEN = "opaque-fhir-access-token"


class FhirStub:
    """A local FHIR server answering the three prefetch searches, and recording the calls."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.calls: list[tuple[str, str | None]] = []
        self.pages: dict[str, dict[str, Any]] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                stub.calls.append((unquote(self.path), self.headers.get("Authorization")))
                status, body = stub.answer(urlsplit(self.path))
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Type", "application/fhir+json")
                self.end_headers()
                self.wfile.write(json.dumps(body).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}/fhir"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, url: Any) -> tuple[int, dict[str, Any]]:
        path = url.path.removeprefix("/fhir/")
        if path in self.pages:
            return 200, self.pages[path]
        if path == f"Patient/{PATIENT_ID}":
            return 200, self.record["patient"]
        if path in ("Condition", "Observation") and f"patient={PATIENT_ID}" in url.query:
            return 200, self.record["conditions" if path == "Condition" else "observations"]
        if path == "redirect":
            return 302, {}
        return 404, {"resourceType": "OperationOutcome"}


@pytest.fixture()
def fhir_server() -> Iterator[FhirStub]:
    stub = FhirStub(fhir_record(VIGNETTES["V03-saddle-anaesthesia"]["presentation"], TODAY))
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


def test_the_prefetch_templates_are_bounded_searches_an_ehr_can_answer():
    assert PREFETCH["patient"] == "Patient/{{context.patientId}}"
    # Conditions by clinical status and category, never by a short list of codes.
    assert PREFETCH["conditions"].startswith(
        "Condition?patient={{context.patientId}}&clinical-status=active,recurrence,relapse"
        "&category=problem-list-item,encounter-diagnosis")
    assert "code=" not in PREFETCH["conditions"] and "code=" not in PREFETCH["pastConditions"]
    assert "clinical-status=inactive,remission,resolved" in PREFETCH["pastConditions"]
    assert PREFETCH["observations"].startswith("Observation?patient={{context.patientId}}&code=")
    assert "&_sort=-date" in PREFETCH["observations"]
    assert PREFETCH["measurements"].endswith("&_sort=-date&_count=20")
    assert "http://loinc.org|39156-5" in PREFETCH["measurements"]  # BMI
    assert "39156-5" not in PREFETCH["observations"]
    assert PREFETCH["medications"] == ("MedicationRequest?patient={{context.patientId}}"
                                       "&status=active&_include=MedicationRequest:medication"
                                       "&_count=100")
    for key, template in PREFETCH.items():
        assert key == "patient" or "&_count=" in template, key


def test_missing_prefetch_without_a_fhir_server_is_412(hooks):
    response = hooks.post(URL, json=hook_request("patient-view", {}))
    assert response.status_code == 412
    assert response.mimetype == "application/problem+json"
    assert "patient prefetch is missing" in response.json["detail"]


def test_missing_observations_only_leaves_findings_unknown(hooks):
    prefetch = fhir_record(VIGNETTES["V03-saddle-anaesthesia"]["presentation"], TODAY)
    del prefetch["observations"]
    response = hooks.post(URL, json=hook_request("patient-view", prefetch))
    assert response.status_code == 200
    detail = response.json["cards"][-1]["detail"]
    assert "the observations could not be read" in detail


def test_a_null_prefetch_means_no_data_and_nothing_is_fetched(hooks, fhir_server):
    prefetch = fhir_record(VIGNETTES["V01-acute-nonspecific"]["presentation"], TODAY)
    prefetch["observations"] = prefetch["medications"] = None
    request = {**hook_request("patient-view", prefetch), "fhirServer": fhir_server.base}
    response = hooks.post(URL, json=request)
    assert response.status_code == 200
    assert fhir_server.calls == []
    assert response.json["cards"][0]["summary"].startswith("18 red-flag questions open")


def test_missing_prefetch_is_read_from_the_fhir_server_with_the_access_token(hooks, fhir_server):
    request = {**hook_request("patient-view", {}), "fhirServer": fhir_server.base,
               "fhirAuthorization": {"access_token": TOKEN, "token_type": "Bearer",
                                     "expires_in": 300, "scope": "user/Patient.read",
                                     "subject": "cds-service"}}
    response = hooks.post(URL, json=request)
    assert response.status_code == 200
    assert response.json["cards"][0]["indicator"] == "critical"
    paths = [path for path, _ in fhir_server.calls]
    assert paths[0] == f"/fhir/Patient/{PATIENT_ID}"
    assert paths[1].startswith(f"/fhir/Condition?patient={PATIENT_ID}&clinical-status=active")
    # Asked for itself, the service runs the discovery document's bounded searches.
    observations = [p for p in paths if p.startswith("/fhir/Observation")]
    assert len(observations) == 2  # findings, and measurements
    assert all("&_sort=-date&_count=" in p for p in observations)
    assert {auth for _, auth in fhir_server.calls} == {f"Bearer {TOKEN}"}


def test_an_operation_outcome_in_prefetch_is_fetched_again(hooks, fhir_server):
    prefetch = fhir_record(VIGNETTES["V03-saddle-anaesthesia"]["presentation"], TODAY)
    prefetch["conditions"] = {"resourceType": "OperationOutcome", "issue": []}
    request = {**hook_request("patient-view", prefetch), "fhirServer": fhir_server.base}
    assert hooks.post(URL, json=request).json["cards"][0]["indicator"] == "critical"
    assert [path.split("?")[0] for path, _ in fhir_server.calls] == ["/fhir/Condition"]


def test_next_pages_are_followed_on_the_fhir_server_only(hooks, fhir_server):
    prefetch = fhir_record(VIGNETTES["V01-acute-nonspecific"]["presentation"], TODAY)
    observations = [entry["resource"] for entry in prefetch["observations"]["entry"]]
    first, second = bundle(observations[:3]), bundle(observations[3:])
    first["link"] = [{"relation": "next", "url": f"{fhir_server.base}/page-2"}]
    second["link"] = [{"relation": "next", "url": "https://elsewhere.example/page-3"}]
    fhir_server.pages["page-2"] = second
    prefetch["observations"] = first
    request = {**hook_request("patient-view", prefetch), "fhirServer": fhir_server.base}
    cards = hooks.post(URL, json=request).json["cards"]
    assert cards[0]["summary"].startswith("Nonspecific low back pain")  # every screen read
    assert [path for path, _ in fhir_server.calls] == ["/fhir/page-2"]


def test_a_redirect_is_not_followed_so_the_token_stays_on_the_server(hooks, fhir_server):
    prefetch = fhir_record(VIGNETTES["V01-acute-nonspecific"]["presentation"], TODAY)
    prefetch["observations"]["link"] = [{"relation": "next",
                                         "url": f"{fhir_server.base}/redirect"}]
    request = {**hook_request("patient-view", prefetch), "fhirServer": fhir_server.base,
               "fhirAuthorization": {"access_token": TOKEN, "token_type": "Bearer",
                                     "expires_in": 300, "scope": "user/*.read",
                                     "subject": "cds-service"}}
    response = hooks.post(URL, json=request)
    assert response.status_code == 200
    assert "only the first pages of the observations" in response.json["cards"][0]["detail"]
    assert [path for path, _ in fhir_server.calls] == ["/fhir/redirect"]


def test_an_unreachable_fhir_server_is_412(hooks):
    request = {**hook_request("patient-view", {}), "fhirServer": "http://127.0.0.1:9/fhir"}
    assert hooks.post(URL, json=request).status_code == 412


def test_a_prefetched_patient_other_than_the_context_is_412(hooks):
    prefetch = fhir_record(VIGNETTES["V01-acute-nonspecific"]["presentation"], TODAY)
    prefetch["patient"]["id"] = "someone-else"
    assert hooks.post(URL, json=hook_request("patient-view", prefetch)).status_code == 412


def test_only_each_findings_latest_usable_day_is_parsed():
    from datetime import timedelta

    from service.cds_hooks.fetching import parse_latest

    made = iter(range(100))

    def obs(code: str, system: str, day: int, **value: Any) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": f"obs-{next(made)}",
                "status": value.pop("status", "final"),
                "code": {"coding": [{"system": system, "code": code}]},
                "subject": {"reference": f"Patient/{PATIENT_ID}"},
                "effectiveDateTime": (TODAY - timedelta(days=day)).isoformat(), **value}

    bmi = [obs("39156-5", "http://loinc.org", day, valueQuantity={
        "value": 20 + i, "code": "kg/m2", "system": "http://unitsofmeasure.org"})
        for i, day in enumerate((400, 30, 2, 2))]
    for i, resource in enumerate(bmi):
        resource["id"] = f"bmi-{i}"
    fall = obs("history.prior_spine_surgery", FIELD_SYSTEM, 900, valueBoolean=True)  # history
    saddle = "neuro.saddle_anaesthesia"
    older_yes = obs(saddle, FIELD_SYSTEM, 5, valueBoolean=True)
    # Newer statements that say nothing must not hide it.
    noise = [obs(saddle, FIELD_SYSTEM, 3, valueBoolean=False, status="entered-in-error"),
             obs(saddle, FIELD_SYSTEM, 2, valueString="no"),
             obs(saddle, FIELD_SYSTEM, 1, valueBoolean="no"),
             {**obs(saddle, FIELD_SYSTEM, 1, valueBoolean=False),
              "subject": {"reference": "Patient/someone-else"}}]
    skipped: dict[str, int] = defaultdict(int)
    kept = parse_latest([*bmi, fall, older_yes, *noise], PATIENT_ID, skipped)
    ids = {o.id for o in kept}
    assert {bmi[2]["id"], bmi[3]["id"], fall["id"], older_yes["id"]} <= ids
    assert bmi[0]["id"] not in ids and bmi[1]["id"] not in ids  # older repeats: not parsed
    assert skipped == {"could not be read as FHIR R4 and were ignored": 1,
                       "about another patient were ignored": 1}


def test_fhir_reads_stop_when_the_calls_time_budget_is_spent(app, monkeypatch):
    from service.cds_hooks import HookSettings
    from tests.cds_hooks.conftest import TEST_FHIR_SERVERS, fixed_clock
    from tests.cds_hooks.fhir_server import FhirTestServer

    settings = HookSettings(clock=fixed_clock, fhir_budget_seconds=0.5,
                            fhir_servers=TEST_FHIR_SERVERS)
    monkeypatch.setitem(app.extensions, "cds_hooks", settings)
    prefetch = fhir_record(VIGNETTES["V01-acute-nonspecific"]["presentation"], TODAY)
    for key in ("observations", "measurements", "medications", "allergies"):
        del prefetch[key]  # to be read from the server, which answers slowly
    with FhirTestServer([]) as server:
        server.delay_seconds = 0.3
        request = {**hook_request("patient-view", prefetch), "fhirServer": server.base_url}
        started = time.monotonic()
        response = app.test_client().post(URL, json=request)
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 1.5  # four slow searches would take 1.2 s, plus the assessment
    detail = response.json["cards"][-1]["detail"]
    assert "the medications could not be read" in detail


def test_a_fhir_server_the_service_is_not_configured_to_read_is_never_asked(app, monkeypatch,
                                                                            fhir_server):
    from service.cds_hooks import HookSettings
    from tests.cds_hooks.conftest import fixed_clock

    for allowed in ((), ("https://ehr.example.org/fhir",)):
        monkeypatch.setitem(app.extensions, "cds_hooks",
                            HookSettings(clock=fixed_clock, fhir_servers=allowed))
        request = {**hook_request("patient-view", {}), "fhirServer": fhir_server.base,
                   "fhirAuthorization": {"access_token": TOKEN, "token_type": "Bearer",
                                         "expires_in": 300, "scope": "user/*.read",
                                         "subject": "cds-service"}}
        response = app.test_client().post(URL, json=request)
        assert response.status_code == 412
        assert "not one this service is configured to read" in response.json["detail"]
    assert fhir_server.calls == []  # the token never left
