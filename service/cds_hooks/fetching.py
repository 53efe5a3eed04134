"""Get the patient's FHIR R4 resources: from the prefetch, or else from the client's server.

A prefetch key the client left out (or answered with an OperationOutcome) is fetched from
`fhirServer`, with the `fhirAuthorization` bearer token when one is given. A key sent as
`null` means the client has no such data: nothing is fetched and nothing is assumed. When the
Patient or the Conditions can be had neither way, the call fails with 412, as CDS Hooks asks.

Each resource is validated on its own with the fhir.resources R4 models (the `R4B`
subpackage: fhir.resources has no 4.0.1 package, and R4B's Patient, Condition, Observation,
ServiceRequest and Bundle are those of R4), so one malformed Observation costs only itself;
how many were unreadable is reported on the cards. Resources about another patient are
dropped. The access token is sent only to `fhirServer` (no redirects are followed, no paging
link to another host), over https whenever authentication is on, and is never logged.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from .errors import PreconditionFailed
from .mapping import FINDING_FIELDS
from .settings import HookSettings
from .terminology import FIELD_SYSTEM, SITE_CODES, STANDARD_CODES

log = logging.getLogger(__name__)

_MAX_PAGES = 20
_MAX_RESPONSE_BYTES = 5 * 1024 * 1024
_PATIENT_TOKEN = "{{context.patientId}}"


def _code_filter(codes: list[str]) -> str:
    return ",".join(codes)


_CONDITION_CODES = [f"{system}|{code}" for system, code in SITE_CODES] + [
    f"{c.system}|{c.code}" for path, codes in STANDARD_CODES.items() for c in codes
    if not path.startswith(("patient.bmi", "pain.severity"))] + [f"{FIELD_SYSTEM}|"]
_OBSERVATION_CODES = [f"{c.system}|{c.code}" for codes in STANDARD_CODES.values()
                      for c in codes] + [f"{FIELD_SYSTEM}|"]

# The FHIR searches the services need, keyed as in the discovery response.
PREFETCH: dict[str, str] = {
    "patient": f"Patient/{_PATIENT_TOKEN}",
    "conditions": f"Condition?patient={_PATIENT_TOKEN}&code={_code_filter(_CONDITION_CODES)}",
    "observations": (f"Observation?patient={_PATIENT_TOKEN}"
                     f"&code={_code_filter(_OBSERVATION_CODES)}"),
}
REQUIRED = ("patient", "conditions")
_TYPES = {"conditions": Condition, "observations": Observation}
assert all(path in FINDING_FIELDS for path in STANDARD_CODES)


@dataclass
class PatientRecord:
    """The resources read for one call, and what could not be read."""

    patient: Patient | None = None
    conditions: list[Condition] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _FetchFailed(Exception):
    pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect becomes an error: the token never follows it elsewhere


_OPENER = urllib.request.build_opener(_NoRedirect)


class FhirClient:
    """GET JSON from the client's FHIR server, only from there."""

    def __init__(self, base_url: str, token: str | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self._token = token
        self._timeout = timeout

    def get(self, url: str) -> dict[str, Any]:
        if not url.startswith(self.base_url):
            raise _FetchFailed("not on the FHIR server")
        headers = {"Accept": "application/fhir+json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(url, headers=headers)
        try:
            with _OPENER.open(request, timeout=self._timeout) as response:
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
    return FhirClient(server, token, settings.fhir_timeout_seconds)


def _is_outcome(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def _pages(first: dict[str, Any], client: FhirClient | None) -> Iterator[dict[str, Any]]:
    page: dict[str, Any] | None = first
    for _ in range(_MAX_PAGES):
        if page is None:
            return
        yield page
        next_url = next((link.get("url") for link in page.get("link") or []
                         if isinstance(link, dict) and link.get("relation") == "next"), None)
        page = client.get(next_url) if client and isinstance(next_url, str) else None


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


def _about(resource: Condition | Observation, patient_id: str) -> bool:
    reference = resource.subject.reference if resource.subject else None
    return bool(reference) and (reference == f"Patient/{patient_id}"
                                or reference.endswith(f"/Patient/{patient_id}"))


def _read_entries(page: dict[str, Any], key: str, patient_id: str, record: PatientRecord,
                  skipped: dict[str, int]) -> None:
    model = _TYPES[key]
    for entry in page.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != model.__name__:
            continue  # e.g. an OperationOutcome entry of a search
        try:
            if not _plain_json_values(resource):
                raise ValueError("a coercible primitive")
            parsed = model.model_validate(resource)
        except ValueError:  # pydantic's ValidationError is one
            skipped["could not be read as FHIR R4 and were ignored"] += 1
            continue
        if _about(parsed, patient_id):
            getattr(record, key).append(parsed)
        else:
            skipped["about another patient were ignored"] += 1


def _read_bundle(key: str, bundle: dict[str, Any], client: FhirClient | None,
                 patient_id: str, record: PatientRecord) -> None:
    if bundle.get("resourceType") != "Bundle":
        raise _FetchFailed("not a Bundle")
    skipped: dict[str, int] = defaultdict(int)
    try:
        for page in _pages(bundle, client):
            _read_entries(page, key, patient_id, record, skipped)
    except _FetchFailed:  # a later page: what was read stands
        record.notes.append(f"only the first pages of the {key} could be read; findings on "
                            "the others are unknown")
    record.notes.extend(f"{count} {key} {why}" for why, count in skipped.items())


def _read_patient(value: dict[str, Any], patient_id: str, record: PatientRecord) -> None:
    if value.get("resourceType") != "Patient":
        raise _FetchFailed("not a Patient")
    try:
        patient = Patient.model_validate(value)
    except ValidationError:
        record.notes.append("the Patient could not be read as FHIR R4")
        return
    if patient.id != patient_id:
        raise _FetchFailed("another patient")
    record.patient = patient


def gather(hook_request: Mapping[str, Any], settings: HookSettings) -> PatientRecord:
    """Read the resources every key of PREFETCH asks for; 412 when a required one is lacking."""
    patient_id = hook_request["context"]["patient_id"]
    prefetch = hook_request.get("prefetch") or {}
    client = _client(hook_request, settings)
    record = PatientRecord()
    for key, template in PREFETCH.items():
        value = prefetch.get(key, ...)
        if value is None:
            continue  # the client has no such data
        try:
            if value is ... or _is_outcome(value):
                if client is None:
                    raise _FetchFailed("no FHIR server to ask")
                value = client.get(client.base_url + template.replace(
                    _PATIENT_TOKEN, quote(patient_id, safe="")))
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
            record.notes.append(f"the {key} could not be read, so findings they hold are "
                                "unknown")
    return record
