/* The intake form: send only what was answered, show a 422 beside its fields, render the result. */
"use strict";

(() => {
  const {el, api, fieldLabel, vocabLabel, urgencyName, screenName, siteName, formatValue} = MSK;
  const specs = Object.fromEntries(JSON.parse(document.getElementById("field-specs").textContent)
    .map((spec) => [spec.path, spec]));
  const form = document.getElementById("intake-form");
  const submit = document.getElementById("assess");
  const status = document.getElementById("form-status");
  const result = document.getElementById("result");
  const summary = document.getElementById("error-summary");
  const redFlagGroup = document.getElementById("group-red_flags");
  const LAST = "msk.lastAssessment";

  // --- reading the form ------------------------------------------------------------------

  function controls(path) { return Array.from(form.elements).filter((c) => c.name === path); }

  /** {answered, value} of one field, or {error} when the browser could not read a number. */
  function read(path, spec) {
    const inputs = controls(path);
    if (!inputs.length) return {answered: false};
    switch (spec.kind) {
      case "bool": {
        const checked = inputs.find((input) => input.checked);
        if (!checked || checked.value === "") return {answered: false};
        return {answered: true, value: checked.value === "true"};
      }
      case "enum_list": {
        const values = inputs.filter((input) => input.checked).map((input) => input.value);
        return values.length ? {answered: true, value: values} : {answered: false};
      }
      case "enum":
        return inputs[0].value === "" ? {answered: false} : {answered: true, value: inputs[0].value};
      default: {  // int, number: sent as typed; the service checks whole numbers and ranges
        const input = inputs[0];
        if (input.validity.badInput) return {error: "Enter a number."};
        if (input.value.trim() === "") return {answered: false};
        return {answered: true, value: Number(input.value)};
      }
    }
  }

  /** The presentation: answered fields only. Sections with a required field are always sent,
      so a missing required answer is reported at its own field. */
  function presentation() {
    const body = {};
    const errors = {};
    for (const [path, spec] of Object.entries(specs)) {
      const [section, name] = path.split(".");
      if (spec.required && !body[section]) body[section] = {};
      const answer = read(path, spec);
      if (answer.error) errors[path] = [answer.error];
      else if (answer.answered) (body[section] = body[section] || {})[name] = answer.value;
    }
    return {body, errors};
  }

  // --- the red-flag count ----------------------------------------------------------------

  /** The red-flag screens: the fields the rules list as leaving the red-flag screen open
      while unanswered, wherever the form asks them (night pain sits in the pain history). The
      result's "red flags not excluded" counts the same set. */
  function updateRedFlagCount() {
    if (!redFlagGroup) return;
    const paths = Array.from(form.querySelectorAll("[data-red-flag-screen]"), (node) => node.dataset.field);
    const open = paths.filter((path) => !read(path, specs[path]).answered).length;
    const count = document.getElementById("red-flag-count");
    count.querySelector("[data-count]").textContent = String(open);
    count.classList.toggle("is-complete", open === 0);
    const reminder = document.getElementById("red-flag-reminder");
    reminder.textContent = open === 0 ? "" :
      `${open} of ${paths.length} red-flag questions not asked: they stay unknown, and the result lists them.`;
  }

  // --- errors beside their fields --------------------------------------------------------

  function messagesOf(value) {
    if (Array.isArray(value)) return value.flatMap(messagesOf);
    if (value && typeof value === "object") return Object.values(value).flatMap(messagesOf);
    return [String(value)];
  }

  /** The form field a 422 key belongs to: itself; for a list item (`pain.sites.0`) the list;
      for a whole section (`patient`) its first required (or first) field. */
  function fieldFor(key) {
    if (specs[key]) return key;
    const parts = key.split(".");
    for (let n = parts.length - 1; n > 1; n -= 1) {
      if (specs[parts.slice(0, n).join(".")]) return parts.slice(0, n).join(".");
    }
    const inSection = Object.keys(specs).filter((path) => path.startsWith(`${key}.`));
    return inSection.find((path) => specs[path].required) || inSection[0] || null;
  }

  function describedBy(control, errorId, on) {
    const ids = (control.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean)
      .filter((id) => id !== errorId);
    if (on) ids.push(errorId);
    if (ids.length) control.setAttribute("aria-describedby", ids.join(" "));
    else control.removeAttribute("aria-describedby");
  }

  function clearErrors() {
    for (const wrapper of form.querySelectorAll(".has-error")) {
      const path = wrapper.dataset.field;
      const message = document.getElementById(`${path}--error`);
      message.hidden = true;
      message.textContent = "";
      wrapper.classList.remove("has-error");
      for (const control of controls(path)) {
        control.removeAttribute("aria-invalid");
        describedBy(control, message.id, false);
      }
    }
    summary.hidden = true;
    document.getElementById("error-summary-list").replaceChildren();
    document.getElementById("error-summary-detail").textContent = "";
    MSK.showConnectionError("");
  }

  /** The service's message for a field, in a clinician's words: what to enter, not how the
      schema failed ("Must be greater than or equal to 0 and ..."). Unknown ones pass as sent. */
  function plainMessage(path, message) {
    const spec = specs[path];
    if (!spec) return message;
    if (/^(Not a valid (integer|number)|Must be (greater|less) than|Must be a finite)/.test(message)) {
      const what = spec.kind === "int" ? "a whole number" : "a number";
      const range = spec.minimum !== null && spec.maximum !== null
        ? ` from ${formatNumber(spec.minimum)} to ${formatNumber(spec.maximum)}` : "";
      return `Enter ${what}${range}.`;
    }
    if (/^Missing data for required field/.test(message)) return "Answer this question: it is required.";
    if (/^(Must be one of|Not a valid choice|Not a valid boolean)/.test(message)) return "Choose one of the answers given.";
    if (/^(Must be a non-empty list|Shorter than minimum length)/.test(message)) return "Choose at least one.";
    if (/^(Repeated|Must not repeat)/i.test(message)) return "Choose each answer once.";
    return message;
  }

  function formatNumber(value) { return Number.isInteger(value) ? String(value) : value.toString(); }

  function showErrors(errors, detail) {
    const list = document.getElementById("error-summary-list");
    const byField = new Map();
    const unplaced = [];
    for (const [key, value] of Object.entries(errors || {})) {
      const path = fieldFor(key);
      const messages = [...new Set(messagesOf(value).map((m) => (path ? plainMessage(path, m) : `${key}: ${m}`)))];
      if (path) byField.set(path, [...(byField.get(path) || []), ...messages]);
      else unplaced.push(`${key}: ${messages.join(" ")}`);
    }
    // In the order of the form, so the summary reads top to bottom like the page.
    const inFormOrder = Array.from(form.querySelectorAll("[data-field]"), (node) => node.dataset.field);
    for (const path of inFormOrder.filter((p) => byField.has(p))) {
      const text = byField.get(path).join(" ");
      const message = document.getElementById(`${path}--error`);
      message.textContent = text;
      message.hidden = false;
      message.closest("[data-field]").classList.add("has-error");
      for (const control of controls(path)) {
        control.setAttribute("aria-invalid", "true");
        describedBy(control, message.id, true);
      }
      list.append(el("li", {}, el("a", {href: `#${path}`, "data-target": path,
        onclick: (event) => { event.preventDefault(); focusField(path); }},
        `${fieldLabel(path)}: ${text}`)));
    }
    for (const text of unplaced) list.append(el("li", {}, text));
    document.getElementById("error-summary-detail").textContent = detail || "";
    summary.hidden = false;
    summary.focus();
  }

  function focusField(path) {
    const inputs = controls(path);
    const target = inputs.find((input) => input.checked) || inputs[0];
    if (!target) return;
    target.closest("[data-field]").scrollIntoView({block: "center"});
    target.focus({preventScroll: true});
  }

  // --- submitting ------------------------------------------------------------------------

  async function onSubmit(event) {
    event.preventDefault();
    if (submit.getAttribute("aria-busy") === "true") return;
    clearErrors();
    const {body, errors} = presentation();
    if (Object.keys(errors).length) {
      showErrors(errors, "Correct the answers marked below.");
      return;
    }
    submit.setAttribute("aria-busy", "true");
    MSK.setStatus(status, "Assessing…");
    try {
      const answer = await api("/v1/assessments", {method: "POST", json: body});
      if (answer.ok && answer.data) {
        MSK.setStatus(status, "Assessment ready below.");
        render(answer.data);
      } else if (answer.status === 422 && answer.data && answer.data.errors) {
        MSK.setStatus(status, "");
        result.hidden = true;
        showErrors(answer.data.errors, "The service could not assess these answers. Correct the fields marked below.");
      } else {
        result.hidden = true;
        MSK.setStatus(status, MSK.problemMessage(answer), true);
        showErrors({}, MSK.problemMessage(answer));
      }
    } catch (error) {
      result.hidden = true;
      MSK.setStatus(status, "The assessment could not be requested.", true);
      MSK.showConnectionError(error.message);
      document.getElementById("connection-error").scrollIntoView({block: "center"});
    } finally {
      submit.removeAttribute("aria-busy");
    }
  }

  // --- the result ------------------------------------------------------------------------

  /** Reasons by conclusion: "urgency", "imaging", "treatments.stay_active", ... */
  function reasonIndex(assessment) {
    const index = new Map();
    for (const reason of assessment.reasons || []) {
      index.set(reason.conclusion, [...(index.get(reason.conclusion) || []), reason]);
    }
    return index;
  }

  function render(assessment) {
    const reasons = reasonIndex(assessment);
    const used = new Set();
    const citationNumbers = new Map((assessment.citations || []).map((c, i) => [c.id, i + 1]));
    const citations = new Map((assessment.citations || []).map((c) => [c.id, c]));

    /** The reasons behind one or more conclusions, as a disclosure. */
    function why(...keys) {
      const found = [];
      for (const key of keys) {
        for (const [conclusion, list] of reasons) {
          if (conclusion === key || conclusion.startsWith(`${key}.`)) {
            found.push(...list);
            used.add(conclusion);
          }
        }
      }
      if (!found.length) return null;
      const unique = [...new Set(found)];
      return el("details", {class: "why"},
        el("summary", {}, `Why? ${unique.length} reason${unique.length === 1 ? "" : "s"}`),
        el("ul", {class: "why-list"}, unique.map(reasonItem)));
    }

    function reasonItem(reason) {
      return el("li", {},
        el("p", {}, reason.text),
        el("p", {class: "reason-meta"}, "Rule ", MSK.ruleLink(reason.rule),
          reason.citations.length ? " · Sources: " : "",
          reason.citations.map((id, i) => [i ? " " : "", citeLink(id)])));
    }

    function citeLink(id) {
      const number = citationNumbers.get(id);
      const source = citations.get(id);
      return el("a", {href: `#cite-${id}`, class: "cite",
        "aria-label": `Source ${number}: ${source ? source.title : id}`,
        title: source ? source.title : id}, `[${number || id}]`);
    }

    function part(title, content, extra) {
      return el("section", {class: "result-part"}, el("h3", {}, title), content, extra || null);
    }

    function items(list, renderItem, emptyText) {
      if (!list || !list.length) return el("p", {class: "none"}, emptyText);
      return el("ul", {class: "items"}, list.map((entry) => el("li", {}, renderItem(entry))));
    }

    const a = assessment;
    const siteLabel = (site) => siteName(site);

    // Urgency banner: the first thing read; an emergency is an alert.
    const urgency = a.urgency;
    const openScreens = openRedFlagScreens(a);
    const banner = el("div", {class: `urgency-banner urgency-${urgency}`, id: "urgency-banner",
                              role: urgency === "emergency" ? "alert" : "status"},
      el("span", {class: "urgency-icon", "aria-hidden": "true"}, urgency === "emergency" ? "!" : urgency === "urgent" ? "!" : "i"),
      el("p", {class: "urgency-kicker"}, "Urgency"),
      el("p", {class: "urgency-level"}, urgencyName(urgency)),
      el("p", {class: "urgency-meaning"}, (vocabLabel("urgency", urgency).split(" - ")[1] || vocabLabel("urgency", urgency))),
      (a.red_flags || []).length
        ? el("p", {class: "banner-flags"}, "Red flags: ",
            a.red_flags.map((flag) => `${fieldLabel(flag.field)} (${formatValue(flag.field, flag.value)})`).join("; "))
        : null,
      // An incomplete history is said in the banner itself: an urgency with red-flag
      // screens open is "not excluded", never a calm all-clear.
      openScreens.length
        ? el("p", {class: "banner-open", id: "banner-open"},
            el("a", {href: "#missing-red_flags", onclick: (event) => {
              event.preventDefault();
              const list = document.getElementById("missing-red_flags");
              list.scrollIntoView({block: "start"});
              list.focus({preventScroll: true});
            }}, `Red flags not excluded: ${openScreens.length} question${openScreens.length === 1 ? "" : "s"} not asked`))
        : null,
      why("urgency"));
    if (openScreens.length) banner.classList.add("is-incomplete");

    const bannerWhy = banner.querySelector("details.why summary");
    if (bannerWhy) bannerWhy.id = "urgency-why";

    const classification = items(a.classification, (entry) => [
      el("span", {class: "item-title"}, `${siteLabel(entry.site)}: `),
      entry.label || vocabLabel("classification", entry.category, entry.site),
      entry.pattern && entry.pattern !== entry.category
        ? el("p", {class: "item-note pattern-note"}, `Pattern: ${vocabLabel("classification", entry.pattern, entry.site)}`,
            entry.category === "serious_pathology_suspected"
              ? ". Shown for reference only: the suspected serious cause takes precedence over the pattern and decides the urgency and the plan."
              : "") : null,
      why(`classification.${entry.site}`),
    ], "No classification.");

    const duration = a.duration_category
      ? el("p", {}, vocabLabel("duration_category", a.duration_category), why("duration_category"))
      : el("p", {class: "none"}, "Not determined.");

    const risk = a.risk
      ? el("p", {}, `STarT Back: ${a.risk.group} risk `,
          `(total ${a.risk.total}/9, distress ${a.risk.distress}/5)`, why("risk"))
      : el("p", {class: "none"}, "STarT Back not completed.");

    const conditions = items(a.suspected_conditions, (entry) => [
      el("span", {class: "item-title"}, entry.label || vocabLabel("conditions", entry.code)),
      el("span", {class: `badge badge-${entry.urgency}`}, urgencyName(entry.urgency)),
      why(`suspected_conditions.${entry.code}`),
    ], "No condition suspected.");

    const redFlags = items(a.red_flags, (flag) => [
      el("span", {class: "item-title"}, `${fieldLabel(flag.field)}: ${formatValue(flag.field, flag.value)}`),
      el("span", {class: `badge badge-${flag.urgency}`}, urgencyName(flag.urgency)),
      el("p", {class: "item-note"}, flag.conditions.length
        ? ["Raises: ", flag.conditions.map((c) => vocabLabel("conditions", c)).join(", ")]
        : "Raises no specific condition on its own: needs clinical review, not self-care."),
      why(`red_flags.${flag.code}`),
    ], "No red flag found among the answered questions.");

    const imaging = a.imaging || {procedures: []};
    const imagingSummary = imaging.indicated
      ? `Indicated: ${vocabLabel("imaging_timing", imaging.timing)}.`
      : "Not indicated now." + (imaging.reassess_after_weeks
          ? ` Reassess after ${imaging.reassess_after_weeks} weeks if not improving.` : "");
    const imagingTable = imaging.procedures.length ? el("table", {class: "imaging-table"},
      el("thead", {}, el("tr", {}, el("th", {scope: "col"}, "Procedure"), el("th", {scope: "col"}, "ACR rating"))),
      el("tbody", {}, imaging.procedures.map((p) => el("tr", {},
        el("td", {}, p.label || vocabLabel("imaging_procedures", p.code)),
        el("td", {}, el("span", {class: `badge badge-${p.rating}`}, vocabLabel("imaging_rating", p.rating))))))) : null;

    const treatments = items(a.treatments, (t) => [
      el("span", {class: "item-title"}, t.label || vocabLabel("treatments", t.code)),
      el("span", {class: "badge badge-plain"}, `${MSK.humanise(t.line)} line`),
      el("span", {class: "badge badge-plain"}, MSK.humanise(t.type)),
      (t.cautions || []).length ? el("ul", {class: "item-note"},
        t.cautions.map((c) => el("li", {}, `Caution: ${c.text || MSK.humanise(c.code)}`))) : null,
      why(`treatments.${t.code}`),
    ], urgency === "emergency" ? "None suggested while an emergency is suspected." : "None suggested.");

    const referrals = items(a.referrals, (r) => [
      el("span", {class: "item-title"}, r.label || vocabLabel("referrals", r.code)),
      el("span", {class: `badge badge-${r.urgency}`}, urgencyName(r.urgency)),
      why(`referrals.${r.code}`),
    ], "No referral.");

    const avoid = items(a.avoid, (entry) => [
      el("span", {class: "item-title"}, entry.label || vocabLabel("avoid", entry.code)),
      entry.reason ? el("p", {class: "item-note"}, entry.reason) : null,
      why(`avoid.${entry.code}`),
    ], "Nothing listed.");

    const safetyNetting = items(a.safety_netting, (entry) => [
      el("p", {class: "safety-text"}, entry.text),
      why(`safety_netting.${entry.code}`),
    ], "None.");

    const missingByScreen = new Map();
    for (const entry of a.missing_information || []) {
      missingByScreen.set(entry.screen, [...(missingByScreen.get(entry.screen) || []), entry]);
    }
    const missing = (a.missing_information || []).length
      ? [...missingByScreen].map(([screen, list]) => [
          el("h4", {class: `screen-title screen-${screen}`, id: `missing-${screen}`, tabindex: "-1"},
            `${screenName(screen)} (${list.length})`),
          el("ul", {class: "items missing-list"}, list.map((entry) => el("li", {},
            el("p", {class: "missing-head"}, el("span", {class: "item-title"}, fieldLabel(entry.field)), " ",
              el("a", {href: `#${entry.field}`, class: "go-to",
                       onclick: (event) => { event.preventDefault(); focusField(entry.field); }},
                "Go to question", el("span", {class: "visually-hidden"}, `: ${fieldLabel(entry.field)}`))),
            el("p", {class: "item-note"}, entry.why),
            why(`missing_information.${entry.field}`))))])
      : el("p", {class: "none"}, "Nothing: every screen that matters here was answered.");

    const sections = [
      el("div", {class: "result-head"},
        el("h2", {id: "result-title"}, "Assessment"),
        el("p", {}, `Ruleset ${a.ruleset.version} · `, el("code", {title: a.ruleset.digest}, a.assessment_id))),
      banner,
      // What was not asked comes before any plan that depends on it.
      part(`Missing information (${(a.missing_information || []).length})`, missing),
      el("div", {class: "result-grid"},
        part("Classification", classification),
        el("div", {}, part("Duration", duration), part("Risk", risk))),
      el("div", {class: "result-grid"},
        part("Suspected conditions", conditions),
        part("Red flags found", redFlags)),
      part("Imaging", [el("p", {}, imagingSummary), imagingTable], why("imaging")),
      el("div", {class: "result-grid"},
        part("Treatments", treatments),
        el("div", {}, part("Referrals", referrals), part("Avoid", avoid))),
      part("Safety-netting: tell the patient", safetyNetting),
    ];
    const leftover = [...reasons.keys()].filter((key) => !used.has(key)).flatMap((key) => reasons.get(key));
    if (leftover.length) {
      sections.push(part("Other reasons", el("ul", {class: "why-list"}, leftover.map(reasonItem))));
    }
    sections.push(part("Sources", el("ol", {class: "sources"}, (a.citations || []).map((c) => el("li", {id: `cite-${c.id}`, tabindex: "-1"},
      el("span", {class: "item-title"}, c.title), ". ",
      [c.authors, c.publisher, c.container, c.year].filter(Boolean).join(". "), ". ",
      c.pmid ? [`PMID ${c.pmid}. `] : null,
      c.url ? el("a", {href: c.url, target: "_blank", rel: "noopener noreferrer"},
        "Open the source", el("span", {class: "visually-hidden"}, " (opens in a new tab)")) : null)))));
    const notes = notesSummary(a);
    sections.push(part("Summary for the notes", [
      el("label", {for: "notes-text", class: "notes-label"},
        "Plain text for the patient's record: urgency, findings, plan and open questions."),
      el("textarea", {id: "notes-text", class: "notes-text", readonly: "", rows: "12"}, notes),
      el("p", {}, el("button", {type: "button", class: "button button-secondary", id: "copy-notes",
        onclick: () => copyNotes(notes)}, "Copy to notes"),
        " ", el("span", {id: "copy-status", role: "status"}))]));
    sections.push(el("p", {class: "result-actions"},
      el("a", {href: `${document.body.dataset.traceUrl}#last-assessment`, id: "open-trace"},
        "See the rule trace of this assessment"),
      " · ",
      el("a", {href: "#intake-form", onclick: (event) => { event.preventDefault(); focusFirstField(); }},
        "Back to the form")));

    result.replaceChildren(...sections);
    result.classList.remove("is-stale");
    result.hidden = false;
    try { sessionStorage.setItem(LAST, JSON.stringify(assessment)); } catch (error) { /* private mode */ }
    result.focus();
  }

  /** The red-flag screens the assessment found unanswered (the banner and the notes say so). */
  function openRedFlagScreens(a) {
    return (a.missing_information || []).filter((entry) => entry.screen === "red_flags");
  }

  /** The assessment as plain text for the EHR record: what a clinician would write. */
  function notesSummary(a) {
    const lines = [`MSK decision support, ruleset ${a.ruleset.version} (assessment ${a.assessment_id})`,
      `Urgency: ${urgencyName(a.urgency)}`];
    const open = openRedFlagScreens(a);
    if (open.length) lines.push(`Red flags not excluded: ${open.length} question${open.length === 1 ? "" : "s"} not asked`);
    for (const entry of a.classification || []) {
      lines.push(`${siteName(entry.site)}: ${entry.label || vocabLabel("classification", entry.category, entry.site)}`);
    }
    const list = (title, entries, text) => {
      if (!entries || !entries.length) return;
      lines.push(`${title}:`);
      for (const entry of entries) lines.push(`- ${text(entry)}`);
    };
    list("Red flags found", a.red_flags, (f) => `${fieldLabel(f.field)}: ${formatValue(f.field, f.value)} (${urgencyName(f.urgency)})`);
    list("Suspected", a.suspected_conditions, (c) => `${c.label || vocabLabel("conditions", c.code)} (${urgencyName(c.urgency)})`);
    const imaging = a.imaging || {};
    lines.push(`Imaging: ${imaging.indicated ? vocabLabel("imaging_timing", imaging.timing) : "not indicated now"}`);
    list("Referrals", a.referrals, (r) => `${r.label || vocabLabel("referrals", r.code)} (${urgencyName(r.urgency)})`);
    list("Plan", a.treatments, (t) => t.label || vocabLabel("treatments", t.code));
    list("Avoid", a.avoid, (entry) => entry.label || vocabLabel("avoid", entry.code));
    list("Safety-netting advice to give", a.safety_netting, (entry) => entry.text);
    list("Open questions", a.missing_information, (entry) => fieldLabel(entry.field));
    return lines.join("\n");
  }

  async function copyNotes(text) {
    const said = document.getElementById("copy-status");
    try {
      await navigator.clipboard.writeText(text);
      said.textContent = "Copied.";
    } catch (error) {  // no clipboard permission: select the text to copy by hand
      const area = document.getElementById("notes-text");
      area.focus();
      area.select();
      said.textContent = "Selected: press Ctrl+C (or Cmd+C) to copy.";
    }
  }

  function focusFirstField() {
    const first = form.querySelector("input, select");
    first.closest("[data-field]").scrollIntoView({block: "center"});
    first.focus({preventScroll: true});
  }

  // Citation links inside a closed disclosure still work: open the target's details first.
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a.cite");
    if (!link) return;
    const target = document.getElementById(link.getAttribute("href").slice(1));
    if (target) {
      event.preventDefault();
      history.replaceState(null, "", link.getAttribute("href"));
      target.scrollIntoView({block: "center"});
      target.focus({preventScroll: true});
    }
  });

  /** Once an answer changes, the result on screen no longer describes the form: mark it
      out of date until the clinician assesses again. */
  function markStale() {
    if (result.hidden || result.classList.contains("is-stale") || !result.firstChild) return;
    result.classList.add("is-stale");
    const notice = el("p", {class: "stale-notice", id: "stale-notice", role: "alert"},
      el("strong", {}, "Out of date: "),
      "the answers have changed since this assessment. Assess again before acting on it.");
    result.prepend(notice);
    const banner = document.getElementById("urgency-banner");
    if (banner) banner.setAttribute("aria-describedby", "stale-notice");
    MSK.setStatus(status, "The answers have changed: assess again.");
  }

  form.addEventListener("submit", onSubmit);
  form.addEventListener("change", updateRedFlagCount);
  form.addEventListener("input", updateRedFlagCount);  // a number counts as soon as typed
  form.addEventListener("change", markStale);
  form.addEventListener("input", markStale);
  form.addEventListener("reset", (event) => {
    // Clearing loses every answer taken: ask first.
    if (!window.confirm("Clear every answer on the form, and the result?")) {
      event.preventDefault();
      return;
    }
    setTimeout(() => {
      clearErrors();
      updateRedFlagCount();
      result.hidden = true;
      result.replaceChildren();
      MSK.setStatus(status, "");
      try { sessionStorage.removeItem(LAST); } catch (error) { /* private mode */ }
    });
  });
  updateRedFlagCount();
})();
