"""The CDS Services this server offers, as its discovery endpoint lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fetching import PREFETCH

ASSESSMENT = "msk-assessment"
IMAGING = "lumbar-imaging-appropriateness"  # order-select
IMAGING_SIGN = "lumbar-imaging-appropriateness-order-sign"
RULESET_EXTENSION = "org.msk-decision-support.ruleset"


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str
    usage: str
    # Hooks answered without being listed: order-sign calls to the order-select id, as
    # EHRs registered before the two hooks had their own ids still make them.
    also_answers: tuple[str, ...] = ()


_USAGE = (
    "Reads the Patient, Conditions, Observations, MedicationRequests and AllergyIntolerances "
    "named in prefetch (FHIR R4; see the service's FHIR mapping); a key left out is read from "
    "fhirServer. Findings the record does not hold are treated as unknown, never as absent. "
    "Supports, never replaces, clinical judgement.")

SERVICES: tuple[Service, ...] = (
    Service(ASSESSMENT, "patient-view", "Low back and hip pain assessment",
            "Red flags (critical for an emergency, warning for an urgent suspicion), the "
            "classification and the first-line plan for a patient with low back or hip pain, "
            "each with its reasons and the guidance it cites.", _USAGE),
    # One id per hook: clients that keep one entry per id (the public sandbox) call both.
    # The Argonaut PAMA guide prefers rating when the order is selected.
    Service(IMAGING, "order-select", "Lumbar spine and hip imaging appropriateness",
            "Rates the selected lumbar spine or hip radiograph, CT or MRI order against the "
            "assessment, as the Argonaut PAMA guide asks (appropriate, not appropriate, no "
            "criteria apply; the ACR band as a second coding), records the rating on the order "
            "and suggests a better-rated study where there is one.", _USAGE,
            also_answers=("order-sign",)),
    Service(IMAGING_SIGN, "order-sign", "Lumbar spine and hip imaging appropriateness (sign)",
            "Rates every lumbar spine or hip radiograph, CT or MRI among the draft orders "
            "being signed, as at order-select, and records the rating on each order.", _USAGE),
)


def hooks_of(service_id: str) -> tuple[str, ...]:
    """The hooks a service id answers: its own, then those it still accepts."""
    return tuple(hook for service in SERVICES if service.id == service_id
                 for hook in (service.hook, *service.also_answers))


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
