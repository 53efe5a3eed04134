"""Fuzz every operation in openapi.yaml with schemathesis, in process, against create_app().

Whatever operations the spec documents when the suite runs are tested (nothing is listed
here), each with schema-conforming (positive) and schema-violating (negative) requests. Every
response must be no 5xx and must conform to the spec: a documented status code, a documented
content type, a body that validates against the documented schema and the documented
headers. A failure is a defect of the service or of openapi.yaml, never of this test.

Bounded and reproducible for CI: the `examples` phase (the spec's own examples) and the
`fuzzing` phase with MAX_EXAMPLES per operation, derandomized. The `coverage` phase is left
out because its size is not bounded by max_examples (about 650 requests for
`POST /v1/assessments` alone); run `schemathesis run` by hand for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks

from service import create_app
from tests.conftest import ROOT

MAX_EXAMPLES = 30

# An explicit Config: a schemathesis.toml in the working directory must not change CI runs.
schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml", config=schemathesis.Config())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
)
schema.config.phases.update(phases=["examples", "fuzzing"])
# Schema-valid data must be accepted; a hook call may still get 412, which depends on the FHIR
# data at hand (no prefetch and no fhirServer, or one the service may not read), not on the
# request's shape: like a 404 for a resource that does not exist. CDS Hooks asks for it.
_acceptance = schema.config.checks.positive_data_acceptance
_acceptance.expected_statuses = [*_acceptance.expected_statuses, "412"]

# Every check schemathesis has (`--checks all`): conformance of each answer (status, content
# type, schema, headers), no 5xx, schema-valid data accepted and schema-violating data refused,
# a missing required header refused, authentication not ignored, unsupported methods answered
# 405 with Allow.
load_all_checks()
ALL_CHECKS = CHECKS.get_all()


@pytest.fixture(scope="module")
def fuzz_app() -> Iterator[Flask]:
    """The app exactly as served (not the suite's TESTING app)."""
    yield create_app()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.data_too_large])
def test_every_response_conforms_to_openapi(case: schemathesis.Case, fuzz_app: Flask) -> None:
    # buffered=True makes the Werkzeug client close the response iterable: schemathesis reads
    # the body but never closes it, which leaks the file send_file opened (ResourceWarning).
    # identity: schemathesis's WSGI transport sends Accept-Encoding like requests does but
    # reads the body undecoded; compression is transport, tested in tests/api/.
    case.call_and_validate(app=fuzz_app, checks=ALL_CHECKS, buffered=True,
                           headers={"Accept-Encoding": "identity"})
