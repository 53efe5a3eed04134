"""Hold the service to openapi.yaml, and openapi.yaml to the code and to ../shared/contract.md."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from openapi_spec_validator import validate as validate_spec
from werkzeug.test import EnvironBuilder, TestResponse

from service.actions import ALLOWED_KINDS, MISSING_SCREENS
from service.presentation import BOOL, ENUM, ENUM_LIST, INPUT_FIELDS, INT, NUMBER, SITES
from tests.conftest import ROOT, SHARED

SPEC_PATH = ROOT / "openapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]
VOCABULARY: dict[str, Any] = yaml.safe_load(
    (ROOT / "rulesets" / "vocabulary.yaml").read_text(encoding="utf-8")
)
CONTRACT = (SHARED / "contract.md").read_text(encoding="utf-8")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


# --- reading the spec --------------------------------------------------------------------


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s until a schema without one (its sibling keywords are dropped)."""
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def enum_values(node: dict[str, Any]) -> list[Any]:
    """Collect every value an `enum` or `const` allows, through `$ref`s and combinators."""
    values: list[Any] = list(node.get("enum", []))
    if "const" in node:
        values.append(node["const"])
    if "$ref" in node:
        values += enum_values(resolve(node))
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(key, []):
            values += enum_values(branch)
    return list(dict.fromkeys(values))


def types(node: dict[str, Any]) -> set[str]:
    declared = resolve(node).get("type", [])
    return {declared} if isinstance(declared, str) else set(declared)


def schema_at(path: str, root: str = "AssessmentFields") -> dict[str, Any]:
    """Return the schema of a response field written as in contract.md: `imaging.procedures[]`."""
    node = SCHEMAS[root]
    for part in path.split("."):
        name = part.removesuffix("[]")
        node = resolve(node)["properties"][name]
        if part.endswith("[]"):
            node = resolve(node)["items"]
    return node


def section_schemas() -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Yield (section, schema, may be null) for each section of the Presentation schema."""
    for section, prop in SCHEMAS["Presentation"]["properties"].items():
        branches = prop.get("oneOf", [prop])
        refs = [branch for branch in branches if "$ref" in branch]
        assert len(refs) == 1, f"{section} must name one section schema"
        yield section, resolve(refs[0]), any(b.get("type") == "null" for b in branches)


def presentation_fields() -> dict[str, tuple[dict[str, Any], bool]]:
    """Map every field path of the Presentation schema to (schema, required in its section)."""
    fields = {}
    for section, schema, _ in section_schemas():
        for name, prop in schema["properties"].items():
            fields[f"{section}.{name}"] = (prop, name in schema.get("required", []))
    return fields


def validator_for(schema: dict[str, Any]) -> OAS31Validator:
    """A JSON Schema validator for a schema of the spec, able to follow its `$ref`s."""
    return OAS31Validator(
        {"components": SPEC["components"], **schema},
        format_checker=OAS31Validator.FORMAT_CHECKER,
    )


def schema_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    errors = validator_for(schema).iter_errors(instance)
    return [f"{list(error.absolute_path)}: {error.message}" for error in errors]


# --- reading contract.md -------------------------------------------------------------------


def contract_tables() -> dict[tuple[str, ...], list[list[str]]]:
    """Return each table of contract.md by its header cells, as rows of stripped cells."""
    tables: dict[tuple[str, ...], list[list[str]]] = {}
    rows: list[list[str]] | None = None
    for line in CONTRACT.splitlines():
        if not line.startswith("|"):
            rows = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if rows is None:
            rows = tables.setdefault(tuple(cells), [])
        elif not set("".join(cells)) <= set("-: "):
            rows.append(cells)
    return tables


def contract_json_examples() -> list[str]:
    return re.findall(r"```json\n(.*?)```", CONTRACT, flags=re.DOTALL)


def backticked_codes(text: str) -> list[str]:
    """Return the `codes` of a table cell, leaving out any within parentheses (commentary)."""
    return re.findall(r"`([a-z0-9_]+)`", re.sub(r"\([^)]*\)", "", text))


REQUEST_TABLE = contract_tables()[("field", "type", "meaning")]
RESPONSE_TABLE = contract_tables()[("field", "values")]
ENDPOINT_TABLE = contract_tables()[("endpoint", "returns")]


# --- talking to the service ----------------------------------------------------------------


def _json_body(value: bytes, **_: str) -> Any:
    return json.loads(value)


def _text_body(value: bytes, **_: str) -> str:
    return value.decode("utf-8")


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    # openapi-core decodes only application/json out of the box.
    config = Config(extra_media_type_deserializers={
        "application/problem+json": _json_body,
        "application/yaml": _text_body,
    })
    return OpenAPI.from_file_path(str(SPEC_PATH), config=config)


def describe(errors: list[Exception]) -> list[str]:
    """Say what openapi-core found wrong, including the schema errors behind each finding."""
    described = []
    for error in errors:
        causes = getattr(error.__cause__, "schema_errors", [])
        details = [f"{list(cause.absolute_path)}: {cause.message}" for cause in causes]
        described.append(f"{type(error).__name__}: {error} {details}")
    return described


def exchange(client: FlaskClient, openapi: OpenAPI, method: str, path: str,
             check_request: bool = False, **kwargs: Any) -> TestResponse:
    """Send one request to the app and check the response against the spec for its status.

    The test client consumes the body it sends, so the spec sees a twin request built alike.
    """
    request = WerkzeugOpenAPIRequest(
        EnvironBuilder(path=path, method=method, **kwargs).get_request()
    )
    if check_request:
        assert describe(openapi.unmarshal_request(request).errors) == []
    with client.open(path, method=method, **kwargs) as response:
        response.get_data()  # read a streamed file fully, so closing it loses nothing
    result = openapi.unmarshal_response(request, WerkzeugOpenAPIResponse(response))
    assert describe(result.errors) == [], response.get_data(as_text=True)[:2000]
    return response


def spec_request_errors(openapi: OpenAPI, body: Any) -> list[str]:
    request = EnvironBuilder(path="/v1/assessments", method="POST", json=body).get_request()
    return describe(openapi.unmarshal_request(WerkzeugOpenAPIRequest(request)).errors)


MINIMAL = {"patient": {"age": 40}, "pain": {"sites": ["low_back"], "duration_days": 3}}


def minimal(**sections: Any) -> dict[str, Any]:
    return {**copy.deepcopy(MINIMAL), **sections}


def contract_presentation() -> dict[str, Any]:
    presentation = json.loads(contract_json_examples()[0])
    presentation["pain"]["sites"] = ["low_back"]
    return presentation


ASSESSMENT_CASES = {
    "contract_example": contract_presentation(),
    "minimal": minimal(),
    "emergency": minimal(neuro={"saddle_anaesthesia": True}),
    "contraindication": minimal(comorbidities={"heart_failure": True}),
    "chronic": {"patient": {"age": 45}, "pain": {"sites": ["low_back"], "duration_days": 200}},
    "start_back_high": minimal(start_back={
        "leg_pain": True, "neck_or_shoulder_pain": False, "walks_short_distances_only": False,
        "dresses_slowly": False, "activity_unsafe": True, "worrying_thoughts": True,
        "catastrophising": True, "low_mood": True, "bothersomeness": "extremely",
    }),
    "nulls_mean_unknown": {
        "patient": {"age": 40, "sex": None, "pregnant": None, "bmi": None},
        "pain": {"sites": ["low_back"], "duration_days": 3, "onset": None, "severity": None},
        "history": None, "neuro": {"saddle_anaesthesia": None}, "start_back": None,
    },
}


# --- 1. the document is valid OpenAPI 3.1 --------------------------------------------------


def test_spec_is_valid_openapi_3_1():
    assert SPEC["openapi"] == "3.1.0"
    validate_spec(SPEC, cls=OpenAPIV31SpecValidator)


def test_spec_version_is_the_package_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert SPEC["info"]["version"] == project["version"]


def test_spec_examples_match_their_schemas():
    media = [(f"paths {path} {method}", op["requestBody"]["content"]["application/json"])
             for path, item in SPEC["paths"].items() for method, op in item.items()
             if method in METHODS and "requestBody" in op]
    media += [(f"response {name} {kind}", content)
              for name, response in SPEC["components"]["responses"].items()
              for kind, content in response.get("content", {}).items()]
    checked = 0
    for where, content in media:
        examples = [e["value"] for e in content.get("examples", {}).values()]
        examples += [content["example"]] if "example" in content else []
        for example in examples:
            assert schema_errors(content["schema"], example) == [], where
            checked += 1
    assert checked >= 10


# --- 2. real responses conform -------------------------------------------------------------


@pytest.mark.parametrize("presentation", ASSESSMENT_CASES.values(), ids=ASSESSMENT_CASES.keys())
def test_assessment_conforms(client, openapi, presentation):
    response = exchange(client, openapi, "POST", "/v1/assessments", check_request=True,
                        json=presentation)
    assert response.status_code == 200
    body = response.json
    assert ("risk" in body) == (presentation.get("start_back") is not None)
    # contract.md: every entry is backed by a reason whose citations all resolve.
    concluded = {reason["conclusion"] for reason in body["reasons"]}
    backed = [f"classification.{entry['site']}" for entry in body["classification"]]
    backed += [f"{name}.{entry['code']}" for name in
               ("suspected_conditions", "treatments", "referrals", "avoid")
               for entry in body[name]]
    assert set(backed + ["imaging"]) <= concluded
    cited = {citation for reason in body["reasons"] for citation in reason["citations"]}
    assert cited == {citation["id"] for citation in body["citations"]}


def test_assessment_cases_cover_the_optional_parts(client):
    """The cases above must exercise red flags, contraindications and risk, or prove little."""
    def assess(case: str) -> dict[str, Any]:
        return client.post("/v1/assessments", json=ASSESSMENT_CASES[case]).json

    emergency = assess("emergency")
    assert emergency["urgency"] == "emergency"
    assert [flag["code"] for flag in emergency["red_flags"]] == ["saddle_anaesthesia"]
    assert emergency["imaging"]["indicated"] is True
    avoid = {entry["code"]: entry for entry in assess("contraindication")["avoid"]}
    assert avoid["oral_nsaid"]["contraindications"] == ["comorbidities.heart_failure"]
    assert "second" in {treatment["line"] for treatment in assess("chronic")["treatments"]}
    assert assess("start_back_high")["risk"]["group"] == "high"
    assert assess("contract_example")["risk"]["group"] == "medium"
    assert "risk" not in assess("minimal")


def test_rule_catalog_conforms(client, openapi):
    catalog = exchange(client, openapi, "GET", "/v1/rules").json
    assert catalog["rules"]
    core = exchange(client, openapi, "GET", "/v1/rules", query_string={"ruleset": "core"}).json
    assert core["rules"] and {rule["ruleset"] for rule in core["rules"]} == {"core"}
    none = exchange(client, openapi, "GET", "/v1/rules", query_string={"ruleset": "x"}).json
    assert none["rules"] == []


def test_one_rule_conforms(client, openapi):
    rule_id = client.get("/v1/rules").json["rules"][0]["id"]
    response = exchange(client, openapi, "GET", f"/v1/rules/{rule_id}")
    assert response.status_code == 200
    assert response.json["id"] == rule_id


def test_unknown_rule_is_a_404_problem(client, openapi):
    response = exchange(client, openapi, "GET", "/v1/rules/lbp.no_such_rule")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("path", ["/v1/citations", "/healthz", "/readyz", "/openapi.yaml"])
def test_get_endpoint_conforms(client, openapi, path):
    assert exchange(client, openapi, "GET", path).status_code == 200


@pytest.mark.parametrize("query", [{}, {"trace": "true"}], ids=["lean", "with_trace"])
def test_batch_conforms(client, openapi, query):
    body = {"presentations": [MINIMAL, {"patient": {"age": "52"}}, MINIMAL]}
    response = exchange(client, openapi, "POST", "/v1/assessments/batch", check_request=True,
                        json=body, query_string=query)
    assert [r["status"] for r in response.json["results"]] == [200, 422, 200]


def test_batch_refusal_conforms(client, openapi):
    response = exchange(client, openapi, "POST", "/v1/assessments/batch",
                        json={"presentations": []})
    assert response.status_code == 422


def test_busy_batch_conforms(app, client, openapi):
    slot = app.extensions["batch_slot"]
    assert slot.acquire(blocking=False)
    try:
        response = exchange(client, openapi, "POST", "/v1/assessments/batch",
                            json={"presentations": [MINIMAL]})
    finally:
        slot.release()
    assert response.status_code == 429


def test_metrics_conform(client, openapi):
    response = exchange(client, openapi, "GET", "/metrics")
    assert "http_requests_total" in response.get_data(as_text=True)


def test_openapi_yaml_conditional_and_range_requests_conform(client, openapi):
    with client.get("/openapi.yaml") as response:
        etag = response.headers["ETag"]
    not_modified = exchange(client, openapi, "GET", "/openapi.yaml",
                            headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    part = exchange(client, openapi, "GET", "/openapi.yaml", headers={"Range": "bytes=0-9"})
    assert (part.status_code, part.data) == (206, SPEC_PATH.read_bytes()[:10])
    beyond = exchange(client, openapi, "GET", "/openapi.yaml",
                      headers={"Range": "bytes=99999999-"})
    assert beyond.status_code == 416


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/readyz"), ("GET", "/v1/rules"), ("GET", "/v1/rules/core.duration.acute"),
    ("GET", "/v1/citations"), ("POST", "/v1/assessments"),
])
def test_not_ready_is_a_503_problem(app, client, openapi, monkeypatch, method, path):
    monkeypatch.delitem(app.extensions, "assessor")
    kwargs = {"json": MINIMAL} if method == "POST" else {}
    response = exchange(client, openapi, method, path, **kwargs)
    assert response.status_code == 503


ERROR_CASES = {
    "400_not_json": (400, {"data": "{not json", "content_type": "application/json"}),
    "400_repeated_key": (400, {"data": '{"patient": {"age": 40, "age": 41}}',
                               "content_type": "application/json"}),
    "413_too_large": (413, {"data": '{"x": "' + "x" * (64 * 1024) + '"}',
                            "content_type": "application/json"}),
    "415_text_plain": (415, {"data": json.dumps(MINIMAL), "content_type": "text/plain"}),
    "422_string_for_number": (422, {"json": {"patient": {"age": "40"},
                                             "pain": MINIMAL["pain"]}}),
}


@pytest.mark.parametrize(("status", "kwargs"), ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_error_is_a_documented_problem(client, openapi, status, kwargs):
    response = exchange(client, openapi, "POST", "/v1/assessments", **kwargs)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == status


def test_validation_problem_names_the_field(client):
    body = {"patient": {"age": "40"}, "pain": {**MINIMAL["pain"], "duration_days": -1}}
    errors = client.post("/v1/assessments", json=body).json["errors"]
    assert set(errors) == {"patient.age", "pain.duration_days"}


@pytest.mark.parametrize("path", SPEC["paths"])
def test_other_methods_are_a_405_problem_with_allow(client, path):
    documented = {method.upper() for method in SPEC["paths"][path] if method in METHODS}
    allowed = documented | {"OPTIONS"} | ({"HEAD"} if "GET" in documented else set())
    response = client.patch(re.sub(r"\{\w+\}", "x", path))
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == allowed
    spec_response = SPEC["components"]["responses"]["MethodNotAllowed"]
    assert spec_response["headers"]["Allow"]["required"] is True
    schema = spec_response["content"][response.mimetype]["schema"]
    assert schema_errors(schema, response.json) == []


def test_every_route_is_documented(app: Flask):
    def shape(path: str) -> str:
        return re.sub(r"<(?:\w+:)?\w+>|\{\w+\}", "{}", path)

    routes = {(shape(rule.rule), method) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(shape(path), method.upper()) for path, item in SPEC["paths"].items()
                  for method in item if method in METHODS}
    assert routes == documented


# --- the spec and the service agree on what a valid presentation is ------------------------


REJECTED = {
    "number_as_string": minimal(patient={"age": "40"}),
    "boolean_as_string": minimal(neuro={"saddle_anaesthesia": "yes"}),
    "boolean_as_number": minimal(neuro={"saddle_anaesthesia": 1}),
    "number_as_boolean": {**MINIMAL, "pain": {**MINIMAL["pain"], "severity": True}},
    "fractional_integer": {**MINIMAL, "pain": {**MINIMAL["pain"], "severity": 7.5}},
    "out_of_range": minimal(patient={"age": 121}),
    "value_not_in_enum": minimal(patient={"age": 40, "sex": "f"}),
    "unknown_field": minimal(neuro={"saddle_anesthesia": True}),
    "unknown_section": minimal(hip_exam={"pain": True}),
    "required_field_null": minimal(patient={"age": None}),
    "required_section_missing": {"patient": {"age": 40}},
    "no_sites": {**MINIMAL, "pain": {**MINIMAL["pain"], "sites": []}},
    "repeated_site": {**MINIMAL, "pain": {**MINIMAL["pain"], "sites": ["low_back"] * 2}},
    "partial_start_back": minimal(start_back={"leg_pain": True}),
    "start_back_item_null": minimal(start_back={
        **ASSESSMENT_CASES["start_back_high"]["start_back"], "low_mood": None}),
    "body_not_an_object": [MINIMAL],
}


@pytest.mark.parametrize("body", REJECTED.values(), ids=REJECTED.keys())
def test_spec_and_service_both_reject(client, openapi, body):
    assert spec_request_errors(openapi, body) != []
    response = exchange(client, openapi, "POST", "/v1/assessments", json=body)
    assert response.status_code == 422


@pytest.mark.parametrize("body", [
    minimal(neuro={"saddle_anesthesia": None}),
    minimal(hip_exam=None),
], ids=["unknown_field_null", "unknown_section_null"])
def test_unknown_field_set_to_null_is_rejected(client, openapi, body):
    """Regression: nulls were dropped before the unknown-field check, so these passed."""
    assert spec_request_errors(openapi, body) != []
    assert client.post("/v1/assessments", json=body).status_code == 422


def test_an_integral_number_is_an_integer_for_the_spec_and_the_service(client, openapi):
    """JSON has one number type: JSON Schema reads 10.0 as the integer 10, so must we."""
    body = minimal(pain={"sites": ["low_back"], "duration_days": 10.0, "severity": 6.0})
    assert spec_request_errors(openapi, body) == []
    whole = minimal(pain={"sites": ["low_back"], "duration_days": 10, "severity": 6})
    answer, expected = client.post("/v1/assessments", json=body), client.post(
        "/v1/assessments", json=whole)
    assert answer.status_code == 200
    drop = ("assessment_id",)
    assert ({k: v for k, v in answer.json.items() if k not in drop}
            == {k: v for k, v in expected.json.items() if k not in drop})


def _hooks_in_spec(service_id: str) -> set[str]:
    schema = SPEC["paths"][f"/cds-services/{service_id}"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    (refined,) = [part for part in schema["allOf"] if "$ref" not in part]
    variants = refined.get("anyOf", [refined])
    return {variant["properties"]["hook"]["const"] for variant in variants}


def test_each_cds_service_has_its_path_with_the_hooks_it_answers():
    from service.cds_hooks.discovery import SERVICES, hooks_of

    documented = {path.removeprefix("/cds-services/") for path in SPEC["paths"]
                  if path.startswith("/cds-services/") and "{" not in path}
    assert documented == {service.id for service in SERVICES}
    for service in SERVICES:
        assert _hooks_in_spec(service.id) == set(hooks_of(service.id)), service.id


@pytest.mark.parametrize(("service_id", "hook", "status"), [
    ("msk-assessment", "order-select", 422),
    ("lumbar-imaging-appropriateness-order-sign", "patient-view", 422),
    ("no-such-service", "patient-view", 404),
])
def test_a_hook_the_service_does_not_answer_is_refused(client, service_id, hook, status):
    body = {"hook": hook, "hookInstance": "x", "context": {"userId": "u", "patientId": "p"}}
    response = client.post(f"/cds-services/{service_id}", json=body)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"


# --- 3. the spec's codes and fields agree with the service and with contract.md -----------


VOCABULARY_ENUMS = {
    "ConditionCode": "conditions",
    "ProcedureCode": "imaging_procedures",
    "ImagingRating": "imaging_rating",
    "ImagingTiming": "imaging_timing",
    "Urgency": "urgency",
    "DurationCategory": "duration_category",
    "TreatmentCode": "treatments",
    "ReferralCode": "referrals",
    "AvoidCode": "avoid",
    "SafetyNetCode": "safety_netting",
}


@pytest.mark.parametrize(("schema", "section"), VOCABULARY_ENUMS.items())
def test_spec_codes_are_the_vocabulary(schema, section):
    # Same codes in the same order: for urgency, timing and rating the order means precedence.
    assert SCHEMAS[schema]["enum"] == list(VOCABULARY[section])


def test_spec_classification_and_treatment_types_are_the_vocabulary():
    classification = VOCABULARY["classification"]
    assert SCHEMAS["LowBackCategory"]["enum"] == list(classification["low_back"])
    assert SCHEMAS["HipCategory"]["enum"] == list(classification["hip"])
    every = {code for categories in classification.values() for code in categories}
    assert set(SCHEMAS["ClassificationCategory"]["enum"]) == every
    for branch in SCHEMAS["Classification"]["allOf"]:
        site = branch["if"]["properties"]["site"]["const"]
        for name in ("category", "pattern"):
            assert enum_values(branch["then"]["properties"][name]) == list(classification[site])
    types_used = {entry["type"] for entry in VOCABULARY["treatments"].values()}
    assert set(SCHEMAS["TreatmentType"]["enum"]) == types_used


def test_spec_codes_are_the_service_constants():
    assert SCHEMAS["Site"]["enum"] == list(SITES)
    assert SCHEMAS["ConclusionKind"]["enum"] == list(ALLOWED_KINDS)
    assert SCHEMAS["MissingScreen"]["enum"] == list(MISSING_SCREENS)
    assert SCHEMAS["PresentationField"]["enum"] == list(INPUT_FIELDS)
    assert SCHEMAS["FindingCode"]["enum"] == [path.split(".")[1] for path in INPUT_FIELDS]
    timing = SCHEMAS["Imaging"]["properties"]["timing"]["enum"]
    assert timing == [*VOCABULARY["imaging_timing"], None]


def test_presentation_fields_are_the_registry():
    fields = presentation_fields()
    assert list(fields) == list(INPUT_FIELDS)
    for path, spec in INPUT_FIELDS.items():
        schema, required = fields[path]
        # The STarT Back block is all or nothing (schemas.py): every item required within it.
        assert required == (spec.required or path.startswith("start_back.")), path
        assert ("null" in types(schema)) == (not required), path
        kind = types(schema) - {"null"}
        if spec.kind == BOOL:
            assert kind == {"boolean"}, path
        elif spec.kind in (INT, NUMBER):
            assert kind == {"integer" if spec.kind == INT else "number"}, path
            assert (schema["minimum"], schema["maximum"]) == (spec.minimum, spec.maximum), path
        elif spec.kind == ENUM:
            assert kind == {"string"}, path
            assert [v for v in schema["enum"] if v is not None] == list(spec.choices), path
        elif spec.kind == ENUM_LIST:
            assert kind == {"array"}, path
            assert enum_values(schema["items"]) == list(spec.choices), path
            assert (schema["minItems"], schema["maxItems"]) == (1, len(spec.choices)), path
            assert schema["uniqueItems"] is True, path
        else:
            pytest.fail(f"{path}: unknown kind {spec.kind}")


def test_presentation_sections_are_strict_and_required_as_the_registry():
    presentation = SCHEMAS["Presentation"]
    assert presentation["additionalProperties"] is False
    needed = {path.split(".")[0] for path, spec in INPUT_FIELDS.items() if spec.required}
    assert set(presentation["required"]) == needed
    for section, schema, nullable in section_schemas():
        assert schema["additionalProperties"] is False, section
        assert nullable == (section not in needed), section


def test_contract_response_codes_are_in_the_spec():
    """Every backticked code of contract.md's response table is allowed at its field."""
    for field, values in RESPONSE_TABLE:
        codes = backticked_codes(values)
        assert codes, f"no codes parsed for {field!r}"
        path, _, qualifier = field.partition(",")
        allowed = enum_values(schema_at(path.strip()))
        site = backticked_codes(qualifier)
        if site:  # "classification[].category, site `hip`": the categories of that site
            branch = next(b for b in resolve(schema_at("classification[]"))["allOf"]
                          if b["if"]["properties"]["site"]["const"] == site[0])
            allowed = enum_values(branch["then"]["properties"]["category"])
        assert set(codes) <= set(allowed), f"{field}: {sorted(set(codes) - set(allowed))}"


def test_contract_request_table_agrees_with_the_spec():
    fields = presentation_fields()
    listed = {field for field, _, _ in REQUEST_TABLE if field in fields}
    required = set()
    for field, kind, _ in REQUEST_TABLE:
        section, _, name = field.partition(".")
        if name.startswith("*"):  # "history.* (other)": the section's fields not listed
            named = dict(re.findall(r"([a-z_]+) \(([a-z_, ]+)\)", kind))
            for path, (schema, _) in fields.items():
                leaf = path.split(".")[1]
                if path.startswith(section + ".") and path not in listed and leaf not in named:
                    assert types(schema) - {"null"} == {"boolean"}, path
            for leaf, choices in named.items():
                allowed = enum_values(fields[f"{section}.{leaf}"][0])
                assert set(choices.split(", ")) <= set(allowed), field
            continue
        schema, is_required = fields[field]
        if "**required**" in kind:
            required.add(field)
        words = kind.replace("**required**", "").strip(" ,;")
        number = re.match(r"(int|number) (\d+)\.\.(\d+)", words)
        if number:
            expected = {"int": "integer", "number": "number"}[number[1]]
            assert types(schema) - {"null"} == {expected}, field
            assert (schema["minimum"], schema["maximum"]) == (int(number[2]), int(number[3]))
        elif words == "bool":
            assert types(schema) - {"null"} == {"boolean"}, field
        elif words.startswith("non-empty list of"):
            assert schema["minItems"] == 1, field
            assert set(backticked_codes(words)) <= set(enum_values(schema["items"])), field
        else:
            assert set(words.split(", ")) <= set(enum_values(schema)), field
    spec_required = {path for path, (_, is_required) in fields.items()
                     if is_required and not path.startswith("start_back.")}
    assert spec_required == required


def test_contract_endpoints_are_in_the_spec():
    for endpoint, _ in ENDPOINT_TABLE:
        method, path = endpoint.strip("`").split(" ")
        assert method.lower() in SPEC["paths"][path], endpoint


def test_contract_request_example_is_a_valid_presentation():
    assert schema_errors(SCHEMAS["Presentation"], contract_presentation()) == []


def test_contract_response_example_uses_only_spec_names():
    def check(value: Any, schema: dict[str, Any], where: str) -> None:
        schema = resolve(schema)
        if isinstance(value, list):
            for item in value:
                check(item, schema["items"], f"{where}[]")
        elif isinstance(value, dict) and schema.get("additionalProperties") is False:
            for key, item in value.items():
                assert key in schema["properties"], f"{where}.{key} is not in the spec"
                check(item, schema["properties"][key], f"{where}.{key}")

    check(json.loads(contract_json_examples()[1]), SCHEMAS["Assessment"], "assessment")


# --- 4. the service serves this very file ---------------------------------------------------


def test_served_document_is_the_file(client):
    with client.get("/openapi.yaml") as response:
        assert response.status_code == 200
        assert response.mimetype == "application/yaml"
        assert response.data == SPEC_PATH.read_bytes()
