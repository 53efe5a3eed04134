"""Compile a rule's `when:` block into a durable-rules condition, checking it on the way.

A `when:` block has up to three parts, all of which must hold:

    facts:  a test of the presentation: `{field: value}` equality, `{field: {op: value}}`
            with op one of gt, gte, lt, lte, ne, in, contains, known; `all:`/`any:` lists.
    has:    conclusions of earlier stages that must exist, e.g. `- suspect: {kind: serious}`
    lacks:  conclusions of earlier stages that must not exist.

Unknown findings never satisfy a comparison: `ne`, `lt` and the rest are false when the field
was not provided, and only `known: false` matches an unanswered field. That keeps the
three-valued contract (true / false / unknown) in the rules rather than in Python.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .actions import FACT_ATTRIBUTES, MISSING_SCREENS
from .presentation import ENUM_LIST, RULE_FIELDS, SITES
from .vocabulary import Vocabulary

_COMPARISONS = {"gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte", "ne": "$neq"}
_OPERATORS = (*_COMPARISONS, "in", "contains", "known")


class ConditionError(ValueError):
    """A rule's `when:` block is malformed or names an unknown field, value or conclusion."""


@dataclass(frozen=True)
class FactPattern:
    """A pattern over an asserted conclusion, as written in `has:` or `lacks:`."""

    kind: str
    attributes: Mapping[str, Any]

    def describe(self) -> dict[str, Any]:
        return {self.kind: dict(self.attributes)}

    def matches(self, fact: Mapping[str, Any]) -> bool:
        """Tell whether a conclusion fact (`t` is its kind) has the attribute values asked."""
        if fact.get("t") != self.kind:
            return False
        for name, wanted in self.attributes.items():
            choices = wanted["in"] if isinstance(wanted, Mapping) else [wanted]
            if fact.get(name) not in choices:
                return False
        return True

    def concluded_keys(self) -> list[str]:
        """The concluded keys any one of which means a matching conclusion exists."""
        names = [name for name in FACT_ATTRIBUTES[self.kind] if name in self.attributes]
        choices = [value["in"] if isinstance(value, Mapping) else [value]
                   for value in (self.attributes[name] for name in names)]
        return [concluded_key(self.kind, zip(names, combination, strict=True))
                for combination in itertools.product(*choices)]


CONCLUDED = "concluded"


def concluded_key(kind: str, attributes: Iterable[tuple[str, Any]]) -> str:
    """Name the fact property that records "a `kind` conclusion with these values exists".

    Attributes come in FACT_ATTRIBUTES order, so a fact and a pattern build the same name.
    Codes holding a separator would make two names alike, so they are refused (at start-up:
    every key is built when the engine compiles the catalog).
    """
    parts = [f"{CONCLUDED}.{kind}"]
    for name, value in attributes:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "|" in text or "=" in text or '"' in text:
            raise ValueError(f"{kind}.{name} value {text!r} holds a key separator")
        parts.append(f"|{name}={text}")
    return "".join(parts)


def concluded_keys(fact: Mapping[str, Any]) -> tuple[str, ...]:
    """Every concluded key a conclusion fact sets: one per subset of its attributes.

    A pattern names some of a kind's attributes; the fact satisfies it exactly when the key of
    that subset with the pattern's values is among these.
    """
    kind = fact["t"]
    present = [(name, fact[name]) for name in FACT_ATTRIBUTES[kind] if name in fact]
    return tuple(concluded_key(kind, subset) for size in range(len(present) + 1)
                 for subset in itertools.combinations(present, size))


@dataclass
class CompiledCondition:
    """A rule's test of the presentation and of earlier conclusions, compiled.

    Conclusions are not joined as separate facts: each stage's copy of the presentation carries
    the conclusions drawn before it as `concluded.*` keys (see `concluded_keys`), and `has:` /
    `lacks:` become tests of those keys on the same fact. Every rule is then one term, so the
    engine builds one beta node per rule and never joins or negates across facts.
    """

    presentation_test: dict[str, Any] | None
    fields: list[str] = field(default_factory=list)
    has: list[FactPattern] = field(default_factory=list)
    lacks: list[FactPattern] = field(default_factory=list)

    @property
    def concluded_fields(self) -> list[str]:
        """The concluded keys this rule tests, in order, without repeats."""
        return list(dict.fromkeys(k for p in (*self.has, *self.lacks) for k in p.concluded_keys()))

    def engine_terms(self, gate: str) -> list[dict[str, Any]]:
        """Return the rule's `all:` terms: one test of its gate's copy of the presentation."""
        tests: list[dict[str, Any]] = [{"t": "presentation"}, {"gate": gate}]
        if self.presentation_test is not None:
            tests.append(self.presentation_test)
        for pattern in self.has:  # some conclusion matches: any of the pattern's keys is set
            present = [{"$ex": {key: 1}} for key in pattern.concluded_keys()]
            tests.append(present[0] if len(present) == 1 else {"$or": present})
        for pattern in self.lacks:  # no conclusion matches: none of them is set
            tests += [{"$nex": {key: 1}} for key in pattern.concluded_keys()]
        return [{"p": {"$and": tests}}]


class _Compiler:
    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.fields: list[str] = []

    def predicate(self, node: Any, where: str) -> dict[str, Any]:
        if isinstance(node, list):
            return self.combine("all", node, where)
        if not isinstance(node, Mapping) or len(node) != 1:
            raise ConditionError(f"{where}: expected one `field: test`, `all:` or `any:` entry")
        ((key, value),) = node.items()
        if key in ("all", "any"):
            return self.combine(key, value, where)
        return self.field_test(key, value, where)

    def combine(self, key: str, items: Any, where: str) -> dict[str, Any]:
        if not isinstance(items, list) or not items:
            raise ConditionError(f"{where}: `{key}:` needs a non-empty list")
        tests = [self.predicate(item, f"{where}.{key}[{i}]") for i, item in enumerate(items)]
        if len(tests) == 1:
            return tests[0]
        return {"$and" if key == "all" else "$or": tests}

    def field_test(self, path: str, test: Any, where: str) -> dict[str, Any]:
        spec = RULE_FIELDS.get(path)
        if spec is None:
            raise ConditionError(f"{where}: unknown field {path!r}")
        if path not in self.fields:
            self.fields.append(path)
        if not isinstance(test, Mapping):
            if spec.kind == ENUM_LIST or not spec.accepts(test):
                raise ConditionError(f"{where}: {path} cannot equal {test!r}")
            return {path: test}
        if len(test) != 1:
            raise ConditionError(f"{where}: {path} needs exactly one operator")
        ((op, operand),) = test.items()
        if op not in _OPERATORS:
            raise ConditionError(f"{where}: unknown operator {op!r} (use {', '.join(_OPERATORS)})")
        if op == "known":
            if not isinstance(operand, bool):
                raise ConditionError(f"{where}: known takes true or false")
            return {"$ex" if operand else "$nex": {path: 1}}
        if op == "contains":
            if spec.kind != ENUM_LIST or operand not in spec.choices:
                raise ConditionError(f"{where}: {path} cannot contain {operand!r}")
            return {"$iany": {path: {"$i": operand}}}
        if spec.kind == ENUM_LIST:
            raise ConditionError(f"{where}: a list field only supports contains and known")
        if op == "in":
            if not isinstance(operand, list) or not operand:
                raise ConditionError(f"{where}: in takes a non-empty list")
            for choice in operand:
                if not spec.accepts(choice):
                    raise ConditionError(f"{where}: {path} cannot equal {choice!r}")
            return {"$or": [{path: choice} for choice in operand]}
        if not spec.accepts(operand):
            raise ConditionError(f"{where}: {path} cannot be compared with {operand!r}")
        if op != "ne" and spec.kind not in ("int", "number"):
            raise ConditionError(f"{where}: {op} needs a numeric field, {path} is not")
        return {_COMPARISONS[op]: {path: operand}}

    def pattern(self, entry: Any, where: str) -> FactPattern:
        if not isinstance(entry, Mapping) or len(entry) != 1:
            raise ConditionError(f"{where}: expected one `conclusion: {{attribute: value}}`")
        ((kind, attributes),) = entry.items()
        if kind not in FACT_ATTRIBUTES:
            raise ConditionError(
                f"{where}: {kind!r} is not a conclusion later rules can match "
                f"({', '.join(FACT_ATTRIBUTES)})"
            )
        if attributes is None:
            attributes = {}
        if not isinstance(attributes, Mapping):
            raise ConditionError(f"{where}: attributes of {kind} must be a mapping")
        for name, value in attributes.items():
            if name not in FACT_ATTRIBUTES[kind]:
                raise ConditionError(f"{where}: {kind} has no attribute {name!r}")
            if isinstance(value, Mapping):
                if set(value) != {"in"} or not isinstance(value["in"], list) or not value["in"]:
                    raise ConditionError(f"{where}: {kind}.{name} takes a value or `in: [...]`")
                choices = value["in"]
            else:
                choices = [value]
            allowed = self.attribute_values(kind, name)
            for choice in choices:
                if not isinstance(choice, str | bool) or choice not in allowed:
                    raise ConditionError(f"{where}: {kind}.{name} cannot be {choice!r}")
        return FactPattern(kind=kind, attributes=dict(attributes))

    def attribute_values(self, kind: str, name: str) -> Any:
        v = self.vocabulary
        every_category = {c for site in v.classification.values() for c in site}
        return {
            ("duration_category", "value"): v.duration_category,
            ("pattern", "site"): SITES,
            ("pattern", "category"): every_category,
            ("classify", "site"): SITES,
            ("classify", "category"): every_category,
            ("risk", "group"): ("low", "medium", "high"),
            ("missing", "field"): tuple(RULE_FIELDS),
            ("missing", "screen"): MISSING_SCREENS,
            ("red_flag", "finding"): tuple(RULE_FIELDS),
            ("imaging", "site"): SITES,
            ("suspect", "condition"): v.conditions,
            ("suspect", "urgency"): v.urgency,
            ("suspect", "kind"): {c["kind"] for c in v.conditions.values()},
            ("suspect", "site"): SITES,
            ("urgency", "level"): v.urgency,
            ("imaging", "indicated"): (True, False),
            ("imaging", "timing"): v.imaging_timing,
            ("treat", "code"): v.treatments,
            ("treat", "type"): {t["type"] for t in v.treatments.values()},
            ("contraindicate", "treatment"): v.treatments,
            ("refer", "code"): v.referrals,
            ("refer", "urgency"): v.urgency,
        }.get((kind, name))


def compile_when(when: Any, vocabulary: Vocabulary) -> CompiledCondition:
    """Check a `when:` block and compile it, or raise ConditionError saying what is wrong."""
    if not isinstance(when, Mapping) or not when:
        raise ConditionError("when: needs at least one of facts, has, lacks")
    unknown = set(when) - {"facts", "has", "lacks"}
    if unknown:
        raise ConditionError(f"when: unknown part(s) {sorted(unknown)} (use facts, has, lacks)")
    compiler = _Compiler(vocabulary)
    test = compiler.predicate(when["facts"], "facts") if "facts" in when else None
    compiled = CompiledCondition(presentation_test=test, fields=compiler.fields)
    for part in ("has", "lacks"):
        entries = when.get(part, [])
        if not isinstance(entries, list):
            raise ConditionError(f"{part}: needs a list")
        patterns = [compiler.pattern(e, f"{part}[{i}]") for i, e in enumerate(entries)]
        getattr(compiled, part).extend(patterns)
    return compiled
