"""Bad input to the API: every class gets its 4xx problem+json, and the service keeps serving.

contract.md, Errors: `application/problem+json` with `type`, `title`, `status`, `detail`, and
for 422 an `errors` object keyed by dotted field path; 400 for bodies that are not JSON, 413
over the size limit, 415 for a wrong content type, 422 for JSON that breaks the schema. A 5xx
is always a defect. After every bad request the service must still assess a valid one.
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

ASSESSMENTS = "/v1/assessments"
PROBLEM_JSON = "application/problem+json"
LIMIT = 64 * 1024
MINIMAL: dict[str, Any] = {"patient": {"age": 40},
                           "pain": {"sites": ["low_back"], "duration_days": 3}}
MINIMAL_TEXT = json.dumps(MINIMAL)
SECRET = "SECRET-77"
START_BACK_ITEMS = ("leg_pain", "neck_or_shoulder_pain", "walks_short_distances_only",
                    "dresses_slowly", "activity_unsafe", "worrying_thoughts", "catastrophising",
                    "low_mood", "bothersomeness")


# --- helpers ---------------------------------------------------------------------------


def with_value(path: str, value: Any, base: dict[str, Any] = MINIMAL) -> dict[str, Any]:
    """Return a copy of `base` with the dotted `path` set to `value` (sections created)."""
    body = copy.deepcopy(base)
    *sections, name = path.split(".")
    node = body
    for section in sections:
        node = node.setdefault(section, {})
    node[name] = value
    return body


def without(path: str) -> dict[str, Any]:
    body = copy.deepcopy(MINIMAL)
    *sections, name = path.split(".")
    node = body
    for section in sections:
        node = node[section]
    del node[name]
    return body


def with_raw(path: str, literal: str) -> bytes:
    """Return MINIMAL as JSON text with the value at `path` written as a raw JSON literal."""
    marker = "__RAW_LITERAL__"
    return json.dumps(with_value(path, marker)).replace(f'"{marker}"', literal).encode()


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def post(client: FlaskClient, body: Any, content_type: str | None = "application/json",
         **kwargs: Any) -> TestResponse:
    """POST `body` as is when it is bytes, else encoded as JSON."""
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(ASSESSMENTS, data=data, content_type=content_type, **kwargs)


def assert_problem(response: TestResponse, status: int) -> dict[str, Any]:
    """Check the RFC 9457 shape of a problem response and return its body."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == PROBLEM_JSON
    problem = json.loads(response.get_data(as_text=True))
    assert isinstance(problem, dict)
    assert {"type", "title", "status", "detail"} <= problem.keys(), problem
    assert problem["status"] == response.status_code
    for key in ("type", "title", "detail"):
        assert isinstance(problem[key], str) and problem[key].strip(), (key, problem)
    if status == 422:
        errors = problem.get("errors")
        assert isinstance(errors, dict) and errors, problem
        for path, messages in errors.items():
            assert isinstance(path, str) and path, errors
            assert isinstance(messages, list) and messages, errors
            assert all(isinstance(m, str) and m.strip() for m in messages), errors
    return problem


def assert_still_serving(client: FlaskClient) -> None:
    """The service answers the minimal valid presentation after whatever came before."""
    response = client.post(ASSESSMENTS, json=MINIMAL)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.json["urgency"]


def assessment_without_id(response: TestResponse) -> dict[str, Any]:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    body = dict(response.json)
    del body["assessment_id"]
    return body


# --- 400: the body is not JSON -----------------------------------------------------------

NOT_JSON: dict[str, bytes] = {
    "form encoded": b"patient.age=40&pain.duration_days=3",
    "empty body": b"",
    "truncated object": MINIMAL_TEXT[:-1].encode(),
    "trailing garbage": MINIMAL_TEXT.encode() + b" x",
    "two documents": MINIMAL_TEXT.encode() * 2,
    "single quotes": MINIMAL_TEXT.replace('"', "'").encode(),
    "trailing comma": b'{"patient": {"age": 40,}, "pain": {"sites": ["low_back"]}}',
    "comment": MINIMAL_TEXT.encode()[:-1] + b" /* note */}",
    "invalid utf-8 byte in a string": (
        json.dumps(with_value("patient.sex", "female")).encode().replace(b"female", b"f\xffmale")
    ),
    "overlong utf-8 encoding": b'{"patient": {"age": 40}, "x": "\xc0\xaf"}',
    "utf-8 encoded surrogate": b'{"patient": {"age": 40}, "x": "\xed\xa0\x80"}',
    "utf-16": MINIMAL_TEXT.encode("utf-16"),
    "latin-1 text": json.dumps(with_value("patient.sex", "féminin"),
                               ensure_ascii=False).encode("latin-1"),
    "NaN": with_raw("patient.age", "NaN"),
    "Infinity": with_raw("patient.bmi", "Infinity"),
    "-Infinity": with_raw("patient.bmi", "-Infinity"),
    "NaN inside a list": with_raw("pain.sites", '["low_back", NaN]'),
    "duplicate top-level key": b'{"patient": {"age": 40}, "patient": {"age": 41}, '
                               b'"pain": {"sites": ["low_back"], "duration_days": 3}}',
    "duplicate nested key": MINIMAL_TEXT.replace('"age": 40', '"age": 40, "age": 41').encode(),
    "duplicate key in an unknown object": with_raw("extra", '{"a": 1, "a": 1}'),
    "20,000 nested arrays": ("[" * 20_000 + "]" * 20_000).encode(),
    "10,000 nested objects": nested_objects(10_000).encode(),
    "20,000 nested arrays under a field": with_raw("pain.sites", "[" * 20_000 + "]" * 20_000),
}


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_body_that_is_not_json_is_400(client, body):
    assert len(body) < LIMIT
    assert_problem(post(client, body), 400)
    assert_still_serving(client)


# --- 400 or 422, never 500: valid JSON the decoder or validator may balk at -------------

NEVER_500: dict[str, bytes] = {
    "integer with 5,000 digits for patient.age": with_raw("patient.age", "9" * 5_000),
    "integer with 5,000 digits for patient.bmi": with_raw("patient.bmi", "1" * 5_000),
    "negative integer with 5,000 digits": with_raw("pain.duration_days", "-" + "7" * 5_000),
    # Deep enough to exhaust Python's recursion after json.loads, small enough to decode.
    "600 nested objects at the top level": nested_objects(600).encode(),
    "600 nested objects under an unknown field": with_raw("extra", nested_objects(600)),
    "900 nested objects under pain": with_raw("pain.colour", nested_objects(900)),
}


@pytest.mark.parametrize("body", NEVER_500.values(), ids=NEVER_500.keys())
def test_awkward_json_is_a_4xx_not_a_crash(client, body):
    assert len(body) < LIMIT
    response = post(client, body)
    assert response.status_code in (400, 422), response.get_data(as_text=True)[:300]
    assert_problem(response, response.status_code)
    assert_still_serving(client)


# --- 422: JSON that breaks the schema, with the dotted path of every fault -------------

FULL_START_BACK = {item: False for item in START_BACK_ITEMS} | {"bothersomeness": "slightly"}

SCHEMA_FAULTS: dict[str, tuple[Any, set[str]]] = {
    # case: (body, the exact set of paths in `errors`)
    "top-level array": ([MINIMAL], {"body"}),
    "top-level empty array": ([], {"body"}),
    "top-level string": ("patient", {"body"}),
    "top-level number": (40, {"body"}),
    "top-level true": (True, {"body"}),
    "top-level null": (None, {"body"}),
    "empty object": ({}, {"patient", "pain"}),
    "unknown top-level field": (with_value("colour", "red"), {"colour"}),
    "unknown nested field": (with_value("pain.colour", "red"), {"pain.colour"}),
    "unknown field in an optional section": (with_value("neuro.reflexes", "brisk"),
                                             {"neuro.reflexes"}),
    "derived section supplied by the client": (with_value("derived.age_at_onset", 5),
                                               {"derived"}),
    "derived STarT Back total supplied by the client": (
        with_value("start_back", FULL_START_BACK | {"total": 9}), {"start_back.total"}),
    "string for a number": (with_value("patient.age", "52"), {"patient.age"}),
    "string for a float": (with_value("patient.bmi", "31.5"), {"patient.bmi"}),
    "string for a boolean": (with_value("neuro.saddle_anaesthesia", "true"),
                             {"neuro.saddle_anaesthesia"}),
    "boolean for an integer": (with_value("pain.duration_days", True), {"pain.duration_days"}),
    "boolean for a float": (with_value("patient.bmi", False), {"patient.bmi"}),
    "float for an integer": (with_value("pain.severity", 3.5), {"pain.severity"}),
    # A whole float for an integer (40.0) is the integer 40, as JSON Schema reads it: accepted
    # (tests/contract/test_openapi.py).
    "1 for a boolean": (with_value("history.fever", 1), {"history.fever"}),
    "0 for a boolean": (with_value("history.fever", 0), {"history.fever"}),
    "number for an enum": (with_value("pain.onset", 1), {"pain.onset"}),
    "boolean for an enum": (with_value("patient.sex", True), {"patient.sex"}),
    "list for an enum": (with_value("pain.onset", ["sudden"]), {"pain.onset"}),
    "object for a boolean": (with_value("history.cancer", {}), {"history.cancer"}),
    "age -1": (with_value("patient.age", -1), {"patient.age"}),
    "age 121": (with_value("patient.age", 121), {"patient.age"}),
    "severity 11": (with_value("pain.severity", 11), {"pain.severity"}),
    "severity -1": (with_value("pain.severity", -1), {"pain.severity"}),
    "bmi 9.9": (with_value("patient.bmi", 9.9), {"patient.bmi"}),
    "bmi 80.1": (with_value("patient.bmi", 80.1), {"patient.bmi"}),
    "duration_days 36501": (with_value("pain.duration_days", 36501), {"pain.duration_days"}),
    "duration_days -1": (with_value("pain.duration_days", -1), {"pain.duration_days"}),
    "morning stiffness 1441 minutes": (with_value("pain.morning_stiffness_minutes", 1441),
                                       {"pain.morning_stiffness_minutes"}),
    "conservative care 521 weeks": (with_value("care.conservative_care_weeks", 521),
                                    {"care.conservative_care_weeks"}),
    "integer with 4,000 digits for patient.age": (with_raw("patient.age", "9" * 4_000),
                                                  {"patient.age"}),
    "1e400 for patient.age": (with_raw("patient.age", "1e400"), {"patient.age"}),
    "1e400 for patient.bmi": (with_raw("patient.bmi", "1e400"), {"patient.bmi"}),
    "-1e400 for patient.bmi": (with_raw("patient.bmi", "-1e400"), {"patient.bmi"}),
    "1e400 for pain.severity": (with_raw("pain.severity", "1e400"), {"pain.severity"}),
    "enum value not allowed": (with_value("pain.onset", "slow"), {"pain.onset"}),
    "enum value in the wrong case": (with_value("pain.onset", "Sudden"), {"pain.onset"}),
    "enum value with spaces": (with_value("patient.sex", " female"), {"patient.sex"}),
    "empty sites list": (with_value("pain.sites", []), {"pain.sites"}),
    "duplicate site": (with_value("pain.sites", ["low_back", "low_back"]), {"pain.sites"}),
    "unknown site": (with_value("pain.sites", ["knee"]), {"pain.sites.0"}),
    "null site": (with_value("pain.sites", [None]), {"pain.sites.0"}),
    "number as a site": (with_value("pain.sites", [1]), {"pain.sites.0"}),
    "sites as a string": (with_value("pain.sites", "low_back"), {"pain.sites"}),
    "sites as an object": (with_value("pain.sites", {"low_back": True}), {"pain.sites"}),
    "pain section a number": (with_value("pain", 5), {"pain"}),
    "patient section a list": (with_value("patient", [40]), {"patient"}),
    "optional section a string": (with_value("neuro", "normal"), {"neuro"}),
    "STarT Back block a boolean": (with_value("start_back", True), {"start_back"}),
    "missing patient.age": (without("patient.age"), {"patient.age"}),
    "missing pain.sites": (without("pain.sites"), {"pain.sites"}),
    "missing pain.duration_days": (without("pain.duration_days"), {"pain.duration_days"}),
    "missing pain section": (without("pain"), {"pain"}),
    "missing patient section": (without("patient"), {"patient"}),
    "null patient.age": (with_value("patient.age", None), {"patient.age"}),
    "null pain.sites": (with_value("pain.sites", None), {"pain.sites"}),
    "null pain.duration_days": (with_value("pain.duration_days", None), {"pain.duration_days"}),
    "null pain section": (with_value("pain", None), {"pain"}),
    "partial STarT Back block": (
        with_value("start_back", {"leg_pain": True, "low_mood": False,
                                  "bothersomeness": "moderately"}),
        {f"start_back.{item}" for item in START_BACK_ITEMS
         if item not in ("leg_pain", "low_mood", "bothersomeness")}),
    "empty STarT Back block": (with_value("start_back", {}),
                               {f"start_back.{item}" for item in START_BACK_ITEMS}),
    "STarT Back item null": (with_value("start_back", FULL_START_BACK | {"low_mood": None}),
                             {"start_back.low_mood"}),
    "several faults at once": (
        with_value("pain.onset", "slow", with_value("patient.age", "52", without("pain.sites"))),
        {"patient.age", "pain.sites", "pain.onset"}),
}


@pytest.mark.parametrize(("body", "paths"), SCHEMA_FAULTS.values(), ids=SCHEMA_FAULTS.keys())
def test_schema_fault_is_422_keyed_by_field_path(client, body, paths):
    problem = assert_problem(post(client, body), 422)
    assert set(problem["errors"]) == paths
    assert_still_serving(client)


def test_missing_required_field_message_says_so(client):
    problem = assert_problem(post(client, without("patient.age")), 422)
    assert problem["errors"]["patient.age"] == ["Missing data for required field."]


# --- null is "not provided" for optional fields -------------------------------------------

OPTIONAL_NULLS = [
    "patient.sex", "patient.bmi", "pain.onset", "pain.severity", "neuro.saddle_anaesthesia",
    "history.fever", "comorbidities.anticoagulant", "neuro", "start_back",
]


@pytest.mark.parametrize("path", OPTIONAL_NULLS)
def test_null_optional_field_is_treated_as_absent(client, path):
    with_null = post(client, with_value(path, None))
    assert assessment_without_id(with_null) == assessment_without_id(post(client, MINIMAL))


def test_null_red_flag_screen_is_reported_as_missing_information(client):
    def missing(body: dict[str, Any]) -> list[str]:
        response = post(client, body)
        assert response.status_code == 200
        return [entry["field"] for entry in response.json["missing_information"]]

    assert "neuro.saddle_anaesthesia" in missing(with_value("neuro.saddle_anaesthesia", None))
    assert "neuro.saddle_anaesthesia" not in missing(
        with_value("neuro.saddle_anaesthesia", False))


def test_null_start_back_block_gives_no_risk(client):
    response = post(client, with_value("start_back", None))
    assert response.status_code == 200
    assert "risk" not in response.json


# --- 413: over the size limit ---------------------------------------------------------


def padded(size: int, tail: str = "") -> bytes:
    """MINIMAL padded with JSON whitespace (then `tail`) to exactly `size` bytes."""
    body = MINIMAL_TEXT + " " * (size - len(MINIMAL_TEXT) - len(tail)) + tail
    assert len(body) == size
    return body.encode()


def test_body_at_the_limit_is_accepted(client):
    assert post(client, padded(LIMIT)).status_code == 200


@pytest.mark.parametrize("size", [LIMIT + 1, 10 * LIMIT])
def test_body_over_the_limit_is_413(client, size):
    assert_problem(post(client, padded(size)), 413)
    assert_still_serving(client)


def test_large_string_member_over_the_limit_is_413(client):
    assert_problem(post(client, with_value("extra", "x" * LIMIT)), 413)
    assert_still_serving(client)


def post_chunked(client: FlaskClient, body: bytes) -> TestResponse:
    """POST without Content-Length, as gunicorn passes a chunked body on.

    gunicorn sets `wsgi.input_terminated`; Werkzeug then reads the stream up to the limit.
    """
    return client.post(ASSESSMENTS, input_stream=io.BytesIO(body),
                       content_type="application/json",
                       headers={"Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True})


def test_chunked_body_under_the_limit_is_accepted(client):
    assert post_chunked(client, MINIMAL_TEXT.encode()).status_code == 200


CHUNKED_OVER_LIMIT: dict[str, bytes] = {
    "large string member": json.dumps(with_value("extra", "x" * LIMIT)).encode(),
    "valid JSON padded past the limit": padded(LIMIT + 1024),
    "valid JSON, then garbage past the limit": padded(LIMIT + 1024, tail="garbage"),
}


@pytest.mark.parametrize("body", CHUNKED_OVER_LIMIT.values(), ids=CHUNKED_OVER_LIMIT.keys())
def test_chunked_body_over_the_limit_is_413(client, body):
    assert len(body) > LIMIT
    assert_problem(post_chunked(client, body), 413)
    assert_still_serving(client)


# --- 415: not sent as application/json ----------------------------------------------------

WRONG_TYPES = ["text/plain", None, "application/x-www-form-urlencoded", "application/xml",
               "multipart/form-data; boundary=x", "application/problem+json"]


@pytest.mark.parametrize("content_type", WRONG_TYPES, ids=lambda ct: ct or "missing")
def test_wrong_content_type_is_415(client, content_type):
    assert_problem(post(client, MINIMAL_TEXT.encode(), content_type=content_type), 415)
    assert_still_serving(client)


def test_json_content_type_with_charset_is_accepted(client):
    response = post(client, MINIMAL_TEXT.encode(), content_type="application/json; charset=utf-8")
    assert response.status_code == 200


# --- 404 and 405 -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["DELETE", "PUT", "PATCH", "GET"])
def test_wrong_method_on_assessments_is_405_with_allow(client, method):
    response = client.open(ASSESSMENTS, method=method)
    assert_problem(response, 405)
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert "POST" in allowed
    assert method not in allowed
    assert_still_serving(client)


def test_post_to_the_rule_catalog_is_405_with_allow(client):
    response = client.post("/v1/rules", json=MINIMAL)
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize("path", ["/v1/assessment", "/v2/assessments", "/", "/v1/rules/a/b"])
def test_unknown_path_is_404(client, path):
    assert_problem(client.get(path), 404)
    assert_still_serving(client)


def test_unknown_rule_id_is_404(client):
    assert_problem(client.get("/v1/rules/lbp.no_such_rule"), 404)


def test_each_error_class_has_its_own_problem_type(client):
    types = {
        400: assert_problem(post(client, b"{"), 400)["type"],
        404: assert_problem(client.get("/nope"), 404)["type"],
        405: assert_problem(client.delete(ASSESSMENTS), 405)["type"],
        413: assert_problem(post(client, padded(LIMIT + 1)), 413)["type"],
        415: assert_problem(post(client, MINIMAL, content_type="text/plain"), 415)["type"],
        422: assert_problem(post(client, {}), 422)["type"],
    }
    assert len(set(types.values())) == len(types), types


# --- privacy: no error echoes the values submitted ------------------------------------------

LEAKY: dict[str, tuple[Any, str | None, int]] = {
    # case: (body, content type, status)
    "string for a number": (with_value("patient.age", SECRET), "application/json", 422),
    "string for a boolean": (with_value("neuro.saddle_anaesthesia", SECRET),
                             "application/json", 422),
    "enum value not allowed": (with_value("pain.onset", SECRET), "application/json", 422),
    "unknown site": (with_value("pain.sites", [SECRET]), "application/json", 422),
    "value of an unknown field": (with_value("pain.colour", SECRET), "application/json", 422),
    "section that is a string": (with_value("pain", SECRET), "application/json", 422),
    "top-level string": (SECRET, "application/json", 422),
    "top-level list": ([SECRET], "application/json", 422),
    "truncated JSON": (json.dumps(with_value("patient.sex", SECRET)).encode()[:-2],
                       "application/json", 400),
    "NaN beside the value": (with_raw("patient.bmi", f'NaN, "name": "{SECRET}"'),
                             "application/json", 400),
    "duplicate key holding the value": (
        json.dumps(with_value("patient.sex", SECRET)).replace(
            f'"sex": "{SECRET}"', f'"sex": "{SECRET}", "sex": "{SECRET}"').encode(),
        "application/json", 400),
    "invalid UTF-8 after the value": (
        json.dumps(with_value("patient.sex", SECRET)).encode()[:-2] + b'\xff"}}',
        "application/json", 400),
    "oversized body": (with_value("extra", SECRET * (LIMIT // len(SECRET))),
                       "application/json", 413),
    "wrong content type": (with_value("patient.sex", SECRET), "text/plain", 415),
}


@pytest.mark.parametrize(("body", "content_type", "status"), LEAKY.values(), ids=LEAKY.keys())
def test_problem_does_not_echo_submitted_values(client, body, content_type, status):
    response = post(client, body, content_type=content_type)
    assert_problem(response, status)
    assert SECRET not in response.get_data(as_text=True)
    assert SECRET not in str(response.headers)
    assert_still_serving(client)


# --- Bounded answers: a hostile body cannot make a huge error answer (issue 12, item 2) ----

def test_a_list_past_its_maximum_is_one_error_not_one_per_entry(client):
    body = {"patient": {"age": 40}, "pain": {"sites": ["nowhere"] * 2000, "duration_days": 3}}
    response = client.post("/v1/assessments", json=body)
    assert response.status_code == 422
    assert response.json["errors"] == {"pain.sites": ["Must hold at most 2 entries."]}
    assert len(response.get_data()) < 1000


def test_thousands_of_unknown_fields_are_listed_fifty_and_counted(client):
    pain = {"sites": ["low_back"], "duration_days": 3, **{f"x{i}": True for i in range(3000)}}
    response = client.post("/v1/assessments", json={"patient": {"age": 40}, "pain": pain})
    assert response.status_code == 422
    body = response.json
    assert len(body["errors"]) == 50 and body["errors_left_out"] == 2950
    assert "2950 more fields with errors are not listed" in body["detail"]
    assert len(response.get_data()) < 6000


def test_a_batch_answer_stays_smaller_than_a_hostile_request(client):
    item = {"patient": {"age": 40},
            "pain": {"sites": ["low_back"], "duration_days": 3,
                     **{f"x{i}": True for i in range(40)}}}
    request = json.dumps({"presentations": [item] * 400})
    response = client.post("/v1/assessments/batch", data=request,
                           content_type="application/json")
    assert response.status_code == 200
    results = response.json["results"]
    listed = sum(len(r["problem"].get("errors", {})) for r in results)
    assert listed <= 500
    assert sum(r["problem"].get("errors_left_out", 0) for r in results) == 400 * 40 - listed
    assert len(response.get_data()) < len(request)
