"""POST /v1/assessments/batch: each item validated and answered on its own, in input order."""

from __future__ import annotations

import json

import pytest

from tests.cases import load_cases
from tests.conftest import SHARED

CASES = load_cases(SHARED / "vignettes" / "cases.yaml")
MINIMAL = {"patient": {"age": 40}, "pain": {"sites": ["low_back"], "duration_days": 3}}
BATCH = "/v1/assessments/batch"


def _without_id(assessment: dict) -> dict:
    return {key: value for key, value in assessment.items() if key != "assessment_id"}


def test_results_are_in_input_order_and_equal_single_assessments(client):
    presentations = [case["presentation"] for case in CASES]
    response = client.post(BATCH, json={"presentations": presentations}, query_string={
        "trace": "true"})
    assert response.status_code == 200
    results = response.json["results"]
    assert [r["index"] for r in results] == list(range(len(presentations)))
    for presentation, result in zip(presentations, results, strict=True):
        single = client.post("/v1/assessments", json=presentation).json
        assert result["status"] == 200
        assert _without_id(result["assessment"]) == _without_id(single)


def test_one_bad_item_is_a_per_item_error_not_a_failed_batch(client):
    items = [MINIMAL, {"patient": {"age": "52"}, "pain": {"sites": ["low_back"]}}, MINIMAL]
    results = client.post(BATCH, json={"presentations": items}).json["results"]
    assert [r["status"] for r in results] == [200, 422, 200]
    problem = results[1]["problem"]
    assert problem["status"] == 422
    assert set(problem["errors"]) == {"patient.age", "pain.duration_days"}
    assert "assessment" not in results[1] and "problem" not in results[0]


def test_trace_is_left_out_unless_asked_for(client):
    lean = client.post(BATCH, json={"presentations": [MINIMAL]}).json["results"][0]
    assert "trace" not in lean["assessment"]
    assert lean["assessment"]["reasons"] and lean["assessment"]["citations"]
    full = client.post(BATCH, json={"presentations": [MINIMAL]},
                       query_string={"trace": "true"}).json["results"][0]
    assert full["assessment"]["trace"]


@pytest.mark.parametrize(("body", "path"), [
    ({"presentations": []}, "presentations"),
    ({"presentations": "all"}, "presentations"),
    ({}, "presentations"),
    ({"presentations": [MINIMAL], "extra": 1}, "extra"),
    ([MINIMAL], "presentations"),
])
def test_malformed_batch_is_422(client, body, path):
    response = client.post(BATCH, json=body)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert path in response.json["errors"]


def test_at_most_the_configured_number_of_items(client, app):
    limit = app.config["MAX_BATCH_ITEMS"]
    assert limit == 1000
    too_many = client.post(BATCH, json={"presentations": [MINIMAL] * (limit + 1)})
    assert too_many.status_code == 422
    assert "presentations" in too_many.json["errors"]


def test_a_full_batch_of_1000_is_answered(client):
    response = client.post(BATCH, json={"presentations": [MINIMAL] * 1000})
    assert response.status_code == 200
    assert len(response.json["results"]) == 1000
    assert {r["status"] for r in response.json["results"]} == {200}


def test_batch_has_its_own_larger_body_limit(client):
    body = json.dumps({"presentations": [MINIMAL] * 1000})
    assert len(body) > 64 * 1024  # over the single-assessment limit
    single = client.post("/v1/assessments", data=body, content_type="application/json")
    assert single.status_code == 413
    batch = client.post(BATCH, data=body, content_type="application/json")
    assert batch.status_code == 200


def test_batch_body_over_its_limit_is_413(client, app):
    padding = " " * (app.config["MAX_BATCH_BODY_BYTES"] + 1)
    response = client.post(BATCH, data='{"presentations": []}' + padding,
                           content_type="application/json")
    assert response.status_code == 413
    assert response.content_type == "application/problem+json"


def test_a_second_batch_in_the_same_worker_is_told_to_retry(client, app):
    slot = app.extensions["batch_slot"]
    assert slot.acquire(blocking=False)  # a batch is in flight in this worker
    try:
        response = client.post(BATCH, json={"presentations": [MINIMAL]})
    finally:
        slot.release()
    assert response.status_code == 429
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"] == "5"
    assert client.post(BATCH, json={"presentations": [MINIMAL]}).status_code == 200


def test_the_batch_slot_is_taken_only_once_the_body_is_read(client, app):
    """A slow or broken upload is refused for itself; it never holds, or waits on, the slot
    other batches need (before, it was told 429 while its body was still unread)."""
    slot = app.extensions["batch_slot"]
    assert slot.acquire(blocking=False)
    try:
        response = client.post(BATCH, data=b"{not json", content_type="application/json")
    finally:
        slot.release()
    assert response.status_code == 400


def test_the_batch_slot_is_held_until_the_answer_has_been_sent(client, app):
    """A client that does not read its (tens of MB) answer keeps the slot, so the worker
    never holds two such answers; once the server has sent (closed) it, the slot is free."""
    unsent = client.post(BATCH, json={"presentations": [MINIMAL]}, buffered=False)
    try:
        assert unsent.status_code == 200
        assert client.post(BATCH, json={"presentations": [MINIMAL]}).status_code == 429
    finally:
        unsent.close()
    assert client.post(BATCH, json={"presentations": [MINIMAL]}).status_code == 200


def test_a_failed_batch_gives_its_slot_back(client, app, monkeypatch):
    import service.api

    def broken(_body):
        raise RuntimeError("defect")

    monkeypatch.setattr(service.api, "_assess_batch", broken)
    assert client.post(BATCH, json={"presentations": [MINIMAL]}).status_code == 500
    monkeypatch.undo()
    assert client.post(BATCH, json={"presentations": [MINIMAL]}).status_code == 200


@pytest.mark.parametrize("value", ["AAA", "1", "TRUE", ""])
def test_a_trace_flag_other_than_true_or_false_is_refused(client, value):
    response = client.post(f"{BATCH}?trace={value}", json={"presentations": [MINIMAL]})
    assert response.status_code == 422
    assert response.json["errors"] == {"trace": ["Must be true or false."]}
