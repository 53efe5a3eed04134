"""Describe every field of a patient presentation, and derive the engine's view of one.

This registry is the single source for the request schema (`schemas.py`) and for the rule
loader's checks (`loader.py`): a rule that names a field or value not listed here is refused
at start-up, so a typo can never silently become a condition that is always false.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BOOL = "bool"
INT = "int"
NUMBER = "number"
ENUM = "enum"
ENUM_LIST = "enum_list"


@dataclass(frozen=True)
class FieldSpec:
    """One presentation field: its type, allowed values or range, and whether it is required."""

    kind: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False

    def accepts(self, value: Any) -> bool:
        """Tell whether a rule may compare this field with `value` (type and range)."""
        if self.kind == BOOL:
            return isinstance(value, bool)
        if self.kind in (INT, NUMBER):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            return self.minimum <= value <= self.maximum  # also False for NaN
        return isinstance(value, str) and value in self.choices


def _bools(section: str, *names: str) -> dict[str, FieldSpec]:
    return {f"{section}.{name}": FieldSpec(BOOL) for name in names}


SITES = ("low_back", "hip")
BOTHERSOMENESS = ("not_at_all", "slightly", "moderately", "very_much", "extremely")
START_BACK_ITEMS = (
    "leg_pain",
    "neck_or_shoulder_pain",
    "walks_short_distances_only",
    "dresses_slowly",
    "activity_unsafe",
    "worrying_thoughts",
    "catastrophising",
    "low_mood",
)
# Items 5-9 of the STarT Back tool form its psychosocial (distress) subscale (Hill 2011).
START_BACK_DISTRESS_ITEMS = ("activity_unsafe", "worrying_thoughts", "catastrophising", "low_mood")
START_BACK_BOTHERSOME = ("very_much", "extremely")

INPUT_FIELDS: dict[str, FieldSpec] = {
    "patient.age": FieldSpec(INT, minimum=0, maximum=120, required=True),
    "patient.sex": FieldSpec(ENUM, choices=("female", "male", "other", "unknown")),
    "patient.pregnant": FieldSpec(BOOL),
    "patient.bmi": FieldSpec(NUMBER, minimum=10, maximum=80),
    "pain.sites": FieldSpec(ENUM_LIST, choices=SITES, required=True),
    "pain.duration_days": FieldSpec(INT, minimum=0, maximum=36500, required=True),
    "pain.onset": FieldSpec(ENUM, choices=("sudden", "gradual")),
    "pain.course": FieldSpec(ENUM, choices=("improving", "stable", "worsening")),
    "pain.severity": FieldSpec(INT, minimum=0, maximum=10),
    "pain.radiation": FieldSpec(ENUM, choices=("none", "buttock", "thigh", "below_knee")),
    "pain.leg_symptoms": FieldSpec(ENUM, choices=("none", "unilateral", "bilateral")),
    "pain.hip_region": FieldSpec(ENUM, choices=("groin", "lateral", "posterior")),
    **_bools("pain", "mechanical", "night_pain"),
    "pain.morning_stiffness_minutes": FieldSpec(INT, minimum=0, maximum=1440),
    **_bools("pain", "improves_with_exercise", "neurogenic_claudication"),
    "history.trauma": FieldSpec(ENUM, choices=("none", "minor", "major")),
    **_bools(
        "history",
        "fall",
        "cancer",
        "unexplained_weight_loss",
        "fever",
        "iv_drug_use",
        "immunosuppression",
        "long_term_corticosteroids",
        "osteoporosis",
        "recent_bacterial_infection",
        "prior_spine_surgery",
        "prior_hip_fracture_or_dislocation",
    ),
    **_bools("neuro", "saddle_anaesthesia", "urinary_retention", "bladder_or_bowel_incontinence"),
    "neuro.weakness": FieldSpec(ENUM, choices=("none", "stable", "progressive")),
    **_bools("neuro", "foot_drop", "sensory_deficit"),
    "neuro.straight_leg_raise": FieldSpec(ENUM, choices=("positive", "negative")),
    **_bools(
        "exam",
        "spinal_tenderness",
        "hip_rotation_pain",
        "hip_range_reduced",
        "greater_trochanter_tenderness",
        "unable_to_bear_weight",
        "leg_shortened_externally_rotated",
        "hot_swollen_joint",
        "hip_clicking_or_locking",
    ),
    **_bools(
        "associated", "abdominal_pain", "nausea_vomiting", "urinary_symptoms",
        "pulsatile_abdominal_mass",
    ),
    **_bools(
        "comorbidities",
        "gi_ulcer_or_bleed",
        "chronic_kidney_disease",
        "cardiovascular_disease",
        "heart_failure",
        "anticoagulant",
        "nsaid_hypersensitivity",
        "liver_disease",
    ),
    # Conditions a clinician has recorded as diagnosed or suspected in this episode
    # (confirmed, provisional or differential): what an EHR problem list says. False means
    # ruled out; the rules act only on true.
    **_bools(
        "diagnoses",
        "cauda_equina_syndrome",
        "vertebral_fracture",
        "spinal_infection",
        "hip_fracture",
        "septic_arthritis",
    ),
    "care.conservative_care_weeks": FieldSpec(INT, minimum=0, maximum=520),
    "care.intervention_candidate": FieldSpec(BOOL),
    **_bools("start_back", *START_BACK_ITEMS),
    "start_back.bothersomeness": FieldSpec(ENUM, choices=BOTHERSOMENESS),
}

# Values computed from the input by plain arithmetic before the engine runs. They carry no
# clinical judgement (thresholds live in the rules); the engine cannot do arithmetic itself.
DERIVED_FIELDS: dict[str, FieldSpec] = {
    "derived.age_at_onset": FieldSpec(INT, minimum=-100, maximum=120),
    "start_back.total": FieldSpec(INT, minimum=0, maximum=9),
    "start_back.distress": FieldSpec(INT, minimum=0, maximum=5),
}

RULE_FIELDS: dict[str, FieldSpec] = {**INPUT_FIELDS, **DERIVED_FIELDS}

SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(path.split(".")[0] for path in INPUT_FIELDS))

# durable-rules segfaults on facts with about 253 or more flattened properties; the
# registry bounds a presentation far below that, and this guard keeps it so.
MAX_FACT_PROPERTIES = 200
assert len(RULE_FIELDS) + 8 < MAX_FACT_PROPERTIES


def lookup(presentation: dict[str, Any], path: str) -> Any:
    """Return the value at a dotted path of a nested presentation, or None when unknown."""
    node: Any = presentation
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def derive(presentation: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of a validated presentation with the derived fields added."""
    view = {section: dict(values) for section, values in presentation.items()}
    years_in_pain = presentation["pain"]["duration_days"] // 365
    view["derived"] = {"age_at_onset": presentation["patient"]["age"] - years_in_pain}
    start_back = view.get("start_back")
    if start_back:
        bothersome = int(start_back["bothersomeness"] in START_BACK_BOTHERSOME)
        start_back["total"] = sum(start_back[item] for item in START_BACK_ITEMS) + bothersome
        start_back["distress"] = (
            sum(start_back[item] for item in START_BACK_DISTRESS_ITEMS) + bothersome
        )
    return view
