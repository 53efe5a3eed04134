"""Write a contract presentation as the FHIR R4 resources an EHR would hold, for hook tests.

The encodings vary from field to field (Condition or Observation; confirmed, refuted or
resolved; valueBoolean, a SNOMED CT qualifier or a LOINC answer) so that reading them back
exercises every path of the mapping. Unknown fields produce no resource at all.
"""

from __future__ import annotations

import calendar
import itertools
import uuid
from datetime import date, timedelta
from typing import Any

from service.cds_hooks.terminology import (
    ANSWER_SYSTEM,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    FIELD_SYSTEM,
    HISTORY_FIELDS,
    LOINC,
    SITE_DISPLAYS,
    SNOMED,
    STANDARD_CODES,
    UCUM,
    UNITS,
)
from service.presentation import BOOL, ENUM, INPUT_FIELDS

PATIENT_ID = "vignette-patient"
_SITE_CODES = {"low_back": "279039007", "hip": "49218002"}
_STRUCTURAL = {"patient.age", "patient.sex", "pain.sites", "pain.duration_days"}


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _status(system: str, code: str) -> dict[str, Any]:
    return _concept(system, code)


def birth_date(age: int, today: date) -> str:
    """A birth date that makes the patient exactly `age` today (birthday was yesterday)."""
    year = today.year - age
    day = min(today.day, calendar.monthrange(year, today.month)[1])
    return (date(year, today.month, day) - timedelta(days=1)).isoformat()


def condition(code: dict[str, Any], *, clinical: str = "active", verification: str = "confirmed",
              onset: str | None = None, patient_id: str = PATIENT_ID,
              abated: str | None = None) -> dict[str, Any]:
    resource = {"resourceType": "Condition", "id": uuid.uuid4().hex[:12],
                "category": [_concept("http://terminology.hl7.org/CodeSystem/condition-category",
                                      "problem-list-item")],
                "clinicalStatus": _status(CONDITION_CLINICAL, clinical),
                "verificationStatus": _status(CONDITION_VERIFICATION, verification),
                "code": code, "subject": {"reference": f"Patient/{patient_id}"}}
    if onset:
        resource["onsetDateTime"] = onset
    if abated:  # a resolved Condition says "not now" only with the day it ended
        resource["abatementDateTime"] = abated
    return resource


def observation(code: dict[str, Any], value: dict[str, Any], effective: date,
                patient_id: str = PATIENT_ID, status: str = "final") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": uuid.uuid4().hex[:12], "status": status,
            "code": code, "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": effective.isoformat(), **value}


def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": r,
                       "search": {"mode": "match"}} for r in resources]}


def _boolean(path: str, value: bool, variant: int, today: date
             ) -> tuple[str, dict[str, Any]]:
    standard = STANDARD_CODES.get(path)
    if standard and variant % 2 == 0:  # as a Condition
        code = _concept(SNOMED, standard[0].code, standard[0].display)
        if value:
            return "conditions", condition(code, verification=("confirmed", "provisional")[
                variant % 4 // 2])
        if path not in HISTORY_FIELDS and variant % 4 == 2:
            return "conditions", condition(code, clinical="resolved", abated=today.isoformat())
        return "conditions", condition(code, verification="refuted")
    if standard:  # as an Observation of the finding
        code = _concept(standard[0].system, standard[0].code, standard[0].display)
        answer = {} if value and variant % 4 == 1 else {"valueCodeableConcept": _concept(
            SNOMED, "52101004" if value else "2667000")}
        return "observations", observation(code, answer, today)
    code = _concept(FIELD_SYSTEM, path)
    if variant % 2:
        answer = {"valueCodeableConcept": _concept(LOINC, "LA33-6" if value else "LA32-8")}
    else:
        answer = {"valueBoolean": value}
    return "observations", observation(code, answer, today)


def _number(path: str, value: float, today: date) -> dict[str, Any]:
    standard = STANDARD_CODES.get(path)
    code = (_concept(standard[0].system, standard[0].code) if standard
            else _concept(FIELD_SYSTEM, path))
    if path == "pain.severity":
        return observation(code, {"valueInteger": value}, today)
    unit = next(iter(UNITS[path]))
    return observation(code, {"valueQuantity": {"value": value, "unit": unit, "system": UCUM,
                                                "code": unit}}, today)


def fhir_record(presentation: dict[str, Any], today: date,
                patient_id: str = PATIENT_ID) -> dict[str, Any]:
    """The prefetch (every key of the discovery document) that holds this presentation."""
    patient: dict[str, Any] = {"resourceType": "Patient", "id": patient_id,
                               "birthDate": birth_date(presentation["patient"]["age"], today)}
    if presentation["patient"].get("sex"):
        patient["gender"] = presentation["patient"]["sex"]
    onset = (today - timedelta(days=presentation["pain"]["duration_days"])).isoformat()
    found: dict[str, list[dict[str, Any]]] = {"conditions": [], "observations": []}
    for site in presentation["pain"]["sites"]:
        found["conditions"].append(condition(
            _concept(SNOMED, _SITE_CODES[site], SITE_DISPLAYS[site]), onset=onset,
            patient_id=patient_id))
    variants = itertools.count()
    for path, spec in INPUT_FIELDS.items():
        section, name = path.split(".")
        value = (presentation.get(section) or {}).get(name)
        if path in _STRUCTURAL or value is None:
            continue
        if spec.kind == BOOL:
            key, resource = _boolean(path, value, next(variants), today)
        elif spec.kind == ENUM:
            key, resource = "observations", observation(
                _concept(FIELD_SYSTEM, path), {"valueCodeableConcept": _concept(
                    ANSWER_SYSTEM, value)}, today)
        else:
            key, resource = "observations", _number(path, value, today)
        resource["subject"] = {"reference": f"Patient/{patient_id}"}
        found[key].append(resource)
    # Every key of the discovery prefetch, as a client that prefetches fills them: nothing
    # here is left for the service to fetch.
    return {"patient": patient, "conditions": bundle(found["conditions"]),
            "pastConditions": bundle([]), "observations": bundle(found["observations"]),
            "measurements": bundle([]),
            "medications": bundle([]), "allergies": bundle([])}


def hook_request(hook: str, prefetch: dict[str, Any], patient_id: str = PATIENT_ID,
                 **context: Any) -> dict[str, Any]:
    return {"hook": hook, "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/example", "patientId": patient_id, **context},
            "prefetch": prefetch}


def imaging_order(code: str, system: str = LOINC, order_id: str = "imaging-1",
                  patient_id: str = PATIENT_ID) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "id": order_id, "status": "draft",
            "intent": "order", "code": _concept(system, code),
            "subject": {"reference": f"Patient/{patient_id}"},
            "reasonCode": [_concept(SNOMED, "279039007", "Low back pain")]}


def draft_orders(*orders: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": order} for order in orders]}
