"""The CDS Services this server offers, as its discovery endpoint lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fetching import PREFETCH

ASSESSMENT = "msk-assessment"
IMAGING = "lumbar-imaging-appropriateness"
RULESET_EXTENSION = "org.msk-decision-support.ruleset"


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str
    usage: str


_USAGE = (
    "Reads the Patient, Conditions and Observations named in prefetch (see the service's "
    "FHIR mapping); a key left out is read from fhirServer. Findings the record does not hold "
    "are treated as unknown, never as absent. Supports, never replaces, clinical judgement.")

SERVICES: tuple[Service, ...] = (
    Service(ASSESSMENT, "patient-view", "Low back and hip pain assessment",
            "Red flags (critical for an emergency, warning for an urgent suspicion), the "
            "classification and the first-line plan for a patient with low back or hip pain, "
            "each with its reasons and the guidance it cites.", _USAGE),
    # The same id on two hooks, as CDS Hooks allows; order-select is listed last because
    # some clients (the public sandbox) keep one entry per id, and the Argonaut PAMA guide
    # prefers rating when the order is selected.
    Service(IMAGING, "order-sign", "Lumbar spine and hip imaging appropriateness",
            "Rates every lumbar spine or hip radiograph, CT or MRI among the draft orders "
            "against the assessment (appropriate, may be appropriate, not appropriate, coded "
            "as the Argonaut PAMA guide asks) and records the rating on the order.", _USAGE),
    Service(IMAGING, "order-select", "Lumbar spine and hip imaging appropriateness",
            "Rates the selected lumbar spine or hip radiograph, CT or MRI order against the "
            "assessment; for an order that is not appropriate, suggests removing it and "
            "starting conservative care.", _USAGE),
)
SERVICE_IDS = frozenset(service.id for service in SERVICES)


def hooks_of(service_id: str) -> tuple[str, ...]:
    return tuple(service.hook for service in SERVICES if service.id == service_id)


def discovery_document(ruleset_version: str, ruleset_digest: str) -> dict[str, Any]:
    """The discovery response: every service with its prefetch and the ruleset version."""
    return {"services": [{
        "hook": service.hook,
        "id": service.id,
        "title": service.title,
        "description": service.description,
        "prefetch": dict(PREFETCH),
        "usageRequirements": service.usage,
        "extension": {RULESET_EXTENSION: {"version": ruleset_version,
                                          "digest": ruleset_digest}},
    } for service in SERVICES]}
