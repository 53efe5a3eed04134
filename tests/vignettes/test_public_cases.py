"""Every worked case in ../shared/vignettes/cases.yaml, through the HTTP API."""

from __future__ import annotations

import pytest

from tests.cases import load_cases, mismatches
from tests.conftest import SHARED

PUBLIC_CASES = load_cases(SHARED / "vignettes" / "cases.yaml")


@pytest.mark.parametrize("case", PUBLIC_CASES, ids=[c["id"] for c in PUBLIC_CASES])
def test_public_case(client, case):
    response = client.post("/v1/assessments", json=case["presentation"])
    assert response.status_code == 200, response.json
    assert mismatches(case["expect"], response.json) == []
