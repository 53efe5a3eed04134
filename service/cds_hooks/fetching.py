"""Get the patient's FHIR R4 chart: from the prefetch, or else from the client's server.

A prefetch key the client left out (or answered with an OperationOutcome) is fetched from
`fhirServer`, with the `fhirAuthorization` bearer token when one is given. A key sent as
`null` means the client has no such data: nothing is fetched and nothing is assumed. When the
Patient or the current Conditions can be had neither way, the call fails with 412, as CDS
Hooks asks.

The searches are bounded, so a patient followed for decades cannot make a prefetch too
large: conditions by clinical status and category, observations by the codes the mapping
reads, newest first, medications and allergies only while active, each with `_count`.
Following pages (`next` links on the same server only) stops after a few pages and when
the call's time budget for FHIR reads is spent; what was read stands, and the card says
that the rest is unknown.

Only resources whose code the mapping reads are parsed (fhir.resources is the slow part of
a call); each is validated on its own with the fhir.resources R4 models (the `R4B`
subpackage: fhir.resources has no 4.0.1 package, and R4B's resources used here are R4's), so
one malformed Observation costs only itself. Resources about another patient are dropped.
DSTU2 resources (the old sandbox's default server) are counted, so the service can answer
that it reads R4. The access token is sent only to `fhirServer` (no redirects are followed),
over https whenever authentication is on, and is never logged.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from ..presentation import INPUT_FIELDS, INT, NUMBER
from .errors import PreconditionFailed
from .mapping import OBSERVATION_INDEX, Chart, wanted_codes
from .settings import HookSettings
from .terminology import FIELD_SYSTEM, HISTORY_FIELDS

log = logging.getLogger(__name__)

MAX_PAGES = 5
_MAX_RESPONSE_BYTES = 5 * 1024 * 1024
_PATIENT_TOKEN = "{{context.patientId}}"
# Observations older than this are not asked for when the service searches itself (a
# prefetch template cannot name a date): a finding of the present recorded before the
# current episode is ignored anyway.
OBSERVATION_WINDOW_DAYS = 3 * 365

_CATEGORIES = "problem-list-item,encounter-diagnosis"
# Measurements are repeated at every visit and only the latest counts: one newest page of
# them is enough. Findings (the standard SNOMED CT codes and this service's own) are few and
# any of them may matter: all their pages are read.
MEASUREMENTS = frozenset(key for key, path in OBSERVATION_INDEX.items()
                         if INPUT_FIELDS[path].kind in (INT, NUMBER) and key[0] != FIELD_SYSTEM)
_measurement_codes = sorted(f"{s}|{c}" for s, c in MEASUREMENTS)
_finding_codes = sorted({f"{s}|{c}" for s, c in OBSERVATION_INDEX
                         if s != FIELD_SYSTEM and (s, c) not in MEASUREMENTS})

# The FHIR searches the services need, keyed as in the discovery response.
PREFETCH: dict[str, str] = {
    "patient": f"Patient/{_PATIENT_TOKEN}",
    "conditions": (f"Condition?patient={_PATIENT_TOKEN}&clinical-status=active,recurrence,"
                   f"relapse&category={_CATEGORIES}&_count=200"),
    "pastConditions": (f"Condition?patient={_PATIENT_TOKEN}&clinical-status=inactive,"
                       f"remission,resolved&category={_CATEGORIES}&_sort=-recorded-date"
                       "&_count=100"),
    "observations": (f"Observation?patient={_PATIENT_TOKEN}&code="
                     + ",".join([*_finding_codes, f"{FIELD_SYSTEM}|"])
                     + "&_sort=-date&_count=100"),
    "measurements": (f"Observation?patient={_PATIENT_TOKEN}&code="
                     + ",".join(_measurement_codes) + "&_sort=-date&_count=20"),
    "medications": f"MedicationRequest?patient={_PATIENT_TOKEN}&status=active&_count=100",
    "allergies": (f"AllergyIntolerance?patient={_PATIENT_TOKEN}&clinical-status=active"
                  "&_count=50"),
}
REQUIRED = ("patient", "conditions")
_MODELS = {"conditions": Condition, "pastConditions": Condition, "observations": Observation,
           "measurements": Observation, "medications": MedicationRequest,
           "allergies": AllergyIntolerance}
_CHART_LIST = {"conditions": "conditions", "pastConditions": "conditions",
               "observations": "observations", "measurements": "observations",
               "medications": "medications", "allergies": "allergies"}
# Where each resource type keeps the code the mapping reads.
_CODE_ELEMENT = {"Condition": "code", "Observation": "code",
                 "MedicationRequest": "medicationCodeableConcept", "AllergyIntolerance": "code"}
# The elements the mapping reads, per resource type: only these are validated (a Synthea
# resource's narrative, meta and extensions cost more to validate than all the rest).
_READ: dict[str, frozenset[str]] = {
    "Patient": frozenset({"resourceType", "id", "birthDate", "gender"}),
    "Condition": frozenset({"resourceType", "id", "clinicalStatus", "verificationStatus",
                            "code", "subject", "onsetDateTime", "onsetPeriod",
                            "abatementDateTime", "abatementPeriod", "recordedDate"}),
    "Observation": frozenset({"resourceType", "id", "status", "code", "subject",
                              "effectiveDateTime", "effectiveInstant", "effectivePeriod",
                              "issued", "dataAbsentReason"}),
    "MedicationRequest": frozenset({"resourceType", "id", "status", "intent", "subject",
                                    "medicationCodeableConcept", "authoredOn"}),
    "AllergyIntolerance": frozenset({"resourceType", "id", "clinicalStatus",
                                     "verificationStatus", "code", "patient"}),
}


def _what_is_read(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource cut to the elements the mapping reads (an Observation's value[x] too)."""
    keep = _READ[resource["resourceType"]]
    return {name: value for name, value in resource.items()
            if name in keep or (name.startswith("value") and keep is _READ["Observation"])}


_NOUNS = {"conditions": "current conditions", "pastConditions": "past conditions",
          "observations": "observations", "measurements": "measurements (BMI, pain scores)",
          "medications": "medications", "allergies": "allergies"}


@dataclass
class PatientRecord(Chart):
    """The chart read for one call, and what could not be read."""

    notes: list[str] = field(default_factory=list)
    dstu2: int = 0  # resources in DSTU2 form: the client speaks another FHIR version

    @property
    def chart(self) -> Chart:
        return self


class _FetchFailed(Exception):
    pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect becomes an error: the token never follows it elsewhere


_OPENER = urllib.request.build_opener(_NoRedirect)


class FhirClient:
    """GET JSON from the client's FHIR server, only from there, within a time budget."""

    def __init__(self, base_url: str, token: str | None, timeout: float,
                 budget: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self._token = token
        self._timeout = timeout
        self._deadline = time.monotonic() + budget

    def get(self, url: str) -> dict[str, Any]:
        if not url.startswith(self.base_url):
            raise _FetchFailed("not on the FHIR server")
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise _FetchFailed("the time budget for FHIR reads is spent")
        headers = {"Accept": "application/fhir+json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(url, headers=headers)
        try:
            with _OPENER.open(request, timeout=min(self._timeout, remaining)) as response:
                body = response.read(_MAX_RESPONSE_BYTES + 1)
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as error:
            raise _FetchFailed(type(error).__name__) from None
        if len(body) > _MAX_RESPONSE_BYTES:
            raise _FetchFailed("response too large")
        try:
            data = json.loads(body)
        except ValueError:
            raise _FetchFailed("not JSON") from None
        if not isinstance(data, dict):
            raise _FetchFailed("not a FHIR resource")
        return data


def _client(hook_request: Mapping[str, Any], settings: HookSettings) -> FhirClient | None:
    server = hook_request.get("fhir_server")
    if not server or (settings.auth and not server.startswith("https://")):
        return None
    token = (hook_request.get("fhir_authorization") or {}).get("access_token")
    return FhirClient(server, token, settings.fhir_timeout_seconds, settings.fhir_budget_seconds)


def _is_outcome(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def _days(page: dict[str, Any]) -> list[date]:
    return [day for entry in page.get("entry") or [] if isinstance(entry, dict)
            for day in [_raw_day(entry.get("resource"))] if day is not None]


def _newest_first(page: dict[str, Any]) -> bool:
    days = _days(page)
    return bool(days) and all(a >= b for a, b in zip(days, days[1:], strict=False))


def _raw_day(resource: Any) -> date | None:
    if not isinstance(resource, dict):
        return None
    period = resource.get("effectivePeriod")
    when = (resource.get("effectiveDateTime") or resource.get("effectiveInstant")
            or (period.get("start") if isinstance(period, dict) else None)
            or resource.get("issued"))
    try:
        return date.fromisoformat(when[:10]) if isinstance(when, str) else None
    except ValueError:
        return None


def _pages(first: dict[str, Any], client: FhirClient | None,
           newest_page_only: bool = False) -> Iterator[dict[str, Any]]:
    """The pages of a search, at most MAX_PAGES. With `newest_page_only`, a first page in
    newest-first order is the last: for each finding the latest statement counts, and a
    bounded search newest first holds it (a page in another order is read on)."""
    page = first
    for read in range(1, MAX_PAGES + 1):
        yield page
        next_url = next((link.get("url") for link in page.get("link") or []
                         if isinstance(link, dict) and link.get("relation") == "next"), None)
        if next_url is None:
            return
        if newest_page_only and _newest_first(page):
            return  # older repeats of a measurement never count
        if client is None or not isinstance(next_url, str):
            raise _FetchFailed("more pages, and no FHIR server to read them from")
        if read == MAX_PAGES:
            raise _FetchFailed("more pages than the service reads")
        page = client.get(next_url)


# fhir.resources coerces JSON primitives ("yes" and 1 become true, "3" becomes 3), even in
# pydantic's strict mode. FHIR JSON has no such leniency and neither has this service: the
# values the mapping reads must already have their JSON type, or the resource is unreadable.
_JSON_TYPES: dict[str, tuple[type, ...]] = {"valueBoolean": (bool,), "valueInteger": (int,)}


def _plain_json_values(resource: dict[str, Any]) -> bool:
    for name, types in _JSON_TYPES.items():
        if name in resource and (not isinstance(resource[name], types)
                                 or (bool not in types and isinstance(resource[name], bool))):
            return False
    quantity = resource.get("valueQuantity")
    number = quantity.get("value") if isinstance(quantity, dict) else None
    return number is None or (isinstance(number, int | float) and not isinstance(number, bool))


def _raw_codes(resource: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    concept = resource.get(_CODE_ELEMENT[resource["resourceType"]])
    codings = concept.get("coding") if isinstance(concept, dict) else None
    for coding in codings if isinstance(codings, list) else []:
        if isinstance(coding, dict):
            yield coding.get("system"), coding.get("code")


def _worth_parsing(resource: dict[str, Any], wanted: frozenset[tuple[str, str]]) -> bool:
    """Whether the mapping reads anything from it: pain Conditions and coded findings."""
    return any(key in wanted for key in _raw_codes(resource))


def _is_dstu2(resource: dict[str, Any]) -> bool:
    """DSTU2 shapes: Condition.patient and string statuses; MedicationOrder."""
    if resource.get("resourceType") == "MedicationOrder":
        return True
    return resource.get("resourceType") == "Condition" and (
        "patient" in resource or isinstance(resource.get("clinicalStatus"), str)
        or isinstance(resource.get("verificationStatus"), str))


def _about(resource: Any, patient_id: str) -> bool:
    reference = resource.subject.reference if getattr(resource, "subject", None) else None
    if reference is None and getattr(resource, "patient", None) is not None:
        reference = resource.patient.reference  # AllergyIntolerance.patient
    return bool(reference) and (reference == f"Patient/{patient_id}"
                                or reference.endswith(f"/Patient/{patient_id}"))


def _candidates(page: dict[str, Any], key: str, record: PatientRecord,
                wanted: frozenset[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    """The raw resources of a page the mapping reads anything from."""
    model = _MODELS[key]
    for entry in page.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        if _is_dstu2(resource):
            record.dstu2 += 1
        elif resource.get("resourceType") == model.__name__ and _worth_parsing(resource,
                                                                                wanted):
            yield resource  # not: an OperationOutcome entry, or nothing the mapping reads


def latest_statements(observations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The observations that can count: for each finding, those of its latest day (any of
    them, for a finding of history). Parsing is the slow part of a call; older repeats of a
    BMI or a pain score can never count, so they are not parsed."""
    latest: dict[str, date] = {}
    fields_of = []
    for resource in observations:
        fields = {OBSERVATION_INDEX[key] for key in _raw_codes(resource)
                  if key in OBSERVATION_INDEX}
        day = _raw_day(resource) or date.min
        fields_of.append((resource, fields, day))
        for path in fields:
            latest[path] = max(latest.get(path, date.min), day)
    return [resource for resource, fields, day in fields_of
            if any(path in HISTORY_FIELDS or day == latest[path] for path in fields)]


def _parse(resources: list[dict[str, Any]], key: str, patient_id: str,
           record: PatientRecord, skipped: dict[str, int]) -> None:
    model = _MODELS[key]
    for resource in resources:
        try:
            if not _plain_json_values(resource):
                raise ValueError("a coercible primitive")
            parsed = model.model_validate(_what_is_read(resource))
        except ValueError:  # pydantic's ValidationError is one
            skipped["could not be read as FHIR R4 and were ignored"] += 1
            continue
        if _about(parsed, patient_id):
            getattr(record, _CHART_LIST[key]).append(parsed)
        else:
            skipped["about another patient were ignored"] += 1


def _read_bundle(key: str, bundle: dict[str, Any], client: FhirClient | None,
                 patient_id: str, record: PatientRecord) -> None:
    if bundle.get("resourceType") != "Bundle":
        raise _FetchFailed("not a Bundle")
    skipped: dict[str, int] = defaultdict(int)
    wanted = wanted_codes()
    raw: list[dict[str, Any]] = []
    try:
        for page in _pages(bundle, client, newest_page_only=key == "measurements"):
            raw.extend(_candidates(page, key, record, wanted))
    except _FetchFailed:  # a later page: what was read stands
        record.notes.append(f"only the first pages of the {_NOUNS[key]} could be read; "
                            "findings on the others are unknown")
    if key in ("observations", "measurements"):
        raw = latest_statements(raw)
    _parse(raw, key, patient_id, record, skipped)
    record.notes.extend(f"{count} {_NOUNS[key]} {why}" for why, count in skipped.items())


def _read_patient(value: dict[str, Any], patient_id: str, record: PatientRecord) -> None:
    if value.get("resourceType") != "Patient":
        raise _FetchFailed("not a Patient")
    try:
        patient = Patient.model_validate(_what_is_read(value))
    except ValidationError:
        record.notes.append("the Patient could not be read as FHIR R4")
        return
    if patient.id != patient_id:
        raise _FetchFailed("another patient")
    record.patient = patient


def search_url(client: FhirClient, key: str, patient_id: str, today: date) -> str:
    """The URL the service asks itself for a key the client did not prefetch."""
    url = client.base_url + PREFETCH[key].replace(_PATIENT_TOKEN, quote(patient_id, safe=""))
    if key in ("observations", "measurements"):
        url += f"&date=ge{(today - timedelta(days=OBSERVATION_WINDOW_DAYS)).isoformat()}"
    return url


def gather(hook_request: Mapping[str, Any], settings: HookSettings) -> PatientRecord:
    """Read the resources every key of PREFETCH asks for; 412 when a required one is lacking."""
    patient_id = hook_request["context"]["patient_id"]
    prefetch = hook_request.get("prefetch") or {}
    client = _client(hook_request, settings)
    today = settings.clock().date()
    record = PatientRecord()
    for key in PREFETCH:
        value = prefetch.get(key, ...)
        if value is None:
            continue  # the client has no such data
        try:
            if value is ... or _is_outcome(value):
                if client is None:
                    raise _FetchFailed("no FHIR server to ask")
                value = client.get(search_url(client, key, patient_id, today))
            if not isinstance(value, dict):
                raise _FetchFailed("not a FHIR resource")
            if key == "patient":
                _read_patient(value, patient_id, record)
            else:
                _read_bundle(key, value, client, patient_id, record)
        except _FetchFailed as error:
            log.info("prefetch unavailable", extra={"prefetch_key": key, "cause": str(error)})
            if key in REQUIRED:
                raise PreconditionFailed(
                    f"The {key} prefetch is missing and could not be read from the FHIR "
                    "server.") from None
            record.notes.append(f"the {_NOUNS[key]} could not be read, so findings they hold "
                                "are unknown")
    return record

