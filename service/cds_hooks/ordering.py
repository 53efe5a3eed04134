"""Rate draft lumbar spine and hip imaging orders against the assessment (Argonaut PAMA).

The rating is the assessment's ACR band for the ordered procedure: usually appropriate ->
PAMA `appropriate`; may be appropriate -> PAMA `appropriate` (the guide's codes have no
middle band; CMS counts an order that "may be appropriate" as adhering to the criteria) with
the finer band as a second coding; usually not appropriate -> PAMA `not-appropriate`. A study
that no criteria of the service cover (an MRI with contrast only, for instance) is rated
`no-criteria-apply`.

As the guide asks, the rating is a best effort from what the chart holds: red-flag questions
the chart does not answer are taken as not present (no condition is raised from them), and the
card says so and names each question whose answer would change the rating. An order is not
rated at all only when the data to rate it are missing: no assessment (age, site or onset
unknown), a procedure for a site the chart holds no pain for, or a code that leaves open a
contrast the rating depends on. The card then says what is missing, and no rating action is
returned.

Ratings go back as `update` actions that change nothing but the rating extensions, in the
response's `systemActions` (CDS Hooks 2.0) and in `extension.systemActions` (the Argonaut
guide; the public sandbox reads only that). Alternatives are suggested as `update`s of the
same draft order to a better-rated study, each carrying its own rating.
"""

from __future__ import annotations

import copy
import functools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from ..web.fields import field_label
from .cards import OVERRIDE_REASONS, CardBuilder, data_needed_card
from .imaging_codes import IMAGING_CODES, ImagingCode, imaging_code, preferred_code, region
from .mapping import codings, condition_feeds, entries
from .terminology import (
    LOINC,
    PAMA_AUC_APPLIED_URL,
    PAMA_CONSULT_ID_URL,
    PAMA_QCDSM_URL,
    PAMA_RATING_SYSTEM,
    PAMA_RATING_URL,
    RATING_SYSTEM,
    TREATMENT_SYSTEM,
)

_PAMA = {"usually_appropriate": ("appropriate", "Appropriate"),
         "may_be_appropriate": ("appropriate", "Appropriate"),
         "usually_not_appropriate": ("not-appropriate", "Not appropriate")}
NO_CRITERIA = ("no-criteria-apply", "No criteria apply")
_BAND = {"usually_appropriate": "Usually appropriate", "may_be_appropriate": "May be appropriate",
         "usually_not_appropriate": "Usually not appropriate"}
_OURS = (PAMA_RATING_URL, PAMA_CONSULT_ID_URL, PAMA_AUC_APPLIED_URL, PAMA_QCDSM_URL)
_RANKS = list(_BAND)
_TIMING = {"immediate": "today (same day)", "urgent": "within days", "routine": "routine"}
# Where a patient goes instead when the study is not the next step.
_NOT_IMAGED_HERE = {"emergency": "same-day emergency assessment",
                    "urgent": "specialist assessment within days"}

# Re-assess a presentation with one more answer: the assessment, as the REST API gives it.
Reassess = Callable[[Mapping[str, Any]], Mapping[str, Any]]


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
    for entry in entries(draft_orders):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "ServiceRequest":
            continue
        try:
            order = ServiceRequest.model_validate(resource)
        except (ValidationError, RecursionError):
            continue  # not readable as an R4 ServiceRequest: not ours to rate
        if selections is not None and f"ServiceRequest/{order.id}" not in selections:
            continue
        code = imaging_code(list(codings(order.code)), order, _hip_reasons())
        if code is not None and order.id:
            found.append(ImagingOrder(resource, order, code))
    return found


_OLDER_ORDER_TYPES = ("ProcedureRequest", "DiagnosticOrder", "DiagnosticRequest")


def older_version_orders(draft_orders: Mapping[str, Any]) -> int:
    """Imaging orders sent as the order resources of FHIR DSTU2 or STU3 (ProcedureRequest,
    DiagnosticOrder): not read, but answered, so the silence is not read as approval."""
    count = 0
    for entry in entries(draft_orders):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") in _OLDER_ORDER_TYPES:
            concept = resource.get("code")
            coded = concept.get("coding") if isinstance(concept, dict) else None
            count += any(isinstance(c, dict) and (c.get("system"), c.get("code")) in IMAGING_CODES
                         for c in (coded if isinstance(coded, list) else []))
    return count


@functools.cache
def _hip_reasons() -> frozenset[tuple[str, str]]:
    """Reason codes that make a study of the leg a hip study: the hip pain value sets."""
    return frozenset(key for key, pairs in condition_feeds().items()
                     if ("pain.sites", "hip") in pairs)


_SITE_WORDS = {"hip": "hip", "low_back": "low back"}
_MYELOGRAPHY = "ct_myelography"


def unrated_reason(code: ImagingCode, assessment: Mapping[str, Any],
                   sites: list[str]) -> tuple[str, str] | None:
    """Why this order cannot be rated (a short phrase and the detail), or None if it can."""
    if code.procedures == (None,):
        return None  # rated: no criteria apply
    site = _SITE_WORDS[code.region]
    ratings = {p["code"]: p["rating"] for p in assessment["imaging"]["procedures"]}
    # Assessed: a painful site on record, or a site whose studies a suspicion rated (a hip
    # fracture on the problem list of a patient with back pain).
    if code.region not in {*sites, *(region(p) for p in ratings)}:
        return (f"not rated, no {site} pain is on record",
                f"The criteria rate this study for {site} pain, and the record holds no "
                f"current {site} pain Condition, nor is it the order's reason.")
    if any(p is not None and p not in ratings for p in code.procedures):
        rated = "; ".join(f"{p['label']}: {_BAND[p['rating']].lower()}"
                          for p in assessment["imaging"]["procedures"]
                          if region(p["code"]) == code.region)
        return ("not rated for this presentation",
                "The criteria the service applies give no rating for this study in this "
                f"presentation. The studies they rate: {rated}.")
    if None in code.procedures or len({ratings[p] for p in code.procedures}) > 1:
        if _MYELOGRAPHY in code.procedures:
            return ("not rated, IV or intrathecal contrast is not stated",
                    "With IV contrast and as CT myelography (intrathecal contrast) the study "
                    "rates differently; order by a code that says which.")
        return ("not rated, the contrast is not stated",
                "The rating depends on the contrast; order by a code that states it.")
    return None


def _for_region(reasons: list[dict[str, Any]], site: str) -> list[dict[str, Any]]:
    """The reasons of the order's own ruleset (hip rules for a hip study), and the shared."""
    other = "lbp." if site == "hip" else "hip."
    return [r for r in reasons if not r["rule"].startswith(other)]


def _rating_concept(band: str | None) -> dict[str, Any]:
    if band is None:
        code, display = NO_CRITERIA
        return {"coding": [{"system": PAMA_RATING_SYSTEM, "code": code, "display": display}],
                "text": display}
    code, display = _PAMA[band]
    return {"coding": [{"system": PAMA_RATING_SYSTEM, "code": code, "display": display},
                       {"system": RATING_SYSTEM, "code": band.replace("_", "-"),
                        "display": _BAND[band]}],
            "text": _BAND[band]}


def _auc_applied(assessment: Mapping[str, Any], site: str) -> str | None:
    cited = {c for r in assessment["reasons"] if r["conclusion"] == "imaging"
             for c in r["citations"] if c.startswith("acr-")}
    wanted = [c for c in cited if c.startswith("acr-hip") == (site == "hip")]
    urls = {c["id"]: c.get("url") for c in assessment["citations"]}
    return next((urls[c] for c in sorted(wanted) if urls.get(c)), None)


@dataclass(frozen=True)
class Rater:
    """Writes ratings as the guide's extensions, for one assessment and one deployment."""

    assessment: Mapping[str, Any]
    qcdsm: str

    def rated_resource(self, resource: Mapping[str, Any], band: str | None,
                       site: str) -> dict[str, Any]:
        """The order, unchanged but for the PAMA rating extensions (replacing earlier ones)."""
        rated = copy.deepcopy(dict(resource))
        extensions = [e for e in rated.get("extension", []) if e.get("url") not in _OURS]
        extensions.append({"url": PAMA_RATING_URL,
                           "valueCodeableConcept": _rating_concept(band)})
        extensions.append({"url": PAMA_QCDSM_URL, "valueString": self.qcdsm})
        extensions.append({"url": PAMA_CONSULT_ID_URL,
                           "valueUri": f"urn:uuid:{self.assessment['assessment_id']}"})
        applied = _auc_applied(self.assessment, site) if band else None
        if applied:
            extensions.append({"url": PAMA_AUC_APPLIED_URL, "valueUri": applied})
        rated["extension"] = extensions
        return rated

    def alternative(self, order: ImagingOrder, procedure: str, band: str,
                    priority: str | None = None) -> dict[str, Any]:
        """The same draft order changed to another study, with that study's rating."""
        code = preferred_code(procedure, order.code.system)
        assert code is not None  # only procedures with a preferred code are suggested
        changed = copy.deepcopy(order.resource)
        changed["code"] = {"coding": [{"system": code.system, "code": code.code,
                                       "display": code.display}], "text": code.display}
        if priority:
            changed["priority"] = priority
        ServiceRequest.model_validate(changed)  # a defect here must not reach an EHR
        return self.rated_resource(changed, band, region(procedure))


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


def _better(procedure: str, assessment: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Studies of the same region rated better than this one, best first."""
    ratings = {p["code"]: p["rating"] for p in assessment["imaging"]["procedures"]}
    mine = _RANKS.index(ratings[procedure]) if procedure in ratings else len(_RANKS)
    return [p for p in assessment["imaging"]["procedures"]
            if region(p["code"]) == region(procedure) and preferred_code(p["code"], LOINC)
            and _RANKS.index(p["rating"]) < mine]


def _suggestions(order: ImagingOrder, procedure: str | None, band: str | None,
                 rater: Rater) -> list[dict[str, Any]]:
    assessment = rater.assessment
    imaging = assessment["imaging"]
    suggestions = []
    if imaging["timing"] == "immediate":
        best = next((p for p in imaging["procedures"]
                     if p["rating"] == "usually_appropriate" and preferred_code(p["code"], LOINC)
                     and region(p["code"]) == order.code.region), None)
        if best is not None and (best["code"] != procedure or order.order.priority != "stat"):
            suggestions.append({
                "label": f"Order {best['label']} today (stat)",
                "uuid": str(uuid.uuid4()), "isRecommended": True,
                "actions": [{"type": "update",
                             "description": f"Change the order to {best['label']}, priority "
                                            f"stat ({_BAND[best['rating']]})",
                             "resource": rater.alternative(order, best["code"], best["rating"],
                                                           priority="stat")}]})
        return suggestions
    if band != "usually_not_appropriate" or procedure is None:
        return suggestions
    for alternative in _better(procedure, assessment)[:2]:
        suggestions.append({
            "label": f"Change to {alternative['label']} ({_BAND[alternative['rating']]})",
            "uuid": str(uuid.uuid4()), "isRecommended": not suggestions and imaging["indicated"],
            "actions": [{"type": "update",
                         "description": f"Change the draft order to {alternative['label']}",
                         "resource": rater.alternative(order, alternative["code"],
                                                       alternative["rating"])}]})
    cancel = {"type": "delete", "description": f"Remove the draft order for {order.code.display}",
              "resourceId": order.reference}
    if assessment["urgency"] in _NOT_IMAGED_HERE:  # a specialist pathway, not this study
        instead = _NOT_IMAGED_HERE[assessment["urgency"]]
        suggestions.insert(0, {"label": f"Cancel the order: {instead}",
                               "uuid": str(uuid.uuid4()), "isRecommended": not suggestions,
                               "actions": [cancel]})
    elif not imaging["indicated"] or not any(
            p["rating"] != "usually_not_appropriate" for p in imaging["procedures"]
            if region(p["code"]) == order.code.region):  # no imaging, or none of this region
        suggestions.insert(0, {
            "label": "Cancel the order and start conservative care",
            "uuid": str(uuid.uuid4()), "isRecommended": True,
            "actions": [cancel, {"type": "create",
                                 "description": "Propose a conservative care plan",
                                 "resource": _conservative_care(order.order, assessment)}]})
    return suggestions


def _assumptions(assessment: Mapping[str, Any], changes: Mapping[str, str]) -> str:
    """What a best-effort rating assumed: the red-flag questions the chart leaves open."""
    open_flags = [m for m in assessment["missing_information"] if m["screen"] == "red_flags"]
    if not open_flags:
        return ""
    lines = [f"**Best effort:** the record does not answer {len(open_flags)} red-flag "
             "questions, and the rating takes none of them as present. Ask about:"]
    for m in open_flags:
        effect = changes.get(m["field"])
        lines.append(f"- {field_label(m['field'])}: {m['why']}"
                     + (f" **If present, this order would be rated {effect}.**"
                        if effect else ""))
    return "\n".join(lines)


def what_would_change(order: ImagingOrder, presentation: Mapping[str, Any],
                      assessment: Mapping[str, Any], positive: Mapping[str, Any],
                      reassess: Reassess) -> dict[str, str]:
    """For each open red-flag question: the rating this order would get with a yes."""
    procedures = [p for p in order.code.procedures if p]
    if len(procedures) != 1:
        return {}
    now = {p["code"]: p["rating"] for p in assessment["imaging"]["procedures"]}
    changes = {}
    for m in assessment["missing_information"]:
        if m["screen"] != "red_flags" or m["field"] not in positive:
            continue
        section, name = m["field"].split(".")
        answered = copy.deepcopy(dict(presentation))
        answered.setdefault(section, {})[name] = positive[m["field"]]
        then = {p["code"]: p["rating"] for p in reassess(answered)["imaging"]["procedures"]}
        if then.get(procedures[0]) and then[procedures[0]] != now.get(procedures[0]):
            changes[m["field"]] = _BAND[then[procedures[0]]].lower()
    return changes


def order_card(order: ImagingOrder, assessment: Mapping[str, Any],
               bibliography: Mapping[str, Mapping[str, Any]], qcdsm: str,
               changes: Mapping[str, str] | None = None, sites: list[str] | None = None,
               ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The card for one order, and its rating as an update action (None when not rated).
    `sites` are the painful sites the chart holds (all assessed sites when not given)."""
    builder = CardBuilder(assessment, bibliography)
    rater = Rater(assessment, qcdsm)
    site = order.code.region
    reasons = _for_region(builder.reasons(["imaging", "suspected_conditions",
                                           "classification"]), site)
    label = order.code.display
    sites = sites if sites is not None else [c["site"] for c in assessment["classification"]]
    why_not = unrated_reason(order.code, assessment, sites)
    procedure = order.code.procedures[0]
    if why_not or procedure is None:
        # Not rated, or no criteria apply: for an emergency, still the study to order today.
        extra = _emergency_extra(order, rater)
        indicator = "critical" if extra else "info"
        if why_not:
            detail = f"**Not rated:** {why_not[1]}\n\n" + builder.why(reasons)
            return builder.card(f"{label}: {why_not[0]}", indicator, detail, "imaging",
                                reasons, site, **extra), None
        detail = ("**No criteria apply:** the ACR Appropriateness Criteria the service applies "
                  f"do not rate {label.lower()} for low back or hip pain; order by the study "
                  "the criteria name (without contrast, or without and with) where one fits.")
        card = builder.card(f"{label}: no criteria apply", indicator, detail + "\n\n"
                            + builder.why(reasons), "imaging", reasons, site, **extra)
        return card, _rating_action(rater, order, None, site)
    assumed = _assumptions(assessment, changes or {})
    ratings = {p["code"]: p for p in assessment["imaging"]["procedures"]}
    band = ratings[procedure]["rating"]
    context = ", ".join(c["label"] for c in assessment["suspected_conditions"]
                        if c["urgency"] in ("emergency", "urgent")) or "; ".join(
        f"{c['label']} ({assessment['duration_category']})"
        for c in assessment["classification"] if c["site"] == site)
    imaging = assessment["imaging"]
    lines = [f"**Rating:** {_BAND[band]} ({ratings[procedure]['label']}), ACR Appropriateness "
             "Criteria, applied to this patient.", f"**For:** {context}"]
    if imaging["indicated"]:
        lines.append(f"**Timing:** {_TIMING[imaging['timing']]}")
    elif imaging.get("reassess_after_weeks"):
        lines.append(f"**Reassess** after {imaging['reassess_after_weeks']} weeks of "
                     "conservative care; imaging then if there is no improvement.")
    if assumed:
        lines.append(assumed)
    extra: dict[str, Any] = {}
    indicator = "info"
    suggestions = _suggestions(order, procedure, band, rater)
    if band == "usually_not_appropriate":
        indicator = "warning"
        extra["overrideReasons"] = [r.coding() for r in OVERRIDE_REASONS]
    if imaging["timing"] == "immediate":
        indicator = "critical"
    if suggestions:
        extra.update(selectionBehavior="at-most-one", suggestions=suggestions)
    prefix = "best effort: " if assumed else ""
    card = builder.card(f"{label}: {prefix}{_BAND[band].lower()} for {context}", indicator,
                        "\n\n".join(lines) + "\n\n" + builder.why(reasons), "imaging", reasons,
                        site, **extra)
    return card, _rating_action(rater, order, band, site)


def _emergency_extra(order: ImagingOrder, rater: Rater) -> dict[str, Any]:
    """For an emergency that needs imaging today: the suggestion to order the best study."""
    if rater.assessment["imaging"]["timing"] != "immediate":
        return {}
    suggestions = _suggestions(order, None, None, rater)
    return {"selectionBehavior": "at-most-one", "suggestions": suggestions} if suggestions else {}


def _rating_action(rater: Rater, order: ImagingOrder, band: str | None,
                   site: str) -> dict[str, Any]:
    shown = _BAND[band] if band else NO_CRITERIA[1]
    return {"type": "update",
            "description": f"Record the appropriateness rating ({shown}) on the order",
            "resource": rater.rated_resource(order.resource, band, site)}


def data_needed_order_card(order: ImagingOrder, missing: list[str],
                           bibliography: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """An order that cannot be rated because there is no assessment at all."""
    card = data_needed_card(missing, [], bibliography, [order.code.region])
    card["summary"] = f"{order.code.display}: not rated, the assessment lacks data"
    return card
