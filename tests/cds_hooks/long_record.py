"""Synthea-shaped FHIR R4 records for the hook tests: the five fixture patients and long records.

Every resource is written the way Synthea's R4 exporter writes it (checked against real
Synthea output, smart-on-fhir/sample-bulk-fhir-datasets branch 10-patients, and the Synthea
modules' codes): US Core profiles in meta, condition-clinical / condition-ver-status codings,
category encounter-diagnosis, onset/abatement/recorded dates with a UTC offset, Observation
effectiveDateTime plus an `issued` instant with milliseconds, UCUM quantities, RxNorm
medicationCodeableConcept. Two deliberate departures, because the service reads only these
resources: Encounter, Claim and the like are left out (and so is each resource's `encounter`
reference, which would dangle), and every subject is `Patient/<id>`.

`python -m tests.cds_hooks.long_record` rewrites tests/cds_hooks/synthea/patient-N.json.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

Resource = dict[str, Any]

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
_TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"
_US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition"
# Synthea writes local times with the offset of its simulated town (US Eastern here).
_TZ = timezone(timedelta(hours=-5))
REFERENCE_DAY = datetime(2026, 12, 1, tzinfo=_TZ)
FIXTURES = Path(__file__).with_name("synthea")

# LOINC code -> (display, UCUM unit, category); displays as Synthea's modules write them.
VITALS = {
    "39156-5": ("Body mass index (BMI) [Ratio]", "kg/m2"),
    "29463-7": ("Body Weight", "kg"),
    "8302-2": ("Body Height", "cm"),
    "8867-4": ("Heart rate", "/min"),
    "9279-1": ("Respiratory rate", "/min"),
    "72514-3": ("Pain severity - 0-10 verbal numeric rating [Score] - Reported", "{score}"),
}
LABS = {
    "2339-0": ("Glucose [Mass/volume] in Blood", "mg/dL", (70.0, 110.0)),
    "38483-4": ("Creatinine [Mass/volume] in Blood", "mg/dL", (0.6, 1.4)),
    "718-7": ("Hemoglobin [Mass/volume] in Blood", "g/dL", (12.0, 17.0)),
    "2093-3": ("Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", (150.0, 260.0)),
    "4548-4": ("Hemoglobin A1c/Hemoglobin.total in Blood", "%", (4.8, 6.4)),
    "33914-3": ("Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, "
                "Plasma or Blood by Creatinine-based formula (MDRD)", "mL/min/{1.73_m2}",
                (55.0, 110.0)),
    "2947-0": ("Sodium [Moles/volume] in Blood", "mmol/L", (136.0, 145.0)),
    "6298-4": ("Potassium [Moles/volume] in Blood", "mmol/L", (3.5, 5.1)),
    "6301-6": ("INR in Platelet poor plasma by Coagulation assay", "{INR}", (2.0, 3.0)),
}
_BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
_DIASTOLIC = ("8462-4", "Diastolic Blood Pressure")
_SYSTOLIC = ("8480-6", "Systolic Blood Pressure")

# SNOMED CT codes and displays from the Synthea modules named in the comments.
LOW_BACK_PAIN = ("278860009", "Chronic low back pain (finding)")  # injuries / opioid modules
HIP_OSTEOARTHRITIS = ("239872002", "Osteoarthritis of hip")  # osteoarthritis.json
ATRIAL_FIBRILLATION = ("49436004", "Atrial fibrillation (disorder)")  # atrial_fibrillation.json
CKD_3 = ("433144002", "Chronic kidney disease stage 3 (disorder)")  # chronic_kidney_disease
BREAST_CANCER = ("254837009", "Malignant neoplasm of breast (disorder)")  # breast_cancer.json
OSTEOPOROSIS = ("64859006", "Osteoporosis (disorder)")  # osteoporosis.json
HYPERTENSION = ("59621000", "Essential hypertension (disorder)")  # hypertension.json
BRONCHITIS = ("10509002", "Acute bronchitis (disorder)")  # bronchitis.json
SINUSITIS = ("444814009", "Viral sinusitis (disorder)")  # sinusitis.json
PREGNANCY = ("72892002", "Normal pregnancy")  # pregnancy.json

NAPROXEN = ("849574", "Naproxen sodium 220 MG Oral Tablet")
WARFARIN = ("855332", "Warfarin Sodium 5 MG Oral Tablet")
PREDNISONE = ("312617", "predniSONE 5 MG Oral Tablet")
IBUPROFEN = ("310965", "Ibuprofen 200 MG Oral Tablet")
HYDROCHLOROTHIAZIDE = ("310798", "Hydrochlorothiazide 25 MG Oral Tablet")
AMOXICILLIN_CLAVULANATE = ("562251", "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet")


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _issued(moment: datetime) -> str:
    # Synthea's `issued` is the same moment as an instant with milliseconds.
    return moment.isoformat(timespec="milliseconds")


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _status(kind: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": f"{_TERMINOLOGY}/{kind}", "code": code}]}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _category(code: str, display: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": f"{_TERMINOLOGY}/observation-category", "code": code,
                         "display": display}]}]


class SyntheaRecord:
    """One patient's resources, with ids drawn from a seeded generator so reruns match."""

    def __init__(self, patient_id: str, seed: str | None = None) -> None:
        self.patient_id = patient_id
        self.rng = random.Random(seed or patient_id)
        self.resources: list[Resource] = []

    @property
    def subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.patient_id}"}

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add(self, resource: Resource) -> Resource:
        self.resources.append(resource)
        return resource

    def patient(self, given: str, family: str, gender: str, birth_date: str) -> Resource:
        birthsex = {"female": "F", "male": "M"}[gender]
        return self.add({
            "resourceType": "Patient", "id": self.patient_id,
            "meta": {"profile": [f"{_US_CORE}/us-core-patient"]},
            "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
                     'Generated by <a href="https://github.com/synthetichealth/synthea">'
                     "Synthea</a>.</div>"},
            "extension": [{"url": f"{_US_CORE}/us-core-birthsex", "valueCode": birthsex}],
            "identifier": [
                {"system": "https://github.com/synthetichealth/synthea",
                 "value": self.patient_id},
                {"type": _concept(f"{_TERMINOLOGY}/v2-0203", "MR", "Medical Record Number"),
                 "system": "http://hospital.smarthealthit.org", "value": self.patient_id}],
            "name": [{"use": "official", "family": family, "given": [given]}],
            "telecom": [{"system": "phone", "value": "555-010-0199", "use": "home"}],
            "gender": gender, "birthDate": birth_date,
            "address": [{"line": ["1 Synthea Way"], "city": "Boston", "state": "MA",
                         "postalCode": "02108", "country": "US"}],
            "communication": [{"language": _concept("urn:ietf:bcp:47", "en-US",
                                                    "English (United States)")}],
        })

    def condition(self, concept: tuple[str, str], onset: datetime,
                  abatement: datetime | None = None) -> Resource:
        resource = {
            "resourceType": "Condition", "id": self.new_id(),
            "meta": {"profile": [f"{_US_CORE}/us-core-condition-encounter-diagnosis"]},
            "clinicalStatus": _status("condition-clinical",
                                      "resolved" if abatement else "active"),
            "verificationStatus": _status("condition-ver-status", "confirmed"),
            "category": [{"coding": [{"system": f"{_TERMINOLOGY}/condition-category",
                                      "code": "encounter-diagnosis",
                                      "display": "Encounter Diagnosis"}]}],
            "code": _concept(SNOMED, *concept), "subject": self.subject,
            "onsetDateTime": _stamp(onset)}
        if abatement:
            resource["abatementDateTime"] = _stamp(abatement)
        resource["recordedDate"] = _stamp(onset)
        return self.add(resource)

    def _observation(self, code: str, display: str, category: str, when: datetime,
                     profile: str | None) -> Resource:
        resource: Resource = {"resourceType": "Observation", "id": self.new_id()}
        if profile:
            resource["meta"] = {"profile": [f"{_US_CORE}/{profile}"]}
        category_display = {"vital-signs": "Vital signs", "laboratory": "Laboratory"}[category]
        resource.update({"status": "final", "category": _category(category, category_display),
                         "code": _concept(LOINC, code, display), "subject": self.subject,
                         "effectiveDateTime": _stamp(when), "issued": _issued(when)})
        return resource

    def vital(self, code: str, value: float, when: datetime) -> Resource:
        display, unit = VITALS[code]
        # Synthea tags BMI and the other US Core vitals with their profile; pain it does not.
        profile = None if code == "72514-3" else "us-core-vital-signs"
        resource = self._observation(code, display, "vital-signs", when, profile)
        resource["valueQuantity"] = _quantity(value, unit)
        return self.add(resource)

    def lab(self, code: str, value: float, when: datetime) -> Resource:
        display, unit, _ = LABS[code]
        resource = self._observation(code, display, "laboratory", when,
                                     "us-core-observation-lab")
        resource["valueQuantity"] = _quantity(value, unit)
        return self.add(resource)

    def blood_pressure(self, systolic: int, diastolic: int, when: datetime) -> Resource:
        resource = self._observation(*_BP_PANEL, "vital-signs", when, "us-core-blood-pressure")
        resource["component"] = [
            {"code": _concept(LOINC, *_DIASTOLIC), "valueQuantity": _quantity(diastolic, "mm[Hg]")},
            {"code": _concept(LOINC, *_SYSTOLIC), "valueQuantity": _quantity(systolic, "mm[Hg]")}]
        return self.add(resource)

    def medication(self, concept: tuple[str, str], authored: datetime, status: str,
                   reason: Resource | None = None) -> Resource:
        resource = {
            "resourceType": "MedicationRequest", "id": self.new_id(),
            "meta": {"profile": [f"{_US_CORE}/us-core-medicationrequest"]},
            "status": status, "intent": "order",
            "category": [{"coding": [{"system": f"{_TERMINOLOGY}/medicationrequest-category",
                                      "code": "community", "display": "Community"}],
                          "text": "Community"}],
            "medicationCodeableConcept": _concept(RXNORM, *concept), "subject": self.subject,
            "authoredOn": _stamp(authored),
            # Synthea names the prescriber by a conditional NPI reference, as here.
            "requester": {"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/"
                                       "us-npi|9999994392", "display": "Dr. Synthea Provider"}}
        if reason:
            resource["reasonReference"] = [{"reference": f"Condition/{reason['id']}",
                                            "display": reason["code"]["text"]}]
        resource["dosageInstruction"] = [{"sequence": 1, "text": "Take as needed.",
                                          "asNeededBoolean": True}]
        return self.add(resource)

    def allergy(self, system: str, code: str, display: str, category: str,
                recorded: datetime) -> Resource:
        return self.add({
            "resourceType": "AllergyIntolerance", "id": self.new_id(),
            "meta": {"profile": [f"{_US_CORE}/us-core-allergyintolerance"]},
            "clinicalStatus": _status("allergyintolerance-clinical", "active"),
            "verificationStatus": _status("allergyintolerance-verification", "confirmed"),
            "type": "allergy", "category": [category], "criticality": "low",
            "code": _concept(system, code, display), "patient": self.subject,
            "recordedDate": _stamp(recorded)})

    def bundle(self) -> Resource:
        return {"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": f"urn:uuid:{_entry_uuid(r)}", "resource": r} for r in self.resources]}


def _entry_uuid(resource: Resource) -> str:
    # The Patient's id is not a UUID (synthea-N); derive one so fullUrl stays a urn:uuid.
    try:
        return str(uuid.UUID(resource["id"]))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"Patient/{resource['id']}"))


def _at(year: int, month: int, day: int, hour: int = 10) -> datetime:
    return datetime(year, month, day, hour, 15, 0, tzinfo=_TZ)


def _visits(record: SyntheaRecord, first: datetime, count: int) -> list[datetime]:
    """`count` wellness or follow-up visit moments from `first` up to the reference day."""
    span = (REFERENCE_DAY - timedelta(days=14) - first) / max(count - 1, 1)
    return [first + span * i + timedelta(minutes=record.rng.randint(0, 240))
            for i in range(count)]


def _patient_1() -> SyntheaRecord:
    record = SyntheaRecord("synthea-1")
    record.patient("Maria", "Lopez", "female", "1981-03-14")
    back = record.condition(LOW_BACK_PAIN, _at(2024, 11, 20))
    record.medication(IBUPROFEN, _at(2024, 11, 20), "stopped", back)
    record.medication(NAPROXEN, _at(2025, 2, 3), "active", back)
    record.allergy(RXNORM, "7980", "Penicillin V", "medication", _at(2012, 5, 2))
    visits = _visits(record, _at(2012, 4, 10), 15)
    for index, when in enumerate(visits):
        latest = index == len(visits) - 1
        record.vital("39156-5", 31.2 if latest else round(26.5 + 0.3 * index, 1), when)
        pain = 6 if when >= _at(2024, 11, 1) else record.rng.randint(0, 2)
        record.vital("72514-3", pain, when)
    return record


def _patient_2() -> SyntheaRecord:
    record = SyntheaRecord("synthea-2")
    record.patient("Walter", "Brennan", "male", "1938-05-02")
    fibrillation = record.condition(ATRIAL_FIBRILLATION, _at(2019, 9, 12))
    record.condition(CKD_3, _at(2021, 3, 8))
    back = record.condition(LOW_BACK_PAIN, _at(2026, 7, 1))
    record.medication(WARFARIN, _at(2019, 9, 12), "active", fibrillation)
    record.medication(NAPROXEN, _at(2026, 7, 1), "active", back)
    for when in _visits(record, _at(2019, 9, 12), 8):
        record.vital("39156-5", round(24.0 + record.rng.uniform(-0.8, 0.8), 1), when)
        record.vital("72514-3", 5 if when >= _at(2026, 7, 1) else 1, when)
        record.lab("33914-3", round(record.rng.uniform(38.0, 52.0), 1), when)
        record.lab("6301-6", round(record.rng.uniform(2.0, 3.0), 1), when)
    return record


def _patient_3() -> SyntheaRecord:
    record = SyntheaRecord("synthea-3")
    record.patient("Helen", "Forsyth", "female", "1959-04-21")
    record.condition(BREAST_CANCER, _at(2016, 2, 17), abatement=_at(2019, 6, 5))
    record.condition(OSTEOPOROSIS, _at(2023, 10, 2))
    back = record.condition(LOW_BACK_PAIN, _at(2025, 11, 25))
    record.medication(PREDNISONE, _at(2025, 3, 14), "active")
    record.medication(NAPROXEN, _at(2025, 11, 25), "stopped", back)
    record.allergy(SNOMED, "300916003", "Latex allergy (finding)", "environment",
                   _at(2016, 2, 17))
    for when in _visits(record, _at(2016, 2, 17), 10):
        record.vital("39156-5", round(22.5 + record.rng.uniform(-1.0, 1.0), 1), when)
        record.vital("72514-3", 5 if when >= _at(2025, 11, 25) else 1, when)
    return record


def _patient_4() -> SyntheaRecord:
    record = SyntheaRecord("synthea-4")
    record.patient("Daniel", "Okafor", "male", "1974-02-10")
    pressure = record.condition(HYPERTENSION, _at(2015, 6, 9))
    record.condition(BRONCHITIS, _at(2022, 1, 18), abatement=_at(2022, 2, 4))
    record.condition(LOW_BACK_PAIN, _at(2023, 11, 14))
    record.condition(HIP_OSTEOARTHRITIS, _at(2026, 4, 6))
    record.medication(HYDROCHLOROTHIAZIDE, _at(2015, 6, 9), "active", pressure)
    record.allergy(SNOMED, "442571000124108", "Tree nut (substance)", "food", _at(1990, 5, 1))
    for when in _visits(record, _at(2014, 5, 20), 24):
        rng = record.rng
        record.blood_pressure(rng.randint(128, 150), rng.randint(80, 95), when)
        record.vital("8867-4", rng.randint(62, 88), when)
        record.vital("9279-1", rng.randint(12, 16), when)
        record.vital("29463-7", round(rng.uniform(92.0, 98.0), 1), when)
        record.vital("39156-5", round(rng.uniform(29.0, 30.5), 1), when)
        record.vital("72514-3", 6 if when >= _at(2023, 11, 14) else 0, when)
    return record


def _patient_5() -> SyntheaRecord:
    record = SyntheaRecord("synthea-5")
    record.patient("Aisha", "Rahman", "female", "1996-03-30")
    record.condition(PREGNANCY, _at(2021, 1, 11), abatement=_at(2021, 9, 27))
    sinus = record.condition(SINUSITIS, _at(2024, 2, 6), abatement=_at(2024, 2, 20))
    record.medication(AMOXICILLIN_CLAVULANATE, _at(2024, 2, 6), "stopped", sinus)
    for when in _visits(record, _at(2018, 3, 2), 6):
        record.vital("39156-5", round(22.0 + record.rng.uniform(-0.6, 0.6), 1), when)
        record.vital("72514-3", 0, when)
    return record


PATIENTS = (_patient_1, _patient_2, _patient_3, _patient_4, _patient_5)


def fixture_bundles() -> dict[str, Resource]:
    """The five fixture patients as collection Bundles, keyed by their file name."""
    return {f"patient-{n}.json": build().bundle() for n, build in enumerate(PATIENTS, 1)}


def load_fixture(number: int) -> list[Resource]:
    """The resources of tests/cds_hooks/synthea/patient-<number>.json."""
    bundle = json.loads((FIXTURES / f"patient-{number}.json").read_text(encoding="utf-8"))
    return [entry["resource"] for entry in bundle["entry"]]


def write_fixtures(directory: Path = FIXTURES) -> None:
    for name, bundle in fixture_bundles().items():
        text = json.dumps(bundle, indent=1, ensure_ascii=False) + "\n"
        (directory / name).write_text(text, encoding="utf-8")


def _long_visit(record: SyntheaRecord, when: datetime, years_in: float) -> Iterator[None]:
    """One visit's observations, yielded one at a time so the caller can stop at a count."""
    rng = record.rng
    # BMI drifts up over the years, as it does in Synthea's weight-gain model.
    record.vital("39156-5", round(25.0 + 0.35 * years_in + rng.uniform(-0.5, 0.5), 1), when)
    yield
    record.vital("72514-3", rng.randint(3, 8), when)
    yield
    record.blood_pressure(rng.randint(110, 150), rng.randint(70, 95), when)
    yield
    record.vital("8867-4", rng.randint(58, 96), when)
    yield
    record.vital("29463-7", round(rng.uniform(70.0, 90.0), 1), when)
    yield
    for code in rng.sample(sorted(LABS), k=rng.randint(3, 7)):
        low, high = LABS[code][2]
        record.lab(code, round(rng.uniform(low, high), 2), when)
        yield


def long_followed_patient(patient_id: str, observations: int = 3000,
                          years: int = 15) -> list[Resource]:
    """A patient followed `years` years for chronic low back pain, with `observations` results.

    Deterministic: the same arguments give the same resources. Visits fall at random days
    over the span ending before REFERENCE_DAY; each holds BMI, pain, blood pressure, heart
    rate, weight and a few labs of various LOINC codes.
    """
    record = SyntheaRecord(patient_id, seed=f"long:{patient_id}:{observations}:{years}")
    start = REFERENCE_DAY - timedelta(days=365 * years)
    record.patient("Long", "Follow", "female", (start - timedelta(days=365 * 40)).date()
                   .isoformat())
    back = record.condition(LOW_BACK_PAIN, start + timedelta(days=30))
    record.medication(NAPROXEN, start + timedelta(days=30), "active", back)
    header = len(record.resources)
    span_minutes = (REFERENCE_DAY - timedelta(days=1) - start) // timedelta(minutes=1)
    while len(record.resources) - header < observations:
        when = start + timedelta(minutes=record.rng.randrange(span_minutes))
        years_in = (when - start).days / 365
        for _ in _long_visit(record, when, years_in):
            if len(record.resources) - header >= observations:
                break
    return record.resources


if __name__ == "__main__":
    write_fixtures()
