"""Hypothesis strategies for presentations, drawn from the field registry the schema uses.

Every field and value the contract allows can appear, and any optional field can be left out
(unknown). Yes/no findings are drawn `true` one time in five, so most presentations carry a
few positive findings rather than a dozen, and the routine and self-care paths are explored
as well as the emergencies.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from service.presentation import BOOL, ENUM, ENUM_LIST, INPUT_FIELDS, INT, START_BACK_ITEMS

ANY_SITES = st.sampled_from([["low_back"], ["hip"], ["low_back", "hip"], ["hip", "low_back"]])
BACK_SITES = st.sampled_from([["low_back"], ["low_back", "hip"]])
HIP_SITES = st.sampled_from([["hip"], ["low_back", "hip"]])
SITES_FOR = {"any": ANY_SITES, "low_back": BACK_SITES, "hip": HIP_SITES}
FINDING = st.sampled_from((False, False, False, False, True))


def value_of(spec) -> st.SearchStrategy[Any]:
    """Any value a field of this spec accepts."""
    if spec.kind == BOOL:
        return FINDING
    if spec.kind == ENUM:
        return st.sampled_from(spec.choices)
    if spec.kind == INT:
        return st.integers(int(spec.minimum), int(spec.maximum))
    return st.floats(spec.minimum, spec.maximum, allow_nan=False) | st.integers(
        int(spec.minimum), int(spec.maximum)
    )


def _section(section: str, sites: st.SearchStrategy) -> st.SearchStrategy[dict[str, Any]]:
    required, optional = {}, {}
    for path, spec in INPUT_FIELDS.items():
        owner, name = path.split(".")
        if owner != section:
            continue
        strategy = sites if spec.kind == ENUM_LIST else value_of(spec)
        (required if spec.required else optional)[name] = strategy
    return st.fixed_dictionaries(required, optional=optional)


def presentations(sites: st.SearchStrategy = ANY_SITES) -> st.SearchStrategy[dict[str, Any]]:
    """Valid presentations with any subset of optional fields (unknown = absent)."""
    sections = {s: _section(s, sites) for s in dict.fromkeys(p.split(".")[0] for p in INPUT_FIELDS)}
    start_back = st.fixed_dictionaries(
        {item: st.booleans() for item in START_BACK_ITEMS}
        | {"bothersomeness": value_of(INPUT_FIELDS["start_back.bothersomeness"])}
    )
    optional = {
        name: strategy
        for name, strategy in sections.items()
        if name not in ("patient", "pain", "start_back")
    }
    optional["start_back"] = start_back
    return st.fixed_dictionaries(
        {"patient": sections["patient"], "pain": sections["pain"]}, optional=optional
    )


def given_value(presentation: dict[str, Any], path: str) -> Any:
    """The value at a field path, or None when it was not provided."""
    section, name = path.split(".")
    return (presentation.get(section) or {}).get(name)


def with_values(presentation: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of the presentation with these fields set (a None value removes the field)."""
    changed = {section: dict(fields) for section, fields in presentation.items()}
    for path, value in values.items():
        section, name = path.split(".")
        fields = changed.setdefault(section, {})
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return changed
