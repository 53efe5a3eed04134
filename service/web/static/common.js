/* Shared by the three pages: calling the API, showing codes as words, and describing rules.
   Every text from the API is inserted as text (never as HTML). */
"use strict";

const MSK = (() => {
  const body = document.body;
  const apiBase = body.dataset.apiBase || "";
  const labels = JSON.parse(document.getElementById("page-labels").textContent);
  const vocab = labels.vocabulary || {};

  /** Build an element: el("a", {href: "#x", class: "y"}, "text", child, [more]). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** Call the API. Resolves to {status, ok, data}; rejects only when it cannot be reached. */
  async function api(path, options = {}) {
    const init = {method: options.method || "GET", credentials: "omit", cache: "no-store",
                  headers: {Accept: "application/json, application/problem+json"}};
    if (options.json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.json);
    }
    let response;
    try {
      response = await fetch(apiBase + path, init);
    } catch (error) {
      throw new Error(unreachableMessage());
    }
    let data = null;
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("json")) {
      try { data = await response.json(); } catch (error) { data = null; }
    }
    return {status: response.status, ok: response.ok, data};
  }

  function unreachableMessage() {
    if (apiBase && new URL(apiBase, location.href).origin !== location.origin) {
      return `Could not reach the assessment service at ${apiBase}. Either it is not running, ` +
        `or it does not allow requests from this page's origin (${location.origin}): ` +
        "add that origin to the service's CORS_ALLOWED_ORIGINS.";
    }
    return "Could not reach the assessment service. Check the connection and try again.";
  }

  /** Say what an unsuccessful answer means, from its problem+json body when it has one. */
  function problemMessage(result) {
    const problem = result.data || {};
    const detail = problem.detail ? ` ${problem.detail}` : "";
    if (result.status >= 500) {
      return `The service failed (${result.status} ${problem.title || ""}).${detail} ` +
        "No part of an assessment can be used.";
    }
    return `The service refused the request (${result.status} ${problem.title || ""}).${detail}`;
  }

  function showConnectionError(message) {
    const box = document.getElementById("connection-error");
    box.textContent = message;
    box.hidden = !message;
  }

  // --- words for codes -------------------------------------------------------------------

  function humanise(code) {
    const words = String(code).replace(/_/g, " ").trim();
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  const SITE_NAMES = {low_back: "Low back", hip: "Hip"};
  const URGENCY_NAMES = {emergency: "Emergency", urgent: "Urgent", routine: "Routine",
                         self_care: "Self-care"};
  const SCREEN_NAMES = {red_flags: "Red-flag screen", treatment_safety: "Treatment safety",
                        classification: "Classification"};

  function fieldLabel(path) { return labels.fields[path] || humanise(String(path).split(".").pop()); }
  function valueLabel(value) { return labels.values[value] || humanise(value); }
  function siteName(site) { return SITE_NAMES[site] || humanise(site); }
  function urgencyName(code) { return URGENCY_NAMES[code] || humanise(code); }
  function screenName(code) { return SCREEN_NAMES[code] || humanise(code); }

  /** The vocabulary label of a code, e.g. vocabLabel("conditions", "hip_fracture"). */
  function vocabLabel(section, code, site) {
    const entries = vocab[section] || {};
    if (section === "classification") {
      const bySite = site ? entries[site] || {} : Object.assign({}, ...Object.values(entries));
      return bySite[code] || humanise(code);
    }
    return entries[code] || humanise(code);
  }

  /** A finding's value as words: null is unknown, never "no". */
  function formatValue(path, value) {
    if (value === null || value === undefined) return "unknown (not asked)";
    if (value === true) return "yes";
    if (value === false) return "no";
    if (Array.isArray(value)) return value.map((v) => formatValue(path, v)).join(", ") || "none";
    if (typeof value === "number") {
      const unit = (labels.units || {})[path];
      return unit ? `${value} ${unit}` : String(value);
    }
    if (typeof value === "object") return JSON.stringify(value);
    return String(path).endsWith("sites") ? siteName(value) : valueLabel(value);
  }

  // --- rules in words --------------------------------------------------------------------

  const OPS = {gt: "is over", gte: "is at least", lt: "is under", lte: "is at most", ne: "is not",
               in: "is one of", contains: "includes"};

  /** The `facts:` of a rule's `when:` as a nested list. */
  function describeFacts(facts) {
    return el("ul", {class: "cond"}, factItems(facts));
  }

  function factItems(node) {
    if (Array.isArray(node)) return node.map(factItems);
    if (!node || typeof node !== "object") return [el("li", {}, String(node))];
    const items = [];
    for (const [key, value] of Object.entries(node)) {
      if (key === "all" || key === "any") {
        items.push(el("li", {}, el("span", {class: "cond-join", text: key === "all" ? "All of:" : "Any of:"}),
          el("ul", {}, factItems(value))));
      } else {
        items.push(el("li", {}, describeTest(key, value)));
      }
    }
    return items;
  }

  function describeTest(path, test) {
    const name = el("span", {class: "field-name", title: path}, fieldLabel(path));
    if (test === null || typeof test !== "object" || Array.isArray(test)) {
      return [name, " ", el("span", {class: "op"}, "is"), " ",
              el("span", {class: "val"}, formatValue(path, test))];
    }
    const parts = [];
    for (const [op, value] of Object.entries(test)) {
      if (parts.length) parts.push(" and ");
      if (op === "known") {
        parts.push(el("span", {class: "op"}, value ? "is recorded" : "is not recorded (unknown)"));
      } else {
        const shown = Array.isArray(value) ? value.map((v) => formatValue(path, v)).join(", ")
                                           : formatValue(path, value);
        parts.push(el("span", {class: "op"}, OPS[op] || op), " ", el("span", {class: "val"}, shown));
      }
    }
    return [name, " ", parts];
  }

  const KIND_NOUNS = {
    duration_category: "a duration category", pattern: "a pattern", classify: "a classification",
    risk: "a risk group", missing: "an open screen", red_flag: "a red flag",
    suspect: "a suspected condition", urgency: "an urgency", imaging: "an imaging decision",
    treat: "a treatment", caution: "a caution", contraindicate: "a contraindication",
    avoid: "an avoid entry", refer: "a referral",
  };

  /** One parameter of a conclusion or pattern as words, using the vocabulary. */
  function paramValue(kind, key, value, params) {
    if (value && typeof value === "object" && !Array.isArray(value) && "in" in value) {
      return value.in.map((v) => paramValue(kind, key, v, params)).join(" or ");
    }
    switch (key) {
      case "condition": return vocabLabel("conditions", value);
      case "urgency": case "level": return urgencyName(value);
      case "category": return vocabLabel("classification", value, params.site);
      case "site": return siteName(value);
      case "value": return kind === "duration_category" ? vocabLabel("duration_category", value) : String(value);
      case "timing": return vocabLabel("imaging_timing", value);
      case "rating": return vocabLabel("imaging_rating", value);
      case "treatment": return vocabLabel("treatments", value);
      case "field": case "finding": return fieldLabel(value);
      case "screen": return screenName(value);
      case "tool": return value === "start_back" ? "STarT Back" : humanise(value);
      case "indicated": return value ? "yes" : "no";
      case "code":
        if (kind === "treat") return vocabLabel("treatments", value);
        if (kind === "avoid") return vocabLabel("avoid", value);
        if (kind === "refer") return vocabLabel("referrals", value);
        return humanise(value);
      case "procedures":
        return Object.entries(value).map(([code, rating]) =>
          `${vocabLabel("imaging_procedures", code)}: ${vocabLabel("imaging_rating", rating)}`).join("; ");
      default:
        if (typeof value === "boolean") return value ? "yes" : "no";
        if (typeof value === "string") return humanise(value);
        return JSON.stringify(value);
    }
  }

  /** A `has:`/`lacks:` pattern: "a suspected condition with urgency Emergency". */
  function describePattern(pattern) {
    const [kind, params] = Object.entries(pattern)[0] || ["?", {}];
    const noun = KIND_NOUNS[kind] || humanise(kind);
    const details = Object.entries(params || {}).map(([key, value]) =>
      `${humanise(key).toLowerCase()} ${paramValue(kind, key, value, params)}`);
    return details.length ? `${noun} with ${details.join(" and ")}` : noun;
  }

  /** A conclusion `{kind: params}` as a sentence. */
  function describeConclusion(kind, params) {
    const p = params || {};
    const v = (key) => paramValue(kind, key, p[key], p);
    switch (kind) {
      case "duration_category": return `Duration category: ${v("value")}`;
      case "pattern": return `Pattern (${v("site")}): ${v("category")}`;
      case "classify": return `Classify ${v("site").toLowerCase()} as: ${v("category")}`;
      case "risk": return `Risk group (${v("tool")}): ${v("group")}`;
      case "missing": return `Open question (${v("screen").toLowerCase()}): ${v("field")}` + (p.why ? ` — ${p.why}` : "");
      case "red_flag": return `Red flag: ${v("finding")}`;
      case "suspect": return `Suspect ${v("condition")}` + (p.urgency ? ` (urgency: ${v("urgency")})` : "");
      case "urgency": return `Urgency: ${v("level")}`;
      case "imaging": {
        const parts = [`Imaging${p.site ? ` (${v("site")})` : ""}: ${p.indicated ? "indicated" : "not indicated"}`];
        if (p.timing) parts.push(`timing ${v("timing")}`);
        if (p.reassess_after_weeks) parts.push(`reassess after ${p.reassess_after_weeks} weeks`);
        if (p.procedures) parts.push(v("procedures"));
        return parts.join("; ");
      }
      case "treat": return `Treatment${p.line ? ` (${p.line} line)` : ""}: ${v("code")}`;
      case "caution": return `Caution on ${v("treatment")}: ${p.text || humanise(p.code || "")}`;
      case "contraindicate": return `Contraindicates ${v("treatment")} when ${v("finding")}` + (p.reason ? ` (${p.reason})` : "");
      case "avoid": return `Avoid: ${v("code")}`;
      case "refer": return `Refer to ${v("code")}` + (p.urgency ? ` (urgency: ${v("urgency")})` : "");
      default:
        return `${humanise(kind)}: ` + Object.entries(p).map(([key, value]) =>
          `${humanise(key).toLowerCase()} ${paramValue(kind, key, value, p)}`).join(", ");
    }
  }

  /** The `then:` list of a rule, or a trace step's `concluded` ({kind: [params]}). */
  function describeConclusions(then) {
    const items = [];
    if (Array.isArray(then)) {
      for (const entry of then) {
        for (const [kind, params] of Object.entries(entry)) items.push(describeConclusion(kind, params));
      }
    } else {
      for (const [kind, list] of Object.entries(then || {})) {
        for (const params of [].concat(list)) items.push(describeConclusion(kind, params));
      }
    }
    return el("ul", {class: "concl"}, items.map((text) => el("li", {}, text)));
  }

  /** The `when:` of a rule: facts, has and lacks. */
  function describeWhen(when) {
    const parts = [];
    if (when.facts) parts.push(el("p", {class: "when-part"}, "The presentation shows:"), describeFacts(when.facts));
    if (when.has && when.has.length) {
      parts.push(el("p", {class: "when-part"}, "Already concluded by an earlier stage:"),
        el("ul", {class: "cond"}, when.has.map((pattern) => el("li", {}, describePattern(pattern)))));
    }
    if (when.lacks && when.lacks.length) {
      parts.push(el("p", {class: "when-part"}, "Not concluded by any earlier stage:"),
        el("ul", {class: "cond"}, when.lacks.map((pattern) => el("li", {}, describePattern(pattern)))));
    }
    return parts;
  }

  function ruleHref(id) { return `${body.dataset.rulesUrl}#rule-${id}`; }
  function ruleLink(id) { return el("a", {href: ruleHref(id), class: "rule-link"}, el("code", {}, id)); }

  function setStatus(node, message, isError) {
    node.textContent = message;
    node.classList.toggle("status-error", Boolean(isError));
  }

  return {
    apiBase, labels, el, append, api, problemMessage, unreachableMessage, showConnectionError,
    humanise, fieldLabel, valueLabel, siteName, urgencyName, screenName, vocabLabel, formatValue,
    describeFacts, describePattern, describeConclusion, describeConclusions, describeWhen,
    ruleHref, ruleLink, setStatus,
  };
})();
