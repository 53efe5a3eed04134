"""Checks shared by the vignette suites: `extra:` expectations and per-response invariants.

`extra_mismatches` covers what the expect keys of tests.cases cannot express; `invariant_problems`
is the clinical and traceability consistency every response must show, whatever the case (one
classification per painful site, no duplicates or contradictions in the plan, red flags with
their conditions and urgency, every conclusion backed by a cited rule that is in the catalog and
in the trace, and the consistency rules of ../shared/contract.md: the urgency at least that of
every suspicion, referral and imaging timing; no self-care with a red flag, imaging or a
referral; a plan for the pain unless it is an emergency; safety-netting in every answer).
"""

from __future__ import annotations

from typing import Any

from tests.consistency import URGENCY_ORDER, response_problems
from tests.consistency import codes as _codes
from tests.consistency import rank as _rank

RATING_ORDER = ("usually_appropriate", "may_be_appropriate", "usually_not_appropriate")
# Brief, red-flag table: a suspected hip fracture or septic joint is always an emergency.
HIP_EMERGENCIES = ("hip_fracture", "septic_arthritis")


def _answered(presentation: dict[str, Any], path: str) -> bool:
    """True when the presentation gives a (non-null) value for the dotted field path."""
    node: Any = presentation
    for part in path.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            return False
        node = node[part]
    return True


def extra_mismatches(extra: dict[str, Any], response: dict[str, Any]) -> list[str]:
    """Return a description of every `extra` expectation the response does not meet."""
    problems: list[str] = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    flags = {flag["code"]: flag for flag in response["red_flags"]}
    suspected = {s["code"]: s for s in response["suspected_conditions"]}
    missing = {m["field"] for m in response["missing_information"]}
    procedures = [(p["code"], p["rating"]) for p in response["imaging"]["procedures"]]
    ratings = dict(procedures)
    for key, wanted in extra.items():
        if key == "red_flags_include":
            for code in wanted:
                check(code in flags, f"red flag {code} not in {sorted(flags)}")
        elif key == "red_flags_none":
            check(not flags, f"red flags {sorted(flags)}, expected none")
        elif key == "red_flag_conditions":
            for code, conditions in wanted.items():
                listed = flags.get(code, {}).get("conditions", [])
                for condition in conditions:
                    check(condition in listed,
                          f"red flag {code} conditions {listed} lack {condition}")
        elif key == "suspected_urgency":
            for code, urgency in wanted.items():
                got = suspected.get(code, {}).get("urgency")
                check(got == urgency, f"suspected {code} urgency {got}, expected {urgency}")
        elif key == "pattern":
            got = {c["site"]: c.get("pattern") for c in response["classification"]}
            for site, pattern in wanted.items():
                check(got.get(site) == pattern,
                      f"{site} pattern {got.get(site)}, expected {pattern}")
        elif key == "risk":
            risk = response.get("risk") or {}
            for field, value in wanted.items():
                check(risk.get(field) == value, f"risk.{field} {risk.get(field)}, expected {value}")
        elif key == "risk_absent":
            check(response.get("risk") is None, f"risk {response.get('risk')}, expected none")
        elif key == "missing_all":
            for field in wanted:
                check(field in missing, f"missing_information lacks {field}")
        elif key == "missing_exclude":
            for field in wanted:
                check(field not in missing, f"missing_information lists {field}")
        elif key == "avoid_reason":
            avoid = {a["code"]: a for a in response["avoid"]}
            for code in wanted:
                check(bool(avoid.get(code, {}).get("reason")), f"avoid {code} has no reason")
        elif key == "treatment_cautions":
            treatments = {t["code"]: t for t in response["treatments"]}
            for code, cautions in wanted.items():
                got = {c["code"] for c in treatments.get(code, {}).get("cautions", [])}
                for caution in cautions:
                    check(caution in got, f"treatment {code} cautions {sorted(got)} lack {caution}")
        elif key == "treatments_only":
            extra_codes = _codes(response["treatments"]) - set(wanted)
            check(not extra_codes, f"treatments {sorted(extra_codes)} beyond {wanted}")
        elif key == "referral_urgency":
            referrals = {r["code"]: r.get("urgency") for r in response["referrals"]}
            for code, urgency in wanted.items():
                check(referrals.get(code) == urgency,
                      f"referral {code} urgency {referrals.get(code)}, expected {urgency}")
        elif key == "procedure_ratings":
            for code, allowed in wanted.items():
                check(ratings.get(code) in allowed,
                      f"procedure {code} rated {ratings.get(code)}, expected one of {allowed}")
        elif key == "procedures_never":
            for code, banned in wanted.items():
                check(ratings.get(code) not in banned,
                      f"procedure {code} rated {ratings.get(code)}")
        elif key == "procedure_order":
            listed = [code for code, _ in procedures]
            absent = [code for code in wanted if code not in listed]
            check(not absent, f"procedures {absent} not listed in {listed}")
            if not absent:
                positions = [listed.index(code) for code in wanted]
                check(positions == sorted(positions), f"procedures {listed} not in order {wanted}")
        elif key in ("safety_netting_include", "safety_netting_exclude"):
            given = {entry["code"] for entry in response["safety_netting"]}
            for code in wanted:
                present = code in given
                check(present == key.endswith("include"),
                      f"{key} {code}: got {sorted(given)}")
        elif key == "red_flag_urgency":
            for code, urgency in wanted.items():
                got = flags.get(code, {}).get("urgency")
                check(got == urgency, f"red flag {code} urgency {got}, expected {urgency}")
        elif key == "treatments_nonempty":
            check(bool(response["treatments"]) == wanted,
                  f"treatments {_codes(response['treatments'])}, expected non-empty {wanted}")
        elif key == "suspected_or_missing":
            for code, fields in wanted.items():
                check(code in suspected or bool(missing & set(fields)),
                      f"{code} not suspected and none of {fields} listed missing "
                      f"(missing: {sorted(missing)})")
        else:
            problems.append(f"unknown extra expectation {key!r}")
    return problems


def invariant_problems(presentation: dict[str, Any], response: dict[str, Any],
                       catalog: set[str]) -> list[str]:
    """Clinical and traceability consistency every response must show, whatever the case."""
    problems: list[str] = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    # One classification entry per painful site (hip may instead ask for its classification).
    sites = presentation["pain"]["sites"]
    classified = [c["site"] for c in response["classification"]]
    missing = response["missing_information"]
    for site in sites:
        asks = site == "hip" and any(m.get("screen") == "classification" for m in missing)
        check(classified.count(site) == 1 or (asks and classified.count(site) == 0),
              f"site {site} has {classified.count(site)} classification entries")
    check(set(classified) <= set(sites), f"classified {classified}, painful sites {sites}")

    # A plan without duplicates or contradictions.
    for section in ("treatments", "avoid", "referrals", "suspected_conditions"):
        codes = [entry["code"] for entry in response[section]]
        check(len(codes) == len(set(codes)), f"{section} repeat a code: {codes}")

    # Urgency: at least that of every suspicion; hip fracture and septic joint are emergencies.
    suspected = {s["code"]: s for s in response["suspected_conditions"]}
    for code, condition in suspected.items():
        check(condition.get("urgency") in URGENCY_ORDER, f"suspected {code} has no valid urgency")
        check(bool(condition.get("rules")), f"suspected {code} names no rule")
        if condition.get("urgency") in URGENCY_ORDER:
            check(_rank(response["urgency"]) <= _rank(condition["urgency"]),
                  f"urgency {response['urgency']} below suspected {code} {condition['urgency']}")
    for flag in response["red_flags"]:
        code = flag.get("code")
        check(flag.get("urgency") in URGENCY_ORDER[:3],
              f"red flag {code} urgency {flag.get('urgency')}: a red flag needs a clinician")
        conditions = flag.get("conditions") or []
        for condition in conditions:
            check(condition in suspected, f"red flag {code} raised {condition}, not suspected")
        urgencies = [suspected[c]["urgency"] for c in conditions if c in suspected]
        if flag.get("urgency") in URGENCY_ORDER:
            # As pressing as its most pressing condition; a flag raising none (or only routine
            # ones) still asks for review, so it may be more pressing, never less.
            check(all(_rank(flag["urgency"]) <= _rank(u) for u in urgencies),
                  f"red flag {code} urgency {flag['urgency']}, its conditions {urgencies}")
            check(_rank(response["urgency"]) <= _rank(flag["urgency"]),
                  f"urgency {response['urgency']} below red flag {code} {flag['urgency']}")
    for code in HIP_EMERGENCIES:
        if code in suspected:
            check(suspected[code]["urgency"] == "emergency", f"{code} not an emergency")
            check(response["urgency"] == "emergency", f"{code} suspected, urgency not emergency")
            check("emergency_department" in _codes(response["referrals"]),
                  f"{code} suspected without an emergency department referral")
    # The consistency rules of the contract (tests/consistency.py).
    problems += response_problems(presentation, response)

    # Imaging consistency.
    imaging = response["imaging"]
    check((imaging["timing"] is not None) == imaging["indicated"],
          f"imaging indicated {imaging['indicated']} with timing {imaging['timing']}")
    ratings = [RATING_ORDER.index(p["rating"]) for p in imaging["procedures"]]
    check(ratings == sorted(ratings), "imaging procedures not sorted best first")
    if imaging["indicated"]:
        check("routine_imaging" not in _codes(response["avoid"]),
              "imaging indicated yet routine imaging listed under avoid")

    # Missing information names findings that were not given (absent or null).
    answered = [m["field"] for m in missing if _answered(presentation, m["field"])]
    check(not answered, f"missing_information lists answered fields {answered}")

    # Every conclusion backed by a reason whose rule is in the catalog and in the trace, and
    # whose citations resolve in the response's bibliography.
    backed = {reason["conclusion"] for reason in response["reasons"]}
    wanted = {"urgency", "imaging", "duration_category"}
    wanted |= {f"classification.{site}" for site in classified}
    for section in ("treatments", "avoid", "referrals", "red_flags", "safety_netting"):
        wanted |= {f"{section}.{code}" for code in _codes(response[section])}
    wanted |= {f"suspected_conditions.{code}" for code in suspected}
    wanted |= {f"missing_information.{m['field']}" for m in missing}
    unbacked = sorted(wanted - backed)
    check(not unbacked, f"conclusions without a reason: {unbacked}")
    traced = {entry["rule"] for entry in response["trace"]}
    cited = {citation["id"] for citation in response["citations"]}
    for reason in response["reasons"]:
        rule = reason["rule"]
        check(rule in catalog, f"reason rule {rule} not in the rule catalog")
        check(rule in traced, f"reason rule {rule} not in the trace")
        check(bool(reason.get("citations")), f"reason rule {rule} cites nothing")
        unresolved = set(reason.get("citations", [])) - cited
        check(not unresolved, f"reason rule {rule} cites unresolved {sorted(unresolved)}")
    for entry in response["safety_netting"]:
        check(bool(entry.get("text")) and bool(entry.get("rules")),
              f"safety-netting {entry['code']} without text or rules")
        unresolved = set(entry.get("citations", [])) - cited
        check(bool(entry.get("citations")) and not unresolved,
              f"safety-netting {entry['code']} citations unresolved {sorted(unresolved)}")
    for code, condition in suspected.items():
        untraced = set(condition.get("rules", [])) - traced
        check(not untraced, f"suspected {code} rules {sorted(untraced)} not in the trace")
    return problems
