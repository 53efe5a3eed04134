"""FHIR R4 -> presentation: every vignette round-trips, and unknown stays unknown."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.medicationrequest import MedicationRequest
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
    ("entered-in-error", None),
    # A suspicion on record is a suspicion: a differential diagnosis of a red flag counts.
    ("differential", True), ("unconfirmed", True),
])
def test_condition_verification_status(verification, expected):
    assert value(record_with(condition(FEVER, verification=verification)),
                 "history.fever") is expected


@pytest.mark.parametrize(("clinical", "abated", "fever", "cancer"), [
    ("active", None, True, True), ("recurrence", None, True, True),
    # Ended during this episode: not now.
    ("inactive", TODAY - timedelta(days=2), False, True),
    ("resolved", TODAY - timedelta(days=2), False, True),
    ("remission", TODAY - timedelta(days=2), False, True),
    # Ended before this episode, or on a day not recorded: it says nothing about now.
    ("resolved", ONSET - timedelta(days=300), None, True),
    ("resolved", None, None, True),
])
def test_a_resolved_condition_is_not_current_but_stays_history(clinical, abated, fever, cancer):
    ended = abated.isoformat() if abated else None
    mapped = record_with(condition(FEVER, clinical=clinical, abated=ended),
                         condition(CANCER, clinical=clinical, abated=ended))
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


# --- A longitudinal chart: the latest statement counts -------------------------------------

BMI = {"coding": [{"system": LOINC, "code": "39156-5"}]}


def bmi(value_: float, on: date) -> dict[str, Any]:
    return observation(BMI, {"valueQuantity": {"value": value_, "unit": "kg/m2",
                                               "system": "http://unitsofmeasure.org",
                                               "code": "kg/m2"}}, on)


def test_the_latest_of_repeated_values_counts_and_is_not_a_conflict():
    mapped = record_with(bmi(27.0, TODAY - timedelta(days=3000)), bmi(29.5, TODAY - timedelta(
        days=400)), bmi(31.2, TODAY - timedelta(days=5)))
    assert value(mapped, "patient.bmi") == 31.2
    assert not any("patient.bmi" in note for note in mapped.notes)
    assert "Observation" in mapped.sources["patient.bmi"]


def test_only_values_of_the_same_day_conflict():
    mapped = record_with(bmi(24.0, TODAY - timedelta(days=40)), bmi(31.2, TODAY - timedelta(
        days=5)), bmi(33.0, TODAY - timedelta(days=5)))
    assert value(mapped, "patient.bmi") is None
    assert any("patient.bmi" in note and "same day" in note for note in mapped.notes)


def test_a_later_no_replaces_an_earlier_yes_within_the_episode():
    earlier, later = TODAY - timedelta(days=8), TODAY - timedelta(days=1)
    saddle = field("neuro.saddle_anaesthesia")
    mapped = record_with(observation(saddle, {"valueBoolean": True}, earlier),
                         observation(saddle, {"valueBoolean": False}, later))
    assert value(mapped, "neuro.saddle_anaesthesia") is False
    same_day = record_with(observation(saddle, {"valueBoolean": False}, later),
                           observation(saddle, {"valueBoolean": True}, later))
    assert value(same_day, "neuro.saddle_anaesthesia") is True  # yes wins on the same day
    assert any("same day" in note for note in same_day.notes)


def test_a_history_finding_once_recorded_stands_against_a_later_no():
    surgery = field("history.prior_spine_surgery")
    mapped = record_with(observation(surgery, {"valueBoolean": True}, TODAY - timedelta(
        days=3000)), observation(surgery, {"valueBoolean": False}, TODAY))
    assert value(mapped, "history.prior_spine_surgery") is True


def test_what_led_up_to_this_episode_counts_only_from_shortly_before_it():
    fall, trauma = field("history.fall"), field("history.trauma")
    major = {"valueCodeableConcept": {"coding": [{"system": FIELD_SYSTEM.replace(
        "presentation-field", "presentation-answer"), "code": "major"}]}}
    years_ago = record_with(observation(fall, {"valueBoolean": True}, ONSET - timedelta(
        days=4000)), observation(trauma, major, ONSET - timedelta(days=4000)))
    assert value(years_ago, "history.fall") is None  # a fall in 2015 is not this one's
    assert value(years_ago, "history.trauma") is None
    just_before = record_with(observation(fall, {"valueBoolean": True}, ONSET - timedelta(
        days=3)))
    assert value(just_before, "history.fall") is True


def test_a_sphincter_problem_on_record_long_before_the_episode_is_not_read_as_new():
    retention = sct("267064002")
    old = record_with(condition(retention, onset=(ONSET - timedelta(days=4000)).isoformat()))
    assert value(old, "neuro.urinary_retention") is None
    assert any("not read as new" in note for note in old.notes)
    new = record_with(condition(retention, onset=(ONSET + timedelta(days=2)).isoformat()))
    assert value(new, "neuro.urinary_retention") is True
    undated = record_with(condition(retention))  # no onset: it may be new, so it counts
    assert value(undated, "neuro.urinary_retention") is True


def test_a_fractional_value_of_a_whole_number_field_is_dropped_with_a_note():
    severity = observation({"coding": [{"system": LOINC, "code": "72514-3"}]},
                           {"valueQuantity": {"value": 7.5, "code": "{score}",
                                              "system": "http://unitsofmeasure.org"}}, TODAY)
    whole = observation({"coding": [{"system": LOINC, "code": "72514-3"}]},
                        {"valueQuantity": {"value": 7.0, "code": "{score}",
                                           "system": "http://unitsofmeasure.org"}}, TODAY)
    assert value(record_with(severity), "pain.severity") is None
    assert value(record_with(whole), "pain.severity") == 7


ICD = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def coded(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


@pytest.mark.parametrize(("code", "sites"), [
    (sct("278860009"), ["low_back"]),  # Chronic low back pain, as Synthea records it
    (coded(ICD, "M54.50"), ["low_back"]),
    (coded(ICD, "M54.41"), ["low_back"]),  # lumbago with sciatica, right side
    (coded(ICD, "M48.062"), ["low_back"]),  # lumbar stenosis with neurogenic claudication
    (coded(ICD, "M16.11"), ["hip"]),  # primary osteoarthritis, right hip
    (sct("239872002"), ["hip"]),  # osteoarthritis of hip
])
def test_pain_sites_are_read_by_value_set_membership(code, sites):
    resource = condition(code, onset=ONSET.isoformat())
    mapped = to_presentation(Patient(id=PATIENT_ID, birthDate=date(1980, 1, 1)),
                             [Condition.model_validate(resource)], [], TODAY)
    assert mapped.presentation["pain"] == {"sites": sites, "duration_days": 10}


@pytest.mark.parametrize(("verification", "expected"), [
    ("provisional", True), ("differential", True), ("confirmed", True), ("refuted", False),
    ("entered-in-error", None),
])
def test_a_recorded_red_flag_diagnosis_counts_as_suspected(verification, expected):
    ces = condition(sct("192970008"), verification=verification)  # cauda equina syndrome
    assert value(record_with(ces), "diagnoses.cauda_equina_syndrome") is expected


def medication(code: str, status: str = "active", authored: date = TODAY) -> MedicationRequest:
    return MedicationRequest.model_validate({
        "resourceType": "MedicationRequest", "id": code, "status": status, "intent": "order",
        "medicationCodeableConcept": coded(RXNORM, code), "authoredOn": authored.isoformat(),
        "subject": {"reference": f"Patient/{PATIENT_ID}"}})


def chart_with(**more: Any):
    prefetch = fhir_record(MINIMAL, TODAY)
    return to_presentation(
        Patient.model_validate(prefetch["patient"]),
        [Condition.model_validate(e["resource"]) for e in prefetch["conditions"]["entry"]],
        [], TODAY, **more)


def test_an_active_anticoagulant_is_read_and_a_stopped_one_is_not():
    warfarin = "855332"  # Warfarin Sodium 5 MG Oral Tablet
    assert value(chart_with(medications=[medication(warfarin)]),
                 "comorbidities.anticoagulant") is True
    assert value(chart_with(medications=[medication(warfarin, "stopped")]),
                 "comorbidities.anticoagulant") is None  # stopped says nothing about now


def test_a_corticosteroid_is_long_term_after_three_months():
    prednisone = "312617"  # predniSONE 5 MG Oral Tablet
    long_ago = medication(prednisone, authored=TODAY - timedelta(days=120))
    recent = medication(prednisone, authored=TODAY - timedelta(days=20))
    assert value(chart_with(medications=[long_ago]), "history.long_term_corticosteroids") is True
    assert value(chart_with(medications=[recent]), "history.long_term_corticosteroids") is None


def test_an_nsaid_already_prescribed_is_noted():
    mapped = chart_with(medications=[medication("849574")])  # naproxen sodium 220 MG
    assert any("already prescribed an NSAID" in note for note in mapped.notes)


def test_an_active_nsaid_allergy_is_read():
    allergy = AllergyIntolerance.model_validate({
        "resourceType": "AllergyIntolerance", "id": "a",
        "clinicalStatus": coded("http://terminology.hl7.org/CodeSystem/"
                                "allergyintolerance-clinical", "active"),
        "code": coded(RXNORM, "5640"), "patient": {"reference": f"Patient/{PATIENT_ID}"}})
    assert value(chart_with(allergies=[allergy]), "comorbidities.nsaid_hypersensitivity") is True


def test_the_orders_reason_is_read_as_its_indication():
    reason = CodeableConcept.model_validate(coded(ICD, "M16.12"))  # osteoarthritis, left hip
    mapped = chart_with(reasons=[reason])
    assert mapped.presentation["pain"]["sites"] == ["low_back", "hip"]


@pytest.mark.parametrize(("clinical", "verification", "expected"), [
    ("active", "confirmed", True), ("inactive", "confirmed", None),
    ("resolved", "confirmed", None), ("active", "refuted", None),
    ("active", "entered-in-error", None),
])
def test_an_allergys_statuses_are_read(clinical, verification, expected):
    system = "http://terminology.hl7.org/CodeSystem/allergyintolerance-"
    allergy = AllergyIntolerance.model_validate({
        "resourceType": "AllergyIntolerance", "id": "a",
        "clinicalStatus": coded(f"{system}clinical", clinical),
        "verificationStatus": coded(f"{system}verification", verification),
        "code": coded(RXNORM, "5640"), "patient": {"reference": f"Patient/{PATIENT_ID}"}})
    assert value(chart_with(allergies=[allergy]),
                 "comorbidities.nsaid_hypersensitivity") is expected
