"""patient-view (msk-assessment): hook requests built from FHIR R4 for the public vignettes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.cds_hooks.terminology import FIELD_SYSTEM
from tests.cds_hooks.conftest import ALL_CASES, TODAY, VIGNETTES
from tests.cds_hooks.fhir_builder import fhir_record, hook_request
from tests.cds_hooks.shapes import shape_errors

URL = "/cds-services/msk-assessment"


def call(client, presentation: dict[str, Any], **changes: Any) -> dict[str, Any]:
    prefetch = fhir_record(presentation, TODAY)
    prefetch.update(changes)
    response = client.post(URL, json=hook_request("patient-view", prefetch))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert shape_errors("response", response.json) == []
    return response.json


def by_indicator(cards: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {"critical": [], "warning": [], "info": []}
    for card in cards:
        grouped[card["indicator"]].append(card)
    return grouped


def assert_complete(card: dict[str, Any]) -> None:
    """What the issue asks of every card."""
    assert card["uuid"] and len(card["summary"]) < 140
    assert card["detail"].strip()
    assert {"label", "url", "topic"} <= set(card["source"])
    assert card["links"] and all(link["url"].startswith("https://") for link in card["links"])


def test_acute_nonspecific_pain_gets_one_info_card_with_the_first_line_plan(hooks):
    cards = call(hooks, VIGNETTES["V01-acute-nonspecific"]["presentation"])["cards"]
    assert [card["indicator"] for card in cards] == ["info"]
    card = cards[0]
    assert_complete(card)
    assert card["summary"].startswith("Nonspecific low back pain (acute)")
    assert "**First-line plan:**" in card["detail"] and "Stay active" in card["detail"]
    assert "**Avoid:**" in card["detail"] and "Bed rest" in card["detail"]
    assert "**Why**" in card["detail"]
    assert any("nice.org.uk/guidance/ng59" in link["url"] for link in card["links"])


def test_the_info_card_tells_the_patient_what_to_watch_for(hooks):
    sciatica = VIGNETTES["V02-unilateral-sciatica"]["presentation"]
    [card] = call(hooks, sciatica)["cards"]
    detail = card["detail"]
    assert "**Safety-netting, tell the patient:**" in detail
    assert "cauda equina syndrome" in detail and "come back for a review" in detail.lower()


def test_a_red_flag_raising_no_condition_is_shown_for_review(hooks):
    night_pain = {**VIGNETTES["V01-acute-nonspecific"]["presentation"]}
    night_pain["pain"] = {**night_pain["pain"], "night_pain": True}
    [card] = call(hooks, night_pain)["cards"]
    assert "**Red flags needing clinical review**" in card["detail"]
    assert "Night or rest pain: yes" in card["detail"]


def test_saddle_anaesthesia_gets_a_critical_card_for_cauda_equina(hooks):
    cards = by_indicator(call(hooks, VIGNETTES["V03-saddle-anaesthesia"]["presentation"])["cards"])
    [critical] = cards["critical"]
    assert_complete(critical)
    assert "Cauda equina syndrome" in critical["summary"]
    assert "saddle anaesthesia" in critical["detail"]
    assert "Emergency department" in critical["detail"]
    assert critical["overrideReasons"]
    assert cards["warning"] == [] and len(cards["info"]) == 1
    assert "First-line plan" not in cards["info"][0]["detail"]  # no routine care in an emergency


def test_immunosuppressed_fever_gets_a_warning_card_for_spinal_infection(hooks):
    cards = by_indicator(call(hooks, VIGNETTES["V04-immunosuppressed-febrile"]["presentation"])
                         ["cards"])
    assert cards["critical"] == []
    [warning] = cards["warning"]
    assert_complete(warning)
    assert "Spinal infection" in warning["summary"]
    assert "Fever: yes" in warning["detail"] and "Immunosuppr" in warning["detail"]


def test_an_elderly_fall_on_the_hip_is_critical(hooks):
    cards = by_indicator(call(hooks, VIGNETTES["V12-hip-fall-elderly"]["presentation"])["cards"])
    [critical] = cards["critical"]
    assert "Hip fracture" in critical["summary"]
    assert critical["source"]["url"].startswith("https://")


def test_unasked_red_flags_are_shown_as_open_questions(hooks):
    cards = call(hooks, VIGNETTES["V10-not-screened"]["presentation"])["cards"]
    [card] = cards
    assert card["summary"].startswith("19 red-flag questions open")
    assert "- Saddle anaesthesia (red-flag screen): " in card["detail"]
    assert "unknown, never taken as no" in card["detail"]


def test_hip_osteoarthritis_is_classified_with_its_guidance(hooks):
    [card] = call(hooks, VIGNETTES["V11-hip-oa"]["presentation"])["cards"]
    assert_complete(card)
    assert "Pain from within the hip joint" in card["summary"]
    assert "Exercise therapy" in card["detail"]


@pytest.mark.parametrize("case", ALL_CASES, ids=[case["id"] for case in ALL_CASES])
def test_every_vignette_gets_cards_of_the_cds_hooks_shape_matching_its_urgency(hooks, case):
    cards = by_indicator(call(hooks, case["presentation"])["cards"])
    for card in [*cards["critical"], *cards["warning"], *cards["info"]]:
        assert_complete(card)
    assert len(cards["info"]) == 1
    urgency = case.get("expect", {}).get("urgency", [])
    if urgency == ["emergency"]:
        assert cards["critical"]
    if "emergency" not in urgency and "urgent" not in urgency and urgency:
        assert cards["critical"] == [] and cards["warning"] == []


def test_no_pain_condition_means_no_cards(hooks):
    presentation = VIGNETTES["V01-acute-nonspecific"]["presentation"]
    body = call(hooks, presentation, conditions=None)
    assert body == {"cards": []}


def test_unknown_age_or_onset_gives_an_info_card_saying_what_is_missing(hooks):
    prefetch = fhir_record(VIGNETTES["V01-acute-nonspecific"]["presentation"], TODAY)
    prefetch["patient"]["birthDate"] = "1988"
    del prefetch["conditions"]["entry"][0]["resource"]["onsetDateTime"]
    response = hooks.post(URL, json=hook_request("patient-view", prefetch))
    assert shape_errors("response", response.json) == []
    [card] = response.json["cards"]
    assert card["indicator"] == "info"
    assert card["summary"] == ("No MSK assessment: the record lacks the patient's age and the "
                               "onset of the pain")
    assert "Patient.birthDate" in card["detail"] and "onsetDateTime" in card["detail"]
    assert "Classification" not in card["detail"]


def test_unreadable_resources_are_reported_on_the_card(hooks):
    prefetch = fhir_record(VIGNETTES["V01-acute-nonspecific"]["presentation"], TODAY)
    # Resources the mapping reads (a coded finding); others are never parsed or counted.
    clicking = {"coding": [{"system": FIELD_SYSTEM, "code": "exam.hip_clicking_or_locking"}]}
    prefetch["observations"]["entry"].append({"resource": {
        "resourceType": "Observation", "status": "final", "code": clicking,
        "effectiveDateTime": TODAY.isoformat(), "valueBoolean": "yes"}})
    prefetch["observations"]["entry"].append({"resource": {
        "resourceType": "Observation", "status": "final", "code": clicking,
        "effectiveDateTime": TODAY.isoformat(),
        "subject": {"reference": "Patient/someone-else"}, "valueBoolean": True}})
    prefetch["observations"]["entry"].append({"resource": {
        "resourceType": "Observation", "status": "final", "code": {"text": "not read"},
        "valueBoolean": "yes"}})
    response = hooks.post(URL, json=hook_request("patient-view", prefetch))
    detail = response.json["cards"][0]["detail"]
    assert "1 observations could not be read as FHIR R4" in detail
    assert "1 observations about another patient were ignored" in detail


def test_an_extension_nested_hundreds_deep_costs_only_its_resource(hooks):
    prefetch = fhir_record(VIGNETTES["V01-acute-nonspecific"]["presentation"], TODAY)
    nested: dict[str, Any] = {"url": "https://x.example/leaf", "valueString": "x"}
    for _ in range(150):
        nested = {"url": "https://x.example/e", "extension": [nested]}
    condition = prefetch["conditions"]["entry"][0]["resource"]
    condition["code"]["coding"][0]["extension"] = [nested]
    body = json.dumps(hook_request("patient-view", prefetch))  # deeper than orjson encodes
    response = hooks.post(URL, data=body, content_type="application/json")
    assert response.status_code == 200  # was a RecursionError: 500
