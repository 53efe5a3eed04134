"""Assemble an assessment response from the rule firings the engine recorded.

No clinical judgement is made here: every entry comes from a conclusion a rule drew, and is
merged by fixed, documented policies (the most pressing urgency wins; the best rating of a
procedure wins; a contraindicated treatment is never suggested but listed under `avoid`).
Every entry carries `reasons` naming the rules behind it, with their citations.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from .engine import EngineError, Firing
from .loader import RuleCatalog
from .presentation import lookup

Drawn = tuple[Firing, Mapping[str, Any]]


class _Reasons:
    """Collect reasons (rule, conclusion path) in order, without repeats."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, firing: Firing, conclusion: str) -> None:
        key = (firing.rule.id, conclusion)
        if key not in self._seen:
            self._seen.add(key)
            rule = firing.rule
            self.entries.append({"rule": rule.id, "conclusion": conclusion,
                                 "text": rule.statement, "citations": list(rule.citations)})


class _Builder:
    def __init__(self, catalog: RuleCatalog, presentation: Mapping[str, Any],
                 firings: list[Firing]) -> None:
        self.vocabulary = catalog.vocabulary
        self.catalog = catalog
        self.presentation = presentation
        self.firings = firings
        self.reasons = _Reasons()
        # Every conclusion drawn, by kind, in firing order: each section reads its own.
        self._drawn: dict[str, list[Drawn]] = defaultdict(list)
        for firing in firings:
            for conclusion in firing.conclusions:
                self._drawn[conclusion.kind].append((firing, conclusion.params))

    def drawn(self, kind: str) -> list[Drawn]:
        return self._drawn.get(kind, [])

    def most_pressing(self, section: str, codes: Iterable[str]) -> str:
        return min(codes, key=lambda code: self.vocabulary.rank(section, code))

    def urgency(self) -> str:
        drawn = self.drawn("urgency")
        if not drawn:
            raise EngineError("no rule concluded an urgency")
        level = self.most_pressing("urgency", (p["level"] for _, p in drawn))
        for firing, params in drawn:
            if params["level"] == level:
                self.reasons.add(firing, "urgency")
        return level

    def duration_category(self) -> str:
        drawn = self.drawn("duration_category")
        if len(drawn) != 1:
            raise EngineError(f"{len(drawn)} duration categories concluded, expected one")
        firing, params = drawn[0]
        self.reasons.add(firing, "duration_category")
        return params["value"]

    def classification(self) -> list[dict[str, Any]]:
        patterns: dict[str, list[str]] = defaultdict(list)
        for _, params in self.drawn("pattern"):
            patterns[params["site"]].append(params["category"])
        by_site: dict[str, list[Drawn]] = defaultdict(list)
        for firing, params in self.drawn("classify"):
            by_site[params["site"]].append((firing, params))
        entries = []
        for site in self.vocabulary.classification:
            if site not in by_site:
                continue
            labels = self.vocabulary.classification[site]
            category = min((p["category"] for _, p in by_site[site]), key=list(labels).index)
            for firing, params in by_site[site]:
                if params["category"] == category:
                    self.reasons.add(firing, f"classification.{site}")
            entry = {"site": site, "category": category, "label": labels[category]}
            if patterns.get(site):
                entry["pattern"] = min(patterns[site], key=list(labels).index)
            entries.append(entry)
        return entries

    def suspected_conditions(self) -> list[dict[str, Any]]:
        by_code: dict[str, list[Drawn]] = defaultdict(list)
        for firing, params in self.drawn("suspect"):
            by_code[params["condition"]].append((firing, params))
        entries = []
        for code, drawn in by_code.items():
            for firing, _ in drawn:
                self.reasons.add(firing, f"suspected_conditions.{code}")
            entries.append({
                "code": code,
                "label": self.vocabulary.conditions[code]["label"],
                "urgency": self.most_pressing("urgency", (p["urgency"] for _, p in drawn)),
                "rules": list(dict.fromkeys(f.rule.id for f, _ in drawn)),
            })
        order = list(self.vocabulary.conditions)
        entries.sort(key=lambda e: (self.vocabulary.rank("urgency", e["urgency"]),
                                    order.index(e["code"])))
        return entries

    def red_flags(self, conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        urgency_of = {entry["code"]: entry["urgency"] for entry in conditions}
        flags: dict[str, dict[str, Any]] = {}
        # How soon each flagged finding needs review on its own, where a rule says so: a red
        # flag that raises no condition still asks for a clinician.
        review: dict[str, list[str]] = defaultdict(list)
        for firing, params in self.drawn("red_flag"):
            raised = [c.params["condition"] for c in firing.conclusions if c.kind == "suspect"]
            raised += [has["suspect"]["condition"] for has in firing.matched.get("has", [])
                       if "suspect" in has]
            field = params["finding"]
            flag = flags.setdefault(field, {
                "code": field.split(".")[-1], "field": field,
                "value": lookup(self.presentation, field), "conditions": [], "rules": []})
            flag["conditions"] = list(dict.fromkeys(flag["conditions"] + raised))
            flag["rules"] = list(dict.fromkeys([*flag["rules"], firing.rule.id]))
            if "urgency" in params:
                review[field].append(params["urgency"])
            self.reasons.add(firing, f"red_flags.{flag['code']}")
        for field, flag in flags.items():
            flag["urgency"] = self.most_pressing(
                "urgency", [*(urgency_of[c] for c in flag["conditions"]), *review[field]])
        return sorted(flags.values(), key=lambda f: self.vocabulary.rank("urgency", f["urgency"]))

    def imaging(self) -> dict[str, Any]:
        drawn = self.drawn("imaging")
        if not drawn:
            raise EngineError("no rule concluded on imaging")
        indicated = [p for _, p in drawn if p["indicated"]]
        ratings: dict[str, str] = {}
        for firing, params in drawn:
            self.reasons.add(firing, "imaging")
            for code, rating in params["procedures"].items():
                best = ratings.get(code, rating)
                ratings[code] = self.most_pressing("imaging_rating", (best, rating))
        order = list(ratings)
        procedures = sorted(ratings.items(), key=lambda item: (
            self.vocabulary.rank("imaging_rating", item[1]), order.index(item[0])))
        reassess = [p["reassess_after_weeks"] for _, p in drawn if p.get("reassess_after_weeks")]
        return {
            "indicated": bool(indicated),
            "timing": self.most_pressing("imaging_timing", (p["timing"] for p in indicated))
            if indicated else None,
            "reassess_after_weeks": None if indicated or not reassess else min(reassess),
            "procedures": [{"code": code, "label": self.vocabulary.imaging_procedures[code],
                            "rating": rating} for code, rating in procedures],
        }

    def contraindications(self) -> dict[str, list[Drawn]]:
        by_treatment: dict[str, list[Drawn]] = defaultdict(list)
        for firing, params in self.drawn("contraindicate"):
            by_treatment[params["treatment"]].append((firing, params))
        return by_treatment

    def treatments(self, contraindicated: Mapping[str, list[Drawn]]) -> list[dict[str, Any]]:
        cautions: dict[str, list[dict[str, str]]] = defaultdict(list)
        for firing, params in self.drawn("caution"):
            caution = {"code": params["code"], "text": params["text"]}
            if caution not in cautions[params["treatment"]]:
                cautions[params["treatment"]].append(caution)
            self.reasons.add(firing, f"treatments.{params['treatment']}.cautions")
        entries: dict[str, dict[str, Any]] = {}
        for firing, params in self.drawn("treat"):
            code = params["code"]
            if code in contraindicated:
                continue  # safety net: never suggest what the input contraindicates
            self.reasons.add(firing, f"treatments.{code}")
            entry = entries.setdefault(code, {
                "code": code, "label": self.vocabulary.treatments[code]["label"],
                "type": self.vocabulary.treatments[code]["type"], "line": params["line"],
                "cautions": cautions.get(code, [])})
            if params["line"] == "first":
                entry["line"] = "first"
        return sorted(entries.values(), key=lambda e: e["line"] != "first")

    def avoid(self, contraindicated: Mapping[str, list[Drawn]]) -> list[dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = {}
        for firing, params in self.drawn("avoid"):
            self.reasons.add(firing, f"avoid.{params['code']}")
            entries.setdefault(params["code"], {"code": params["code"],
                                                "label": self.vocabulary.avoid[params["code"]]})
        for code, drawn in contraindicated.items():
            for firing, _ in drawn:
                self.reasons.add(firing, f"avoid.{code}")
            entries[code] = {
                "code": code, "label": self.vocabulary.avoid[code],
                "reason": "Contraindicated: " + "; ".join(p["reason"] for _, p in drawn) + ".",
                "contraindications": list(dict.fromkeys(p["finding"] for _, p in drawn)),
            }
        return list(entries.values())

    def referrals(self) -> list[dict[str, Any]]:
        by_code: dict[str, list[Drawn]] = defaultdict(list)
        for firing, params in self.drawn("refer"):
            by_code[params["code"]].append((firing, params))
            self.reasons.add(firing, f"referrals.{params['code']}")
        entries = [{"code": code, "label": self.vocabulary.referrals[code],
                    "urgency": self.most_pressing("urgency", (p["urgency"] for _, p in drawn))}
                   for code, drawn in by_code.items()]
        return sorted(entries, key=lambda e: self.vocabulary.rank("urgency", e["urgency"]))

    def risk(self) -> dict[str, Any] | None:
        drawn = self.drawn("risk")
        if not drawn:
            return None
        firing, params = drawn[0]
        self.reasons.add(firing, "risk")
        start_back = self.presentation["start_back"]
        return {"tool": params["tool"], "total": start_back["total"],
                "distress": start_back["distress"], "group": params["group"]}

    def missing_information(self) -> list[dict[str, Any]]:
        # One entry per field and screen: the same unanswered question can hold open both a
        # red-flag screen and a classification, and each needs saying.
        entries: dict[tuple[str, str], dict[str, Any]] = {}
        for firing, params in self.drawn("missing"):
            self.reasons.add(firing, f"missing_information.{params['field']}")
            entries.setdefault((params["field"], params["screen"]), {
                "field": params["field"], "screen": params["screen"], "why": params["why"]})
        return list(entries.values())

    def safety_netting(self) -> list[dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = {}
        for firing, params in self.drawn("safety_net"):
            code = params["code"]
            self.reasons.add(firing, f"safety_netting.{code}")
            entry = entries.setdefault(code, {
                "code": code, "text": " ".join(self.vocabulary.safety_netting[code].split()),
                "rules": [], "citations": []})
            entry["rules"] = list(dict.fromkeys([*entry["rules"], firing.rule.id]))
            entry["citations"] = self.catalog.in_citation_order(
                [*entry["citations"], *firing.rule.citations])
        order = list(self.vocabulary.safety_netting)
        return sorted(entries.values(), key=lambda e: order.index(e["code"]))

    def trace(self) -> list[dict[str, Any]]:
        entries = []
        for firing in self.firings:
            concluded: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for conclusion in firing.conclusions:
                concluded[conclusion.kind].append(dict(conclusion.params))
            entries.append({"seq": firing.seq, "rule": firing.rule.id,
                            "stage": firing.rule.stage, "matched": firing.matched,
                            "concluded": dict(concluded)})
        return entries

    def citations(self) -> list[dict[str, Any]]:
        used = self.catalog.in_citation_order(
            c for reason in self.reasons.entries for c in reason["citations"])
        return [dict(self.catalog.citations[citation_id]) for citation_id in used]


def build_report(catalog: RuleCatalog, presentation: Mapping[str, Any],
                 firings: list[Firing]) -> dict[str, Any]:
    """Return the assessment response for one presentation and the firings it produced."""
    builder = _Builder(catalog, presentation, firings)
    conditions = builder.suspected_conditions()
    contraindicated = builder.contraindications()
    report = {
        "assessment_id": str(uuid.uuid4()),
        "ruleset": {"version": catalog.version, "digest": catalog.digest},
        "urgency": builder.urgency(),
        "classification": builder.classification(),
        "duration_category": builder.duration_category(),
        "suspected_conditions": conditions,
        "red_flags": builder.red_flags(conditions),
        "imaging": builder.imaging(),
        "treatments": builder.treatments(contraindicated),
        "referrals": builder.referrals(),
        "avoid": builder.avoid(contraindicated),
        "risk": builder.risk(),
        "missing_information": builder.missing_information(),
        "safety_netting": builder.safety_netting(),
    }
    if report["risk"] is None:
        del report["risk"]
    report["reasons"] = builder.reasons.entries
    report["citations"] = builder.citations()
    report["trace"] = builder.trace()
    return report
