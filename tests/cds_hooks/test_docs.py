"""docs/fhir-mapping.md is the mapping the code applies: every field and code is there."""

from __future__ import annotations

from service.cds_hooks.cards import FALLBACK_GUIDANCE
from service.cds_hooks.imaging_codes import IMAGING_CODES
from service.cds_hooks.mapping import mapping_rows, value_set_rows
from tests.conftest import ROOT

DOC = (ROOT / "docs" / "fhir-mapping.md").read_text(encoding="utf-8")


def test_every_finding_and_its_codes_are_documented():
    for path, codes in mapping_rows():
        assert f"| `{path}` |" in DOC and codes in DOC, path


def test_every_imaging_code_is_documented():
    for (_, code), entry in IMAGING_CODES.items():
        assert f"| {code} | {entry.display} |" in DOC, code


def test_the_guidance_cited_by_default_is_in_the_bibliography(app):
    citations = app.extensions["assessor"].catalog.citations
    for ids in FALLBACK_GUIDANCE.values():
        assert all(citations[i]["url"].startswith("https://") for i in ids)


def test_every_value_set_and_what_it_feeds_is_documented():
    for name, target, counts, sources in value_set_rows():
        assert f"| {name} | {target} | {counts} | {sources} |" in DOC, name
