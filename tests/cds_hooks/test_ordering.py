"""order-select / order-sign (lumbar-imaging-appropriateness): rating draft imaging orders."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.servicerequest import ServiceRequest

from service.cds_hooks.imaging_codes import IMAGING_CODES, PREFERRED_CODE, preferred_code
from service.cds_hooks.terminology import (
    CPT,
    PAMA_CONSULT_ID_URL,
    PAMA_QCDSM_URL,
    PAMA_RATING_SYSTEM,
    PAMA_RATING_URL,
    RATING_SYSTEM,
)
from tests.cds_hooks.conftest import TODAY, VIGNETTES
from tests.cds_hooks.fhir_builder import (
    draft_orders,
    fhir_record,
    hook_request,
    imaging_order,
)
from tests.cds_hooks.shapes import shape_errors
from tests.conftest import ROOT

URL = "/cds-services/lumbar-imaging-appropriateness"
MRI_LUMBAR = "30679-5"  # LOINC MR Lumbar spine WO contrast


def order(client, case: str, *orders: dict[str, Any], hook: str = "order-select",
          selections: list[str] | None = None,
          presentation: dict[str, Any] | None = None) -> dict[str, Any]:
    prefetch = fhir_record(presentation or VIGNETTES[case]["presentation"], TODAY)
    context: dict[str, Any] = {"draftOrders": draft_orders(*orders)}
    if hook == "order-select":
        context["selections"] = selections or [f"ServiceRequest/{o['id']}" for o in orders]
    response = client.post(URL, json=hook_request(hook, prefetch, **context))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert shape_errors("response", response.json) == []
    return response.json


def pama(resource: dict[str, Any]) -> dict[str, str]:
    [rating] = [e for e in resource["extension"] if e["url"] == PAMA_RATING_URL]
    return {coding["system"]: coding["code"] for coding in
            rating["valueCodeableConcept"]["coding"]}


def test_mri_for_acute_nonspecific_pain_is_not_appropriate_with_a_delete_suggestion(hooks):
    mri = imaging_order(MRI_LUMBAR)
    body = order(hooks, "V01-acute-nonspecific", mri)
    [card] = body["cards"]
    assert card["indicator"] == "warning"
    assert "usually not appropriate" in card["summary"]
    assert card["selectionBehavior"] == "at-most-one"
    recommended = card["suggestions"][0]
    assert recommended["isRecommended"] is True
    delete, care = recommended["actions"]
    assert delete == {"type": "delete", "resourceId": "ServiceRequest/imaging-1",
                      "description": "Remove the draft order for MR Lumbar spine WO contrast"}
    assert care["type"] == "create"
    plan = CarePlan.model_validate(care["resource"])
    activities = {a.detail.code.coding[0].code for a in plan.activity}
    assert {"stay_active", "superficial_heat"} <= activities
    [action] = body["systemActions"]
    assert body["extension"] == {"systemActions": body["systemActions"]}  # the Argonaut guide
    assert action["type"] == "update"
    assert pama(action["resource"]) == {PAMA_RATING_SYSTEM: "not-appropriate",
                                        RATING_SYSTEM: "usually-not-appropriate"}


def test_the_rating_update_changes_nothing_else_on_the_order(hooks):
    mri = imaging_order(MRI_LUMBAR)
    mri["extension"] = [{"url": "https://ehr.example.org/priority-note", "valueString": "x"},
                        {"url": PAMA_RATING_URL, "valueCodeableConcept": {"text": "old"}}]
    [action] = order(hooks, "V01-acute-nonspecific", copy.deepcopy(mri))["systemActions"]
    updated = action["resource"]
    ServiceRequest.model_validate(updated)
    assert {k: v for k, v in updated.items() if k != "extension"} == {
        k: v for k, v in mri.items() if k != "extension"}
    urls = [e["url"] for e in updated["extension"]]
    assert urls.count(PAMA_RATING_URL) == 1 and "https://ehr.example.org/priority-note" in urls
    consult = next(e for e in updated["extension"] if e["url"] == PAMA_CONSULT_ID_URL)
    assert consult["valueUri"].startswith("urn:uuid:")
    qcdsm = next(e for e in updated["extension"] if e["url"] == PAMA_QCDSM_URL)
    assert qcdsm == {"url": PAMA_QCDSM_URL, "valueString": "G1011"}


def test_mri_for_suspected_cauda_equina_is_appropriate_and_asked_for_today(hooks):
    body = order(hooks, "V03-saddle-anaesthesia", imaging_order(MRI_LUMBAR))
    [card] = body["cards"]
    assert card["indicator"] == "critical"  # an emergency: imaging today
    assert "usually appropriate for Cauda equina syndrome" in card["summary"]
    assert "**Timing:** today (same day)" in card["detail"]
    # The order is the right study, but not yet stat: the one suggestion makes it so.
    [stat] = card["suggestions"]
    [update] = stat["actions"]
    assert update["type"] == "update" and update["resource"]["id"] == "imaging-1"
    assert update["resource"]["priority"] == "stat"
    assert update["resource"]["code"]["coding"][0]["code"] == MRI_LUMBAR
    [action] = body["systemActions"]
    assert pama(action["resource"]) == {PAMA_RATING_SYSTEM: "appropriate",
                                        RATING_SYSTEM: "usually-appropriate"}


def test_may_be_appropriate_is_pama_appropriate_with_the_finer_band(hooks):
    ct_hip = imaging_order("36484-4", order_id="ct-hip")  # CT Hip WO contrast
    body = order(hooks, "V12-hip-fall-elderly", ct_hip)
    assert "may be appropriate" in body["cards"][0]["summary"]
    assert pama(body["systemActions"][0]["resource"]) == {
        PAMA_RATING_SYSTEM: "appropriate", RATING_SYSTEM: "may-be-appropriate"}


def test_a_not_appropriate_hip_mri_suggests_the_better_rated_radiograph(hooks):
    body = order(hooks, "V11-hip-oa", imaging_order("30687-8", order_id="mri-hip"))
    [card] = body["cards"]
    labels = [s["label"] for s in card["suggestions"]]
    assert labels[1] == "Change to Radiograph, hip and pelvis (May be appropriate)"
    # An update of the same draft order (clients such as the sandbox apply only updates),
    # carrying the alternative's own rating.
    [update] = card["suggestions"][1]["actions"]
    assert update["type"] == "update" and update["resource"]["id"] == "mri-hip"
    replacement = ServiceRequest.model_validate(update["resource"])
    assert replacement.code.coding[0].code == PREFERRED_CODE["radiograph_hip_pelvis"].code
    assert pama(update["resource"])[PAMA_RATING_SYSTEM] == "appropriate"


def test_open_red_flag_screens_give_a_best_effort_rating_that_says_what_would_change_it(hooks):
    body = order(hooks, "V10-not-screened", imaging_order(MRI_LUMBAR))
    [card] = body["cards"]
    [action] = body["systemActions"]
    assert pama(action["resource"])[PAMA_RATING_SYSTEM] == "not-appropriate"
    assert card["summary"].startswith("MR Lumbar spine WO contrast: best effort: usually not "
                                      "appropriate")
    assert "does not answer 19 red-flag questions" in card["detail"]
    # A yes to saddle anaesthesia raises cauda equina syndrome: MRI today.
    assert ("- Saddle anaesthesia: " in card["detail"]
            and "If present, this order would be rated usually appropriate." in card["detail"])


@pytest.mark.parametrize(("code", "summary"), [
    ("30687-8", "MR Hip WO contrast: not rated, no hip pain is on record"),
    ("24968-0", "MR Lumbar spine: not rated, the contrast is not stated"),
])
def test_orders_the_assessment_does_not_rate_are_not_rated(hooks, code, summary):
    # With progressive weakness MRI without contrast is usually appropriate, without and
    # with only may be: "MR Lumbar spine" leaves the rating open.
    presentation = copy.deepcopy(VIGNETTES["V01-acute-nonspecific"]["presentation"])
    presentation.setdefault("neuro", {})["weakness"] = "progressive"
    body = order(hooks, "V01-acute-nonspecific", imaging_order(code),
                 presentation=presentation if code == "24968-0" else None)
    assert [card["summary"] for card in body["cards"]] == [summary]
    assert "systemActions" not in body


@pytest.mark.parametrize("code", ["30678-7", "72149"])
def test_a_study_no_criteria_cover_is_rated_no_criteria_apply(hooks, code):
    system = CPT if code.isdigit() else "http://loinc.org"
    body = order(hooks, "V01-acute-nonspecific", imaging_order(code, system=system))
    [card] = body["cards"]
    assert card["summary"].endswith(": no criteria apply")
    [action] = body["systemActions"]
    assert pama(action["resource"]) == {PAMA_RATING_SYSTEM: "no-criteria-apply"}


def test_an_ambiguous_code_is_rated_when_every_study_it_may_mean_rates_alike(hooks):
    # CT Lumbar spine (24963-1) may be without or with contrast: all usually not appropriate
    # for acute nonspecific pain, so it is rated.
    body = order(hooks, "V01-acute-nonspecific", imaging_order("24963-1"))
    [action] = body["systemActions"]
    assert pama(action["resource"])[PAMA_RATING_SYSTEM] == "not-appropriate"


def test_order_sign_rates_every_draft_imaging_order_by_cpt_too(hooks):
    orders = [imaging_order("72148", system=CPT, order_id="cpt-mri"),
              imaging_order("72100", system=CPT, order_id="cpt-xr"),
              {**imaging_order("24357-6", order_id="lab"), "code": {"text": "Urinalysis"}}]
    body = order(hooks, "V01-acute-nonspecific", *orders, hook="order-sign")
    assert len(body["cards"]) == 2
    assert [a["resource"]["id"] for a in body["systemActions"]] == ["cpt-mri", "cpt-xr"]


def test_order_select_rates_only_the_selected_orders(hooks):
    orders = [imaging_order(MRI_LUMBAR, order_id="a"), imaging_order(MRI_LUMBAR, order_id="b")]
    body = order(hooks, "V01-acute-nonspecific", *orders, selections=["ServiceRequest/b"])
    assert [a["resource"]["id"] for a in body["systemActions"]] == ["b"]


def test_no_imaging_among_the_orders_means_no_cards_and_no_fhir_reads(hooks):
    lab = {**imaging_order("x"), "code": {"coding": [{"system": "http://loinc.org",
                                                      "code": "24357-6"}]}}
    request = hook_request("order-select", {}, draftOrders=draft_orders(lab),
                           selections=["ServiceRequest/imaging-1"])
    response = hooks.post(URL, json=request)  # no prefetch, no server: still 200
    assert response.status_code == 200 and response.json == {"cards": []}


def test_without_an_assessment_the_order_says_what_is_missing(hooks):
    prefetch = fhir_record(VIGNETTES["V01-acute-nonspecific"]["presentation"], TODAY)
    prefetch["patient"]["birthDate"] = "1988"
    request = hook_request("order-sign", prefetch,
                           draftOrders=draft_orders(imaging_order(MRI_LUMBAR)))
    body = hooks.post(URL, json=request).json
    assert shape_errors("response", body) == []
    [card] = body["cards"]
    assert card["summary"] == "MR Lumbar spine WO contrast: not rated, the assessment lacks data"
    assert "Patient.birthDate" in card["detail"] and "systemActions" not in body


def test_every_code_of_the_table_names_procedures_of_the_vocabulary():
    vocabulary = yaml.safe_load((ROOT / "rulesets" / "vocabulary.yaml").read_text())
    procedures = set(vocabulary["imaging_procedures"])
    for entry in IMAGING_CODES.values():
        assert set(entry.procedures) - {None} <= procedures, entry
        named = [p for p in entry.procedures if p]
        assert all(("hip" in p) == (entry.region == "hip") for p in named), entry
    # Every procedure can be suggested as an alternative, in CPT or else LOINC.
    assert all(preferred_code(p, CPT) for p in procedures)


@pytest.mark.parametrize("code", ["72100", "72149"])  # X-ray; MRI with contrast only
def test_an_emergency_gets_the_study_to_order_today_whatever_was_ordered(hooks, code):
    body = order(hooks, "V03-saddle-anaesthesia", imaging_order(code, system=CPT))
    [card] = body["cards"]
    assert card["indicator"] == "critical"
    assert "no low back pain" not in card["summary"]
    [stat] = card["suggestions"]
    [update] = stat["actions"]
    assert update["type"] == "update" and update["resource"]["priority"] == "stat"
    assert pama(update["resource"])[PAMA_RATING_SYSTEM] == "appropriate"


def test_an_urgent_non_spinal_cause_is_not_sent_to_conservative_care(hooks):
    presentation = copy.deepcopy(VIGNETTES["V01-acute-nonspecific"]["presentation"])
    presentation.setdefault("associated", {})["abdominal_pain"] = True
    body = order(hooks, "V01-acute-nonspecific", imaging_order(MRI_LUMBAR),
                 presentation=presentation)
    [card] = body["cards"]
    labels = [s["label"] for s in card.get("suggestions", [])]
    assert "Cancel the order and start conservative care" not in labels


def test_ct_with_iv_contrast_is_not_rated_where_a_serious_cause_is_suspected(hooks):
    # No variant of the brief's table rates it for suspected cancer or infection; only the
    # no-red-flag pathways say it is not appropriate.
    presentation = copy.deepcopy(VIGNETTES["V01-acute-nonspecific"]["presentation"])
    presentation.setdefault("history", {})["cancer"] = True
    body = order(hooks, "V01-acute-nonspecific", imaging_order("72132", system=CPT),
                 presentation=presentation)
    [card] = body["cards"]
    assert "not rated" in card["summary"] and "systemActions" not in body
