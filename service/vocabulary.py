"""Hold the codes and labels a rule may conclude, read from rulesets/vocabulary.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .presentation import SITES

_SECTIONS = (
    "urgency",
    "imaging_timing",
    "imaging_rating",
    "duration_category",
    "classification",
    "conditions",
    "imaging_procedures",
    "treatments",
    "referrals",
    "avoid",
    "safety_netting",
)


class VocabularyError(ValueError):
    """The vocabulary file is missing a section or holds a malformed entry."""


@dataclass(frozen=True)
class Vocabulary:
    """Codes with labels; ordered sections are ordered most pressing (or best) first."""

    urgency: dict[str, str]
    imaging_timing: dict[str, str]
    imaging_rating: dict[str, str]
    duration_category: dict[str, str]
    classification: dict[str, dict[str, str]]
    conditions: dict[str, dict[str, str]]
    imaging_procedures: dict[str, str]
    treatments: dict[str, dict[str, str]]
    referrals: dict[str, str]
    avoid: dict[str, str]
    safety_netting: dict[str, str]

    @classmethod
    def from_data(cls, data: Any) -> Vocabulary:
        if not isinstance(data, dict):
            raise VocabularyError("the vocabulary must be a mapping of sections")
        missing = [name for name in _SECTIONS if not isinstance(data.get(name), dict)]
        if missing:
            raise VocabularyError(f"missing section(s): {', '.join(missing)}")
        unknown_sites = set(data["classification"]) - set(SITES)
        if unknown_sites:
            raise VocabularyError(f"classification for unknown site(s): {sorted(unknown_sites)}")
        for code, entry in data["conditions"].items():
            if not isinstance(entry, dict) or set(entry) != {"site", "kind", "label"} \
                    or entry["site"] not in SITES:
                raise VocabularyError(f"condition {code!r} needs site, kind and label")
        for code, text in data["safety_netting"].items():
            if not isinstance(text, str) or not text.strip():
                raise VocabularyError(f"safety-netting advice {code!r} needs its text")
        for code, entry in data["treatments"].items():
            if not isinstance(entry, dict) or set(entry) != {"type", "label"}:
                raise VocabularyError(f"treatment {code!r} needs type and label")
        return cls(**{name: data[name] for name in _SECTIONS})

    def rank(self, section: str, code: str) -> int:
        """Return the position of a code in an ordered section (0 = most pressing or best)."""
        return list(getattr(self, section)).index(code)
