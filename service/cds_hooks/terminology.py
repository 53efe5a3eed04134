"""Code systems and the codes the CDS Hooks services read and write.

Conditions, medications and allergies are read by value-set membership (valuesets/). The
standard codes below (SNOMED CT, LOINC) are those an Observation is read by, listed only
where the concept means the same as the contract field; each was checked against published
FHIR profiles and value sets. Every
contract field also has a code in this service's own code system (the field path itself),
so an intake form or EHR can always record any answer unambiguously.
"""

from __future__ import annotations

from dataclasses import dataclass

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
UCUM = "http://unitsofmeasure.org"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

# This service's own code systems. The host is a placeholder (.example is reserved): a
# deployment keeps these names, since EHR mappings and stored ratings refer to them.
_BASE = "https://msk-decision-support.example/fhir/CodeSystem"
FIELD_SYSTEM = f"{_BASE}/presentation-field"  # code: a contract field path
ANSWER_SYSTEM = f"{_BASE}/presentation-answer"  # code: a contract enum value
TREATMENT_SYSTEM = f"{_BASE}/treatment"  # code: a treatment code of the vocabulary
RATING_SYSTEM = f"{_BASE}/acr-rating"  # the three ACR bands
TOPIC_SYSTEM = f"{_BASE}/card-topic"
OVERRIDE_REASON_SYSTEM = f"{_BASE}/override-reason"

# Argonaut "CDS Hooks for PAMA" (https://github.com/argonautproject/cds-hooks-for-pama).
PAMA_RATING_SYSTEM = "http://fhir.org/argonaut/CodeSystem/pama-rating"
PAMA_RATING_URL = "http://fhir.org/argonaut/Extension/pama-rating"
PAMA_CONSULT_ID_URL = "http://fhir.org/argonaut/Extension/pama-rating-consult-id"
PAMA_AUC_APPLIED_URL = "http://fhir.org/argonaut/Extension/pama-rating-auc-applied"
PAMA_QCDSM_URL = "http://fhir.org/argonaut/Extension/pama-rating-qcdsm-consulted"


@dataclass(frozen=True)
class Code:
    system: str
    code: str
    display: str

    def coding(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


# The codes the "data needed" card asks an EHR to record for the painful site. Every code of
# the pain value sets (valuesets/feeds.yaml) is read; these are their heads.
SITE_CODES: dict[tuple[str, str], str] = {
    (SNOMED, "279039007"): "low_back",  # Low back pain (finding)
    (SNOMED, "49218002"): "hip",  # Pain in hip (finding)
}
SITE_DISPLAYS = {"low_back": "Low back pain", "hip": "Pain in hip"}

# Standard codes equivalent to a contract field, read from a Condition or an Observation.
STANDARD_CODES: dict[str, tuple[Code, ...]] = {
    "patient.pregnant": (Code(SNOMED, "77386006", "Pregnancy"),),
    "patient.bmi": (Code(LOINC, "39156-5", "Body mass index (BMI) [Ratio]"),),
    "pain.severity": (
        Code(LOINC, "72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported"),),
    "history.cancer": (Code(SNOMED, "363346000", "Malignant neoplastic disease"),),
    "history.unexplained_weight_loss": (Code(SNOMED, "448765001", "Unintentional weight loss"),),
    "history.fever": (Code(SNOMED, "386661006", "Fever"),),
    "history.immunosuppression": (Code(SNOMED, "370388006", "Patient immunocompromised"),),
    "history.osteoporosis": (Code(SNOMED, "64859006", "Osteoporosis"),),
    "neuro.urinary_retention": (Code(SNOMED, "267064002", "Retention of urine"),),
    "comorbidities.heart_failure": (Code(SNOMED, "84114007", "Heart failure"),),
    "comorbidities.chronic_kidney_disease": (Code(SNOMED, "709044004", "Chronic kidney disease"),),
}

# Findings of the past that stay true once recorded, even when the Condition has resolved
# (a treated cancer is still a history of cancer). Every other yes/no finding describes the
# present: a resolved Condition means "not now", and an Observation from before this
# episode of pain says nothing about it.
HISTORY_FIELDS = frozenset({
    "history.cancer", "history.osteoporosis", "history.prior_spine_surgery",
    "history.prior_hip_fracture_or_dislocation",
    "history.iv_drug_use", "history.long_term_corticosteroids",
    "comorbidities.gi_ulcer_or_bleed", "comorbidities.chronic_kidney_disease",
    "comorbidities.cardiovascular_disease", "comorbidities.heart_failure",
    "comorbidities.nsaid_hypersensitivity",
})

# Findings about what led up to this episode (a fall or trauma before the pain began, a
# recent infection): a statement counts when made this episode or up to this many days
# before it began, never from years before (a fall in 2015 is not this episode's fall).
EPISODE_START_FIELDS = frozenset({"history.fall", "history.trauma",
                                  "history.recent_bacterial_infection"})
EPISODE_LEAD_IN_DAYS = 90

# Findings the contract defines as new: a current Condition that began well before this
# episode (urinary retention on the problem list since 2015) does not say they are new.
NEW_FINDINGS = frozenset({"neuro.saddle_anaesthesia", "neuro.urinary_retention",
                          "neuro.bladder_or_bowel_incontinence"})
NEW_WITHIN_DAYS = 30

ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"

# Observation.valueCodeableConcept codings that answer a yes/no finding.
YES_CODES = frozenset({(SNOMED, "52101004"), (SNOMED, "410515003"), (SNOMED, "410605003"),
                       (SNOMED, "373066001"), (LOINC, "LA33-6")})
NO_CODES = frozenset({(SNOMED, "2667000"), (SNOMED, "410516002"), (SNOMED, "410594000"),
                      (SNOMED, "373067005"), (LOINC, "LA32-8")})

# UCUM units accepted for the numeric fields, with the factor to the contract's unit.
UNITS: dict[str, dict[str, float]] = {
    "patient.bmi": {"kg/m2": 1},
    "pain.severity": {"{score}": 1, "1": 1},
    "pain.morning_stiffness_minutes": {"min": 1, "h": 60},
    "care.conservative_care_weeks": {"wk": 1},
}
