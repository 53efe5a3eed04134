"""Independent low back vignettes (low_back_cases.yaml), through the HTTP API.

The expectations come from the clinical brief, not from the service's output. Three checks:
`expect` keys (tests.cases.mismatches), per-case `extra` checks the expect keys cannot express,
and the invariants every response must satisfy (tests.vignettes.checks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cases import load_cases, mismatches
from tests.vignettes.checks import extra_mismatches, invariant_problems

CASES = load_cases(Path(__file__).with_name("low_back_cases.yaml"))
IDS = [case["id"] for case in CASES]
EXTRA_CASES = [case for case in CASES if "extra" in case]


def _assess(client, case: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/assessments", json=case["presentation"])
    assert response.status_code == 200, response.json
    return response.json


def test_case_ids_are_unique():
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_low_back_case(client, case):
    assert mismatches(case["expect"], _assess(client, case)) == []


@pytest.mark.parametrize("case", EXTRA_CASES, ids=[case["id"] for case in EXTRA_CASES])
def test_low_back_case_extra(client, case):
    assert extra_mismatches(case["extra"], _assess(client, case)) == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_low_back_invariants(client, catalog, case):
    assert invariant_problems(case["presentation"], _assess(client, case), catalog) == []
