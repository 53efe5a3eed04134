"""The README's worked example and rule example are what the service really says and runs.

Both drifted once (a reason text and a condition changed in the rules, not in the README);
these tests read the README itself.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _block_after(heading: str, language: str) -> str:
    start = README.index(heading)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(README, start)
    assert match, f"no {language} block after {heading!r}"
    return match.group(1)


def _shown_in(shown: Any, real: Any) -> bool:
    """Whether what the README shows is in the real answer. "…" marks text left out: a
    string holding it matches when its pieces appear in order; a list entry starting with
    it stands for more entries."""
    if isinstance(shown, str) and "…" in shown:
        if not isinstance(real, str):
            return False
        position = 0
        for piece in (p.strip() for p in shown.split("…")):
            found = real.find(piece, position)
            if found < 0:
                return False
            position = found + len(piece)
        return True
    if isinstance(shown, dict):
        return isinstance(real, dict) and all(
            key in real and _shown_in(value, real[key]) for key, value in shown.items())
    if isinstance(shown, list):
        entries = [e for e in shown if not (isinstance(e, str) and e.startswith("…"))]
        return isinstance(real, list) and all(
            any(_shown_in(entry, candidate) for candidate in real) for entry in entries) and (
            len(entries) < len(shown) or len(entries) == len(real))
    return shown == real


def test_the_worked_example_is_what_the_service_answers(client):
    command = _block_after("## Try it", "sh")
    body = json.loads(re.search(r"-d '(.*)'", command, re.S).group(1))
    shown = json.loads(_block_after("## Try it", "json"))
    real = client.post("/v1/assessments", json=body).json
    for key, value in shown.items():
        if key == "assessment_id":
            continue  # a fresh id every time
        assert _shown_in(value, real[key]), key
    counts = re.search(r"the full one has (\d+) reasons, (\d+) citations and (\d+) trace",
                       README)
    assert counts, "the sentence giving the full answer's size"
    assert tuple(map(int, counts.groups())) == (
        len(real["reasons"]), len(real["citations"]), len(real["trace"]))


def test_the_rule_example_is_the_rule_as_it_is_in_the_rulesets():
    (shown,) = yaml.safe_load(_block_after("### Rules are data", "yaml"))
    rules = [rule for path in sorted((ROOT / "rulesets").glob("*.yaml"))
             for document in [yaml.safe_load(path.read_text(encoding="utf-8"))]
             if isinstance(document, dict) for rule in document.get("rules", [])]
    (real,) = [rule for rule in rules if rule.get("id") == shown["id"]]
    assert shown == real
