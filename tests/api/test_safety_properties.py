"""Safety properties over generated presentations, through the HTTP API.

Presentations are drawn from the same field registry as the schema, so every field and value
the contract allows can appear, and any field can be left unknown.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.presentation import BOOL, ENUM, ENUM_LIST, INPUT_FIELDS, INT, START_BACK_ITEMS

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

CAUDA_EQUINA_FINDINGS = (
    "neuro.saddle_anaesthesia", "neuro.urinary_retention", "neuro.bladder_or_bowel_incontinence",
)
NSAID_CONTRAINDICATIONS = (
    "comorbidities.gi_ulcer_or_bleed", "comorbidities.chronic_kidney_disease",
    "comorbidities.heart_failure", "comorbidities.cardiovascular_disease",
    "comorbidities.anticoagulant", "comorbidities.nsaid_hypersensitivity",
    "comorbidities.liver_disease", "patient.pregnant",
)
# Findings that are red flags whatever else is present (the brief's table).
UNCONDITIONAL_RED_FLAGS = CAUDA_EQUINA_FINDINGS + (
    "neuro.foot_drop", "history.cancer", "history.fever",
)
# Neurological emergencies: red flags whatever the painful site.
SITE_INDEPENDENT_RED_FLAGS = CAUDA_EQUINA_FINDINGS + ("neuro.foot_drop",)
BACKED_SECTIONS = ("suspected_conditions", "treatments", "referrals", "avoid")


def _value(spec) -> st.SearchStrategy[Any]:
    if spec.kind == BOOL:
        return st.booleans()
    if spec.kind == ENUM:
        return st.sampled_from(spec.choices)
    if spec.kind == INT:
        return st.integers(int(spec.minimum), int(spec.maximum))
    return st.floats(spec.minimum, spec.maximum, allow_nan=False) | st.integers(
        int(spec.minimum), int(spec.maximum))


def _section(section: str, sites: st.SearchStrategy) -> st.SearchStrategy[dict[str, Any]]:
    required, optional = {}, {}
    for path, spec in INPUT_FIELDS.items():
        owner, name = path.split(".")
        if owner != section:
            continue
        strategy = sites if spec.kind == ENUM_LIST else _value(spec)
        (required if spec.required else optional)[name] = strategy
    return st.fixed_dictionaries(required, optional=optional)


ANY_SITES = st.sampled_from([["low_back"], ["hip"], ["low_back", "hip"], ["hip", "low_back"]])


def presentations(sites: st.SearchStrategy = ANY_SITES) -> st.SearchStrategy[dict[str, Any]]:
    """Valid presentations with any subset of optional fields (unknown = absent)."""
    sections = {s: _section(s, sites) for s in dict.fromkeys(p.split(".")[0]
                                                             for p in INPUT_FIELDS)}
    start_back = st.fixed_dictionaries(
        {item: st.booleans() for item in START_BACK_ITEMS}
        | {"bothersomeness": _value(INPUT_FIELDS["start_back.bothersomeness"])})
    optional = {name: strategy for name, strategy in sections.items()
                if name not in ("patient", "pain", "start_back")}
    optional["start_back"] = start_back
    return st.fixed_dictionaries({"patient": sections["patient"], "pain": sections["pain"]},
                                 optional=optional)


def _given(presentation: dict[str, Any], path: str) -> Any:
    section, name = path.split(".")
    return presentation.get(section, {}).get(name)


def _assess(app, presentation: dict[str, Any]) -> dict[str, Any]:
    response = app.test_client().post("/v1/assessments", json=presentation)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


@pytest.fixture(scope="module")
def catalog(app) -> dict[str, Any]:
    client = app.test_client()
    rules = {rule["id"] for rule in client.get("/v1/rules").json["rules"]}
    citations = {c["id"] for c in client.get("/v1/citations").json["citations"]}
    return {"rules": rules, "citations": citations}


BACK_SITES = st.sampled_from([["low_back"], ["low_back", "hip"]])
HIP_SITES = st.sampled_from([["hip"], ["low_back", "hip"]])
HIP_EMERGENCIES = {
    "hip_fracture": [("history.fall", "exam.unable_to_bear_weight"),
                     ("exam.leg_shortened_externally_rotated",)],
    "septic_arthritis": [("exam.hot_swollen_joint",),
                         ("history.fever", "exam.unable_to_bear_weight")],
}


@SETTINGS
@given(presentation=presentations(HIP_SITES),
       emergency=st.sampled_from([(c, f) for c, ways in HIP_EMERGENCIES.items() for f in ways]))
def test_suspected_hip_fracture_or_septic_joint_is_always_an_emergency(app, presentation,
                                                                       emergency):
    condition, findings = emergency
    for finding in findings:
        section, name = finding.split(".")
        presentation.setdefault(section, {})[name] = True
    result = _assess(app, presentation)
    assert result["urgency"] == "emergency"
    suspected = {c["code"]: c["urgency"] for c in result["suspected_conditions"]}
    assert suspected.get(condition) == "emergency"
    assert result["imaging"]["timing"] == "immediate"
    hip = next(c for c in result["classification"] if c["site"] == "hip")
    assert hip["category"] == "serious_pathology_suspected"
    assert not {t["code"] for t in result["treatments"]} - {"joint_aspiration"}


@SETTINGS
@given(presentation=presentations(ANY_SITES))
def test_cauda_equina_finding_is_an_emergency_with_immediate_imaging(app, presentation):
    """Whatever the painful site: saddle anaesthesia with hip pain is still an emergency."""
    if not any(_given(presentation, f) is True for f in CAUDA_EQUINA_FINDINGS):
        presentation.setdefault("neuro", {})["saddle_anaesthesia"] = True
    result = _assess(app, presentation)
    assert result["urgency"] == "emergency"
    assert "cauda_equina_syndrome" in {c["code"] for c in result["suspected_conditions"]}
    assert result["imaging"]["indicated"] is True
    assert result["imaging"]["timing"] == "immediate"
    assert "emergency_department" in {r["code"] for r in result["referrals"]}


@SETTINGS
@given(presentation=presentations())
def test_red_flags_reach_the_output_and_never_give_self_care(app, presentation):
    result = _assess(app, presentation)
    back = "low_back" in presentation["pain"]["sites"]
    given_flags = {f for f in UNCONDITIONAL_RED_FLAGS
                   if (back or f in SITE_INDEPENDENT_RED_FLAGS) and _given(presentation, f) is True}
    assert given_flags <= {flag["field"] for flag in result["red_flags"]}
    if result["red_flags"] or given_flags:
        assert result["urgency"] != "self_care"
    ranks = ["emergency", "urgent", "routine", "self_care"]
    for flag in result["red_flags"]:
        assert flag["conditions"], flag
        assert ranks.index(result["urgency"]) <= ranks.index(flag["urgency"])
    for condition in result["suspected_conditions"]:
        assert ranks.index(result["urgency"]) <= ranks.index(condition["urgency"])


@SETTINGS
@given(presentation=presentations(), contraindication=st.sampled_from(NSAID_CONTRAINDICATIONS))
def test_a_contraindication_never_yields_an_nsaid(app, presentation, contraindication):
    section, name = contraindication.split(".")
    presentation.setdefault(section, {})[name] = True
    result = _assess(app, presentation)
    assert "oral_nsaid" not in {t["code"] for t in result["treatments"]}
    nsaid_avoid = [a for a in result["avoid"] if a["code"] == "oral_nsaid"]
    if nsaid_avoid:
        assert contraindication in nsaid_avoid[0]["contraindications"]


@SETTINGS
@given(presentation=presentations())
def test_every_conclusion_is_reasoned_and_every_citation_resolves(app, catalog, presentation):
    result = _assess(app, presentation)
    cited = {c["id"] for c in result["citations"]}
    for reason in result["reasons"]:
        assert reason["rule"] in catalog["rules"]
        assert reason["citations"], reason
        assert set(reason["citations"]) <= cited <= catalog["citations"]
    concluded = {reason["conclusion"] for reason in result["reasons"]}
    for section in BACKED_SECTIONS:
        for entry in result[section]:
            assert f"{section}.{entry['code']}" in concluded, (section, entry["code"])
    for entry in result["classification"]:
        assert f"classification.{entry['site']}" in concluded
    assert {"urgency", "imaging", "duration_category"} <= concluded
    assert [step["seq"] for step in result["trace"]] == list(range(1, len(result["trace"]) + 1))
    assert {step["rule"] for step in result["trace"]} <= catalog["rules"]


@SETTINGS
@given(presentation=presentations(BACK_SITES))
def test_unanswered_red_flag_screens_are_reported_missing(app, presentation):
    result = _assess(app, presentation)
    missing = {m["field"] for m in result["missing_information"]}
    for field in CAUDA_EQUINA_FINDINGS + ("history.cancer", "history.fever"):
        if _given(presentation, field) is None:
            assert field in missing
        else:
            assert field not in missing
    if any(m["screen"] == "red_flags" for m in result["missing_information"]):
        assert result["urgency"] != "self_care"
