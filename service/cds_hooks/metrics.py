"""Counters for the CDS Hooks services: cards served and clinicians' feedback on them.

Labels are fixed codes only (service ids, indicators, outcomes, this service's own override
reason codes): nothing from a patient, a card's text or a user's comment becomes a label.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter

from .cards import OVERRIDE_REASONS

CARDS = Counter("cds_hooks_cards_total", "CDS Hooks cards returned",
                ["service", "hook", "indicator"])
FEEDBACK = Counter("cds_hooks_feedback_total", "CDS Hooks card feedback received",
                   ["service", "outcome", "reason"])
ACCEPTED_SUGGESTIONS = Counter("cds_hooks_accepted_suggestions_total",
                               "Suggestions accepted, as reported by feedback", ["service"])

_OUR_REASONS = {(r.system, r.code): r.code for r in OVERRIDE_REASONS}


def count_cards(service: str, hook: str, cards: Iterable[Mapping[str, Any]]) -> None:
    for card in cards:
        CARDS.labels(service, hook, card["indicator"]).inc()


def count_feedback(service: str, items: Iterable[Mapping[str, Any]]) -> None:
    """Count each feedback item by outcome and (our own) override reason; keep nothing else."""
    for item in items:
        reason = (item.get("override_reason") or {}).get("reason")
        code = "none" if reason is None else _OUR_REASONS.get(
            (reason["system"], reason["code"]), "other")
        FEEDBACK.labels(service, item["outcome"], code).inc()
        if item["outcome"] == "accepted":
            ACCEPTED_SUGGESTIONS.labels(service).inc(len(item["accepted_suggestions"]))
