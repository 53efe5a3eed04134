/* The trace viewer: the fired rules of an assessment in order, with what each matched and
   concluded, linked to the catalog; and the inputs that were unknown. */
"use strict";

(() => {
  const {el, api, fieldLabel, formatValue} = MSK;
  const view = document.getElementById("trace-view");
  const status = document.getElementById("trace-status");
  const textarea = document.getElementById("assessment-json");
  const textError = document.getElementById("assessment-json--error");
  const examples = JSON.parse(document.getElementById("examples").textContent);
  const LAST = "msk.lastAssessment";
  let titles = new Map();
  const catalogLoaded = api("/v1/rules").then((answer) => {
    if (answer.ok) titles = new Map(answer.data.rules.map((rule) => [rule.id, rule.title]));
  }).catch(() => { /* titles are a nicety; the ids still link to the catalog */ });

  function setTextError(message) {
    textError.textContent = message || "";
    textError.hidden = !message;
    if (message) {
      textarea.setAttribute("aria-invalid", "true");
      textarea.setAttribute("aria-describedby", "assessment-json-hint assessment-json--error");
    } else {
      textarea.removeAttribute("aria-invalid");
      textarea.setAttribute("aria-describedby", "assessment-json-hint");
    }
  }

  /** Unknown inputs: findings a fired rule looked at that the presentation did not give. */
  function unknownInputs(trace) {
    const unknown = new Map();
    for (const step of trace) {
      for (const [path, value] of Object.entries(step.matched || {})) {
        if (path === "has" || path === "lacks" || value !== null) continue;
        unknown.set(path, [...(unknown.get(path) || []), step.rule]);
      }
    }
    return unknown;
  }

  function matchedTable(matched) {
    const rows = [];
    for (const [path, value] of Object.entries(matched || {})) {
      if (path === "has" || path === "lacks") {
        for (const pattern of [].concat(value)) {
          rows.push(el("tr", {},
            el("td", {}, path === "has" ? "Earlier conclusion" : "No earlier conclusion"),
            el("td", {}, MSK.describePattern(pattern))));
        }
        continue;
      }
      rows.push(el("tr", {class: value === null ? "is-unknown" : null},
        el("td", {}, el("span", {title: path}, fieldLabel(path)), " ", el("code", {class: "path"}, path)),
        el("td", {}, value === null ? el("span", {class: "unknown-value"}, "unknown (not asked)")
                                    : formatValue(path, value))));
    }
    if (!rows.length) return el("p", {class: "none"}, "No facts (fires on every presentation).");
    return el("table", {}, el("thead", {}, el("tr", {}, el("th", {scope: "col"}, "Fact"), el("th", {scope: "col"}, "Value"))),
      el("tbody", {}, rows));
  }

  function render(assessment, source) {
    const trace = assessment.trace;
    const unknown = unknownInputs(trace);
    const missing = new Map((assessment.missing_information || []).map((m) => [m.field, m]));
    const stages = [];  // runs of steps of one stage, in firing order
    for (const step of trace) {
      const last = stages[stages.length - 1];
      if (last && last.stage === step.stage) last.steps.push(step);
      else stages.push({stage: step.stage, steps: [step]});
    }
    const stepItem = (step) => el("li", {class: "trace-step", id: `step-${step.seq}`},
        el("div", {class: "step-head"},
          el("span", {class: "seq"}, `#${step.seq}`),
          MSK.ruleLink(step.rule),
          el("span", {class: "badge badge-plain"}, step.stage)),
        el("p", {class: "step-title"}, titles.get(step.rule) || ""),
        el("div", {class: "step-body"},
          el("div", {}, el("h5", {}, "Matched"), matchedTable(step.matched)),
          el("div", {}, el("h5", {}, "Concluded"), MSK.describeConclusions(step.concluded))));
    const steps = stages.map((run) => [
      el("h4", {class: "stage-heading"}, `Stage: ${run.stage}`),
      el("ol", {class: "trace-steps", start: run.steps[0].seq}, run.steps.map(stepItem))]);
    const unknownList = unknown.size
      ? el("ul", {class: "items", id: "unknown-inputs"}, [...unknown].map(([path, rules]) => el("li", {},
          el("span", {class: "item-title"}, fieldLabel(path)), " ", el("code", {}, path),
          missing.has(path) ? el("span", {class: "badge badge-urgent"}, MSK.screenName(missing.get(path).screen)) : null,
          el("p", {class: "item-note"}, "Looked at by ", rules.map((id, i) => [i ? ", " : "", MSK.ruleLink(id)])))))
      : el("p", {class: "none", id: "unknown-inputs"}, "None: every finding a fired rule looked at was given.");

    view.replaceChildren(
      el("h2", {id: "trace-title"}, "Trace of assessment ", el("code", {}, assessment.assessment_id || "(no id)")),
      el("dl", {class: "summary-list"},
        el("dt", {}, "Source"), el("dd", {}, source),
        el("dt", {}, "Ruleset"), el("dd", {}, assessment.ruleset
          ? [assessment.ruleset.version, " ", el("code", {}, assessment.ruleset.digest)] : "not given"),
        el("dt", {}, "Urgency"), el("dd", {}, assessment.urgency
          ? el("span", {class: `badge badge-${assessment.urgency}`}, MSK.urgencyName(assessment.urgency)) : "not given"),
        el("dt", {}, "Rules fired"), el("dd", {id: "fired-count"}, String(trace.length))),
      el("h3", {}, `Inputs that were unknown (${unknown.size})`),
      el("p", {}, "Findings a fired rule looked at that the presentation did not give. Unknown is never “no”."),
      unknownList,
      el("h3", {}, "Fired rules, in order"),
      el("div", {id: "trace-steps"}, steps));
    view.hidden = false;
    MSK.setStatus(status, `Showing ${trace.length} fired rules.`);
    view.focus();
  }

  async function show(assessment, source) {
    if (!assessment || typeof assessment !== "object" || !Array.isArray(assessment.trace)) {
      setTextError("This is not an assessment response: it has no trace list.");
      textarea.focus();
      return;
    }
    setTextError("");
    await catalogLoaded;
    render(assessment, source);
  }

  document.getElementById("example-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = document.getElementById("example").value;
    const example = examples[key];
    MSK.showConnectionError("");
    MSK.setStatus(status, "Running the example…");
    try {
      const answer = await api("/v1/assessments", {method: "POST", json: example.presentation});
      if (!answer.ok) {
        MSK.setStatus(status, MSK.problemMessage(answer), true);
        return;
      }
      textarea.value = JSON.stringify(answer.data, null, 2);
      await show(answer.data, `Example: ${example.title}`);
    } catch (error) {
      MSK.setStatus(status, "The example could not be run.", true);
      MSK.showConnectionError(error.message);
    }
  });

  document.getElementById("paste-form").addEventListener("submit", (event) => {
    event.preventDefault();
    let data;
    try {
      data = JSON.parse(textarea.value);
    } catch (error) {
      setTextError(`This is not valid JSON: ${error.message}`);
      textarea.focus();
      return;
    }
    show(data, "Pasted response");
  });

  document.getElementById("assessment-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    textarea.value = await file.text();
    let data;
    try {
      data = JSON.parse(textarea.value);
    } catch (error) {
      setTextError(`${file.name} is not valid JSON: ${error.message}`);
      return;
    }
    show(data, `File ${file.name}`);
  });

  if (location.hash === "#last-assessment") {
    let stored = null;
    try { stored = sessionStorage.getItem(LAST); } catch (error) { stored = null; }
    if (stored) {
      textarea.value = JSON.stringify(JSON.parse(stored), null, 2);
      show(JSON.parse(stored), "The assessment last made with the intake form in this tab");
    } else {
      MSK.setStatus(status, "No assessment from the intake form in this tab yet.");
    }
  }
})();
