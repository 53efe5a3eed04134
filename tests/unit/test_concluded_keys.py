"""`has:`/`lacks:` as concluded keys: a pattern's key is set exactly when a conclusion matches.

The engine no longer joins conclusion facts; each copy of the presentation carries the keys of
the conclusions drawn so far. These tests hold the encoding to the pattern semantics the rules
were written against (`FactPattern.matches`, which the loader's stage-order check also uses).
"""

from __future__ import annotations

import pytest

from service.conditions import FactPattern, concluded_key, concluded_keys
from service.loader import load_rulesets
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def catalog():
    return load_rulesets(ROOT / "rulesets")


def test_every_pattern_is_set_exactly_by_the_conclusions_that_match_it(catalog):
    patterns = [p for rule in catalog.rules
                for p in (*rule.condition.has, *rule.condition.lacks)]
    facts = [c.fact for rule in catalog.rules for c in rule.then if c.fact is not None]
    assert len(patterns) > 50 and len(facts) > 150
    matched = 0
    for pattern in patterns:
        keys = set(pattern.concluded_keys())
        for fact in facts:
            assert pattern.matches(fact) == bool(keys & set(concluded_keys(fact))), (
                pattern.describe(), fact)
            matched += pattern.matches(fact)
    assert matched > 100  # both outcomes are exercised


def test_a_pattern_with_choices_or_no_attributes():
    fact = {"t": "suspect", "condition": "cauda_equina_syndrome", "urgency": "emergency",
            "kind": "serious", "site": "low_back"}
    keys = set(concluded_keys(fact))
    assert len(keys) == 16  # every subset of the four attributes
    assert FactPattern("suspect", {}).concluded_keys() == ["concluded.suspect"]
    either = FactPattern("suspect", {"urgency": {"in": ["urgent", "emergency"]}})
    assert either.concluded_keys() == ["concluded.suspect|urgency=urgent",
                                       "concluded.suspect|urgency=emergency"]
    assert keys & set(either.concluded_keys())
    other_site = FactPattern("suspect", {"urgency": "emergency", "site": "hip"})
    assert not keys & set(other_site.concluded_keys())


def test_booleans_and_separators():
    assert concluded_key("imaging", [("indicated", False)]) == "concluded.imaging|indicated=false"
    for bad in ("a|b", "a=b", 'a"b'):
        with pytest.raises(ValueError, match="separator"):
            concluded_key("refer", [("code", bad)])
