"""Map FHIR R4 resources (Patient, Condition, Observation) to a presentation of the contract.

Unknown stays unknown: a finding no resource speaks about is left out, never set to false.
The full table, field by field, is docs/fhir-mapping.md (`mapping_rows()` writes its codes).

- `patient.age` <- `Patient.birthDate`: whole years on the day of the call; a partial date
  only when every day it allows gives the same age. `patient.sex` <- `Patient.gender`.
- `pain.sites` <- the current, not refuted Conditions coded SNOMED CT 279039007 Low back pain
  (`low_back`) or 49218002 Pain in hip (`hip`); `pain.duration_days` <- days from their
  earliest full `onsetDateTime` / `onsetPeriod.start` to the day of the call.
- Every other field <- a Condition (yes/no findings) or an Observation coded with the field's
  path in `terminology.FIELD_SYSTEM` (`neuro.saddle_anaesthesia`), or with one of the SNOMED CT
  / LOINC codes of `terminology.STANDARD_CODES` where a standard concept means the same.
  Choices are `valueCodeableConcept` in `terminology.ANSWER_SYSTEM` (code = the contract
  value); numbers `valueQuantity` in the UCUM units of `terminology.UNITS`, or `valueInteger`.
  STarT Back: the whole block or none. No subsumption: a more specific SNOMED concept (a
  named cancer) is not read as its parent.

Yes/no: a Condition with `verificationStatus` refuted is false; confirmed, provisional or no
status is true; differential, unconfirmed and entered-in-error say nothing. For a finding of
the present (all but `terminology.HISTORY_FIELDS`), `clinicalStatus` inactive, remission or
resolved makes it false. An Observation is read when its status is final, amended, corrected
or preliminary and it has no `dataAbsentReason`: `valueBoolean`, or `valueCodeableConcept`
with a SNOMED CT present/absent/yes/no qualifier or LOINC LA33-6 Yes / LA32-8 No; an
Observation of a standard finding code with no value asserts the finding. An Observation of a
present finding dated before the episode began is ignored. When resources disagree, yes wins
(a recorded red flag or contraindication outweighs a denial); choices and numbers that
disagree stay unknown.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

from ..presentation import BOOL, ENUM, INPUT_FIELDS, SITES, START_BACK_ITEMS, FieldSpec
from .terminology import (
    ANSWER_SYSTEM,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    FIELD_SYSTEM,
    HISTORY_FIELDS,
    NO_CODES,
    SITE_CODES,
    STANDARD_CODES,
    UCUM,
    UNITS,
    YES_CODES,
)

REQUIRED_FIELDS = ("patient.age", "pain.sites", "pain.duration_days")
# Read from the Patient and the pain Conditions only, never from a coded finding.
_STRUCTURAL_FIELDS = frozenset({"patient.age", "patient.sex", *REQUIRED_FIELDS})
FINDING_FIELDS = tuple(path for path in INPUT_FIELDS if path not in _STRUCTURAL_FIELDS)

_USABLE_OBSERVATION = frozenset({"final", "amended", "corrected", "preliminary"})
_NOT_CURRENT = frozenset({"inactive", "remission", "resolved"})
_SAYS_NOTHING = frozenset({"entered-in-error", "differential", "unconfirmed"})

_CODE_INDEX: dict[tuple[str, str], str] = {
    **{(FIELD_SYSTEM, path): path for path in FINDING_FIELDS},
    **{(code.system, code.code): path
       for path, codes in STANDARD_CODES.items() for code in codes},
}
_STANDARD = frozenset((c.system, c.code) for codes in STANDARD_CODES.values() for c in codes)


@dataclass
class MappedPresentation:
    """What the resources say: a presentation (only known fields), and what is missing."""

    presentation: dict[str, dict[str, Any]]
    missing_required: list[str]
    notes: list[str] = field(default_factory=list)
    episode_onset: date | None = None


def codings(concept: CodeableConcept | None) -> Iterator[tuple[str, str]]:
    for coding in (concept.coding or []) if concept else []:
        if coding.system and coding.code:
            yield coding.system, coding.code


def _status(concept: CodeableConcept | None) -> str | None:
    """A Condition's clinical or verification status code (read even without its system)."""
    for coding in (concept.coding or []) if concept else []:
        if coding.code and coding.system in (None, CONDITION_CLINICAL, CONDITION_VERIFICATION):
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


def _asserted(condition: Condition) -> bool | None:
    """True if the Condition asserts its code, False if refuted, None if it says nothing."""
    verification = _status(condition.verificationStatus)
    if verification in _SAYS_NOTHING:
        return None
    return verification != "refuted"


class _Reader:
    def __init__(self, patient: Patient | None, conditions: list[Condition],
                 observations: list[Observation], today: date) -> None:
        self.patient, self.conditions, self.observations = patient, conditions, observations
        self.today = today
        self.values: dict[str, Any] = {}
        self.notes: list[str] = []
        self.onset: date | None = None

    def keep(self, path: str, value: Any) -> None:
        if INPUT_FIELDS[path].accepts(value):
            self.values[path] = value
        else:
            self.notes.append(f"{path}: the recorded value is outside the range the rules use")

    def read_patient(self) -> None:
        if self.patient is None:
            return
        age = age_from_birth_date(self.patient.birthDate, self.today)
        if age is not None:
            self.keep("patient.age", age)
        elif self.patient.birthDate is not None:
            self.notes.append("patient.age: the birth date is too imprecise to give an age")
        if self.patient.gender:
            self.keep("patient.sex", self.patient.gender)

    def read_episode(self) -> None:
        sites: set[str] = set()
        onsets: list[date] = []
        for condition in self.conditions:
            site = next((SITE_CODES[c] for c in codings(condition.code) if c in SITE_CODES), None)
            current = _status(condition.clinicalStatus) not in _NOT_CURRENT
            if site is None or not current or _asserted(condition) is not True:
                continue
            sites.add(site)
            onset = condition.onsetDateTime or (condition.onsetPeriod.start
                                                if condition.onsetPeriod else None)
            if _day(onset) is not None:
                onsets.append(_day(onset))
        if sites:
            self.values["pain.sites"] = [site for site in SITES if site in sites]
        if onsets:
            self.onset = min(onsets)
            self.keep("pain.duration_days", (self.today - self.onset).days)
        elif sites:
            self.notes.append("pain.duration_days: no full onset date on the pain Condition")

    def evidence(self) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = defaultdict(list)
        for condition in self.conditions:
            for path, value in self._from_condition(condition):
                found[path].append(value)
        for observation in self.observations:
            for path, value in self._from_observation(observation):
                found[path].append(value)
        return found

    def _from_condition(self, condition: Condition) -> Iterator[tuple[str, Any]]:
        asserted = _asserted(condition)
        for coding in codings(condition.code):
            path = _CODE_INDEX.get(coding)
            if path is None or INPUT_FIELDS[path].kind != BOOL or asserted is None:
                continue
            if asserted and path not in HISTORY_FIELDS:
                yield path, _status(condition.clinicalStatus) not in _NOT_CURRENT
            else:
                yield path, asserted

    def _from_observation(self, observation: Observation) -> Iterator[tuple[str, Any]]:
        if observation.status not in _USABLE_OBSERVATION or observation.dataAbsentReason:
            return
        for coding in codings(observation.code):
            path = _CODE_INDEX.get(coding)
            if path is None or (path not in HISTORY_FIELDS and self._stale(observation)):
                continue
            value = _observed_value(INPUT_FIELDS[path], path, observation, coding in _STANDARD)
            if value is not None:
                yield path, value

    def _stale(self, observation: Observation) -> bool:
        when = (observation.effectiveDateTime or observation.effectiveInstant
                or (observation.effectivePeriod.start if observation.effectivePeriod else None)
                or observation.issued)
        return self.onset is not None and _day(when) is not None and _day(when) < self.onset

    def read_findings(self) -> None:
        for path, values in self.evidence().items():
            if INPUT_FIELDS[path].kind == BOOL:
                self.keep(path, any(values))
            elif len(set(values)) == 1:
                self.keep(path, values[0])
            else:
                self.notes.append(f"{path}: the record holds conflicting values")
        items = [f"start_back.{item}" for item in (*START_BACK_ITEMS, "bothersomeness")]
        answered = [path for path in items if path in self.values]
        if answered and len(answered) < len(items):
            self.notes.append("start_back: incomplete, so not scored (all nine items are needed)")
            for path in answered:
                del self.values[path]


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


def to_presentation(patient: Patient | None, conditions: Iterable[Condition],
                    observations: Iterable[Observation], today: date) -> MappedPresentation:
    """Read a presentation from the patient's resources as of `today`."""
    reader = _Reader(patient, list(conditions), list(observations), today)
    reader.read_patient()
    reader.read_episode()
    reader.read_findings()
    nested: dict[str, dict[str, Any]] = defaultdict(dict)
    for path, value in reader.values.items():
        section, name = path.split(".")
        nested[section][name] = value
    missing = [path for path in REQUIRED_FIELDS if path not in reader.values]
    return MappedPresentation(dict(nested), missing, reader.notes, reader.onset)


def mapping_rows() -> list[tuple[str, str]]:
    """(field, codes) for every coded finding, as documented in docs/fhir-mapping.md."""
    rows = []
    for path in FINDING_FIELDS:
        codes = [f"`{FIELD_SYSTEM.rsplit('/', 1)[1]}#{path}`"]
        codes += [f"{'SNOMED CT' if c.system.endswith('sct') else 'LOINC'} {c.code} {c.display}"
                  for c in STANDARD_CODES.get(path, ())]
        rows.append((path, "; ".join(codes)))
    return rows
