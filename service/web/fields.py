"""The intake form's model, generated from the field registry so it cannot drift from it.

Every field of `presentation.INPUT_FIELDS` becomes one control whose id and name are its
dotted path (so a 422's `errors` attach beside it); its type, range and choices come from the
registry. Only the words a clinician reads (labels, hints, group headings) are written here,
and a field with no label written still appears, with a label made from its name.

Which findings form the red-flag screen is read from the rules themselves: a finding that a
rule raises as a red flag, or whose absence a rule reports as an open red-flag screen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..presentation import BOOL, ENUM, ENUM_LIST, INPUT_FIELDS, INT, NUMBER, FieldSpec

# path: (label, hint). Wording follows ../shared/contract.md ("meaning").
LABELS: dict[str, tuple[str, str]] = {
    "patient.age": ("Age", "Years."),
    "patient.sex": ("Sex", ""),
    "patient.pregnant": ("Pregnant", ""),
    "patient.bmi": ("Body mass index", "kg/m², 10 to 80."),
    "pain.sites": ("Where it hurts", "Buttock pain counts as low back, groin pain as hip."),
    "pain.duration_days": ("Duration of this episode", "Days since this episode began."),
    "pain.onset": ("Onset", ""),
    "pain.course": ("Course", "Over the last week or two."),
    "pain.severity": ("Severity", "Numeric rating scale, 0 (none) to 10 (worst imaginable)."),
    "pain.radiation": ("Radiation", "Furthest spread of leg pain."),
    "pain.leg_symptoms": ("Leg symptoms", "Pain, numbness or tingling in the legs."),
    "pain.hip_region": ("Where hip pain is felt", ""),
    "pain.mechanical": ("Mechanical pain", "Changes with movement or posture."),
    "pain.night_pain": ("Night or rest pain", "Pain at rest or at night, not eased by position."),
    "pain.morning_stiffness_minutes": ("Morning stiffness", "Minutes."),
    "pain.improves_with_exercise": ("Improves with exercise", ""),
    "pain.neurogenic_claudication": (
        "Neurogenic claudication", "Leg pain on walking, eased by sitting or bending forward."),
    "history.trauma": (
        "Trauma", "Minor: a fall from standing or less. Major: road traffic collision, "
                  "fall from height."),
    "history.fall": ("Fall before the pain began", ""),
    "history.cancer": ("History of cancer", ""),
    "history.unexplained_weight_loss": ("Unexplained weight loss", ""),
    "history.fever": ("Fever", ""),
    "history.iv_drug_use": ("Intravenous drug use", ""),
    "history.immunosuppression": ("Immunosuppression", ""),
    "history.long_term_corticosteroids": ("Long-term corticosteroids", ""),
    "history.osteoporosis": ("Osteoporosis", ""),
    "history.recent_bacterial_infection": ("Recent bacterial infection", ""),
    "history.prior_spine_surgery": ("Previous spine surgery", ""),
    "history.prior_hip_fracture_or_dislocation": (
        "Previous hip fracture or dislocation", "Of the painful hip."),
    "neuro.saddle_anaesthesia": (
        "Saddle anaesthesia", "Numbness of the groin, buttocks or inner thighs."),
    "neuro.urinary_retention": ("Urinary retention", "New difficulty passing urine."),
    "neuro.bladder_or_bowel_incontinence": ("Bladder or bowel incontinence", "New."),
    "neuro.weakness": ("Leg weakness", "Motor weakness in the legs."),
    "neuro.foot_drop": ("Foot drop", ""),
    "neuro.sensory_deficit": ("Sensory deficit", "Dermatomal numbness."),
    "neuro.straight_leg_raise": ("Straight leg raise", "Not recorded = not done."),
    "exam.spinal_tenderness": ("Spinal tenderness", "To percussion over the spine."),
    "exam.hip_rotation_pain": ("Pain on hip rotation", ""),
    "exam.hip_range_reduced": ("Reduced hip range of movement", ""),
    "exam.greater_trochanter_tenderness": ("Greater trochanter tenderness", ""),
    "exam.unable_to_bear_weight": ("Unable to bear weight", ""),
    "exam.leg_shortened_externally_rotated": ("Leg shortened and externally rotated", ""),
    "exam.hot_swollen_joint": ("Hot, swollen joint", ""),
    "exam.hip_clicking_or_locking": ("Hip clicking or locking", ""),
    "associated.abdominal_pain": ("Abdominal pain", ""),
    "associated.nausea_vomiting": ("Nausea or vomiting", ""),
    "associated.urinary_symptoms": ("Urinary symptoms", "Dysuria, haematuria or flank pain."),
    "associated.pulsatile_abdominal_mass": (
        "Pulsatile abdominal mass", "Felt on abdominal examination."),
    "comorbidities.gi_ulcer_or_bleed": ("Gastrointestinal ulcer or bleed", ""),
    "comorbidities.chronic_kidney_disease": ("Chronic kidney disease", ""),
    "comorbidities.cardiovascular_disease": ("Cardiovascular disease", ""),
    "comorbidities.heart_failure": ("Heart failure", ""),
    "comorbidities.anticoagulant": ("Takes an anticoagulant", ""),
    "comorbidities.nsaid_hypersensitivity": ("NSAID hypersensitivity", ""),
    "comorbidities.liver_disease": ("Liver disease", ""),
    "diagnoses.cauda_equina_syndrome": (
        "Cauda equina syndrome diagnosed or suspected", "By a clinician, in this episode."),
    "diagnoses.vertebral_fracture": (
        "Vertebral fracture diagnosed or suspected", "By a clinician, in this episode."),
    "diagnoses.spinal_infection": (
        "Spinal infection diagnosed or suspected",
        "Discitis, vertebral osteomyelitis or epidural abscess, in this episode."),
    "diagnoses.hip_fracture": (
        "Hip fracture diagnosed or suspected", "By a clinician, in this episode."),
    "diagnoses.septic_arthritis": (
        "Septic arthritis of the hip diagnosed or suspected", "By a clinician, in this episode."),
    "care.conservative_care_weeks": (
        "Guideline-based care already tried", "Weeks, for this episode."),
    "care.intervention_candidate": (
        "Would consider surgery or an injection", ""),
    # The STarT Back items (Hill 2008), as the patient answers them, for the last 2 weeks.
    "start_back.leg_pain": ("Back pain has spread down the leg(s)", "Item 1."),
    "start_back.neck_or_shoulder_pain": ("Pain in the shoulder or neck", "Item 2."),
    "start_back.walks_short_distances_only": (
        "Has only walked short distances because of back pain", "Item 3."),
    "start_back.dresses_slowly": (
        "Has dressed more slowly than usual because of back pain", "Item 4."),
    "start_back.activity_unsafe": (
        "Thinks it is not safe for someone with this condition to be physically active",
        "Item 5."),
    "start_back.worrying_thoughts": (
        "Worrying thoughts have been going through their mind a lot of the time", "Item 6."),
    "start_back.catastrophising": (
        "Feels the back pain is terrible and will never get any better", "Item 7."),
    "start_back.low_mood": (
        "Has not enjoyed all the things they used to enjoy", "Item 8."),
    "start_back.bothersomeness": (
        "Overall, how bothersome the back pain has been", "Item 9."),
}

# Labels of enum values whose code does not read well as words.
VALUE_LABELS: dict[str, str] = {
    "low_back": "Low back (or buttock)",
    "hip": "Hip (or groin)",
    "below_knee": "Below the knee",
    "not_at_all": "Not at all",
    "very_much": "Very much",
    "none": "None",
}

# Units of number fields, shown after their values in the catalog and the trace.
UNITS: dict[str, str] = {
    "patient.age": "years",
    "pain.duration_days": "days",
    "pain.morning_stiffness_minutes": "minutes",
    "care.conservative_care_weeks": "weeks",
    "derived.age_at_onset": "years",
}

DERIVED_LABELS: dict[str, str] = {
    "derived.age_at_onset": "Age at onset (derived)",
    "start_back.total": "STarT Back total score (derived)",
    "start_back.distress": "STarT Back distress subscore (derived)",
}


@dataclass(frozen=True)
class Group:
    key: str
    title: str
    intro: str = ""


# The order a clinician takes a history in. The red-flag screen heads the findings.
GROUPS: tuple[Group, ...] = (
    Group("patient", "Patient"),
    Group("pain", "Pain"),
    Group("red_flags", "Red-flag screen",
          "Ask every question. A question not asked stays unknown: it is never taken as "
          "“no”, and the screen stays open."),
    Group("history", "Other history"),
    Group("examination", "Examination"),
    Group("comorbidities", "Comorbidities and medicines",
          "Checked before any drug is suggested."),
    Group("diagnoses", "Diagnoses already made",
          "Record only what a clinician has diagnosed or suspects in this episode."),
    Group("care", "Care so far"),
    Group("start_back", "STarT Back screening tool",
          "Answer all nine items or none: the patient's answers for the last 2 weeks."),
    Group("other", "Other findings"),
)

# Where a field goes when it is not a red-flag screen: by the section of its path.
SECTION_GROUPS: dict[str, str] = {
    "patient": "patient",
    "pain": "pain",
    "history": "history",
    "associated": "history",
    "neuro": "examination",
    "exam": "examination",
    "comorbidities": "comorbidities",
    "diagnoses": "diagnoses",
    "care": "care",
    "start_back": "start_back",
}

# Sections whose findings join the red-flag fieldset when a rule screens them; patient and
# pain descriptors stay where a clinician records them (tagged as red-flag screens there).
RED_FLAG_SECTIONS = ("history", "neuro", "exam", "associated")
RED_FLAG_SUBGROUPS: dict[str, str] = {
    "neuro": "Cauda equina and neurological symptoms",
    "history": "History",
    "associated": "Associated symptoms",
    "exam": "On examination",
}


def humanise(code: str) -> str:
    """`below_knee` -> `Below knee`: the fallback label of a code."""
    words = code.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def field_label(path: str) -> str:
    if path in LABELS:
        return LABELS[path][0]
    if path in DERIVED_LABELS:
        return DERIVED_LABELS[path]
    return humanise(path.split(".")[-1])


def value_label(value: str) -> str:
    return VALUE_LABELS.get(value, humanise(value))


@dataclass(frozen=True)
class FormField:
    path: str
    spec: FieldSpec
    label: str
    hint: str
    red_flag: bool
    # The rules list this field as leaving the red-flag screen open while unanswered: what
    # the form's counter counts and the result's "red flags not excluded" lists, one set.
    screen: bool = False

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def choices(self) -> list[tuple[str, str]]:
        return [(value, value_label(value)) for value in self.spec.choices]

    @property
    def step(self) -> str:
        return "1" if self.spec.kind == INT else "any"

    def number(self, value: float | None) -> str:
        if value is None:
            return ""
        return str(int(value)) if float(value).is_integer() else str(value)


@dataclass
class FormGroup:
    group: Group
    fields: list[FormField] = field(default_factory=list)

    def subgroups(self) -> list[tuple[str, list[FormField]]]:
        """The red-flag screen's fields by section, in RED_FLAG_SUBGROUPS order."""
        order = list(RED_FLAG_SUBGROUPS)
        by_section: dict[str, list[FormField]] = {}
        for item in self.fields:
            by_section.setdefault(item.path.split(".")[0], []).append(item)
        ranked = sorted(by_section, key=lambda s: order.index(s) if s in order else len(order))
        return [(RED_FLAG_SUBGROUPS.get(s, humanise(s)), by_section[s]) for s in ranked]


@dataclass(frozen=True)
class RedFlagScreen:
    """What the rules say about red flags: fields whose absence leaves the red-flag screen
    open (`missing` with screen red_flags) and findings that raise a red flag (`red_flag`)."""

    screens: frozenset[str] = frozenset()
    findings: frozenset[str] = frozenset()

    @classmethod
    def from_rules(cls, rules: Iterable[Any]) -> RedFlagScreen:
        screens: set[str] = set()
        findings: set[str] = set()
        for rule in rules:
            for conclusion in rule.then:
                if conclusion.kind == "red_flag":
                    findings.add(conclusion.params["finding"])
                elif conclusion.kind == "missing" and conclusion.params["screen"] == "red_flags":
                    screens.add(conclusion.params["field"])
        known = set(INPUT_FIELDS)
        return cls(frozenset(screens & known), frozenset(findings & known))

    def in_fieldset(self, path: str) -> bool:
        """History, symptoms and examination findings the rules screen or flag."""
        return path.split(".")[0] in RED_FLAG_SECTIONS and (
            path in self.screens or path in self.findings)


def form_groups(red_flags: RedFlagScreen) -> list[FormGroup]:
    """Every registry field, once, in its group; groups in history-taking order.

    Fields of the red-flag fieldset are marked, and so are red-flag screens recorded in
    other groups (the onset or night pain of the pain history, say).
    """
    groups = {group.key: FormGroup(group) for group in GROUPS}
    for path, spec in INPUT_FIELDS.items():
        section = path.split(".")[0]
        in_fieldset = red_flags.in_fieldset(path)
        key = "red_flags" if in_fieldset else SECTION_GROUPS.get(section, "other")
        label, hint = LABELS.get(path, (field_label(path), ""))
        flagged = in_fieldset or path in red_flags.screens
        groups[key].fields.append(FormField(path, spec, label, hint, flagged,
                                            screen=path in red_flags.screens))
    return [group for group in groups.values() if group.fields]


def page_labels(vocabulary: Any | None) -> dict[str, Any]:
    """Labels the pages' scripts use to show codes as words (fields, values, vocabulary)."""
    fields = {path: field_label(path) for path in [*INPUT_FIELDS, *DERIVED_LABELS]}
    values: dict[str, str] = {}
    for spec in INPUT_FIELDS.values():
        values.update({value: value_label(value) for value in spec.choices})
    vocab: dict[str, Any] = {}
    if vocabulary is not None:
        def plain(section: Mapping[str, Any]) -> dict[str, str]:
            return {code: (entry["label"] if isinstance(entry, Mapping) else entry)
                    for code, entry in section.items()}
        vocab = {
            "urgency": plain(vocabulary.urgency),
            "imaging_timing": plain(vocabulary.imaging_timing),
            "imaging_rating": plain(vocabulary.imaging_rating),
            "duration_category": plain(vocabulary.duration_category),
            "classification": {site: plain(categories)
                               for site, categories in vocabulary.classification.items()},
            "conditions": plain(vocabulary.conditions),
            "imaging_procedures": plain(vocabulary.imaging_procedures),
            "treatments": plain(vocabulary.treatments),
            "referrals": plain(vocabulary.referrals),
            "avoid": plain(vocabulary.avoid),
        }
    return {"fields": fields, "values": values, "units": UNITS, "vocabulary": vocab}


def field_specs() -> list[dict[str, Any]]:
    """The registry as the intake script reads it, in order: path, kind, whether required,
    and the range of a number (for messages in clinicians' words).

    A list, not a mapping: Jinja's `tojson` sorts the keys of a mapping.
    """
    kinds = {BOOL: "bool", INT: "int", NUMBER: "number", ENUM: "enum", ENUM_LIST: "enum_list"}
    return [{"path": path, "kind": kinds[spec.kind], "required": spec.required,
             "minimum": spec.minimum, "maximum": spec.maximum}
            for path, spec in INPUT_FIELDS.items()]
