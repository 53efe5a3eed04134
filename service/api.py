"""HTTP only: parse and check requests, call the assessor, serialise answers.

Knows nothing of durable-rules: it sees an `Assessor` and a `RuleCatalog`.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, send_file
from marshmallow import ValidationError

from .assessment import Assessor
from .errors import BatchBusy, MalformedJSON, NotFound, ValidationFailed, problem_body
from .http import current_assessor, read_json_body
from .loader import Rule
from .observability import count_rule_firings, count_validation_failure, metrics_response
from .schemas import load_presentation

blueprint = Blueprint("api", __name__)


def _validated(body: Any) -> dict[str, Any]:
    try:
        return load_presentation(body)
    except ValidationError as error:
        raise ValidationFailed("The presentation breaks the schema; see errors.",
                               errors=error.messages,
                               left_out=getattr(error, "left_out", 0)) from error
    except RecursionError as error:  # defence in depth: the schema itself is two levels deep
        raise MalformedJSON("The JSON is nested too deeply.") from error


def _assess(presentation: dict[str, Any], *, include_trace: bool = True) -> dict[str, Any]:
    assessment = current_assessor().assess(presentation)
    count_rule_firings(step["rule"] for step in assessment["trace"])
    if not include_trace:
        del assessment["trace"]
    return assessment


@blueprint.post("/v1/assessments")
def create_assessment() -> Response:
    return jsonify(_assess(_validated(read_json_body("presentation"))))


def _trace_wanted() -> bool:
    """`?trace=true|false` exactly; anything else is refused, not read as false."""
    value = request.args.get("trace", "false")
    if value not in ("true", "false"):
        raise ValidationFailed("The query breaks the schema; see errors.",
                               errors={"trace": ["Must be true or false."]})
    return value == "true"


# A batch answer lists at most this many fields with errors over all its items: past it an
# item's problem counts its errors (`errors_left_out`), so the answer stays small however
# many bad items a batch holds.
MAX_BATCH_ERROR_FIELDS = 500


@blueprint.post("/v1/assessments/batch")
def create_assessments_batch() -> Response:
    """Assess up to MAX_BATCH_ITEMS presentations; each item succeeds or fails on its own."""
    # One batch at a time per worker process: a full traced batch holds ~90 MB and seconds
    # of CPU, and several at once would starve the worker's other requests.
    # The body is read first: a slow upload must not hold the slot others are refused for.
    request.max_content_length = current_app.config["MAX_BATCH_BODY_BYTES"]
    body = read_json_body("batch")
    slot = current_app.extensions["batch_slot"]
    if not slot.acquire(blocking=False):
        raise BatchBusy("Another batch is being assessed by this worker; retry shortly.")
    try:
        response = _assess_batch(body)
    except BaseException:
        slot.release()
        raise
    # Held until the answer has been sent (or the send has timed out): an answer of tens of
    # MB waiting for a client that reads slowly is memory the next batch must not add to.
    response.call_on_close(slot.release)
    return response


def _assess_batch(body: Any) -> Response:
    limit = current_app.config["MAX_BATCH_ITEMS"]
    items = body.get("presentations") if isinstance(body, dict) else None
    unknown = sorted(set(body) - {"presentations"}) if isinstance(body, dict) else []
    if not isinstance(items, list) or not items or len(items) > limit or unknown:
        errors = {name: ["Unknown field."] for name in unknown}
        if not isinstance(items, list) or not items:
            errors["presentations"] = ["Must be a non-empty list of presentations."]
        elif len(items) > limit:
            errors["presentations"] = [f"Must hold at most {limit} presentations."]
        raise ValidationFailed("The batch breaks the schema; see errors.", errors=errors)
    include_trace = _trace_wanted()
    results = []
    listed = 0  # fields with errors listed so far in this batch's answer
    for index, item in enumerate(items):
        # A batch is seconds of CPU in one request. Between items, let the worker's other
        # requests (the probes above all) run: under gevent this sleep yields to them, under
        # threads it releases the GIL.
        time.sleep(0)
        try:
            assessment = _assess(_validated(item), include_trace=include_trace)
        except ValidationFailed as error:
            count_validation_failure(error.status, error.errors or {})
            if listed + len(error.errors or {}) > MAX_BATCH_ERROR_FIELDS:
                error.without_errors()  # the rest are counted, not listed
            listed += len(error.errors or {})
            results.append({"index": index, "status": error.status,
                            "problem": problem_body(error)})
        else:
            results.append({"index": index, "status": 200, "assessment": assessment})
    return jsonify({"results": results})


@blueprint.get("/metrics")
def metrics() -> Response:
    return metrics_response()


def _rule_entry(rule: Rule, assessor: Assessor) -> dict[str, Any]:
    return {
        "id": rule.id,
        "title": rule.title,
        "statement": rule.statement,
        "ruleset": rule.ruleset,
        "stage": rule.stage,
        "citations": list(rule.citations),
        "when": rule.when,
        "then": [conclusion.as_dict() for conclusion in rule.then],
        "engine_definition": assessor.engine.definition(rule.id),
    }


@blueprint.get("/v1/rules")
def list_rules() -> Response:
    assessor = current_assessor()
    catalog = assessor.catalog
    ruleset = request.args.get("ruleset")
    rules = [_rule_entry(r, assessor) for r in catalog.rules if ruleset in (None, r.ruleset)]
    return jsonify({"ruleset": {"version": catalog.version, "digest": catalog.digest},
                    "stages": list(catalog.stages), "rules": rules})


@blueprint.get("/v1/rules/<rule_id>")
def get_rule(rule_id: str) -> Response:
    assessor = current_assessor()
    rule = assessor.catalog.rule(rule_id)
    if rule is None:
        raise NotFound(f"No rule has the id {rule_id!r}.")
    return jsonify(_rule_entry(rule, assessor))


@blueprint.get("/v1/citations")
def list_citations() -> Response:
    catalog = current_assessor().catalog
    return jsonify({"citations": list(catalog.citations.values())})


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    catalog = current_assessor().catalog
    return jsonify({"status": "ready", "rules": len(catalog.rules),
                    "ruleset": {"version": catalog.version, "digest": catalog.digest}})


@blueprint.get("/openapi.yaml")
def openapi() -> Response:
    return send_file(current_app.config["OPENAPI_PATH"], mimetype="application/yaml")
