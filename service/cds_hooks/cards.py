"""Turn an assessment into CDS Hooks cards: red flags, the classification and plan, gaps.

Every card has a uuid, a summary under 140 characters, a Markdown detail with the reasons
(the rule statements and the guidance they cite), a source (the primary guidance, with a
topic) and links to the cited guidance. Cards only restate the assessment: no clinical
judgement is made here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest

from ..web.fields import field_label
from .imaging_codes import preferred_code
from .mapping import answer_in_words
from .terminology import LOINC, OVERRIDE_REASON_SYSTEM, TOPIC_SYSTEM, Code

SERVICE_LABEL = "MSK decision support"
MAX_SUMMARY = 139  # CDS Hooks: "<140-character summary"

TOPICS = {
    "red_flags": Code(TOPIC_SYSTEM, "msk-red-flags", "Red flags in low back and hip pain"),
    "assessment": Code(TOPIC_SYSTEM, "msk-assessment", "Low back and hip pain assessment"),
    "data_needed": Code(TOPIC_SYSTEM, "msk-data-needed", "Data needed for an assessment"),
    "imaging": Code(TOPIC_SYSTEM, "imaging-appropriateness", "Imaging appropriateness"),
}
OVERRIDE_REASONS = (
    Code(OVERRIDE_REASON_SYSTEM, "clinical-judgement",
         "Clinical judgement: findings the record does not hold"),
    Code(OVERRIDE_REASON_SYSTEM, "record-incorrect", "The record is wrong or out of date"),
    Code(OVERRIDE_REASON_SYSTEM, "specialist-request", "Requested by a specialist"),
    Code(OVERRIDE_REASON_SYSTEM, "patient-preference", "Patient's informed preference"),
)
_INDICATOR = {"emergency": "critical", "urgent": "warning"}
_URGENCY_PHRASE = {
    "emergency": "same-day emergency care", "urgent": "specialist assessment within days",
    "routine": "primary care", "self_care": "self-care with advice and safety-netting",
}
# Cited when nothing more specific is: the guidance the assessment of a site starts from.
FALLBACK_GUIDANCE = {"low_back": ("nice-ng59", "acr-lbp-2021"),
                     "hip": ("nice-ng226", "acr-hip-chronic")}


def summary(text: str) -> str:
    """Fit a summary under 140 characters, cutting at a word."""
    if len(text) <= MAX_SUMMARY:
        return text
    return text[:MAX_SUMMARY - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def short_title(citation: Mapping[str, Any]) -> str:
    title = citation["title"].split(":")[0].split(" (")[0].strip()
    return title if len(title) <= 80 else title[:79].rsplit(" ", 1)[0] + "…"


def _is_guidance(citation: Mapping[str, Any]) -> bool:
    """Published guidance and literature; the project's seed passages are not linked."""
    return str(citation.get("url", "")).startswith("https://") and "file" not in citation


def fallback_guidance(bibliography: Mapping[str, Mapping[str, Any]],
                      regions: Iterable[str]) -> list[Mapping[str, Any]]:
    return [bibliography[i] for region in regions for i in FALLBACK_GUIDANCE[region]
            if i in bibliography]


def make_card(text: str, indicator: str, detail: str, topic: str,
              cited: list[Mapping[str, Any]], **extra: Any) -> dict[str, Any]:
    """A card whose source is the first guidance cited, linking to all of it."""
    source: dict[str, Any] = {"label": SERVICE_LABEL, "topic": TOPICS[topic].coding()}
    if cited:
        source.update(label=short_title(cited[0]), url=cited[0]["url"])
    card = {"uuid": str(uuid.uuid4()), "summary": summary(text), "indicator": indicator,
            "detail": detail, "source": source}
    links = [{"label": short_title(c), "url": c["url"], "type": "absolute"}
             for c in dict((c["url"], c) for c in cited).values()]
    if links:
        card["links"] = links
    return {**card, **extra}


class CardBuilder:
    """Cards for one assessment, citing its bibliography."""

    def __init__(self, assessment: Mapping[str, Any],
                 bibliography: Mapping[str, Mapping[str, Any]]) -> None:
        self.assessment = assessment
        self.bibliography = bibliography
        self.citations = {c["id"]: c for c in assessment["citations"]}

    def reasons(self, conclusions: Iterable[str]) -> list[dict[str, Any]]:
        """The reasons behind these conclusions (and their sub-conclusions), in that order."""
        return [r for wanted in conclusions for r in self.assessment["reasons"]
                if r["conclusion"] == wanted or r["conclusion"].startswith(f"{wanted}.")]

    def guidance(self, reasons: list[dict[str, Any]]) -> list[Mapping[str, Any]]:
        ids = dict.fromkeys(c for reason in reasons for c in reason["citations"])
        return [self.citations[i] for i in ids
                if i in self.citations and _is_guidance(self.citations[i])]

    def why(self, reasons: list[dict[str, Any]]) -> str:
        lines, seen = ["**Why**", ""], set()
        for reason in reasons:
            if reason["rule"] in seen:
                continue
            seen.add(reason["rule"])
            cited = [self.citations[c] for c in reason["citations"] if c in self.citations]
            refs = ", ".join(f"[{short_title(c)}]({c['url']})" for c in cited if _is_guidance(c))
            lines.append(f"- {reason['text'].strip()}" + (f" ({refs})" if refs else ""))
        return "\n".join(lines)

    def card(self, text: str, indicator: str, detail: str, topic: str,
             reasons: list[dict[str, Any]], region: str | None = None,
             **extra: Any) -> dict[str, Any]:
        sites = [region] if region else [c["site"] for c in self.assessment["classification"]]
        cited = self.guidance(reasons) or fallback_guidance(self.bibliography, sites)
        ruleset = self.assessment["ruleset"]
        footer = (f"\n\n_Ruleset {ruleset['version']} ({ruleset['digest'][:19]}…), assessment "
                  f"{self.assessment['assessment_id']}._")
        return make_card(text, indicator, detail + footer, topic, cited, **extra)

    def urgent_imaging(self, patient_id: str | None) -> list[dict[str, Any]]:
        """For an emergency that needs imaging today: a suggestion to order it, stat."""
        imaging = self.assessment["imaging"]
        best = next((p for p in imaging["procedures"] if p["rating"] == "usually_appropriate"),
                    None)
        code = preferred_code(best["code"], LOINC) if best else None
        if imaging["timing"] != "immediate" or code is None or patient_id is None:
            return []
        suspected = [c["label"] for c in self.assessment["suspected_conditions"]
                     if c["urgency"] == "emergency"]
        order = {"resourceType": "ServiceRequest", "status": "draft", "intent": "proposal",
                 "priority": "stat",
                 "code": {"coding": [code.coding()], "text": code.display},
                 "subject": {"reference": f"Patient/{patient_id}"},
                 "reasonCode": [{"text": f"Suspected {label.lower()}"} for label in suspected]}
        ServiceRequest.model_validate(order)  # a defect here must not reach an EHR
        return [{"label": f"Order {best['label']} today (stat)", "uuid": str(uuid.uuid4()),
                 "isRecommended": True,
                 "actions": [{"type": "create", "description": f"Order {best['label']}, "
                              "priority stat, for the suspected emergency",
                              "resource": order}]}]

    def red_flag_card(self, level: str, patient_id: str | None = None) -> dict[str, Any] | None:
        conditions = [c for c in self.assessment["suspected_conditions"]
                      if c["urgency"] == level]
        if not conditions:
            return None
        codes = {c["code"] for c in conditions}
        flags = [f for f in self.assessment["red_flags"] if codes & set(f["conditions"])]
        referrals = [r for r in self.assessment["referrals"] if r["urgency"] == level]
        lines = ["**Suspected:** " + "; ".join(c["label"] for c in conditions)]
        if flags:
            lines.append("**Red flags:** " + "; ".join(_finding(f) for f in flags))
        if referrals:
            lines.append("**Refer:** " + "; ".join(f"{r['label']} ({r['urgency']})"
                                                   for r in referrals))
        lines.append(_imaging_line(self.assessment["imaging"]))
        reasons = self.reasons([f"suspected_conditions.{c}" for c in codes]
                               + [f"red_flags.{f['code']}" for f in flags])
        title = "Emergency" if level == "emergency" else "Urgent"
        text = (f"{title}: {', '.join(c['label'] for c in conditions)} suspected; "
                f"{_URGENCY_PHRASE[level]}")
        extra: dict[str, Any] = {}
        suggestions = self.urgent_imaging(patient_id) if level == "emergency" else []
        if suggestions:
            extra.update(selectionBehavior="at-most-one", suggestions=suggestions)
        return self.card(text, _INDICATOR[level], "\n\n".join(lines) + "\n\n"
                         + self.why(reasons), "red_flags", reasons,
                         overrideReasons=[r.coding() for r in OVERRIDE_REASONS], **extra)

    def assessment_card(self, notes: list[str], read: list[str] | None = None
                        ) -> dict[str, Any]:
        a = self.assessment
        classes = "; ".join(c["label"] for c in a["classification"]) or "Not classified"
        duration = a["duration_category"]
        open_flags = [m for m in a["missing_information"] if m["screen"] == "red_flags"]
        text = f"{classes} ({duration}): {_URGENCY_PHRASE[a['urgency']]}"
        if open_flags:
            text = f"{len(open_flags)} red-flag questions open. " + text
        sections = [f"**Classification:** {classes}", f"**Duration:** {duration}",
                    f"**Urgency:** {a['urgency'].replace('_', ' ')}"]
        review = [f for f in a["red_flags"] if not f["conditions"]]
        if review:
            sections.append("**Red flags needing clinical review** (no specific condition "
                            "raised on their own): " + "; ".join(_finding(f) for f in review))
        sections += _plan(a)
        sections.append(_imaging_line(a["imaging"]))
        if "risk" in a:
            sections.append(f"**STarT Back:** {a['risk']['group']} risk "
                            f"(total {a['risk']['total']}, distress {a['risk']['distress']})")
        if a["safety_netting"]:
            sections.append("**Safety-netting, tell the patient:**\n" + "\n".join(
                f"- {entry['text']}" for entry in a["safety_netting"]))
        if a["missing_information"]:
            sections.append("**Not recorded in the chart** (unknown, never taken as no):\n"
                            + "\n".join(_open_question(m) for m in a["missing_information"]))
        if read:
            sections.append("**Read from the record:**\n" + "\n".join(f"- {r}" for r in read))
        if notes:
            sections.append("**Not read from the record:**\n" + "\n".join(f"- {n}"
                                                                         for n in notes))
        reasons = self.reasons(["classification", "duration_category", "urgency", "imaging",
                                "treatments", "avoid", "risk", "safety_netting"])
        return self.card(text, "info", "\n\n".join(sections) + "\n\n" + self.why(reasons),
                         "assessment", reasons)


def _open_question(missing: Mapping[str, Any]) -> str:
    screen = " (red-flag screen)" if missing["screen"] == "red_flags" else ""
    return f"- {field_label(missing['field'])}{screen}: {missing['why']}"


def _finding(flag: Mapping[str, Any]) -> str:
    """A red-flag finding in words: its label and the answer recorded."""
    return f"{field_label(flag['field'])}: {answer_in_words(flag['value'])}"


def _imaging_line(imaging: Mapping[str, Any]) -> str:
    ratings = "; ".join(f"{p['label']}: {p['rating'].replace('_', ' ')}"
                        for p in imaging["procedures"])
    if imaging["indicated"]:
        return f"**Imaging:** indicated ({imaging['timing']}). {ratings}"
    later = imaging.get("reassess_after_weeks")
    when = f" Reassess after {later} weeks." if later else ""
    return f"**Imaging:** not indicated now.{when} {ratings}".rstrip()


def _plan(a: Mapping[str, Any]) -> list[str]:
    sections = []
    for line, title in (("first", "First-line plan"), ("second", "Second-line options")):
        entries = [t for t in a["treatments"] if t["line"] == line]
        if entries:
            sections.append(f"**{title}:**\n" + "\n".join(
                f"- {t['label']}" + "".join(f" _Caution: {c['text']}_" for c in t["cautions"])
                for t in entries))
    if a["avoid"]:
        sections.append("**Avoid:**\n" + "\n".join(
            f"- {e['label']}" + (f" ({e['reason']})" if e.get("reason") else "")
            for e in a["avoid"]))
    return sections


def patient_view_cards(assessment: Mapping[str, Any], notes: list[str],
                       bibliography: Mapping[str, Mapping[str, Any]],
                       read: list[str] | None = None,
                       patient_id: str | None = None) -> list[dict[str, Any]]:
    """Critical and warning cards for emergency and urgent suspicions, then the info card
    (which says what was read from the record, and what was not)."""
    builder = CardBuilder(assessment, bibliography)
    cards = [builder.red_flag_card(level, patient_id) for level in ("emergency", "urgent")]
    return [c for c in cards if c] + [builder.assessment_card(notes, read)]


def other_version_card(count: int, bibliography: Mapping[str, Mapping[str, Any]]
                       ) -> dict[str, Any]:
    """The chart or the orders came in an older FHIR version: say so, rather than stay
    silent (an empty answer would read as "nothing to flag")."""
    return make_card(
        "No MSK assessment: the record was sent as FHIR DSTU2; this service reads FHIR R4",
        "info", f"{count} resources of the record or the orders are in an older FHIR form "
        "(DSTU2 or STU3: a Condition with `patient` and plain-text statuses, a "
        "MedicationOrder, a ProcedureRequest). This service reads FHIR R4 (4.0.1) only, so "
        "it has not assessed the patient: nothing here means \"no red flags\". Point the CDS "
        "client at an R4 FHIR server.", "data_needed",
        fallback_guidance(bibliography, ("low_back", "hip")))


def too_large_card(limit: int, bibliography: Mapping[str, Mapping[str, Any]]
                   ) -> dict[str, Any]:
    """The hook request was over the body limit: unread, so not assessed; say so."""
    return make_card(
        "No MSK assessment: the record sent with this call was too large to read",
        "info", f"The hook request was larger than {limit // 1024} KiB, so the service did not "
        "read it and has not assessed the patient: nothing here means \"no red flags\". "
        "Bound the prefetch as the service's discovery document asks (`_count`, active "
        "records only), or leave the keys out so the service reads them from the FHIR "
        "server.", "data_needed", fallback_guidance(bibliography, ("low_back", "hip")))


_HOW_TO_RECORD = {
    "patient.age": "the patient's full birth date (`Patient.birthDate`)",
    "pain.sites": "a current Condition of low back pain (SNOMED CT 279039007) or pain in hip "
                  "(SNOMED CT 49218002)",
    "pain.duration_days": "the onset date on the low back or hip pain Condition "
                          "(`onsetDateTime`, a full date)",
}


def data_needed_card(missing: list[str], notes: list[str],
                     bibliography: Mapping[str, Mapping[str, Any]],
                     regions: Iterable[str]) -> dict[str, Any]:
    """No assessment: say which required data are missing and how to record them."""
    names = {"patient.age": "the patient's age", "pain.sites": "a low back or hip pain "
             "Condition", "pain.duration_days": "the onset of the pain"}
    lacking = [names[m] for m in missing]
    listed = lacking[0] if len(lacking) == 1 else ", ".join(lacking[:-1]) + " and " + lacking[-1]
    text = f"No MSK assessment: the record lacks {listed}"
    detail = ("The assessment needs the patient's age, the site of the pain and how long it "
              "has lasted. Record:\n" + "\n".join(f"- {_HOW_TO_RECORD[m]}" for m in missing))
    if notes:
        detail += "\n\n**Not read from the record:**\n" + "\n".join(f"- {n}" for n in notes)
    return make_card(text, "info", detail, "data_needed",
                     fallback_guidance(bibliography, regions))
