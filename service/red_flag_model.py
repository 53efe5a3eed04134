"""Check the red-flag model (rulesets/red_flag_model.yaml), the page the red-flag rules follow.

The model says, for each condition a red flag may raise, which findings raise it alone and
which risk factors count only together; and which findings are red flags in themselves. It is
data for reviewers and for the tests that hold the rules to it, so every field, value,
condition and citation it names is checked here, at start-up, like the rules themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .presentation import INPUT_FIELDS, SITES
from .vocabulary import Vocabulary

SITE_SCOPES = ("any", *SITES)


class _Checker:
    def __init__(
        self, name: str, vocabulary: Vocabulary, citations: Mapping[str, Any], problems: list[str]
    ) -> None:
        self.name = name
        self.vocabulary = vocabulary
        self.citations = citations
        self.problems = problems

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{self.name}: {where}: {message}")

    def text(self, entry: Mapping[str, Any], key: str, where: str) -> None:
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            self.fail(where, f"{key} must be non-empty text")

    def sites(self, entry: Mapping[str, Any], where: str) -> None:
        if entry.get("sites") not in SITE_SCOPES:
            self.fail(where, f"sites must be one of {', '.join(SITE_SCOPES)}")

    def cited(self, entry: Mapping[str, Any], where: str) -> None:
        cited = entry.get("citations")
        if not isinstance(cited, list) or not cited:
            self.fail(where, "needs at least one citation")
            return
        for citation in cited:
            if citation not in self.citations:
                self.fail(where, f"unknown citation {citation!r}")

    def assignment(self, when: Any, where: str) -> None:
        """A `when`: field -> a value the field accepts (a concrete case that satisfies it)."""
        if not isinstance(when, Mapping) or not when:
            self.fail(where, "when must map fields to values")
            return
        for field, value in when.items():
            spec = INPUT_FIELDS.get(field)
            if spec is None:
                self.fail(where, f"unknown field {field!r}")
            elif not spec.accepts(value):
                self.fail(where, f"{field} cannot be {value!r}")

    def finding(self, entry: Any, index: int) -> str | None:
        where = f"finding {index}"
        if not isinstance(entry, Mapping):
            self.fail(where, "must be a mapping")
            return None
        field = entry.get("field")
        spec = INPUT_FIELDS.get(field)
        if spec is None:
            self.fail(where, f"unknown field {field!r}")
            return None
        where = f"finding {field}"
        positive = entry.get("positive")
        if not isinstance(positive, list) or not positive:
            self.fail(where, "positive must list the values that make it a red flag")
        else:
            for value in positive:
                if not spec.accepts(value):
                    self.fail(where, f"{field} cannot be {value!r}")
        self.sites(entry, where)
        self.text(entry, "asked", where)
        self.cited(entry, where)
        return field

    def condition(self, entry: Any, index: int) -> None:
        code = entry.get("condition") if isinstance(entry, Mapping) else None
        where = f"condition {code or index}"
        if code not in self.vocabulary.conditions:
            self.fail(where, "is not a condition of the vocabulary")
            return
        if entry.get("urgency") not in self.vocabulary.urgency:
            self.fail(where, "urgency must be one of the vocabulary's")
        for key in ("more_urgent", "unknown"):
            self.text(entry, key, where)
        self.cited(entry, where)
        alone, together = entry.get("alone"), entry.get("together")
        if not isinstance(alone, list) or not isinstance(together, list) or not (alone or together):
            self.fail(where, "needs `alone` and `together` lists, not both empty")
            return
        for i, raiser in enumerate(alone):
            if not isinstance(raiser, Mapping):
                self.fail(f"{where} alone[{i}]", "must be a mapping")
                continue
            self.assignment(raiser.get("when"), f"{where} alone[{i}]")
            self.sites(raiser, f"{where} alone[{i}]")
        for i, combination in enumerate(together):
            self.combination(combination, f"{where} together[{i}]")

    def combination(self, combination: Any, where: str) -> None:
        if (
            not isinstance(combination, Mapping)
            or not isinstance(combination.get("groups"), list)
            or not combination["groups"]
        ):
            self.fail(where, "needs `sites` and a non-empty `groups` list")
            return
        self.sites(combination, where)
        for g, group in enumerate(combination["groups"]):
            at = f"{where} group {g}"
            factors = group.get("of") if isinstance(group, Mapping) else None
            if not isinstance(factors, list) or not factors:
                self.fail(at, "needs a non-empty `of` list of factors")
                continue
            need = group.get("need")
            if isinstance(need, bool) or not isinstance(need, int) or not 1 <= need <= len(factors):
                self.fail(at, f"need must be a whole number from 1 to {len(factors)}")
            for f, factor in enumerate(factors):
                if not isinstance(factor, Mapping):
                    self.fail(f"{at} factor {f}", "must be a mapping")
                    continue
                self.text(factor, "factor", f"{at} factor {f}")
                self.assignment(factor.get("when"), f"{at} factor {f}")


def check_red_flag_model(
    data: Any, name: str, vocabulary: Vocabulary, citations: Mapping[str, Any], problems: list[str]
) -> dict[str, Any]:
    """Check the model, adding each problem (naming the file and entry) to `problems`."""
    checker = _Checker(name, vocabulary, citations, problems)
    if (
        not isinstance(data, Mapping)
        or not isinstance(data.get("findings"), list)
        or not isinstance(data.get("conditions"), list)
    ):
        problems.append(f"{name}: needs `findings` and `conditions` lists")
        return {}
    fields = [checker.finding(entry, i) for i, entry in enumerate(data["findings"])]
    repeated = sorted({f for f in fields if f is not None and fields.count(f) > 1})
    for field in repeated:
        checker.fail(f"finding {field}", "is listed twice")
    codes = [entry.get("condition") for entry in data["conditions"] if isinstance(entry, Mapping)]
    for code in sorted({c for c in codes if codes.count(c) > 1}):
        checker.fail(f"condition {code}", "is listed twice")
    for i, entry in enumerate(data["conditions"]):
        checker.condition(entry, i)
    return dict(data)
