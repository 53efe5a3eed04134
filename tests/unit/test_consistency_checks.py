"""Each consistency check of tests/consistency.py can fail: a property built on it is no stub.

Every test takes a real response that meets the rule and breaks it the way a defect would.
"""

from __future__ import annotations

import copy

import pytest

from tests.conftest import assess as assess_via_api
from tests.consistency import (
    plan_problems,
    red_flag_problems,
    safety_netting_problems,
    self_care_problems,
    unanswered_partner_problems,
    unknown_problems,
    urgency_floor_problems,
)

SCREENED_BACK = {
    "patient": {"age": 38, "sex": "female"},
    "pain": {
        "sites": ["low_back"],
        "duration_days": 10,
        "onset": "gradual",
        "course": "stable",
        "radiation": "none",
        "leg_symptoms": "none",
        "mechanical": True,
        "night_pain": False,
    },
    "history": {
        "trauma": "none",
        "fall": False,
        "cancer": False,
        "unexplained_weight_loss": False,
        "fever": False,
        "iv_drug_use": False,
        "immunosuppression": False,
        "long_term_corticosteroids": False,
        "osteoporosis": False,
        "recent_bacterial_infection": False,
        "prior_spine_surgery": False,
    },
    "neuro": {
        "saddle_anaesthesia": False,
        "urinary_retention": False,
        "bladder_or_bowel_incontinence": False,
        "weakness": "none",
        "foot_drop": False,
        "sensory_deficit": False,
    },
    "exam": {"spinal_tenderness": False},
    "associated": {"abdominal_pain": False, "nausea_vomiting": False, "urinary_symptoms": False},
}
CANCER = copy.deepcopy(SCREENED_BACK)
CANCER["history"]["cancer"] = True


@pytest.fixture(scope="module")
def assess(app):
    # A copy each time: the tests break the response they are given.
    return lambda presentation: copy.deepcopy(assess_via_api(app, presentation))


@pytest.fixture(scope="module")
def findings(app):
    return app.extensions["assessor"].catalog.red_flag_model["findings"]


def test_the_responses_used_meet_every_rule(assess, findings):
    for presentation in (SCREENED_BACK, CANCER):
        response = assess(presentation)
        assert urgency_floor_problems(response) == []
        assert self_care_problems(response) == []
        assert plan_problems(presentation, response) == []
        assert safety_netting_problems(presentation, response) == []
        assert red_flag_problems(presentation, response, findings) == []
    assert assess(SCREENED_BACK)["urgency"] == "self_care"
    assert assess(CANCER)["urgency"] == "urgent"


def test_urgency_below_a_suspected_condition_or_its_imaging_fails(assess):
    response = assess(CANCER)
    response["urgency"] = "routine"
    problems = urgency_floor_problems(response)
    assert any("suspected_conditions spinal_malignancy" in p for p in problems)
    assert any("imaging timing urgent" in p for p in problems)
    assert any("referrals oncology" in p for p in problems)


def test_self_care_with_imaging_a_referral_or_a_red_flag_fails(assess):
    response = assess(CANCER)
    response["urgency"] = "self_care"
    problems = self_care_problems(response)
    assert len(problems) >= 4, problems


def test_a_red_flag_not_reported_or_with_self_care_fails(assess, findings):
    response = assess(CANCER)
    response["red_flags"] = []
    assert red_flag_problems(CANCER, response, findings) == [
        "red-flag finding history.cancer=True not reported"
    ]
    response["urgency"] = "self_care"
    assert len(red_flag_problems(CANCER, response, findings)) == 2


def test_an_urgent_work_up_without_a_plan_or_the_avoid_list_fails(assess):
    response = assess(CANCER)
    response["treatments"] = []
    response["avoid"] = [
        a for a in response["avoid"] if a["code"] not in ("bed_rest", "spinal_manipulation")
    ]
    problems = plan_problems(CANCER, response)
    assert "urgency urgent and no treatment" in problems
    assert any("bed_rest not avoided" in p for p in problems)
    assert any("spinal manipulation not avoided" in p for p in problems)


def test_missing_safety_netting_fails(assess):
    sciatica = copy.deepcopy(SCREENED_BACK)
    sciatica["pain"].update(radiation="below_knee", leg_symptoms="unilateral")
    response = assess(sciatica)
    assert safety_netting_problems(sciatica, response) == []
    response["safety_netting"] = []
    problems = safety_netting_problems(sciatica, response)
    assert "no safety-netting advice" in problems
    assert "back pain with leg symptoms, yet no cauda equina warning" in problems


def test_unknown_safer_than_every_answer_fails(assess):
    raised, calm = assess(CANCER), assess(SCREENED_BACK)
    # Both answers raise malignancy; an unknown that raises nothing is safer than both.
    assert unknown_problems("history.fever", calm, {True: raised, False: raised}) != []
    # One answer raises it, the other does not: nothing is owed.
    assert unknown_problems("history.cancer", calm, {True: raised, False: calm}) == []


def test_an_undecided_red_flag_condition_not_asked_fails(assess, app):
    model = app.extensions["assessor"].catalog.red_flag_model
    unable = copy.deepcopy(SCREENED_BACK)
    unable["patient"]["age"] = 50
    unable["exam"]["unable_to_bear_weight"] = True
    answered = {}
    for value in (True, False):
        variant = copy.deepcopy(unable)
        variant["history"]["fall"] = value
        answered[value] = assess(variant)
    del unable["history"]["fall"]
    unknown = assess(unable)
    assert "hip_fracture" in {c["code"] for c in answered[True]["suspected_conditions"]}
    assert unanswered_partner_problems("history.fall", unknown, answered, model) == []
    unknown["missing_information"] = [
        m for m in unknown["missing_information"] if m["field"] != "history.fall"
    ]
    assert unanswered_partner_problems("history.fall", unknown, answered, model) == [
        "history.fall=True would raise hip_fracture; history.fall is not listed as missing"
    ]
