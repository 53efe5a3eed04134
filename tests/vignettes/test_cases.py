"""Every vignette through the HTTP API: the public cases and the project's own.

Case files: ../shared/vignettes/cases.yaml (public), low_back_cases.yaml and hip_cases.yaml
(written from the clinical brief and the issues, not from the service's output), and
red_flag_cases.yaml (written by an independent reviewer from the revised brief's red-flag
sections and the contract's consistency rules, before the service answered them). Each case is
checked three ways: its `expect` keys (tests.cases.mismatches), its optional `extra` checks
that the expect keys cannot express, and the invariants every response must satisfy
(tests.vignettes.checks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cases import load_cases, mismatches
from tests.conftest import SHARED
from tests.vignettes.checks import extra_mismatches, invariant_problems

HERE = Path(__file__).parent
CASES = load_cases(SHARED / "vignettes" / "cases.yaml", HERE / "low_back_cases.yaml",
                   HERE / "hip_cases.yaml", HERE / "red_flag_cases.yaml",
                   HERE / "recorded_diagnosis_cases.yaml")
IDS = [case["id"] for case in CASES]
EXTRA_CASES = [case for case in CASES if "extra" in case]


def _assess(client, case: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/assessments", json=case["presentation"])
    assert response.status_code == 200, response.json
    return response.json


def test_case_ids_are_unique():
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_case(client, case):
    assert mismatches(case.get("expect", {}), _assess(client, case)) == []


@pytest.mark.parametrize("case", EXTRA_CASES, ids=[case["id"] for case in EXTRA_CASES])
def test_case_extra(client, case):
    assert extra_mismatches(case["extra"], _assess(client, case)) == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_case_invariants(client, catalog, case):
    assert invariant_problems(case["presentation"], _assess(client, case), catalog) == []
