"""The intake form in headless Chromium: emergency and routine cases, a 422, the keyboard."""

from __future__ import annotations

import re

import pytest

from tests.browser.helpers import (
    CONTRAST_JS,
    answer,
    api_post,
    by_id,
    fill_presentation,
    tab_to,
    visible_texts,
)

EMERGENCY = {
    "patient": {"age": 45, "sex": "male"},
    "pain": {"sites": ["low_back"], "duration_days": 10, "radiation": "below_knee",
             "leg_symptoms": "bilateral"},
    "neuro": {"saddle_anaesthesia": True},
}

ROUTINE = {
    "patient": {"age": 38, "sex": "female", "pregnant": False},
    "pain": {"sites": ["low_back"], "duration_days": 21, "onset": "gradual",
             "radiation": "below_knee", "leg_symptoms": "unilateral", "night_pain": False,
             "mechanical": True},
    "neuro": {"straight_leg_raise": "positive"},
}


def red_flag_fields(page) -> list[tuple[str, str]]:
    """(path, kind) of every question in the red-flag fieldset."""
    return page.eval_on_selector_all(
        "#group-red_flags [data-field]", "els => els.map(e => [e.dataset.field, e.dataset.kind])")


def red_flag_screens(page) -> list[tuple[str, str]]:
    """(path, kind) of every red-flag screen the rules list, wherever the form asks it."""
    return page.eval_on_selector_all(
        "[data-red-flag-screen]", "els => els.map(e => [e.dataset.field, e.dataset.kind])")


# Screens asked outside the red-flag fieldset, answered here with values that raise nothing.
BENIGN = {"pain.course": "improving", "pain.hip_region": "lateral", "pain.severity": 4,
          "care.conservative_care_weeks": 0}


def submit_and_capture(page) -> dict:
    with page.expect_request("**/v1/assessments") as request:
        page.click("#assess")
    page.wait_for_selector("#urgency-banner")
    return request.value.post_data_json


def test_emergency_case(live_server, page, screenshot):
    page.goto(f"{live_server.url}/intake")
    screens = red_flag_screens(page)
    count = page.locator("#red-flag-count")
    assert count.inner_text().startswith(f"{len(screens)} of {len(screens)} red-flag")
    fill_presentation(page, EMERGENCY)
    assert count.inner_text().startswith(f"{len(screens) - 1} of {len(screens)}")
    # The red-flag screen is the first group of findings, in plain view, before the history.
    assert page.locator("fieldset.group").nth(2).get_attribute("id") == "group-red_flags"

    sent = submit_and_capture(page)
    assert sent == EMERGENCY  # only the answered fields: "Not asked" stays unknown
    expected = api_post(live_server.url, "/v1/assessments", EMERGENCY)

    banner = page.locator("#urgency-banner")
    assert banner.get_attribute("role") == "alert"
    assert "urgency-emergency" in banner.get_attribute("class")
    assert banner.locator(".urgency-level").text_content() == "Emergency"
    assert "EMERGENCY" in banner.inner_text()  # shown in capitals
    assert "Saddle anaesthesia (yes)" in banner.inner_text()
    box = banner.bounding_box()
    assert box["height"] >= 100 and box["width"] >= 900
    level = page.locator(".urgency-level")
    assert float(level.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 36
    assert banner.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(179, 0, 27)"
    assert page.evaluate("() => document.activeElement.id") == "result"

    result = page.locator("#result")
    assert "Serious or specific pathology suspected behind the back pain" in result.inner_text()
    assert [c["label"] for c in expected["suspected_conditions"]] == ["Cauda equina syndrome"]
    assert "Cauda equina syndrome" in page.locator(".result-part", has_text="Suspected conditions")\
        .inner_text()
    rows = page.locator(".imaging-table tbody tr")
    assert rows.count() == len(expected["imaging"]["procedures"])
    assert visible_texts(page, ".imaging-table tbody td:first-child") == [
        p["label"] for p in expected["imaging"]["procedures"]]
    assert visible_texts(page, ".imaging-table tbody .badge") == [
        "Usually appropriate", "Usually appropriate", "May be appropriate", "May be appropriate"]
    assert "Indicated: Immediate (same day)." in result.inner_text()
    assert "None suggested while an emergency is suspected." in result.inner_text()
    assert "Emergency department" in result.inner_text()
    missing = len(expected["missing_information"])
    assert page.locator("h3", has_text="Missing information").inner_text() == \
        f"Missing information ({missing})"
    assert page.locator(".missing-list > li").count() == missing

    # Each conclusion's reasons, with clickable citations.
    why = page.locator(".result-part", has_text="Suspected conditions").locator("details.why")
    why.locator("summary").click()
    assert why.locator("a.rule-link").first.inner_text() == "lbp.ces.saddle_anaesthesia"
    citation = why.locator("a.cite").first
    target = citation.get_attribute("href")
    citation.click()
    assert page.evaluate("() => location.hash") == target
    assert page.evaluate("() => document.activeElement.id") == target[1:]
    assert page.locator(by_id(target[1:])).is_visible()
    assert page.locator(".sources > li").count() == len(expected["citations"])
    assert page.evaluate(CONTRAST_JS) == []
    screenshot("intake-emergency")


def test_routine_case(live_server, page, screenshot):
    page.goto(f"{live_server.url}/intake")
    fill_presentation(page, ROUTINE)
    screened: dict[str, dict] = {}
    for path, kind in red_flag_fields(page):  # every red-flag question asked: all negative
        section, name = path.split(".")
        if kind == "bool":
            answer(page, path, "no")
            screened.setdefault(section, {})[name] = False
        else:
            page.select_option(by_id(path), "none")
            screened.setdefault(section, {})[name] = "none"
    for path, kind in red_flag_screens(page):  # and the screens asked elsewhere
        section, name = path.split(".")
        if name in ROUTINE.get(section, {}) or name in screened.get(section, {}):
            continue
        if kind == "bool":
            answer(page, path, "no")
            screened.setdefault(section, {})[name] = False
        elif kind == "enum":
            page.select_option(by_id(path), BENIGN[path])
            screened.setdefault(section, {})[name] = BENIGN[path]
        else:
            page.fill(by_id(path), str(BENIGN[path]))
            screened.setdefault(section, {})[name] = BENIGN[path]
    count = page.locator("#red-flag-count")
    assert count.inner_text().startswith("0 of ")
    assert "is-complete" in count.get_attribute("class")
    assert page.locator("#red-flag-reminder").inner_text() == ""

    sent = submit_and_capture(page)
    presentation = {**ROUTINE, **{s: {**ROUTINE.get(s, {}), **v} for s, v in screened.items()}}
    assert sent == presentation
    expected = api_post(live_server.url, "/v1/assessments", presentation)
    assert expected["urgency"] == "routine"

    banner = page.locator("#urgency-banner")
    assert banner.get_attribute("role") == "status"
    assert "urgency-routine" in banner.get_attribute("class")
    assert banner.locator(".urgency-level").text_content() == "Routine"
    result = page.locator("#result")
    text = result.inner_text()
    assert "Radicular low back pain" in text
    assert "Disc herniation with radiculopathy" in text
    assert "No red flag found among the answered questions." in text
    assert "Not indicated now." in text
    treatments = page.locator(".result-part", has_text="Treatments").locator(".items > li")
    assert treatments.count() == len(expected["treatments"]) > 0
    for treatment in expected["treatments"]:
        assert treatment["label"] in text
    avoid = page.locator(".result-part", has_text="Avoid").locator(".items > li")
    assert avoid.count() == len(expected["avoid"]) > 0
    for entry in expected["avoid"]:
        assert entry["label"] in text
    assert "red_flags" not in {m["screen"] for m in expected["missing_information"]}
    safety = page.locator(".result-part", has_text="Safety-netting").locator(".items > li")
    assert safety.count() == len(expected["safety_netting"]) > 0
    for entry in expected["safety_netting"]:
        assert entry["text"] in text
    # Every reason is shown with its conclusion or among the others, none lost.
    shown = page.locator("#result .why-list > li").count()
    assert shown == len(expected["reasons"])
    assert page.evaluate(CONTRAST_JS) == []
    screenshot("intake-routine")


def test_validation_errors_show_beside_their_fields(live_server, page, request, screenshot):
    request.node.allowed_console_errors = ("status of 422",)
    page.goto(f"{live_server.url}/intake")
    page.fill(by_id("patient.age"), "130")
    page.fill(by_id("pain.duration_days"), "5")
    page.fill(by_id("pain.severity"), "7.5")
    with page.expect_response("**/v1/assessments") as response:
        page.click("#assess")
    assert response.value.status == 422
    problem = response.value.json()
    assert set(problem["errors"]) == {"patient.age", "pain.sites", "pain.severity"}

    # In a clinician's words: what to enter, not the schema's phrasing.
    plain = {"patient.age": "Enter a whole number from 0 to 120.",
             "pain.severity": "Enter a whole number from 0 to 10.",
             "pain.sites": "Answer this question: it is required."}
    for path in problem["errors"]:
        message = page.locator(by_id(f"{path}--error"))
        assert message.is_visible()
        assert message.inner_text() == plain[path], problem["errors"][path]
        wrapper = page.locator(f'[data-field="{path}"]')
        assert "has-error" in wrapper.get_attribute("class")
        control = page.locator(by_id(path))
        assert control.get_attribute("aria-invalid") == "true"
        assert f"{path}--error" in control.get_attribute("aria-describedby").split()
    # The message sits beside its field: inside the same row, next to the input.
    age_box = page.locator(by_id("patient.age")).bounding_box()
    message_box = page.locator(by_id("patient.age--error")).bounding_box()
    assert abs(message_box["y"] - age_box["y"]) < 80
    summary = page.locator("#error-summary")
    assert summary.is_visible()
    assert page.evaluate("() => document.activeElement.id") == "error-summary"
    assert page.locator("#result").is_hidden()
    assert page.evaluate(CONTRAST_JS) == []
    screenshot("intake-422")

    summary.get_by_role("link", name=re.compile("^Age")).click()
    assert page.evaluate("() => document.activeElement.id") == "patient.age"

    page.fill(by_id("patient.age"), "50")
    page.fill(by_id("pain.severity"), "7")
    page.click('label[for="pain.sites"]')
    page.click("#assess")
    page.wait_for_selector("#urgency-banner")
    assert page.locator(".has-error").count() == 0
    assert page.locator("#error-summary").is_hidden()
    assert page.locator(by_id("patient.age")).get_attribute("aria-invalid") is None


def test_error_keys_of_list_items_and_sections_find_their_field(live_server, page, request):
    """`pain.sites.0` belongs beside the sites; `patient` (section missing) beside the age."""
    request.node.allowed_console_errors = ("status of 422",)
    problem = {"type": "/problems/validation-error", "title": "Unprocessable Content",
               "status": 422, "detail": "The presentation breaks the schema; see errors.",
               "errors": {"pain.sites.0": ["Must be one of: low_back, hip."],
                          "patient": ["Missing data for required field."],
                          "elsewhere": ["Unknown field."]}}
    page.route("**/v1/assessments", lambda route: route.fulfill(
        status=422, content_type="application/problem+json", json=problem))
    page.goto(f"{live_server.url}/intake")
    page.click("#assess")
    page.locator("#error-summary").wait_for()
    assert page.locator(by_id("pain.sites--error")).inner_text() == \
        "Choose one of the answers given."
    assert page.locator(by_id("patient.age--error")).inner_text() == \
        "Answer this question: it is required."
    assert "elsewhere: Unknown field." in page.locator("#error-summary").inner_text()


def test_keyboard_only_submission(live_server, page, screenshot):
    page.goto(f"{live_server.url}/intake")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"

    tab_to(page, "patient.age")
    page.keyboard.type("60")
    tab_to(page, "pain.sites")
    page.keyboard.press("Space")
    tab_to(page, "pain.duration_days")
    page.keyboard.type("30")
    tab_to(page, "pain.leg_symptoms")
    for _ in range(3):  # Not recorded -> None -> Unilateral -> Bilateral
        page.keyboard.press("ArrowDown")
    # A yes/no finding is one tab stop (its checked choice, Not asked); arrows choose.
    tab_to(page, "neuro.saddle_anaesthesia--unknown")
    outline = page.evaluate("""() => getComputedStyle(
        document.activeElement.nextElementSibling).outlineStyle""")
    assert outline == "solid"  # the focus is visible on the label
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert page.locator(by_id("neuro.saddle_anaesthesia")).is_checked()
    tab_to(page, "assess")
    with page.expect_request("**/v1/assessments") as request:
        page.keyboard.press("Enter")
    page.wait_for_selector("#urgency-banner")
    assert request.value.post_data_json == {
        "patient": {"age": 60},
        "pain": {"sites": ["low_back"], "duration_days": 30, "leg_symptoms": "bilateral"},
        "neuro": {"saddle_anaesthesia": True},
    }
    assert "urgency-emergency" in page.locator("#urgency-banner").get_attribute("class")
    assert page.evaluate("() => document.activeElement.id") == "result"
    # The reasons open from the keyboard too.
    tab_to(page, "urgency-why")
    page.keyboard.press("Enter")
    assert page.locator("#urgency-banner details.why").get_attribute("open") is not None
    screenshot("intake-keyboard")


def test_unreachable_service_says_so(live_server, page, request):
    """A network failure is not shown as an empty result."""
    request.node.allowed_console_errors = ("Failed to load resource", "ERR_FAILED")
    page.goto(f"{live_server.url}/intake")
    fill_presentation(page, EMERGENCY)
    page.route("**/v1/assessments", lambda route: route.abort())
    page.click("#assess")
    error = page.locator("#connection-error")
    error.wait_for()
    assert "Could not reach the assessment service" in error.inner_text()
    assert page.locator("#result").is_hidden()


@pytest.mark.parametrize("path", ["/intake", "/rules", "/trace"])
def test_pages_fit_a_phone_screen(live_server, browser, path):
    width = 390
    context = browser.new_context(viewport={"width": width, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    finally:
        context.close()
