"""Feedback: validated, acknowledged and counted; nothing about the patient is kept."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.cds_hooks.shapes import shape_errors

URL = "/cds-services/lumbar-imaging-appropriateness/feedback"
OURS = "https://msk-decision-support.example/fhir/CodeSystem/override-reason"
COMMENT = "Patient Jane Doe insists; see note of 14 June"


def counted(outcome: str, reason: str) -> float:
    return REGISTRY.get_sample_value("cds_hooks_feedback_total", {
        "service": "lumbar-imaging-appropriateness", "outcome": outcome, "reason": reason}) or 0


def item(**fields: Any) -> dict[str, Any]:
    return {"card": "9368d37b-283f-44a0-93ea-547cebab93ed", "outcome": "overridden",
            "outcomeTimestamp": "2026-06-15T10:05:31Z", **fields}


def test_accepted_and_overridden_feedback_is_acknowledged_and_counted(hooks, caplog):
    caplog.set_level(logging.DEBUG)
    body = {"feedback": [
        item(outcome="accepted", acceptedSuggestions=[{"id": "e56e1945"}]),
        item(overrideReason={"reason": {"system": OURS, "code": "specialist-request"},
                             "userComment": COMMENT}),
        item(overrideReason={"reason": {"system": "https://ehr.example/x", "code": "42"}}),
        item(),
    ]}
    assert shape_errors("feedback", body) == []
    before = {key: counted(*key) for key in [("accepted", "none"),
                                             ("overridden", "specialist-request"),
                                             ("overridden", "other"), ("overridden", "none")]}
    response = hooks.post(URL, json=body)
    assert response.status_code == 200
    assert response.json == {"acknowledged": 4}
    for key, value in before.items():
        assert counted(*key) == value + 1, key
    assert COMMENT not in caplog.text


@pytest.mark.parametrize(("feedback", "field"), [
    ([item(outcome="accepted")], "feedback.0.acceptedSuggestions"),
    ([item(outcome="ignored")], "feedback.0.outcome"),
    ([item(outcomeTimestamp="yesterday")], "feedback.0.outcomeTimestamp"),
    ([item(outcomeTimestamp="2026-06-15T10:05:31")], "feedback.0.outcomeTimestamp"),
    ([{"outcome": "overridden", "outcomeTimestamp": "2026-06-15T10:05:31Z"}], "feedback.0.card"),
    ([item(overrideReason={"reason": {"code": "x"}})], "feedback.0.overrideReason.reason.system"),
    ([], "feedback"),
])
def test_invalid_feedback_is_422(hooks, feedback, field):
    response = hooks.post(URL, json={"feedback": feedback})
    assert response.status_code == 422
    assert field in response.json["errors"], response.json["errors"]


def test_feedback_for_an_unknown_service_is_404(hooks):
    response = hooks.post("/cds-services/unknown/feedback", json={"feedback": [item()]})
    assert response.status_code == 404
