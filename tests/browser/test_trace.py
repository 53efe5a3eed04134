"""The trace viewer in headless Chromium: the fired rules of a real assessment, in order."""

from __future__ import annotations

import json

from service.web.examples import EXAMPLES
from tests.browser.helpers import CONTRAST_JS, api_post, by_id, fill_presentation
from tests.browser.test_intake import EMERGENCY


def steps(page) -> list[dict]:
    return page.eval_on_selector_all(".trace-step", """els => els.map(e => ({
        id: e.id,
        rule: e.querySelector(".rule-link code").textContent,
        href: e.querySelector(".rule-link").getAttribute("href"),
        matched: e.querySelectorAll(".step-body > div:first-child tbody tr").length,
        unknown: e.querySelectorAll(".unknown-value").length,
        concluded: e.querySelectorAll(".concl li").length,
    }))""")


def check_trace(page, assessment: dict) -> None:
    trace = assessment["trace"]
    shown = steps(page)
    assert [step["rule"] for step in shown] == [step["rule"] for step in trace]
    assert [step["id"] for step in shown] == [f"step-{step['seq']}" for step in trace]
    for step, entry in zip(trace, shown, strict=True):
        assert entry["href"] == f"/rules#rule-{step['rule']}"
        facts = {k: v for k, v in step["matched"].items() if k not in ("has", "lacks")}
        patterns = sum(len(step["matched"].get(k, [])) for k in ("has", "lacks"))
        assert entry["matched"] == len(facts) + patterns, step["rule"]
        assert entry["unknown"] == sum(1 for v in facts.values() if v is None), step["rule"]
        assert entry["concluded"] == sum(len(v) for v in step["concluded"].values()), step["rule"]
    assert page.locator("#fired-count").inner_text() == str(len(trace))
    unknown = {path for step in trace for path, value in step["matched"].items()
               if value is None and path not in ("has", "lacks")}
    listed = page.eval_on_selector_all("#unknown-inputs > li > code",
                                       "els => els.map(e => e.textContent)")
    assert sorted(listed) == sorted(unknown)
    assert page.locator("#trace-title").inner_text().endswith(assessment["assessment_id"])


def test_trace_of_a_pasted_assessment(live_server, page, screenshot):
    assessment = api_post(live_server.url, "/v1/assessments", EMERGENCY)
    page.goto(f"{live_server.url}/trace")
    page.fill("#assessment-json", json.dumps(assessment))
    page.click("#show-trace")
    page.wait_for_selector(".trace-step")
    check_trace(page, assessment)
    assert "neuro.urinary_retention" in page.locator("#unknown-inputs").inner_text()
    first = page.locator(".trace-step").first
    assert "Duration category: Acute (under 6 weeks)" in first.inner_text()
    assert "Pain for under 6 weeks is acute" in first.inner_text()  # the rule's title
    assert page.evaluate(CONTRAST_JS) == []
    screenshot("trace")

    # Each fired rule links to its catalog entry.
    page.locator(".trace-step", has_text="lbp.ces.saddle_anaesthesia").locator(".rule-link").click()
    page.wait_for_url("**/rules#rule-lbp.ces.saddle_anaesthesia")
    page.wait_for_function("() => document.activeElement.id === 'rule-lbp.ces.saddle_anaesthesia'")


def test_trace_of_a_built_in_example(live_server, page):
    page.goto(f"{live_server.url}/trace")
    page.select_option("#example", "hip_fracture")
    with page.expect_response("**/v1/assessments") as response:
        page.click("#run-example")
    page.wait_for_selector(".trace-step")
    assessment = response.value.json()
    check_trace(page, assessment)
    assert EXAMPLES["hip_fracture"]["title"] in page.locator(".summary-list").inner_text()
    assert "Emergency" in page.locator(".summary-list").inner_text()
    assert json.loads(page.locator("#assessment-json").input_value()) == assessment


def test_trace_of_the_last_intake_assessment(live_server, page):
    page.goto(f"{live_server.url}/intake")
    fill_presentation(page, EMERGENCY)
    with page.expect_response("**/v1/assessments") as response:
        page.click("#assess")
    assessment = response.value.json()
    page.click("#open-trace")
    page.wait_for_selector(".trace-step")
    check_trace(page, assessment)


def test_not_an_assessment_is_said_beside_the_box(live_server, page):
    page.goto(f"{live_server.url}/trace")
    for text, message in [("{not json", "This is not valid JSON"),
                          ('{"urgency": "routine"}', "This is not an assessment response")]:
        page.fill("#assessment-json", text)
        page.click("#show-trace")
        error = page.locator(by_id("assessment-json--error"))
        assert error.is_visible() and message in error.inner_text()
        box = page.locator("#assessment-json")
        assert box.get_attribute("aria-invalid") == "true"
        assert "assessment-json--error" in box.get_attribute("aria-describedby")
        assert page.locator("#trace-view").is_hidden()
