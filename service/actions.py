"""The allow-list of conclusions a rule may draw, and what each asserts for later stages.

A rule's `then:` entries name one of the kinds below. The loader refuses any other name and
checks every parameter against the vocabulary, so the engine only ever runs code from here.
A kind that asserts a fact lets rules of later stages build on it (red flag -> suspected
condition -> urgency -> imaging); the attributes listed in `FACT_ATTRIBUTES` are the ones a
rule's `has:`/`lacks:` patterns may match on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .presentation import INPUT_FIELDS, SITES
from .vocabulary import Vocabulary


class ConclusionError(ValueError):
    """A rule's conclusion is not on the allow-list or has bad parameters."""


@dataclass(frozen=True)
class Conclusion:
    """One checked conclusion of a rule: its kind, parameters and the fact it asserts."""

    kind: str
    params: Mapping[str, Any]
    fact: Mapping[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {self.kind: dict(self.params)}


def _require(params: Mapping[str, Any], *names: str, optional: tuple[str, ...] = ()) -> None:
    missing = [name for name in names if name not in params]
    unknown = sorted(set(params) - set(names) - set(optional))
    if missing:
        raise ConclusionError(f"missing parameter(s): {', '.join(missing)}")
    if unknown:
        raise ConclusionError(f"unknown parameter(s): {', '.join(unknown)}")


def _one_of(name: str, value: Any, allowed: Mapping[str, Any] | tuple[str, ...]) -> None:
    if not isinstance(value, str | bool) or value not in allowed:
        raise ConclusionError(f"{name} {value!r} is not one of: {', '.join(allowed)}")


def _text(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConclusionError(f"{name} must be non-empty text")


def _duration_category(p: Mapping[str, Any], v: Vocabulary) -> dict[str, Any]:
    _require(p, "value")
    _one_of("value", p["value"], v.duration_category)
    return {"value": p["value"]}


def _site_category(p: Mapping[str, Any], v: Vocabulary) -> dict[str, Any]:
    _require(p, "site", "category")
    _one_of("site", p["site"], SITES)
    _one_of("category", p["category"], v.classification[p["site"]])
    return {"site": p["site"], "category": p["category"]}


def _risk(p: Mapping[str, Any], v: Vocabulary) -> dict[str, Any]:
    _require(p, "tool", "group")
    _one_of("tool", p["tool"], ("start_back",))
    _one_of("group", p["group"], ("low", "medium", "high"))
    return {"group": p["group"]}


# Why a missing finding matters: it leaves a red-flag screen open, or a treatment unchecked.
MISSING_SCREENS = ("red_flags", "treatment_safety", "classification")


def _missing(p: Mapping[str, Any], v: Vocabulary) -> dict[str, Any]:
    _require(p, "field", "screen", "why")
    _one_of("field", p["field"], tuple(INPUT_FIELDS))
    _one_of("screen", p["screen"], MISSING_SCREENS)
    _text("why", p["why"])
    return {"field": p["field"], "screen": p["screen"]}


def _red_flag(p: Mapping[str, Any], v: Vocabulary) -> dict[str, Any]:
    # `urgency`: how soon a clinician should review the finding when it raises no condition
    # (a red flag that raises one takes that condition's urgency as well).
    _require(p, "finding", optional=("urgency",))
    _one_of("finding", p["finding"], tuple(INPUT_FIELDS))
    if "urgency" in p:
        _one_of("urgency", p["urgency"], v.urgency)
    return {"finding": p["finding"]}


def _suspect(p: Mapping[str, Any], v: Vocabulary) -> dict[str, Any]:
    _require(p, "condition", "urgency")
    _one_of("condition", p["condition"], v.conditions)
    _one_of("urgency", p["urgency"], v.urgency)
    condition = v.conditions[p["condition"]]
    return {
        "condition": p["condition"],
        "urgency": p["urgency"],
        "kind": condition["kind"],
        "site": condition["site"],
    }


def _urgency(p: Mapping[str, Any], v: Vocabulary) -> dict[str, Any]:
    _require(p, "level")
    _one_of("level", p["level"], v.urgency)
    return {"level": p["level"]}


def _imaging(p: Mapping[str, Any], v: Vocabulary) -> dict[str, Any]:
    _require(p, "site", "indicated", "procedures", optional=("timing", "reassess_after_weeks"))
    _one_of("site", p["site"], SITES)
    if not isinstance(p["indicated"], bool):
        raise ConclusionError("indicated must be true or false")
    timing = p.get("timing")
    if p["indicated"]:
        _one_of("timing", timing, v.imaging_timing)
    elif timing is not None:
        raise ConclusionError("timing must be absent when imaging is not indicated")
    weeks = p.get("reassess_after_weeks")
    if weeks is not None and (not isinstance(weeks, int) or isinstance(weeks, bool) or weeks < 1):
        raise ConclusionError("reassess_after_weeks must be a positive integer")
    procedures = p["procedures"]
    if not isinstance(procedures, Mapping) or not procedures:
        raise ConclusionError("procedures must map procedure codes to ratings")
    for code, rating in procedures.items():
        _one_of("procedure", code, v.imaging_procedures)
        _one_of(f"rating of {code}", rating, v.imaging_rating)
    return {"site": p["site"], "indicated": p["indicated"], "timing": timing}


def _treat(p: Mapping[str, Any], v: Vocabulary) -> dict[str, Any]:
    _require(p, "code", "line")
    _one_of("treatment", p["code"], v.treatments)
    _one_of("line", p["line"], ("first", "second"))
    return {"code": p["code"], "type": v.treatments[p["code"]]["type"]}


def _caution(p: Mapping[str, Any], v: Vocabulary) -> None:
    _require(p, "treatment", "code", "text")
    _one_of("treatment", p["treatment"], v.treatments)
    _text("code", p["code"])
    _text("text", p["text"])


def _contraindicate(p: Mapping[str, Any], v: Vocabulary) -> dict[str, Any]:
    _require(p, "treatment", "finding", "reason")
    _one_of("treatment", p["treatment"], v.treatments)
    _one_of("avoid code", p["treatment"], v.avoid)
    _one_of("finding", p["finding"], tuple(INPUT_FIELDS))
    _text("reason", p["reason"])
    return {"treatment": p["treatment"]}


def _avoid(p: Mapping[str, Any], v: Vocabulary) -> None:
    _require(p, "code")
    _one_of("avoid code", p["code"], v.avoid)


def _safety_net(p: Mapping[str, Any], v: Vocabulary) -> None:
    _require(p, "code")
    _one_of("safety-netting advice", p["code"], v.safety_netting)


def _refer(p: Mapping[str, Any], v: Vocabulary) -> dict[str, Any]:
    _require(p, "code", "urgency")
    _one_of("referral", p["code"], v.referrals)
    _one_of("urgency", p["urgency"], v.urgency)
    return {"code": p["code"], "urgency": p["urgency"]}


# kind -> checker returning the attributes of the fact it asserts (None: nothing to assert).
_CHECKERS: dict[str, Callable[[Mapping[str, Any], Vocabulary], dict[str, Any] | None]] = {
    "duration_category": _duration_category,
    "pattern": _site_category,
    "classify": _site_category,
    "risk": _risk,
    "missing": _missing,
    "red_flag": _red_flag,
    "suspect": _suspect,
    "urgency": _urgency,
    "imaging": _imaging,
    "treat": _treat,
    "caution": _caution,
    "contraindicate": _contraindicate,
    "avoid": _avoid,
    "refer": _refer,
    "safety_net": _safety_net,
}

ALLOWED_KINDS: tuple[str, ...] = tuple(_CHECKERS)

# The attributes of each asserted fact that a later rule may match on.
FACT_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "duration_category": ("value",),
    "pattern": ("site", "category"),
    "classify": ("site", "category"),
    "risk": ("group",),
    "missing": ("field", "screen"),
    "red_flag": ("finding",),
    "suspect": ("condition", "urgency", "kind", "site"),
    "urgency": ("level",),
    "imaging": ("site", "indicated", "timing"),
    "treat": ("code", "type"),
    "contraindicate": ("treatment",),
    "refer": ("code", "urgency"),
}


def build_conclusion(kind: str, params: Any, vocabulary: Vocabulary) -> Conclusion:
    """Check one `then:` entry and return it as a Conclusion, or raise ConclusionError."""
    if kind not in _CHECKERS:
        raise ConclusionError(
            f"action {kind!r} is not on the allow-list ({', '.join(ALLOWED_KINDS)})"
        )
    if not isinstance(params, Mapping):
        raise ConclusionError(f"parameters of {kind!r} must be a mapping")
    attributes = _CHECKERS[kind](params, vocabulary)
    fact = None if attributes is None else {"t": kind, **attributes}
    return Conclusion(kind=kind, params=dict(params), fact=fact)
