"""The rules follow the red-flag model (rulesets/red_flag_model.yaml), through the HTTP API.

For each condition, every finding the model says raises it alone does so on any generated
presentation (with the painful sites the model names), and so does every combination of risk
factors the model lists; every red-flag finding has its own rule, with the same field, value
and sites, so it is reported whatever else the presentation holds.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.loader import load_rulesets
from tests.conftest import ROOT, assess
from tests.consistency import rank
from tests.strategies import SITES_FOR, presentations, with_values

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CATALOG = load_rulesets(ROOT / "rulesets")
MODEL = CATALOG.red_flag_model
CONDITIONS = {entry["condition"]: entry for entry in MODEL["conditions"]}

ALONE = [(entry["condition"], raiser) for entry in MODEL["conditions"] for raiser in entry["alone"]]


def _combinations() -> list[tuple[str, str, dict[str, Any]]]:
    """Every way the model says risk factors raise a condition: (condition, sites, values)."""
    ways = []
    for entry in MODEL["conditions"]:
        for combination in entry["together"]:
            choices = [
                itertools.combinations(group["of"], group["need"])
                for group in combination["groups"]
            ]
            for picked in itertools.product(*choices):
                values = {
                    f: v
                    for factors in picked
                    for factor in factors
                    for f, v in factor["when"].items()
                }
                ways.append((entry["condition"], combination["sites"], values))
    return ways


TOGETHER = _combinations()


def _suspected(response: dict[str, Any]) -> dict[str, str]:
    return {c["code"]: c["urgency"] for c in response["suspected_conditions"]}


@st.composite
def _raised(draw: st.DrawFn, ways: list[tuple[str, str, dict[str, Any]]]):
    condition, sites, values = draw(st.sampled_from(ways))
    presentation = draw(presentations(SITES_FOR[sites]))
    return condition, with_values(presentation, values)


@SETTINGS
@given(case=_raised([(c, r["sites"], r["when"]) for c, r in ALONE]))
def test_a_finding_that_raises_a_condition_alone_does_so_whatever_else_is_present(app, case):
    condition, presentation = case
    suspected = _suspected(assess(app, presentation))
    assert condition in suspected
    assert rank(suspected[condition]) <= rank(CONDITIONS[condition]["urgency"])


@SETTINGS
@given(case=_raised(TOGETHER))
def test_risk_factors_that_count_together_raise_the_condition_whatever_else_is_present(app, case):
    condition, presentation = case
    suspected = _suspected(assess(app, presentation))
    assert condition in suspected
    assert rank(suspected[condition]) <= rank(CONDITIONS[condition]["urgency"])


def test_every_combination_of_the_model_raises_its_condition_on_a_screened_presentation(app):
    """Each way, exactly as written, on a plain presentation that raises nothing itself."""
    quiet = {
        "patient": {"age": 35, "sex": "male"},
        "pain": {"sites": ["low_back", "hip"], "duration_days": 10},
    }
    for condition, _, values in [(c, r["sites"], r["when"]) for c, r in ALONE] + TOGETHER:
        suspected = _suspected(assess(app, with_values(quiet, values)))
        assert condition in suspected, (condition, values)


def test_one_risk_factor_alone_does_not_raise_a_condition_that_needs_two(app):
    quiet = {
        "patient": {"age": 35, "sex": "male"},
        "pain": {"sites": ["low_back"], "duration_days": 10},
    }
    for entry in MODEL["conditions"]:
        if entry["alone"]:
            continue  # raised alone by something else; a lone factor may overlap it
        for combination in entry["together"]:
            for group in combination["groups"]:
                for factor in group["of"]:
                    suspected = _suspected(assess(app, with_values(quiet, factor["when"])))
                    assert entry["condition"] not in suspected, (entry["condition"], factor)


def test_every_red_flag_finding_has_its_own_rule_with_the_same_field_value_and_sites():
    in_rules = set()
    for rule in CATALOG.rules:
        if rule.ruleset != "red_flags":
            continue
        [flag] = [c.params for c in rule.then if c.kind == "red_flag"]
        facts = rule.when["facts"]
        tests = facts.get("all", [facts])
        site = next((t["pain.sites"]["contains"] for t in tests if "pain.sites" in t), "any")
        [value] = [t[flag["finding"]] for t in tests if flag["finding"] in t]
        assert flag.get("urgency") == "routine", rule.id
        in_rules.add((flag["finding"], value, site))
    in_model = {
        (f["field"], value, f["sites"]) for f in MODEL["findings"] for value in f["positive"]
    }
    assert in_rules == in_model


def test_the_model_covers_every_red_flag_condition_of_the_vocabulary():
    serious = {
        code
        for code, entry in CATALOG.vocabulary.conditions.items()
        if entry["kind"] in ("serious", "referred")
    }
    assert set(CONDITIONS) == serious


@pytest.mark.parametrize("condition", sorted(CONDITIONS))
def test_the_model_s_urgency_is_the_one_its_rules_give(condition):
    urgencies = {
        c.params["urgency"]
        for rule in CATALOG.rules
        for c in rule.then
        if c.kind == "suspect" and c.params["condition"] == condition and rule.stage == "suspicion"
    }
    assert urgencies == {CONDITIONS[condition]["urgency"]} or (
        condition == "vertebral_fracture" and urgencies == {"urgent", "emergency"}
    )
