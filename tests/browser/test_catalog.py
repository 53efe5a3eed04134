"""The rule catalog in headless Chromium: every rule of /v1/rules, readable, filterable."""

from __future__ import annotations

import re

from tests.browser.helpers import CONTRAST_JS, api_get, by_id


def shown_ids(page) -> list[str]:
    return page.eval_on_selector_all(
        "#rule-list > li:not([hidden])", "els => els.map(e => e.id.slice('rule-'.length))")


def load(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#rule-list > li")


def test_catalog_lists_every_rule(live_server, page, screenshot):
    rules = api_get(live_server.url, "/v1/rules")["rules"]
    load(page, f"{live_server.url}/rules")
    assert shown_ids(page) == [rule["id"] for rule in rules]  # all, in the engine's order
    assert page.locator("#rule-count").inner_text() == f"Showing all {len(rules)} rules."
    shown = page.eval_on_selector_all("#rule-list > li", """els => els.map(e => ({
        title: e.querySelector("h2").textContent,
        statement: e.querySelector(".rule-statement").textContent,
        when: e.querySelector(".rule-when").innerText,
        then: e.querySelectorAll(".rule-then li").length,
        cites: Array.from(e.querySelectorAll(".rule-cites li"), li => li.textContent),
        links: e.querySelectorAll(".rule-cites a[href^='http']").length,
    }))""")
    citations = {c["id"]: c for c in api_get(live_server.url, "/v1/citations")["citations"]}
    for rule, entry in zip(rules, shown, strict=True):
        assert entry["title"] == rule["title"], rule["id"]
        assert entry["statement"] == rule["statement"], rule["id"]
        assert entry["then"] == len(rule["then"]), rule["id"]
        assert len(entry["cites"]) == len(rule["citations"]), rule["id"]
        for cite_id, text in zip(rule["citations"], entry["cites"], strict=True):
            assert citations[cite_id]["title"] in text and cite_id in text, rule["id"]
        assert entry["links"] == sum(1 for c in rule["citations"] if citations[c].get("url"))
        assert entry["when"].strip(), rule["id"]
        assert "[object Object]" not in entry["when"] + "".join(entry["cites"]), rule["id"]
    assert page.evaluate(CONTRAST_JS) == []
    screenshot("rules", full_page=False)  # the whole catalog is taller than a screenshot


def test_conditions_and_conclusions_read_as_words(live_server, page):
    load(page, f"{live_server.url}/rules")
    rule = page.locator(by_id("rule-lbp.ces.saddle_anaesthesia"))
    when = rule.locator(".rule-when").inner_text()
    assert "Saddle anaesthesia is yes" in when
    fever = page.locator(by_id("rule-lbp.infection.fever")).locator(".rule-when")
    assert "Where it hurts includes Low back" in fever.inner_text()
    then = rule.locator(".rule-then").inner_text()
    assert "Red flag: Saddle anaesthesia" in then
    assert "Suspect Cauda equina syndrome (urgency: Emergency)" in then
    acute = page.locator(by_id("rule-core.duration.acute")).locator(".rule-when").inner_text()
    assert "Duration of this episode is under 42 days" in acute
    default = page.locator(by_id("rule-core.urgency.routine_by_default"))
    assert re.search(r"Not concluded by any earlier stage:\s+an urgency", default.inner_text())
    readable = page.eval_on_selector_all(".rule-when, .rule-then",
                                         "els => els.map(e => e.innerText)")
    assert not [text for text in readable if "undefined" in text or "[object" in text]


def test_catalog_filters_by_ruleset_and_text(live_server, page, screenshot):
    rules = api_get(live_server.url, "/v1/rules")["rules"]
    load(page, f"{live_server.url}/rules")
    rulesets = list(dict.fromkeys(rule["ruleset"] for rule in rules))
    options = page.eval_on_selector_all("#filter-ruleset option", "els => els.map(e => e.value)")
    assert options == ["", *rulesets]

    page.select_option("#filter-ruleset", "hip")
    hip = [rule["id"] for rule in rules if rule["ruleset"] == "hip"]
    assert shown_ids(page) == hip
    assert page.locator("#rule-count").inner_text() == \
        f"Showing {len(hip)} of {len(rules)} rules in ruleset hip."
    assert "ruleset=hip" in page.url

    page.fill("#filter-text", "fracture")
    hip_fracture = shown_ids(page)
    assert hip_fracture and set(hip_fracture) < set(hip)
    for rule_id in hip_fracture:
        assert "fracture" in page.locator(by_id(f"rule-{rule_id}")).inner_text().lower()
    screenshot("rules-filtered")

    page.select_option("#filter-ruleset", "")
    page.fill("#filter-text", "Saddle  anaesthesia")  # words, in any order, any case
    saddle = shown_ids(page)
    assert "lbp.ces.saddle_anaesthesia" in saddle
    assert "rf.finding.saddle_anaesthesia" in saddle
    assert all(rule_id.startswith(("lbp.", "rf.", "core.", "safety.")) for rule_id in saddle)
    page.fill("#filter-text", "no rule says this")
    assert shown_ids(page) == []
    assert page.locator("#rule-count").inner_text().startswith("Showing 0 of")

    # The filters live in the address, so a filtered view can be shared.
    load(page, f"{live_server.url}/rules?ruleset=core&q=acute")
    assert page.locator("#filter-ruleset").input_value() == "core"
    core_acute = shown_ids(page)
    assert "core.duration.acute" in core_acute
    for rule_id in core_acute:
        assert rule_id.startswith("core.")
        assert "acute" in page.locator(by_id(f"rule-{rule_id}")).inner_text().lower()


def test_link_to_one_rule(live_server, page):
    load(page, f"{live_server.url}/rules?ruleset=hip#rule-lbp.ces.saddle_anaesthesia")
    target = page.locator(by_id("rule-lbp.ces.saddle_anaesthesia"))
    assert target.is_visible()  # a filter that hid it is cleared
    assert page.evaluate("() => document.activeElement.id") == "rule-lbp.ces.saddle_anaesthesia"
    assert target.evaluate("e => e.getBoundingClientRect().top") < 200


LAYOUT_SHIFTS_JS = """
window.__shifts = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (!entry.hadRecentInput) window.__shifts.push(entry.value);
  }
}).observe({type: "layout-shift", buffered: true});
"""


def test_nothing_visible_moves_while_the_catalog_loads(live_server, page):
    """Cumulative layout shift: the footer used to jump down when the rules arrived."""
    page.add_init_script(LAYOUT_SHIFTS_JS)
    page.goto(f"{live_server.url}/rules")
    page.wait_for_selector("#rule-list > li")
    page.wait_for_timeout(500)
    assert sum(page.evaluate("window.__shifts")) < 0.01
