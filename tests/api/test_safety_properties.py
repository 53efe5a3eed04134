"""Safety properties over generated presentations, through the HTTP API.

Presentations are drawn from the same field registry as the schema (tests/strategies.py), so
every field and value the contract allows can appear, and any field can be left unknown.
The consistency rules of the contract have their own module (test_consistency_properties.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import assess
from tests.strategies import ANY_SITES, BACK_SITES, HIP_SITES, given_value, presentations

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
BACKED_SECTIONS = ("suspected_conditions", "treatments", "referrals", "avoid")


@pytest.fixture(scope="module")
def catalog(app) -> dict[str, Any]:
    client = app.test_client()
    rules = {rule["id"] for rule in client.get("/v1/rules").json["rules"]}
    citations = {c["id"] for c in client.get("/v1/citations").json["citations"]}
    return {"rules": rules, "citations": citations}


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
    result = assess(app, presentation)
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
    if not any(given_value(presentation, f) is True for f in CAUDA_EQUINA_FINDINGS):
        presentation.setdefault("neuro", {})["saddle_anaesthesia"] = True
    result = assess(app, presentation)
    assert result["urgency"] == "emergency"
    assert "cauda_equina_syndrome" in {c["code"] for c in result["suspected_conditions"]}
    assert result["imaging"]["indicated"] is True
    assert result["imaging"]["timing"] == "immediate"
    assert "emergency_department" in {r["code"] for r in result["referrals"]}


@SETTINGS
@given(presentation=presentations(), contraindication=st.sampled_from(NSAID_CONTRAINDICATIONS))
def test_a_contraindication_never_yields_an_nsaid(app, presentation, contraindication):
    section, name = contraindication.split(".")
    presentation.setdefault(section, {})[name] = True
    result = assess(app, presentation)
    assert "oral_nsaid" not in {t["code"] for t in result["treatments"]}
    nsaid_avoid = [a for a in result["avoid"] if a["code"] == "oral_nsaid"]
    if nsaid_avoid:
        assert contraindication in nsaid_avoid[0]["contraindications"]


@SETTINGS
@given(presentation=presentations())
def test_every_conclusion_is_reasoned_and_every_citation_resolves(app, catalog, presentation):
    result = assess(app, presentation)
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
    result = assess(app, presentation)
    missing = {m["field"] for m in result["missing_information"]}
    for field in CAUDA_EQUINA_FINDINGS + ("history.cancer", "history.fever"):
        if given_value(presentation, field) is None:
            assert field in missing
        else:
            assert field not in missing
    if any(m["screen"] == "red_flags" for m in result["missing_information"]):
        assert result["urgency"] != "self_care"
