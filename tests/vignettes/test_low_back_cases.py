"""Independent low back vignettes (low_back_cases.yaml), through the HTTP API.

The expectations come from the clinical brief, not from the service's output. Three checks:
`expect` keys (tests.cases.mismatches), per-case `extra` checks that the expect keys cannot
express, and invariants every low back response must satisfy whatever the case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cases import load_cases, mismatches

CASE_FILE = Path(__file__).with_name("low_back_cases.yaml")
CASES = load_cases(CASE_FILE)
IDS = [case["id"] for case in CASES]
EXTRA_CASES = [case for case in CASES if "extra" in case]

# Most pressing first, as in the contract.
URGENCY_ORDER = ("emergency", "urgent", "routine", "self_care")
RATING_ORDER = ("usually_appropriate", "may_be_appropriate", "usually_not_appropriate")


def _assess(client, case: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/assessments", json=case["presentation"])
    assert response.status_code == 200, response.json
    return response.json


def _rank(urgency: str) -> int:
    return URGENCY_ORDER.index(urgency)


def _codes(entries: list[dict[str, Any]]) -> set[str]:
    return {entry["code"] for entry in entries}


def extra_mismatches(extra: dict[str, Any], response: dict[str, Any]) -> list[str]:
    """Return a description of every `extra` expectation the response does not meet."""
    problems: list[str] = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    flags = {flag["code"]: flag for flag in response["red_flags"]}
    suspected = {s["code"]: s for s in response["suspected_conditions"]}
    missing = {m["field"] for m in response["missing_information"]}
    for key, wanted in extra.items():
        if key == "red_flags_include":
            for code in wanted:
                check(code in flags, f"red flag {code} not in {sorted(flags)}")
        elif key == "red_flags_none":
            check(not flags, f"red flags {sorted(flags)}, expected none")
        elif key == "red_flag_conditions":
            for code, conditions in wanted.items():
                listed = flags.get(code, {}).get("conditions", [])
                for condition in conditions:
                    check(condition in listed,
                          f"red flag {code} conditions {listed} lack {condition}")
        elif key == "suspected_urgency":
            for code, urgency in wanted.items():
                got = suspected.get(code, {}).get("urgency")
                check(got == urgency, f"suspected {code} urgency {got}, expected {urgency}")
        elif key == "pattern":
            got = {c["site"]: c.get("pattern") for c in response["classification"]}
            for site, pattern in wanted.items():
                check(got.get(site) == pattern,
                      f"{site} pattern {got.get(site)}, expected {pattern}")
        elif key == "risk":
            risk = response.get("risk") or {}
            for field, value in wanted.items():
                check(risk.get(field) == value, f"risk.{field} {risk.get(field)}, expected {value}")
        elif key == "risk_absent":
            check(response.get("risk") is None, f"risk {response.get('risk')}, expected none")
        elif key == "missing_all":
            for field in wanted:
                check(field in missing, f"missing_information lacks {field}")
        elif key == "missing_exclude":
            for field in wanted:
                check(field not in missing, f"missing_information lists {field}")
        elif key == "avoid_reason":
            avoid = {a["code"]: a for a in response["avoid"]}
            for code in wanted:
                check(bool(avoid.get(code, {}).get("reason")), f"avoid {code} has no reason")
        elif key == "treatment_cautions":
            treatments = {t["code"]: t for t in response["treatments"]}
            for code, cautions in wanted.items():
                got = {c["code"] for c in treatments.get(code, {}).get("cautions", [])}
                for caution in cautions:
                    check(caution in got, f"treatment {code} cautions {sorted(got)} lack {caution}")
        else:
            problems.append(f"unknown extra expectation {key!r}")
    return problems


def invariant_problems(response: dict[str, Any]) -> list[str]:
    """Clinical consistency every low back response must show, whatever the case."""
    problems: list[str] = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    suspected = {s["code"]: s for s in response["suspected_conditions"]}
    for code, condition in suspected.items():
        check(condition.get("urgency") in URGENCY_ORDER, f"suspected {code} has no valid urgency")
        check(bool(condition.get("rules")), f"suspected {code} names no rule")
        # The assessment is at least as pressing as every condition it suspects.
        if condition.get("urgency") in URGENCY_ORDER:
            check(_rank(response["urgency"]) <= _rank(condition["urgency"]),
                  f"urgency {response['urgency']} below suspected {code} {condition['urgency']}")
    for flag in response["red_flags"]:
        code = flag.get("code")
        check(flag.get("urgency") in URGENCY_ORDER, f"red flag {code} has no valid urgency")
        conditions = flag.get("conditions") or []
        check(bool(conditions), f"red flag {code} lists no condition")
        for condition in conditions:
            check(condition in suspected, f"red flag {code} raised {condition}, not suspected")
        urgencies = [suspected[c]["urgency"] for c in conditions if c in suspected]
        if urgencies and flag.get("urgency") in URGENCY_ORDER:
            check(flag["urgency"] == min(urgencies, key=_rank),
                  f"red flag {code} urgency {flag['urgency']}, its conditions {urgencies}")
    if response["urgency"] == "self_care":
        check(not suspected, f"self_care with suspected {sorted(suspected)}")
        check(not response["red_flags"], "self_care with red flags")
        unscreened = [m["field"] for m in response["missing_information"]
                      if m.get("screen") == "red_flags"]
        check(not unscreened, f"self_care with unanswered red-flag screens {unscreened}")
    both = _codes(response["treatments"]) & _codes(response["avoid"])
    check(not both, f"both suggested and avoided: {sorted(both)}")
    imaging = response["imaging"]
    check((imaging["timing"] is not None) == imaging["indicated"],
          f"imaging indicated {imaging['indicated']} with timing {imaging['timing']}")
    ratings = [RATING_ORDER.index(p["rating"]) for p in imaging["procedures"]]
    check(ratings == sorted(ratings), "imaging procedures not sorted best first")
    if imaging["indicated"]:
        check("routine_imaging" not in _codes(response["avoid"]),
              "imaging indicated yet routine imaging listed under avoid")
    return problems


def test_case_ids_are_unique():
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_low_back_case(client, case):
    assert mismatches(case["expect"], _assess(client, case)) == []


@pytest.mark.parametrize("case", EXTRA_CASES, ids=[case["id"] for case in EXTRA_CASES])
def test_low_back_case_extra(client, case):
    assert extra_mismatches(case["extra"], _assess(client, case)) == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_low_back_invariants(client, case):
    assert invariant_problems(_assess(client, case)) == []
