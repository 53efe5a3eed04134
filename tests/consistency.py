"""The consistency rules of ../shared/contract.md, as checks of one response (or of several).

Each function returns a description of every way a response breaks one rule, so a property
test asserts an empty list and tests/unit/test_consistency_checks.py shows each can fail.
The vignette invariants (tests/vignettes/checks.py) apply the single-response checks too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Most pressing first, as in the contract.
URGENCY_ORDER = ("emergency", "urgent", "routine", "self_care")
# Imaging timing as the urgency it implies (contract, "Consistency").
TIMING_URGENCY = {"immediate": "emergency", "urgent": "urgent", "routine": "routine"}
# No spinal manipulation while any of these is suspected (clinical brief, "How findings combine").
NO_MANIPULATION = (
    "vertebral_fracture",
    "spinal_malignancy",
    "spinal_infection",
    "cauda_equina_syndrome",
)
# While an emergency is suspected the plan is the emergency department; the only treatment
# allowed then is aspiration of a suspected septic joint (before antibiotics).
EMERGENCY_TREATMENTS = {"joint_aspiration"}


def rank(urgency: str) -> int:
    return URGENCY_ORDER.index(urgency)


def codes(entries: Iterable[Mapping[str, Any]]) -> set[str]:
    return {entry["code"] for entry in entries}


def urgency_floor_problems(response: Mapping[str, Any]) -> list[str]:
    """`urgency` is never lower than any suspected condition, referral, red flag or timing."""
    urgency = response["urgency"]
    problems = []
    for section in ("suspected_conditions", "referrals", "red_flags"):
        for entry in response[section]:
            if rank(urgency) > rank(entry["urgency"]):
                problems.append(
                    f"urgency {urgency} below {section} {entry['code']} {entry['urgency']}"
                )
    timing = response["imaging"]["timing"]
    if timing is not None and rank(urgency) > rank(TIMING_URGENCY[timing]):
        problems.append(f"urgency {urgency} below imaging timing {timing}")
    return problems


def self_care_problems(response: Mapping[str, Any]) -> list[str]:
    """`self_care` never comes with imaging, a referral, a red flag or an open red-flag screen."""
    if response["urgency"] != "self_care":
        return []
    problems = []
    if response["imaging"]["indicated"]:
        problems.append("self_care with indicated imaging")
    if response["referrals"]:
        problems.append(f"self_care with referrals {sorted(codes(response['referrals']))}")
    if response["red_flags"]:
        problems.append(f"self_care with red flags {sorted(codes(response['red_flags']))}")
    if response["suspected_conditions"]:
        problems.append("self_care with suspected conditions")
    open_screens = [
        m["field"] for m in response["missing_information"] if m["screen"] == "red_flags"
    ]
    if open_screens:
        problems.append(f"self_care with open red-flag screens {open_screens}")
    return problems


def red_flag_problems(
    presentation: Mapping[str, Any],
    response: Mapping[str, Any],
    findings: Iterable[Mapping[str, Any]],
) -> list[str]:
    """Every positive red-flag finding of the model is reported, needs a clinician, and rules
    out self-care, whatever else the presentation shows."""
    sites = set(presentation["pain"]["sites"])
    reported = {flag["field"]: flag for flag in response["red_flags"]}
    problems = []
    for finding in findings:
        section, name = finding["field"].split(".")
        value = (presentation.get(section) or {}).get(name)
        if value is None or value not in finding["positive"]:
            continue
        if finding["sites"] != "any" and finding["sites"] not in sites:
            continue
        flag = reported.get(finding["field"])
        if flag is None:
            problems.append(f"red-flag finding {finding['field']}={value!r} not reported")
        elif flag["urgency"] == "self_care":
            problems.append(f"red flag {finding['field']} with urgency self_care")
        if response["urgency"] == "self_care":
            problems.append(f"self_care with red-flag finding {finding['field']}={value!r}")
    return problems


def plan_problems(presentation: Mapping[str, Any], response: Mapping[str, Any]) -> list[str]:
    """Only an emergency may leave no treatment; an urgent work-up keeps the avoid list."""
    problems = []
    treatments = codes(response["treatments"])
    avoided = codes(response["avoid"])
    emergency = response["urgency"] == "emergency"
    if not emergency and not treatments:
        problems.append(f"urgency {response['urgency']} and no treatment")
    if emergency and any(c["urgency"] == "emergency" for c in response["suspected_conditions"]):
        beyond = treatments - EMERGENCY_TREATMENTS
        if beyond:
            problems.append(f"emergency suspected, yet treatments {sorted(beyond)}")
    if not emergency and "low_back" in presentation["pain"]["sites"]:
        for code in ("bed_rest", "opioids_first_line"):
            if code not in avoided:
                problems.append(f"back pain, urgency {response['urgency']}, {code} not avoided")
    suspected = codes(response["suspected_conditions"]) & set(NO_MANIPULATION)
    if suspected and "spinal_manipulation" not in avoided:
        problems.append(f"{sorted(suspected)} suspected, spinal manipulation not avoided")
    if treatments & avoided:
        problems.append(f"both suggested and avoided: {sorted(treatments & avoided)}")
    return problems


def safety_netting_problems(
    presentation: Mapping[str, Any], response: Mapping[str, Any]
) -> list[str]:
    """Every answer says what to do if things change; back pain with leg symptoms gets the
    cauda equina warning (GIRFT 2023)."""
    given = codes(response["safety_netting"])
    problems = []
    if not given:
        problems.append("no safety-netting advice")
    pain = presentation["pain"]
    leg = pain.get("leg_symptoms") in ("unilateral", "bilateral") or pain.get("radiation") in (
        "thigh",
        "below_knee",
    )
    if "low_back" in pain["sites"] and leg and "cauda_equina_warning" not in given:
        problems.append("back pain with leg symptoms, yet no cauda equina warning")
    if response["urgency"] == "emergency" and "attend_emergency_now" not in given:
        problems.append("an emergency, yet not told to attend now")
    # When to come back: if not improving; with an urgent work-up, if it is not arranged.
    come_back = {"urgent": "urgent_assessment_not_arranged"}.get(
        response["urgency"], "not_improving_reassess"
    )
    if response["urgency"] != "emergency" and come_back not in given:
        problems.append(f"urgency {response['urgency']}, yet not told when to come back")
    backed = {r["conclusion"] for r in response["reasons"]}
    for entry in response["safety_netting"]:
        if f"safety_netting.{entry['code']}" not in backed:
            problems.append(f"safety-netting {entry['code']} has no reason")
    return problems


def response_problems(presentation: Mapping[str, Any], response: Mapping[str, Any]) -> list[str]:
    """Every single-response consistency rule."""
    return (
        urgency_floor_problems(response)
        + self_care_problems(response)
        + plan_problems(presentation, response)
        + safety_netting_problems(presentation, response)
    )


def unknown_problems(
    field: str, unknown: Mapping[str, Any], answered: Mapping[Any, Mapping[str, Any]]
) -> list[str]:
    """A finding left unknown is never safer than every answer to it.

    `unknown` is the response with `field` unanswered, `answered` the response for each of
    its possible values (everything else the same). A condition every answer raises must be
    raised when it is unknown, at least as urgently as the least urgent answer raises it;
    the urgency must be at least the least pressing urgency of the answers.
    """
    problems = []
    least = max((r["urgency"] for r in answered.values()), key=rank)
    if rank(unknown["urgency"]) > rank(least):
        problems.append(
            f"{field} unknown gives urgency {unknown['urgency']}, every answer at least {least}"
        )
    raised = [
        {c["code"]: c["urgency"] for c in r["suspected_conditions"]} for r in answered.values()
    ]
    got = {c["code"]: c["urgency"] for c in unknown["suspected_conditions"]}
    for code in set.intersection(*(set(r) for r in raised)):
        floor = max((r[code] for r in raised), key=rank)
        if code not in got:
            problems.append(f"every answer to {field} raises {code}; unknown does not")
        elif rank(got[code]) > rank(floor):
            problems.append(
                f"{field} unknown raises {code} as {got[code]}, every answer as at least {floor}"
            )
    return problems


def _raises_alone(model: Mapping[str, Any], condition: str, field: str, value: Any) -> bool:
    entry = next((c for c in model["conditions"] if c["condition"] == condition), None)
    return entry is not None and any(raiser["when"] == {field: value} for raiser in entry["alone"])


def unanswered_partner_problems(
    field: str,
    unknown: Mapping[str, Any],
    answered: Mapping[Any, Mapping[str, Any]],
    model: Mapping[str, Any],
) -> list[str]:
    """A finding whose answer would raise a red-flag condition together with what is already
    known is listed in `missing_information` when it is left unanswered.

    This is the other half of "unknown is never safer than every answer": where only some
    answers raise the condition, it is not raised, but the question that decides it is
    asked. Findings that raise a condition on their own are asked by their screens (the
    model's `asked`); this covers the partners of a combination, and a condition already
    suspected that an answer would make more urgent.
    """
    if field in {m["field"] for m in unknown["missing_information"]}:
        return []
    red_flag_conditions = {c["condition"] for c in model["conditions"]}
    now = {c["code"]: c["urgency"] for c in unknown["suspected_conditions"]}
    problems = []
    for value, response in answered.items():
        for condition in response["suspected_conditions"]:
            code = condition["code"]
            if code not in red_flag_conditions or _raises_alone(model, code, field, value):
                continue
            if code not in now:
                problems.append(
                    f"{field}={value!r} would raise {code}; {field} is not listed as missing"
                )
            elif rank(condition["urgency"]) < rank(now[code]):
                problems.append(
                    f"{field}={value!r} would make {code} {condition['urgency']}; "
                    f"{field} is not listed as missing"
                )
    return problems
