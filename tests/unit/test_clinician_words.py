"""Everything a clinician or patient reads is in their words, and sources show guidelines first.

No rule title or statement, no conclusion text (missing-information reasons, cautions,
contraindication reasons), no label or safety-netting advice, and no bibliography entry may
speak of how the service was made ("seeds", "decided conflict", "the project", "the
contract"). Citations are shown guidelines first, in every rule and every response.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from service.loader import CITATION_KINDS, load_rulesets
from tests.conftest import ROOT

CATALOG = load_rulesets(ROOT / "rulesets")
PROJECT_WORDS = re.compile(
    r"\bseeds?\b|decided conflict|\bproject\b|\bcontract\b|\bvignettes?\b|interpretation:",
    re.IGNORECASE,
)
# Parameters of conclusions that are written for people (codes and field paths are not).
TEXT_PARAMETERS = ("why", "text", "reason")
CITATION_TEXT = ("title", "publisher", "container", "note", "authors")


def _texts() -> Iterator[tuple[str, str]]:
    for rule in CATALOG.rules:
        yield f"{rule.id} title", rule.title
        yield f"{rule.id} statement", rule.statement
        for conclusion in rule.then:
            for name in TEXT_PARAMETERS:
                if isinstance(conclusion.params.get(name), str):
                    yield f"{rule.id} {conclusion.kind}.{name}", conclusion.params[name]
    vocabulary = CATALOG.vocabulary
    for section in (
        "urgency",
        "imaging_timing",
        "imaging_rating",
        "duration_category",
        "imaging_procedures",
        "referrals",
        "avoid",
        "safety_netting",
    ):
        for code, label in getattr(vocabulary, section).items():
            yield f"{section}.{code}", label
    for site, categories in vocabulary.classification.items():
        for code, label in categories.items():
            yield f"classification.{site}.{code}", label
    for section in ("conditions", "treatments"):
        for code, entry in getattr(vocabulary, section).items():
            yield f"{section}.{code}", entry["label"]
    for citation_id, entry in CATALOG.citations.items():
        for name in CITATION_TEXT:
            if name in entry:
                yield f"citation {citation_id} {name}", str(entry[name])
    model = CATALOG.red_flag_model
    for finding in model["findings"]:
        yield f"red-flag model {finding['field']} asked", finding["asked"]
    for condition in model["conditions"]:
        for name in ("more_urgent", "unknown"):
            yield f"red-flag model {condition['condition']} {name}", condition[name]


def test_no_project_vocabulary_in_what_clinicians_read():
    texts = list(_texts())
    assert len(texts) > 700
    assert [f"{where}: {text}" for where, text in texts if PROJECT_WORDS.search(text)] == []


def test_the_check_finds_project_vocabulary():
    for text in (
        "The seeds' 6 and 12 week cut-offs",
        "(decided conflict)",
        "Project seed collection",
        "the contract does not record it",
    ):
        assert PROJECT_WORDS.search(text), text


def _rank(citation_id: str) -> tuple[int, int]:
    return CATALOG.citation_rank[citation_id]


def test_every_rule_cites_guidelines_first():
    for rule in CATALOG.rules:
        assert list(rule.citations) == sorted(rule.citations, key=_rank), rule.id
        kinds = [CATALOG.citations[c]["kind"] for c in rule.citations]
        assert kinds == sorted(kinds, key=CITATION_KINDS.index), rule.id
    # The guideline-first order is the loader's, whatever order a rule file writes them in.
    assert any(
        rule.when and "seed-004" in rule.citations and rule.citations[-1] == "seed-004"
        for rule in CATALOG.rules
    )


def test_web_passages_are_shown_by_the_title_of_what_they_quote():
    for entry in CATALOG.citations.values():
        if entry["kind"] == "web":
            assert entry["title"] == "Low back pain" and "Wikipedia" in entry["publisher"]


def test_a_response_lists_its_sources_guidelines_first(client):
    body = {
        "patient": {"age": 72},
        "pain": {"sites": ["low_back", "hip"], "duration_days": 20},
        "history": {"osteoporosis": True, "cancer": True},
    }
    citations = client.post("/v1/assessments", json=body).json["citations"]
    kinds = [entry["kind"] for entry in citations]
    assert kinds == sorted(kinds, key=CITATION_KINDS.index)
    assert kinds[0] == "guideline" and "web" in kinds
    positions = [list(CATALOG.citations).index(entry["id"]) for entry in citations]
    assert positions == sorted(positions)
