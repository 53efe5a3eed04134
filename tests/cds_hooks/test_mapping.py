"""FHIR R4 -> presentation: every vignette round-trips, and unknown stays unknown."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

from service.cds_hooks.mapping import age_from_birth_date, to_presentation
from service.cds_hooks.terminology import FIELD_SYSTEM, LOINC, SNOMED
from service.schemas import load_presentation
from tests.cds_hooks.conftest import ALL_CASES, TODAY
from tests.cds_hooks.fhir_builder import (
    PATIENT_ID,
    condition,
    fhir_record,
    observation,
)

MINIMAL = {"patient": {"age": 40}, "pain": {"sites": ["low_back"], "duration_days": 10}}
ONSET = TODAY - timedelta(days=10)


def read(prefetch: dict[str, Any], today: date = TODAY):
    return to_presentation(
        Patient.model_validate(prefetch["patient"]),
        [Condition.model_validate(e["resource"]) for e in prefetch["conditions"]["entry"]],
        [Observation.model_validate(e["resource"]) for e in prefetch["observations"]["entry"]],
        today)


def normalised(presentation: dict[str, Any]) -> dict[str, Any]:
    loaded = load_presentation(presentation)
    loaded["pain"]["sites"] = sorted(loaded["pain"]["sites"])
    # A section whose every finding was left unanswered (null) says nothing, as an absent one.
    return {section: values for section, values in loaded.items() if values}


@pytest.mark.parametrize("case", ALL_CASES, ids=[case["id"] for case in ALL_CASES])
def test_every_vignette_round_trips_through_fhir(case):
    """Written as FHIR R4 resources and read back, a presentation is exactly itself."""
    mapped = read(fhir_record(case["presentation"], TODAY))
    assert mapped.missing_required == []
    assert normalised(mapped.presentation) == normalised(case["presentation"])


def record_with(*resources: dict[str, Any], presentation: dict[str, Any] = MINIMAL):
    prefetch = fhir_record(presentation, TODAY)
    for resource in resources:
        key = "conditions" if resource["resourceType"] == "Condition" else "observations"
        prefetch[key]["entry"].append({"resource": resource})
    return read(prefetch)


def sct(code: str) -> dict[str, Any]:
    return {"coding": [{"system": SNOMED, "code": code}]}


def field(path: str) -> dict[str, Any]:
    return {"coding": [{"system": FIELD_SYSTEM, "code": path}]}


FEVER, CANCER = sct("386661006"), sct("363346000")


def value(mapped, path: str) -> Any:
    section, name = path.split(".")
    return mapped.presentation.get(section, {}).get(name)


def test_a_condition_absent_from_the_record_is_unknown_not_false():
    mapped = record_with()
    assert "history" not in mapped.presentation and "neuro" not in mapped.presentation


@pytest.mark.parametrize(("verification", "expected"), [
    ("confirmed", True), ("provisional", True), ("refuted", False),
    ("entered-in-error", None), ("differential", None), ("unconfirmed", None),
])
def test_condition_verification_status(verification, expected):
    assert value(record_with(condition(FEVER, verification=verification)),
                 "history.fever") is expected


@pytest.mark.parametrize(("clinical", "fever", "cancer"), [
    ("active", True, True), ("recurrence", True, True), ("inactive", False, True),
    ("resolved", False, True), ("remission", False, True),
])
def test_a_resolved_condition_is_not_current_but_stays_history(clinical, fever, cancer):
    mapped = record_with(condition(FEVER, clinical=clinical), condition(CANCER, clinical=clinical))
    assert value(mapped, "history.fever") is fever
    assert value(mapped, "history.cancer") is cancer


@pytest.mark.parametrize(("answer", "expected"), [
    ({"valueBoolean": True}, True), ({"valueBoolean": False}, False),
    ({"valueCodeableConcept": sct("52101004")}, True),  # present
    ({"valueCodeableConcept": sct("2667000")}, False),  # absent
    ({"valueCodeableConcept": sct("410516002")}, False),  # known absent
    ({"valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA33-6"}]}}, True),
    ({"valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA32-8"}]}}, False),
    ({"valueString": "no"}, None),
    ({}, None),  # a question with no answer says nothing
])
def test_an_observation_answers_a_yes_no_question(answer, expected):
    mapped = record_with(observation(field("neuro.saddle_anaesthesia"), answer, TODAY))
    assert value(mapped, "neuro.saddle_anaesthesia") is expected


def test_an_observation_of_a_standard_finding_with_no_value_asserts_it():
    assert value(record_with(observation(FEVER, {}, TODAY)), "history.fever") is True


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error", "registered", "unknown"])
def test_an_observation_that_is_not_a_result_is_ignored(status):
    resource = observation(FEVER, {"valueBoolean": True}, TODAY, status=status)
    assert value(record_with(resource), "history.fever") is None


def test_an_observation_with_a_data_absent_reason_is_ignored():
    resource = observation(FEVER, {"dataAbsentReason": {"text": "asked, declined"}}, TODAY)
    assert value(record_with(resource), "history.fever") is None


def test_a_present_finding_observed_before_the_episode_is_ignored_but_history_is_kept():
    before = ONSET - timedelta(days=30)
    mapped = record_with(observation(FEVER, {"valueBoolean": True}, before),
                         observation(field("history.fall"), {"valueBoolean": True}, before))
    assert value(mapped, "history.fever") is None
    assert value(mapped, "history.fall") is True


def test_yes_outweighs_no_for_a_finding():
    mapped = record_with(condition(FEVER, verification="refuted"),
                         observation(FEVER, {"valueBoolean": True}, TODAY))
    assert value(mapped, "history.fever") is True


def test_conflicting_choices_stay_unknown_and_are_reported():
    def radiation(code: str) -> dict[str, Any]:
        answer = {"coding": [{"system": FIELD_SYSTEM.replace("presentation-field",
                                                             "presentation-answer"),
                              "code": code}]}
        return observation(field("pain.radiation"), {"valueCodeableConcept": answer}, TODAY)

    mapped = record_with(radiation("thigh"), radiation("below_knee"))
    assert value(mapped, "pain.radiation") is None
    assert any("pain.radiation" in note for note in mapped.notes)


def test_numbers_are_read_in_their_units_and_checked_against_the_registry():
    stiffness = observation(field("pain.morning_stiffness_minutes"), {"valueQuantity": {
        "value": 1.5, "system": "http://unitsofmeasure.org", "code": "h"}}, TODAY)
    severity = observation({"coding": [{"system": LOINC, "code": "72514-3"}]},
                           {"valueInteger": 11}, TODAY)
    grams = observation({"coding": [{"system": LOINC, "code": "39156-5"}]}, {"valueQuantity": {
        "value": 24, "system": "http://unitsofmeasure.org", "code": "g"}}, TODAY)
    mapped = record_with(stiffness, severity, grams)
    assert value(mapped, "pain.morning_stiffness_minutes") == 90
    assert value(mapped, "pain.severity") is None  # 11 is out of the 0..10 range
    assert value(mapped, "patient.bmi") is None  # an unknown unit is not guessed
    assert any("pain.severity" in note for note in mapped.notes)


def test_an_incomplete_start_back_block_is_dropped():
    mapped = record_with(observation(field("start_back.leg_pain"), {"valueBoolean": True},
                                     TODAY))
    assert "start_back" not in mapped.presentation
    assert any("start_back" in note for note in mapped.notes)


@pytest.mark.parametrize(("birth_date", "age"), [
    (date(1986, 6, 15), 40), (date(1986, 6, 16), 39),
    ("1986-03", 40), ("1986-06", None), ("1986", None), ("1986-12", 39), (None, None),
])
def test_age_from_birth_date(birth_date, age):
    assert age_from_birth_date(birth_date, TODAY) == age


def test_sites_and_duration_come_from_current_pain_conditions():
    prefetch = fhir_record({"patient": {"age": 50}, "pain": {"sites": ["low_back", "hip"],
                                                             "duration_days": 10}}, TODAY)
    hip = prefetch["conditions"]["entry"][1]["resource"]
    hip["onsetDateTime"] = (TODAY - timedelta(days=30)).isoformat()
    mapped = read(prefetch)
    assert mapped.presentation["pain"] == {"sites": ["low_back", "hip"], "duration_days": 30}
    assert mapped.episode_onset == TODAY - timedelta(days=30)


@pytest.mark.parametrize("change", [
    {"clinicalStatus": {"coding": [{"code": "resolved"}]}},
    {"verificationStatus": {"coding": [{"code": "refuted"}]}},
])
def test_a_resolved_or_refuted_pain_condition_is_no_site(change):
    prefetch = fhir_record(MINIMAL, TODAY)
    prefetch["conditions"]["entry"][0]["resource"].update(change)
    mapped = read(prefetch)
    assert "pain.sites" in mapped.missing_required


def test_missing_required_fields_are_named():
    prefetch = fhir_record(MINIMAL, TODAY)
    prefetch["patient"]["birthDate"] = "1986"
    del prefetch["conditions"]["entry"][0]["resource"]["onsetDateTime"]
    mapped = read(prefetch)
    assert mapped.missing_required == ["patient.age", "pain.duration_days"]
    assert mapped.presentation["pain"] == {"sites": ["low_back"]}


def test_the_builder_writes_resources_about_the_patient():
    prefetch = fhir_record(MINIMAL, TODAY)
    assert prefetch["patient"]["id"] == PATIENT_ID
