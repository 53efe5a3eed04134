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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
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
from .mapping import OBSERVATION_INDEX, Chart, entries, observation_statements, wanted_codes
from .settings import HookSettings
from .terminology import FIELD_SYSTEM, HISTORY_FIELDS

log = logging.getLogger(__name__)

MAX_PAGES = 5
_MAX_RESPONSE_BYTES = 5 * 1024 * 1024
_PATIENT_TOKEN = "{{context.patientId}}"

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
    # Medications named by reference come with the search (_include), or contained.
    "medications": (f"MedicationRequest?patient={_PATIENT_TOKEN}&status=active"
                    "&_include=MedicationRequest:medication&_count=100"),
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

    def _read_within_budget(self, response: Any) -> bytes:
        """Read in chunks, so a server trickling bytes cannot outlast the budget (a socket
        timeout bounds each receive, not the whole body)."""
        chunks: list[bytes] = []
        size = 0
        while size <= _MAX_RESPONSE_BYTES:
            if time.monotonic() > self._deadline:
                raise _FetchFailed("the time budget for FHIR reads is spent")
            chunk = response.read1(64 * 1024)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)

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
                body = self._read_within_budget(response)
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


def _client(hook_request: Mapping[str, Any], settings: HookSettings, issuer: str | None,
            record: PatientRecord) -> FhirClient | None:
    """A client of the call's fhirServer, only if the service may read it (never a server
    a caller merely names: the access token would go there, and the service's own network
    with it)."""
    server = hook_request.get("fhir_server")
    if not server or (settings.auth and not server.startswith("https://")):
        return None
    if not settings.may_read(server, issuer):
        log.info("fhir server not allowed")  # the URL itself is the caller's: not logged
        record.notes.append("the FHIR server this call names is not one the service is "
                            "configured to read, so nothing was read from it")
        return None
    token = (hook_request.get("fhir_authorization") or {}).get("access_token")
    return FhirClient(server, token, settings.fhir_timeout_seconds, settings.fhir_budget_seconds)


def _is_outcome(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def _days(page: dict[str, Any]) -> list[date]:
    return [day for entry in entries(page) if isinstance(entry, dict)
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
           enough: Callable[[dict[str, Any]], bool] | None = None) -> Iterator[dict[str, Any]]:
    """The pages of a search, at most MAX_PAGES, until `enough` says the rest is not needed."""
    page = first
    for read in range(1, MAX_PAGES + 1):
        yield page
        next_url = next((link.get("url") for link in page.get("link") or []
                         if isinstance(link, dict) and link.get("relation") == "next"), None)
        if next_url is None or (enough is not None and enough(page)):
            return
        if client is None or not isinstance(next_url, str):
            raise _FetchFailed("more pages, and no FHIR server to read them from")
        if read == MAX_PAGES:
            raise _FetchFailed("more pages than the service reads")
        page = client.get(next_url)


class _NewestMeasurements:
    """Measurements come newest first and only the latest of each counts: once a page in
    that order has shown every measurement code, older pages cannot change anything."""

    def __init__(self) -> None:
        self.seen: set[tuple[Any, Any]] = set()

    def __call__(self, page: dict[str, Any]) -> bool:
        for entry in entries(page):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == "Observation":
                self.seen.update(key for key in _raw_codes(resource) if key in MEASUREMENTS)
        return _newest_first(page) and self.seen >= MEASUREMENTS


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
    if not reference:
        return False
    reference = reference.split("/_history/")[0]  # a versioned reference names the patient too
    return reference == f"Patient/{patient_id}" or reference.endswith(f"/Patient/{patient_id}")


def _included_medications(page: dict[str, Any]) -> dict[str, Any]:
    """`Medication/<id>` -> its code, for the Medications a search included."""
    found = {}
    for entry in entries(page):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Medication":
            found[f"Medication/{resource.get('id')}"] = resource.get("code")
    return found


def _with_medication_code(request: dict[str, Any], included: dict[str, Any]) -> dict[str, Any]:
    """A MedicationRequest naming its drug by reference, given the code of that Medication
    (contained, or included by the search), so it is read like one coded in place."""
    reference = request.get("medicationReference")
    target = reference.get("reference") if isinstance(reference, dict) else None
    if "medicationCodeableConcept" in request or not isinstance(target, str):
        return request
    code = included.get(target)
    if target.startswith("#"):
        code = next((c.get("code") for c in request.get("contained") or []
                     if isinstance(c, dict) and c.get("resourceType") == "Medication"
                     and c.get("id") == target[1:]), None)
    if not isinstance(code, dict):
        return request
    resolved = {k: v for k, v in request.items() if k != "medicationReference"}
    resolved["medicationCodeableConcept"] = code
    return resolved


def _candidates(page: dict[str, Any], key: str, record: PatientRecord,
                wanted: frozenset[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    """The raw resources of a page the mapping reads anything from."""
    model = _MODELS[key]
    included = _included_medications(page) if key == "medications" else {}
    for entry in entries(page):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        if _is_dstu2(resource):
            record.dstu2 += 1
            continue
        if resource.get("resourceType") != model.__name__:
            continue  # an OperationOutcome entry of a search, an included Medication
        if key == "medications":
            resource = _with_medication_code(resource, included)
            if "medicationCodeableConcept" not in resource and resource.get("status") == "active":
                record.notes.append("an active prescription names no coded medication, so "
                                    "what it is could not be read")
        if _worth_parsing(resource, wanted):
            yield resource


def _parsed(resource: dict[str, Any], key: str, patient_id: str,
            skipped: dict[str, int]) -> Any:
    """The resource validated (the elements the mapping reads), or None, counted."""
    try:
        if not _plain_json_values(resource):
            raise ValueError("a coercible primitive")
        parsed = _MODELS[key].model_validate(_what_is_read(resource))
    except (ValueError, RecursionError):  # pydantic's ValidationError is a ValueError;
        # an extension nested hundreds deep exhausts the validator's recursion
        skipped["could not be read as FHIR R4 and were ignored"] += 1
        return None
    if not _about(parsed, patient_id):
        skipped["about another patient were ignored"] += 1
        return None
    return parsed


def _parse(resources: list[dict[str, Any]], key: str, patient_id: str,
           record: PatientRecord, skipped: dict[str, int]) -> None:
    for resource in resources:
        parsed = _parsed(resource, key, patient_id, skipped)
        if parsed is not None:
            getattr(record, _CHART_LIST[key]).append(parsed)


def parse_latest(resources: list[dict[str, Any]], patient_id: str,
                 skipped: dict[str, int]) -> list[Observation]:
    """The observations that can count, parsed newest first: for each finding, every one of
    the day of its latest usable statement (all of them, for a finding of history). Parsing
    is the slow part of a call, and older repeats of a BMI or an answer can never count; a
    newer statement that says nothing (entered in error, no readable value, another
    patient) does not hide an older one that does."""
    settled: dict[str, date] = {}  # finding -> day of its latest usable statement
    kept: list[Observation] = []
    for resource in sorted(resources, key=lambda r: _raw_day(r) or date.min, reverse=True):
        day = _raw_day(resource) or date.min
        fields = {OBSERVATION_INDEX[k] for k in _raw_codes(resource) if k in OBSERVATION_INDEX}
        if all(path not in HISTORY_FIELDS and settled.get(path, date.min) > day
               for path in fields):
            continue  # every finding it speaks to has a newer usable statement
        parsed = _parsed(resource, "observations", patient_id, skipped)
        if parsed is None:
            continue
        kept.append(parsed)
        for path, _ in observation_statements(parsed):
            settled.setdefault(path, day)
    return kept


def _read_bundle(key: str, bundle: dict[str, Any], client: FhirClient | None,
                 patient_id: str, record: PatientRecord) -> None:
    if bundle.get("resourceType") != "Bundle":
        raise _FetchFailed("not a Bundle")
    skipped: dict[str, int] = defaultdict(int)
    wanted = wanted_codes()
    raw: list[dict[str, Any]] = []
    other_version = record.dstu2
    enough = _NewestMeasurements() if key == "measurements" else None
    try:
        for page in _pages(bundle, client, enough):
            raw.extend(_candidates(page, key, record, wanted))
    except _FetchFailed:  # a later page: what was read stands
        record.notes.append(f"only the first pages of the {_NOUNS[key]} could be read; "
                            "findings on the others are unknown")
    if key in ("observations", "measurements"):
        record.observations.extend(parse_latest(raw, patient_id, skipped))
    else:
        _parse(raw, key, patient_id, record, skipped)
    if record.dstu2 > other_version:
        skipped["in FHIR DSTU2 or STU3 form were ignored"] += record.dstu2 - other_version
    record.notes.extend(f"{count} {_NOUNS[key]} {why}" for why, count in skipped.items())


def _read_patient(value: dict[str, Any], patient_id: str, record: PatientRecord) -> None:
    if value.get("resourceType") != "Patient":
        raise _FetchFailed("not a Patient")
    try:
        patient = Patient.model_validate(_what_is_read(value))
    except (ValidationError, RecursionError):
        record.notes.append("the Patient could not be read as FHIR R4")
        return
    if patient.id != patient_id:
        raise _FetchFailed("another patient")
    record.patient = patient


def search_url(client: FhirClient, key: str, patient_id: str) -> str:
    """The URL the service asks itself for a key the client did not prefetch."""
    return client.base_url + PREFETCH[key].replace(_PATIENT_TOKEN, quote(patient_id, safe=""))


def gather(hook_request: Mapping[str, Any], settings: HookSettings,
           issuer: str | None = None) -> PatientRecord:
    """Read the resources every key of PREFETCH asks for; 412 when a required one is lacking."""
    patient_id = hook_request["context"]["patient_id"]
    prefetch = hook_request.get("prefetch") or {}
    record = PatientRecord()
    client = _client(hook_request, settings, issuer, record)
    for key in PREFETCH:
        value = prefetch.get(key, ...)
        if value is None:
            continue  # the client has no such data
        try:
            if value is ... or _is_outcome(value):
                if client is None:
                    raise _FetchFailed("no FHIR server to ask")
                value = client.get(search_url(client, key, patient_id))
            if not isinstance(value, dict):
                raise _FetchFailed("not a FHIR resource")
            if key == "patient":
                _read_patient(value, patient_id, record)
            else:
                _read_bundle(key, value, client, patient_id, record)
        except _FetchFailed as error:
            log.info("prefetch unavailable", extra={"prefetch_key": key, "cause": str(error)})
            if key in REQUIRED:
                refused = hook_request.get("fhir_server") and client is None
                raise PreconditionFailed(
                    f"The {key} prefetch is missing and could not be read from the FHIR "
                    "server." + (" The FHIR server the call names is not one this service "
                                 "is configured to read." if refused else "")) from None
            record.notes.append(f"the {_NOUNS[key]} could not be read, so findings they hold "
                                "are unknown")
    return record

