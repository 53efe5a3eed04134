"""Rate draft lumbar spine and hip imaging orders against the assessment (Argonaut PAMA).

The rating is the assessment's ACR band for the ordered procedure: usually appropriate ->
PAMA `appropriate`; may be appropriate -> PAMA `appropriate` (the guide's three codes have no
middle band; CMS counts an order that "may be appropriate" as adhering to the criteria) with
the finer band as a second coding; usually not appropriate -> PAMA `not-appropriate`. As the
guide asks, an order is not rated when the data to rate it are missing: no assessment (age,
site or onset unknown), an open red-flag screen (an unanswered red flag could change the
rating), a procedure the assessment did not rate, or a code that leaves open a contrast the
rating depends on. The card then says what is missing, and no systemAction is returned.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from .cards import OVERRIDE_REASONS, CardBuilder, data_needed_card
from .imaging_codes import PREFERRED_CODE, ImagingCode, imaging_code, region
from .mapping import codings
from .terminology import (
    PAMA_AUC_APPLIED_URL,
    PAMA_CONSULT_ID_URL,
    PAMA_RATING_SYSTEM,
    PAMA_RATING_URL,
    RATING_SYSTEM,
    TREATMENT_SYSTEM,
)

_PAMA = {"usually_appropriate": ("appropriate", "Appropriate"),
         "may_be_appropriate": ("appropriate", "Appropriate"),
         "usually_not_appropriate": ("not-appropriate", "Not appropriate")}
_BAND = {"usually_appropriate": "Usually appropriate", "may_be_appropriate": "May be appropriate",
         "usually_not_appropriate": "Usually not appropriate"}
_OURS = (PAMA_RATING_URL, PAMA_CONSULT_ID_URL, PAMA_AUC_APPLIED_URL)


@dataclass(frozen=True)
class ImagingOrder:
    """A draft order for lumbar spine or hip imaging, with the JSON it came as."""

    resource: dict[str, Any]
    order: ServiceRequest
    code: ImagingCode

    @property
    def reference(self) -> str:
        return f"ServiceRequest/{self.order.id}"


def imaging_orders(draft_orders: Mapping[str, Any],
                   selections: list[str] | None) -> list[ImagingOrder]:
    """The lumbar spine and hip imaging ServiceRequests among the drafts (the selected ones)."""
    found = []
    for entry in draft_orders.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "ServiceRequest":
            continue
        try:
            order = ServiceRequest.model_validate(resource)
        except ValidationError:
            continue  # not readable as an R4 ServiceRequest: not ours to rate
        if selections is not None and f"ServiceRequest/{order.id}" not in selections:
            continue
        code = imaging_code(list(codings(order.code)))
        if code is not None and order.id:
            found.append(ImagingOrder(resource, order, code))
    return found


def unrated_reason(code: ImagingCode, assessment: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why this order cannot be rated (a short phrase and the detail), or None if it can."""
    open_flags = [m for m in assessment["missing_information"] if m["screen"] == "red_flags"]
    if open_flags:
        return (f"not rated until {len(open_flags)} red-flag questions are answered",
                "An unanswered red flag could change the rating. Ask about:\n" + "\n".join(
                    f"- `{m['field']}`: {m['why']}" for m in open_flags))
    ratings = {p["code"]: p["rating"] for p in assessment["imaging"]["procedures"]}
    unrated = [p for p in code.procedures if p is not None and p not in ratings]
    if unrated:
        site = "hip" if region(unrated[0]) == "hip" else "low back"
        return (f"not rated, no {site} pain is assessed",
                f"The assessment rates this study only for {site} pain, and the record holds "
                f"no current {site} pain Condition.")
    if code.procedures == (None,):
        return ("not rated, no criteria for a study with IV contrast only",
                "The assessment rates studies without contrast, and without and with "
                "contrast; order by the code of the study meant.")
    if None in code.procedures or len({ratings[p] for p in code.procedures}) > 1:
        return ("not rated, the contrast is not stated",
                "The rating depends on the contrast; order by a code that states it.")
    return None


def _for_region(reasons: list[dict[str, Any]], site: str) -> list[dict[str, Any]]:
    """The reasons of the order's own ruleset (hip rules for a hip study), and the shared."""
    other = "lbp." if site == "hip" else "hip."
    return [r for r in reasons if not r["rule"].startswith(other)]


def _rating_concept(band: str) -> dict[str, Any]:
    code, display = _PAMA[band]
    return {"coding": [{"system": PAMA_RATING_SYSTEM, "code": code, "display": display},
                       {"system": RATING_SYSTEM, "code": band.replace("_", "-"),
                        "display": _BAND[band]}],
            "text": _BAND[band]}


def _auc_applied(assessment: Mapping[str, Any], procedure: str) -> str | None:
    cited = {c for r in assessment["reasons"] if r["conclusion"] == "imaging"
             for c in r["citations"] if c.startswith("acr-")}
    wanted = [c for c in cited if c.startswith("acr-hip") == (region(procedure) == "hip")]
    urls = {c["id"]: c.get("url") for c in assessment["citations"]}
    return next((urls[c] for c in sorted(wanted) if urls.get(c)), None)


def rated_resource(resource: Mapping[str, Any], band: str, procedure: str,
                   assessment: Mapping[str, Any]) -> dict[str, Any]:
    """The order, unchanged but for the PAMA rating extensions (replacing earlier ones)."""
    rated = copy.deepcopy(dict(resource))
    extensions = [e for e in rated.get("extension", []) if e.get("url") not in _OURS]
    extensions.append({"url": PAMA_RATING_URL, "valueCodeableConcept": _rating_concept(band)})
    extensions.append({"url": PAMA_CONSULT_ID_URL,
                       "valueUri": f"urn:uuid:{assessment['assessment_id']}"})
    applied = _auc_applied(assessment, procedure)
    if applied:
        extensions.append({"url": PAMA_AUC_APPLIED_URL, "valueUri": applied})
    rated["extension"] = extensions
    return rated


def _conservative_care(order: ServiceRequest, assessment: Mapping[str, Any]) -> dict[str, Any]:
    first_line = [t for t in assessment["treatments"] if t["line"] == "first"]
    plan = {"resourceType": "CarePlan", "status": "draft", "intent": "proposal",
            "title": "Conservative care for low back or hip pain",
            "subject": order.subject.model_dump(mode="json", exclude_none=True),
            "activity": [{"detail": {
                "code": {"coding": [{"system": TREATMENT_SYSTEM, "code": t["code"],
                                     "display": t["label"]}], "text": t["label"]},
                "status": "not-started", "description": " ".join(
                    [t["label"] + "."] + [c["text"] for c in t["cautions"]])}}
                for t in first_line]}
    if not first_line:
        del plan["activity"]
    CarePlan.model_validate(plan)  # a defect here must not reach an EHR
    return plan


def _replacement(order: ImagingOrder, procedure: str, band: str,
                 assessment: Mapping[str, Any]) -> dict[str, Any]:
    code = PREFERRED_CODE[procedure]
    new = {"resourceType": "ServiceRequest", "status": "draft",
           "intent": order.order.intent,
           "code": {"coding": [{"system": code.system, "code": code.code,
                                "display": code.display}], "text": code.display},
           "subject": order.order.subject.model_dump(mode="json", exclude_none=True)}
    for name in ("reasonCode", "reasonReference", "encounter"):
        if name in order.resource:
            new[name] = copy.deepcopy(order.resource[name])
    ServiceRequest.model_validate(new)
    return rated_resource(new, band, procedure, assessment)


def _suggestions(order: ImagingOrder, procedure: str,
                 assessment: Mapping[str, Any]) -> list[dict[str, Any]]:
    delete = {"type": "delete", "description": f"Remove the draft order for {order.code.display}",
              "resourceId": order.reference}
    care = {"type": "create", "description": "Propose a conservative care plan (first line)",
            "resource": _conservative_care(order.order, assessment)}
    suggestions = [{"label": "Remove the order and start conservative care",
                    "uuid": str(uuid.uuid4()), "isRecommended": True,
                    "actions": [delete, care]}]
    ranks = list(_BAND)
    better = [p for p in assessment["imaging"]["procedures"]
              if region(p["code"]) == region(procedure) and p["code"] in PREFERRED_CODE
              and ranks.index(p["rating"]) < ranks.index("usually_not_appropriate")]
    for alternative in better[:2]:
        suggestions.append({
            "label": f"Replace with {alternative['label']} ({_BAND[alternative['rating']]})",
            "uuid": str(uuid.uuid4()), "isRecommended": False,
            "actions": [delete, {"type": "create",
                                 "description": f"Order {alternative['label']} instead",
                                 "resource": _replacement(order, alternative["code"],
                                                          alternative["rating"], assessment)}]})
    return suggestions


def order_card(order: ImagingOrder, assessment: Mapping[str, Any],
               bibliography: Mapping[str, Mapping[str, Any]]
               ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The card for one order, and its rating as a systemAction (None when not rated)."""
    builder = CardBuilder(assessment, bibliography)
    procedure = order.code.procedures[0]
    site = order.code.region
    reasons = _for_region(builder.reasons(["imaging", "suspected_conditions",
                                           "classification"]), site)
    label = order.code.display
    why_not = unrated_reason(order.code, assessment)
    if why_not:
        detail = f"**Not rated:** {why_not[1]}\n\n" + builder.why(reasons)
        return builder.card(f"{label}: {why_not[0]}", "info", detail, "imaging", reasons,
                            site), None
    assert procedure is not None
    ratings = {p["code"]: p for p in assessment["imaging"]["procedures"]}
    band = ratings[procedure]["rating"]
    context = ", ".join(c["label"] for c in assessment["suspected_conditions"]
                        if c["urgency"] in ("emergency", "urgent")) or "; ".join(
        f"{c['label']} ({assessment['duration_category']})"
        for c in assessment["classification"] if c["site"] == site)
    imaging = assessment["imaging"]
    lines = [f"**Rating:** {_BAND[band]} ({ratings[procedure]['label']}), ACR Appropriateness "
             f"Criteria as the assessment applies them.", f"**For:** {context}"]
    if imaging["indicated"]:
        lines.append(f"**Timing:** {imaging['timing']}")
    elif imaging.get("reassess_after_weeks"):
        lines.append(f"**Reassess** after {imaging['reassess_after_weeks']} weeks of "
                     "conservative care; imaging then if there is no improvement.")
    extra: dict[str, Any] = {}
    indicator = "info"
    if band == "usually_not_appropriate":
        indicator = "warning"
        extra = {"selectionBehavior": "at-most-one",
                 "suggestions": _suggestions(order, procedure, assessment),
                 "overrideReasons": [r.coding() for r in OVERRIDE_REASONS]}
    card = builder.card(f"{label}: {_BAND[band].lower()} for {context}", indicator,
                        "\n\n".join(lines) + "\n\n" + builder.why(reasons), "imaging", reasons,
                        site, **extra)
    action = {"type": "update",
              "description": f"Record the appropriateness rating ({_BAND[band]}) on the order",
              "resource": rated_resource(order.resource, band, procedure, assessment)}
    return card, action


def data_needed_order_card(order: ImagingOrder, missing: list[str],
                           bibliography: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """An order that cannot be rated because there is no assessment at all."""
    card = data_needed_card(missing, [], bibliography, [order.code.region])
    card["summary"] = f"{order.code.display}: not rated, the assessment lacks data"
    return card
