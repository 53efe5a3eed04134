"""Load vignette files (cases with expected conclusions) and check responses against them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge override into base: dicts merge, everything else replaces (cases.yaml rule)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = deep_merge(base[key], value)
        else:
            merged[key] = value
    return merged


def load_cases(*paths: Path) -> list[dict[str, Any]]:
    """Return every case of the given files with its presentation merged over its base."""
    cases = []
    for path in paths:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        bases = data.get("bases", {})
        for case in data["cases"]:
            base = bases[case["base"]] if "base" in case else {}
            cases.append({**case, "presentation": deep_merge(base, case["presentation"])})
    return cases


_LIST_EXPECTATIONS = (
    "treatments_include", "treatments_exclude", "avoid_include", "avoid_exclude",
    "referrals_include", "referrals_exclude",
)


def _codes(entries: list[dict[str, Any]]) -> set[str]:
    return {entry["code"] for entry in entries}


def mismatches(expect: dict[str, Any], response: dict[str, Any]) -> list[str]:
    """Return a description of every expectation the response does not meet."""
    problems = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    for key, wanted in expect.items():
        if key == "urgency":
            check(response["urgency"] in wanted, f"urgency {response['urgency']} not in {wanted}")
        elif key == "classification":
            got = {c["site"]: c["category"] for c in response["classification"]}
            for site, allowed in wanted.items():
                check(got.get(site) in allowed, f"{site} class {got.get(site)} not in {allowed}")
        elif key == "duration_category":
            got = response["duration_category"]
            check(got == wanted, f"duration {got}")
        elif key in ("suspected_include", "suspected_exclude"):
            got = _codes(response["suspected_conditions"])
            for code in wanted:
                present = code in got
                check(present == (key == "suspected_include"), f"{key} {code}: got {sorted(got)}")
        elif key == "imaging_indicated":
            got = response["imaging"]["indicated"]
            check(got is wanted, f"imaging.indicated {got}")
        elif key == "imaging_timing":
            got = response["imaging"]["timing"]
            check(got in wanted, f"imaging.timing {got}")
        elif key == "imaging_top_any":
            top = next((p["code"] for p in response["imaging"]["procedures"]
                        if p["rating"] == "usually_appropriate"), None)
            check(top in wanted, f"top usually_appropriate procedure {top} not in {wanted}")
        elif key in _LIST_EXPECTATIONS:
            got = _codes(response[key.split("_")[0]])
            for code in wanted:
                present = code in got
                check(present == key.endswith("include"), f"{key} {code}: got {sorted(got)}")
        elif key == "risk_group":
            check(response.get("risk", {}).get("group") == wanted, f"risk {response.get('risk')}")
        elif key == "missing_any":
            got = {m["field"] for m in response["missing_information"]}
            check(bool(got & set(wanted)), f"missing {sorted(got)} has none of {wanted}")
        else:
            problems.append(f"unknown expectation {key!r}")
    return problems
