"""Map a patient's FHIR R4 chart to a presentation of the contract.

Unknown stays unknown: a finding no resource speaks about is left out, never set to false.
The full table, field by field, is docs/fhir-mapping.md (`mapping_rows()` and
`value_set_rows()` write its codes); which value set feeds which field is
`valuesets/feeds.yaml`.

- `patient.age` <- `Patient.birthDate` (whole years on the day of the call; a partial date
  only when every day it allows gives the same age); `patient.sex` <- `Patient.gender`.
- `pain.sites` <- current, asserted Conditions whose code is in a pain value set (low back
  pain, radiculopathy, disc disorder, stenosis -> `low_back`; hip pain, hip osteoarthritis ->
  `hip`), and the draft order's `reasonCode`; `pain.duration_days` <- days from the earliest
  full onset of those Conditions to the day of the call.
- Yes/no findings <- Conditions in a value set (`feeds.yaml`) or coded with a standard or
  own code (`terminology`), active MedicationRequests and AllergyIntolerances in a value set,
  and Observations. Choices and numbers <- Observations.

A chart is longitudinal, so each finding is read as of the day of the call: the latest
dated statement counts, and only statements of the same day can disagree (a yes/no then
reads yes, since a recorded red flag or contraindication outweighs a denial; a choice or
number stays unknown). A current (active) Condition, prescription or allergy speaks for
today. For a finding of history (`terminology.HISTORY_FIELDS`: a cancer, osteoporosis ...)
any recorded yes stands. A finding of the present recorded before this episode of pain
began says nothing about it and is ignored (what led up to the episode, a fall or trauma,
from up to 90 days before it); a sphincter or saddle Condition that began well before the
episode is not read as new. Entered-in-error says nothing; refuted is
no; confirmed, provisional, differential and unconfirmed diagnoses all count as yes: a
suspicion on record is a suspicion.
"""

from __future__ import annotations

import calendar
import functools
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

from ..presentation import BOOL, ENUM, INPUT_FIELDS, INT, SITES, START_BACK_ITEMS, FieldSpec
from ..web.fields import UNITS as FIELD_UNITS
from ..web.fields import field_label, value_label
from .terminology import (
    ALLERGY_CLINICAL,
    ALLERGY_VERIFICATION,
    ANSWER_SYSTEM,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    EPISODE_LEAD_IN_DAYS,
    EPISODE_START_FIELDS,
    FIELD_SYSTEM,
    HISTORY_FIELDS,
    NEW_FINDINGS,
    NEW_WITHIN_DAYS,
    NO_CODES,
    STANDARD_CODES,
    UCUM,
    UNITS,
    YES_CODES,
)
from .valuesets import SYSTEM_NAMES, Feed, terminology

REQUIRED_FIELDS = ("patient.age", "pain.sites", "pain.duration_days")
# Read from the Patient and the pain Conditions only, never from a coded finding.
_STRUCTURAL_FIELDS = frozenset({"patient.age", "patient.sex", *REQUIRED_FIELDS})
FINDING_FIELDS = tuple(path for path in INPUT_FIELDS if path not in _STRUCTURAL_FIELDS)

_USABLE_OBSERVATION = frozenset({"final", "amended", "corrected", "preliminary"})
_NOT_CURRENT = frozenset({"inactive", "remission", "resolved"})
_ACTIVE_ALLERGY = frozenset({"active", None})
_EARLIEST = date.min

_OWN_CODES = {(FIELD_SYSTEM, path): path for path in FINDING_FIELDS}
_STANDARD = {(code.system, code.code): path
             for path, codes in STANDARD_CODES.items() for code in codes}
# Observation.code -> the field it answers.
OBSERVATION_INDEX: dict[tuple[str, str], str] = {**_OWN_CODES, **_STANDARD}


@dataclass(frozen=True)
class _Said:
    """One statement of the chart about a field: its value, as of when, and where from."""

    value: Any
    when: date | None
    source: str


@dataclass
class MappedPresentation:
    """What the chart says: a presentation (only known fields), and what is missing."""

    presentation: dict[str, dict[str, Any]]
    missing_required: list[str]
    notes: list[str] = field(default_factory=list)
    episode_onset: date | None = None
    # field path -> the resource each known value was read from, in words
    sources: dict[str, str] = field(default_factory=dict)


def entries(bundle: Mapping[str, Any]) -> list[Any]:
    """A Bundle's entries (raw JSON); anything but a list reads as none."""
    found = bundle.get("entry")
    return found if isinstance(found, list) else []


def codings(concept: CodeableConcept | None) -> Iterator[tuple[str, str]]:
    for coding in (concept.coding or []) if concept else []:
        if coding.system and coding.code:
            yield coding.system, coding.code


def _label(concept: CodeableConcept | None) -> str:
    if concept is None:
        return "(no code)"
    if concept.text:
        return concept.text
    for coding in concept.coding or []:
        if coding.display:
            return coding.display
        if coding.system == FIELD_SYSTEM and coding.code in INPUT_FIELDS:
            return f"{field_label(coding.code)} (as recorded)"
        if coding.code:
            return f"{SYSTEM_NAMES.get(coding.system or '', coding.system)} {coding.code}"
    return "(no code)"


_STATUS_SYSTEMS = (None, CONDITION_CLINICAL, CONDITION_VERIFICATION, ALLERGY_CLINICAL,
                   ALLERGY_VERIFICATION)


def _status(concept: CodeableConcept | None) -> str | None:
    """A Condition's or AllergyIntolerance's clinical or verification status code (read
    even without its system)."""
    for coding in (concept.coding or []) if concept else []:
        if coding.code and coding.system in _STATUS_SYSTEMS:
            return coding.code
    return None


def _day(value: Any) -> date | None:
    """A full date from a FHIR date or dateTime; None for a partial date (a str)."""
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else None


def _years_between(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def age_from_birth_date(birth_date: Any, today: date) -> int | None:
    """Whole years; a partial date only when all the days it allows give the same age."""
    if isinstance(birth_date, date):
        return _years_between(birth_date, today)
    if not isinstance(birth_date, str):
        return None
    parts = [int(part) for part in birth_date.split("-")]
    year, month = parts[0], parts[1] if len(parts) > 1 else None
    first = date(year, month or 1, 1)
    last_month = month or 12
    last = date(year, last_month, calendar.monthrange(year, last_month)[1])
    ages = {_years_between(first, today), _years_between(last, today)}
    return ages.pop() if len(ages) == 1 else None


def asserted(condition: Condition) -> bool | None:
    """True if the Condition asserts its code (a suspicion too), False if refuted, None if
    entered in error."""
    verification = _status(condition.verificationStatus)
    if verification == "entered-in-error":
        return None
    return verification != "refuted"


def is_current(condition: Condition) -> bool:
    return _status(condition.clinicalStatus) not in _NOT_CURRENT


def _onset(condition: Condition) -> date | None:
    return _day(condition.onsetDateTime or (condition.onsetPeriod.start
                                            if condition.onsetPeriod else None))


def _abated(condition: Condition) -> date | None:
    return _day(condition.abatementDateTime or (condition.abatementPeriod.end
                                                if condition.abatementPeriod else None))


def _observed_on(observation: Observation) -> date | None:
    return _day(observation.effectiveDateTime or observation.effectiveInstant
                or (observation.effectivePeriod.start if observation.effectivePeriod else None)
                or observation.issued)


@functools.cache
def condition_feeds() -> dict[tuple[str, str], tuple[tuple[str, Any], ...]]:
    """Condition.code -> the (field, value) pairs it says: value sets, then own codes."""
    found: dict[tuple[str, str], list[tuple[str, Any]]] = defaultdict(list)
    for key, feeds in terminology().index("Condition").items():
        found[key].extend((feed.field, feed.value) for feed in feeds)
    for key, path in {**_OWN_CODES, **_STANDARD}.items():
        if INPUT_FIELDS[path].kind == BOOL and (path, True) not in found[key]:
            found[key].append((path, True))
    return {key: tuple(pairs) for key, pairs in found.items()}


@functools.cache
def _feeds_of(resource: str) -> dict[tuple[str, str], tuple[Feed, ...]]:
    return terminology().index(resource)


@functools.cache
def wanted_codes() -> frozenset[tuple[str, str]]:
    """Every (system, code) the mapping reads from any resource: what is worth parsing."""
    return frozenset({*condition_feeds(), *OBSERVATION_INDEX, *_feeds_of("MedicationRequest"),
                      *_feeds_of("AllergyIntolerance")})


@dataclass
class Chart:
    """The resources of one patient read for a call."""

    patient: Patient | None = None
    conditions: list[Condition] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    medications: list[MedicationRequest] = field(default_factory=list)
    allergies: list[AllergyIntolerance] = field(default_factory=list)


class _Reader:
    def __init__(self, chart: Chart, today: date, reasons: Iterable[CodeableConcept]) -> None:
        self.chart, self.today, self.reasons = chart, today, list(reasons)
        self.values: dict[str, Any] = {}
        self.sources: dict[str, str] = {}
        self.notes: list[str] = []
        self.onset: date | None = None
        self.said: dict[str, list[_Said]] = defaultdict(list)

    def keep(self, path: str, value: Any, source: str) -> None:
        if INPUT_FIELDS[path].kind == INT and isinstance(value, float) and value.is_integer():
            value = int(value)
        if INPUT_FIELDS[path].accepts(value) and not (
                INPUT_FIELDS[path].kind == INT and not isinstance(value, int)):
            self.values[path] = value
            self.sources[path] = source
        else:
            self.notes.append(f"{path}: the recorded value is outside the range the rules use")

    def read_patient(self) -> None:
        patient = self.chart.patient
        if patient is None:
            return
        age = age_from_birth_date(patient.birthDate, self.today)
        if age is not None:
            self.keep("patient.age", age, "Patient.birthDate")
        elif patient.birthDate is not None:
            self.notes.append("patient.age: the birth date is too imprecise to give an age")
        if patient.gender:
            self.keep("patient.sex", patient.gender, "Patient.gender")

    def read_episode(self) -> None:
        sites: dict[str, str] = {}
        onsets: list[date] = []
        for condition in self.chart.conditions:
            found = [value for key in codings(condition.code)
                     for path, value in condition_feeds().get(key, ()) if path == "pain.sites"]
            if not found or not is_current(condition) or asserted(condition) is not True:
                continue
            onset = _onset(condition)
            for site in found:
                sites.setdefault(site, f"Condition: {_label(condition.code)}"
                                 + (f", since {onset.isoformat()}" if onset else ""))
            if onset is not None:
                onsets.append(onset)
        for reason in self.reasons:
            for key in codings(reason):
                for path, value in condition_feeds().get(key, ()):
                    if path == "pain.sites":
                        sites.setdefault(value, f"the order's reason: {_label(reason)}")
        if sites:
            self.values["pain.sites"] = [site for site in SITES if site in sites]
            self.sources["pain.sites"] = "; ".join(sites[s] for s in SITES if s in sites)
        if onsets:
            self.onset = min(onsets)
            self.keep("pain.duration_days", (self.today - self.onset).days,
                      f"onset {self.onset.isoformat()} of the pain Condition")
        elif sites:
            self.notes.append("pain.duration_days: no full onset date on the pain Condition")

    def _before_episode(self, path: str, when: date | None) -> bool:
        """A statement about the present made before this episode began says nothing (for
        what led up to it, one made before its lead-in)."""
        if path in HISTORY_FIELDS or self.onset is None or when is None:
            return False
        lead_in = EPISODE_LEAD_IN_DAYS if path in EPISODE_START_FIELDS else 0
        return when < self.onset - timedelta(days=lead_in)

    def say(self, path: str, value: Any, when: date | None, source: str) -> None:
        if not self._before_episode(path, when):
            self.said[path].append(_Said(value, when, source))

    def read_conditions(self) -> None:
        for condition in self.chart.conditions:
            verdict = asserted(condition)
            if verdict is None:
                continue
            label = f"Condition: {_label(condition.code)}"
            for key in codings(condition.code):
                for path, _ in condition_feeds().get(key, ()):
                    if path == "pain.sites":
                        continue
                    self._condition_says(path, condition, verdict, label)

    def _condition_says(self, path: str, condition: Condition, verdict: bool,
                        label: str) -> None:
        recorded = _day(condition.recordedDate)
        if not verdict:
            self.say(path, False, recorded, f"{label} (refuted)")
        elif path in HISTORY_FIELDS:
            self.say(path, True, _onset(condition) or recorded, label)
        elif is_current(condition):
            began = _onset(condition)
            if (path in NEW_FINDINGS and began is not None and self.onset is not None
                    and began < self.onset - timedelta(days=NEW_WITHIN_DAYS)):
                self.notes.append(f"{_label(condition.code)}: on record since "
                                  f"{began.isoformat()}, before this episode, so not read as "
                                  "new; ask whether it is new")
                return
            self.say(path, True, self.today, label)  # current: it speaks for today
        else:
            ended = _abated(condition)
            if ended is not None:  # ended during this episode: not now
                self.say(path, False, ended, f"{label} (ended {ended.isoformat()})")

    def read_reasons(self) -> None:
        for reason in self.reasons:
            for key in codings(reason):
                for path, _ in condition_feeds().get(key, ()):
                    if path != "pain.sites":
                        self.say(path, True, self.today, f"the order's reason: {_label(reason)}")

    def read_medications(self) -> None:
        for request in self.chart.medications:
            if request.status != "active":
                continue
            concept = request.medicationCodeableConcept
            authored = _day(request.authoredOn)
            for key in codings(concept):
                for feed in _feeds_of("MedicationRequest").get(key, ()):
                    source = f"MedicationRequest: {_label(concept)} (active)"
                    if not feed.field:
                        self.notes.append(f"{_label(concept)}: {feed.note}")
                    elif feed.active_for_days == 0 or (
                            authored is not None
                            and authored <= self.today - timedelta(days=feed.active_for_days)):
                        self.say(feed.field, feed.value, self.today, source)

    def read_allergies(self) -> None:
        for allergy in self.chart.allergies:
            verification = _status(allergy.verificationStatus)
            if (_status(allergy.clinicalStatus) not in _ACTIVE_ALLERGY
                    or verification in ("refuted", "entered-in-error")):
                continue
            for key in codings(allergy.code):
                for feed in _feeds_of("AllergyIntolerance").get(key, ()):
                    self.say(feed.field, feed.value, self.today,
                             f"AllergyIntolerance: {_label(allergy.code)}")

    def read_observations(self) -> None:
        for observation in self.chart.observations:
            when = _observed_on(observation)
            stamp = f", {when.isoformat()}" if when else ""
            for path, value in observation_statements(observation):
                self.say(path, value, when, f"Observation: {_label(observation.code)}{stamp}")

    def settle(self) -> None:
        """One value per field: the latest statement (any yes, for a finding of history)."""
        for path, said in self.said.items():
            kind = INPUT_FIELDS[path].kind
            if kind == BOOL and path in HISTORY_FIELDS and any(s.value for s in said):
                first = next(s for s in said if s.value)
                self.keep(path, True, first.source)
                continue
            latest = max(s.when or _EARLIEST for s in said)
            last = [s for s in said if (s.when or _EARLIEST) == latest]
            values = {s.value for s in last}
            if len(values) == 1:
                self.keep(path, last[0].value, last[0].source)
            elif kind == BOOL:
                self.keep(path, True, next(s.source for s in last if s.value))
                self.notes.append(f"{path}: yes and no recorded on the same day; yes is kept")
            else:
                self.notes.append(f"{path}: different values recorded on the same day")
        items = [f"start_back.{item}" for item in (*START_BACK_ITEMS, "bothersomeness")]
        answered = [path for path in items if path in self.values]
        if answered and len(answered) < len(items):
            self.notes.append("start_back: incomplete, so not scored (all nine items are needed)")
            for path in answered:
                del self.values[path]
                del self.sources[path]


def observation_statements(observation: Observation) -> list[tuple[str, Any]]:
    """What an Observation says: (field, value) for each finding it answers, none when it is
    not a result (status), has a data-absent reason, or holds no readable value."""
    if observation.status not in _USABLE_OBSERVATION or observation.dataAbsentReason:
        return []
    said = []
    for key in codings(observation.code):
        path = OBSERVATION_INDEX.get(key)
        if path is not None:
            value = _observed_value(INPUT_FIELDS[path], path, observation, key in _STANDARD)
            if value is not None:
                said.append((path, value))
    return said


def _observed_value(spec: FieldSpec, path: str, observation: Observation,
                    standard: bool) -> Any:
    if spec.kind == BOOL:
        if observation.valueBoolean is not None:
            return observation.valueBoolean
        answers = set(codings(observation.valueCodeableConcept))
        if answers & YES_CODES or answers & NO_CODES:
            return bool(answers & YES_CODES)
        no_value = not any(getattr(observation, name) is not None for name in _VALUE_FIELDS)
        return True if standard and no_value else None
    if spec.kind == ENUM:
        return next((code for system, code in codings(observation.valueCodeableConcept)
                     if system == ANSWER_SYSTEM and code in spec.choices), None)
    if observation.valueInteger is not None:
        return observation.valueInteger
    quantity = observation.valueQuantity
    if quantity is None or quantity.value is None:
        return None
    unit = quantity.code if quantity.system == UCUM and quantity.code else quantity.unit
    factor = UNITS.get(path, {}).get(unit or "")
    if factor is None:
        return None
    value = float(quantity.value) * factor
    return int(value) if value.is_integer() else value


_VALUE_FIELDS = tuple(name for name in Observation.model_fields
                      if name.startswith("value") and not name.endswith("__ext"))


def read_chart(chart: Chart, today: date,
               reasons: Iterable[CodeableConcept] = ()) -> MappedPresentation:
    """Read a presentation from the patient's chart as of `today`; `reasons` are the draft
    order's reasonCode concepts, read as its indication."""
    reader = _Reader(chart, today, reasons)
    reader.read_patient()
    reader.read_episode()
    reader.read_conditions()
    reader.read_reasons()
    reader.read_medications()
    reader.read_allergies()
    reader.read_observations()
    reader.settle()
    nested: dict[str, dict[str, Any]] = defaultdict(dict)
    for path, value in reader.values.items():
        section, name = path.split(".")
        nested[section][name] = value
    missing = [path for path in REQUIRED_FIELDS if path not in reader.values]
    return MappedPresentation(dict(nested), missing, reader.notes, reader.onset,
                              dict(reader.sources))


def to_presentation(patient: Patient | None, conditions: Iterable[Condition],
                    observations: Iterable[Observation], today: date,
                    **more: Any) -> MappedPresentation:
    """Read a presentation from these resources (`medications`, `allergies`, `reasons`)."""
    reasons = more.pop("reasons", ())
    chart = Chart(patient, list(conditions), list(observations),
                  list(more.pop("medications", ())), list(more.pop("allergies", ())))
    if more:
        raise TypeError(f"unexpected arguments {sorted(more)}")
    return read_chart(chart, today, reasons)


def mapping_rows() -> list[tuple[str, str]]:
    """(field, codes) for every coded finding, as documented in docs/fhir-mapping.md."""
    feeds: dict[str, list[str]] = defaultdict(list)
    for feed in terminology().feeds:
        if feed.field and feed.field in FINDING_FIELDS:
            feeds[feed.field].append(f"value set `{feed.value_set.id}` ({feed.resource})")
    rows = []
    for path in FINDING_FIELDS:
        codes = [f"`{FIELD_SYSTEM.rsplit('/', 1)[1]}#{path}`"]
        codes += [f"{SYSTEM_NAMES.get(c.system, 'LOINC')} {c.code} {c.display}"
                  for c in STANDARD_CODES.get(path, ())]
        codes += feeds.get(path, [])
        rows.append((path, "; ".join(codes)))
    return rows


def value_set_rows() -> list[tuple[str, str, str, str]]:
    """(value set, feeds, codes per system, sources) for docs/fhir-mapping.md."""
    rows = []
    for feed in terminology().feeds:
        vs = feed.value_set
        target = (f"`{feed.field}` = `{feed.value}`" if feed.field == "pain.sites"
                  else f"`{feed.field}`" if feed.field else f"a note: {feed.note}")
        if feed.active_for_days:
            target += f" (active for {feed.active_for_days} days or more)"
        counts = ", ".join(f"{name} {n}" for name, n in sorted(vs.counts().items()))
        sources = "; ".join(f"{s['name']} ({s['version']})" for s in vs.sources)
        rows.append((f"`{vs.id}` {vs.title} ({feed.resource})", target, counts, sources))
    return rows


def describe(mapped: MappedPresentation) -> list[str]:
    """What was read from the chart, field by field, in clinicians' words, for the card."""
    return [f"{field_label(path)}: {answer_in_words(value)}{_unit(path)} ({mapped.sources[path]})"
            for path, value in _flat(mapped.presentation) if path in mapped.sources]


def _unit(path: str) -> str:
    unit = FIELD_UNITS.get(path)
    return f" {unit}" if unit else ""


def _flat(presentation: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple[str, Any]]:
    for section, values in presentation.items():
        for name, value in values.items():
            yield f"{section}.{name}", value


def answer_in_words(value: Any) -> str:
    """A recorded answer as a clinician reads it: yes/no, a choice's label, a number."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value_label(v).lower() for v in value)
    return value_label(value).lower() if isinstance(value, str) else str(value)
