"""Load the value sets (valuesets/*.yaml) and the table of which one feeds which field.

A value set is reviewable data: an id, a title, its sources with their versions, and its
codes, already expanded (SNOMED CT descendants listed, ICD-10-CM codes listed one by one),
so membership is a set lookup and no terminology server is needed at run time.
`valuesets/feeds.yaml` says which value set feeds which contract field, read from which
FHIR resource. Everything is checked when first loaded; a broken file stops start-up
rather than silently reading nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import ConfigError
from ..presentation import BOOL, ENUM_LIST, INPUT_FIELDS

# libyaml's loader when PyYAML has it: the pure-Python one takes seconds over these files.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DIRECTORY = Path(__file__).with_name("valuesets")
FEEDS_FILE = "feeds.yaml"

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SYSTEM_NAMES = {SNOMED: "SNOMED CT", ICD10CM: "ICD-10-CM", RXNORM: "RxNorm"}
# The resources a feed may read, and the field of each that holds the code.
RESOURCES = ("Condition", "MedicationRequest", "AllergyIntolerance")


@dataclass(frozen=True)
class ValueSet:
    id: str
    title: str
    description: str
    sources: tuple[Mapping[str, str], ...]
    codes: frozenset[tuple[str, str]]

    def counts(self) -> dict[str, int]:
        """How many codes per code system, by the system's name."""
        counted: dict[str, int] = {}
        for system, _ in self.codes:
            name = SYSTEM_NAMES[system]
            counted[name] = counted.get(name, 0) + 1
        return counted


@dataclass(frozen=True)
class Feed:
    """Resources of `resource` coded in `value_set` say `field` = `value`."""

    value_set: ValueSet
    resource: str
    field: str
    value: Any
    # MedicationRequest: how long the prescription must have been active to count.
    active_for_days: int = 0
    note: str = ""


def _fail(where: str, message: str) -> None:
    raise ConfigError(f"value sets: {where}: {message}")


def _load_value_set(path: Path) -> ValueSet:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    where = path.name
    if not isinstance(data, dict) or data.get("id") != path.stem:
        _fail(where, "must be a mapping whose id is the file name")
    for key in ("title", "description"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            _fail(where, f"needs a {key}")
    sources = data.get("sources")
    if not isinstance(sources, list) or not sources or not all(
            isinstance(s, dict) and s.get("name") and s.get("version") for s in sources):
        _fail(where, "needs sources, each with a name and a version")
    codes: set[tuple[str, str]] = set()
    for i, entry in enumerate(data.get("codes") or []):
        if not isinstance(entry, dict) or entry.get("system") not in SYSTEM_NAMES:
            _fail(where, f"codes[{i}]: system must be one of {', '.join(SYSTEM_NAMES)}")
        code = entry.get("code")
        if not isinstance(code, str) or not code.strip() or code != code.strip():
            _fail(where, f"codes[{i}]: code must be a non-empty string")
        key = (entry["system"], code)
        if key in codes:
            _fail(where, f"codes[{i}]: {code} is listed twice")
        codes.add(key)
    if not codes:
        _fail(where, "lists no codes")
    return ValueSet(data["id"], data["title"].strip(), " ".join(data["description"].split()),
                    tuple(sources), frozenset(codes))


def _load_feed(entry: Any, i: int, sets: Mapping[str, ValueSet]) -> Feed:
    where = f"{FEEDS_FILE} feeds[{i}]"
    if not isinstance(entry, dict) or entry.get("value_set") not in sets:
        _fail(where, "value_set must name a file of the valuesets directory")
    if entry.get("resource") not in RESOURCES:
        _fail(where, f"resource must be one of {', '.join(RESOURCES)}")
    field = entry.get("field")
    note = str(entry.get("note") or "")
    if field is None:
        if not note:
            _fail(where, "a feed without a field must say, in `note`, what the card says")
        return Feed(sets[entry["value_set"]], entry["resource"], "", None, 0, note)
    spec = INPUT_FIELDS.get(field)
    if spec is None:
        _fail(where, f"{field!r} is not a presentation field")
    value = entry.get("value", True)
    if spec.kind == ENUM_LIST:
        if value not in spec.choices:
            _fail(where, f"{value!r} is not one of {field}'s values")
    elif spec.kind != BOOL or value is not True:
        _fail(where, f"{field} is read as true from a coded resource; value must be true")
    days = entry.get("active_for_days", 0)
    if not isinstance(days, int) or isinstance(days, bool) or days < 0:
        _fail(where, "active_for_days must be a whole number of days")
    return Feed(sets[entry["value_set"]], entry["resource"], field, value, days, note)


@dataclass(frozen=True)
class Terminology:
    value_sets: Mapping[str, ValueSet]
    feeds: tuple[Feed, ...]

    def index(self, resource: str) -> dict[tuple[str, str], tuple[Feed, ...]]:
        """(system, code) -> the feeds a resource of this type with that code triggers."""
        found: dict[tuple[str, str], list[Feed]] = {}
        for feed in self.feeds:
            if feed.resource == resource:
                for key in feed.value_set.codes:
                    found.setdefault(key, []).append(feed)
        return {key: tuple(feeds) for key, feeds in found.items()}


def load_terminology(directory: Path = DIRECTORY) -> Terminology:
    sets = {path.stem: _load_value_set(path) for path in sorted(directory.glob("*.yaml"))
            if path.name != FEEDS_FILE}
    feeds_data = yaml.safe_load((directory / FEEDS_FILE).read_text(encoding="utf-8"))
    if not isinstance(feeds_data, dict) or not isinstance(feeds_data.get("feeds"), list):
        _fail(FEEDS_FILE, "must hold a `feeds` list")
    feeds = tuple(_load_feed(entry, i, sets) for i, entry in enumerate(feeds_data["feeds"]))
    unused = sorted(set(sets) - {feed.value_set.id for feed in feeds})
    if unused:
        _fail(FEEDS_FILE, f"value sets that feed nothing: {', '.join(unused)}")
    return Terminology(sets, feeds)


@functools.cache
def terminology() -> Terminology:
    """The packaged value sets and feeds, loaded once per process."""
    return load_terminology()
