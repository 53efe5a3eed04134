/* The rule catalog: every rule of GET /v1/rules in readable form, filtered by ruleset and text. */
"use strict";

(() => {
  const {el, api} = MSK;
  const list = document.getElementById("rule-list");
  const count = document.getElementById("rule-count");
  const rulesetFilter = document.getElementById("filter-ruleset");
  const textFilter = document.getElementById("filter-text");
  let entries = [];  // [{rule, node, text}]

  function citationItem(id, citations) {
    const source = citations.get(id);
    if (!source) return el("li", {}, el("code", {}, id));
    const title = `${source.title} (${[source.publisher, source.year].filter(Boolean).join(", ")})`;
    return el("li", {id: null},
      source.url ? el("a", {href: source.url, target: "_blank", rel: "noopener noreferrer"}, title,
        el("span", {class: "visually-hidden"}, " (opens in a new tab)")) : title,
      " ", el("code", {class: "cite-id"}, id));
  }

  function ruleNode(rule, citations) {
    return el("li", {id: `rule-${rule.id}`, class: `rule-ruleset-${rule.ruleset}`, tabindex: "-1",
                     "data-ruleset": rule.ruleset},
      el("article", {class: "rule", "aria-labelledby": `title-${rule.id}`},
        el("p", {class: "rule-meta"}, el("code", {}, rule.id), ` · ruleset ${rule.ruleset} · stage ${rule.stage}`),
        el("h2", {id: `title-${rule.id}`}, rule.title),
        el("p", {class: "rule-statement"}, rule.statement),
        el("div", {class: "rule-parts"},
          el("div", {class: "rule-when"}, el("h3", {}, "When"), MSK.describeWhen(rule.when)),
          el("div", {class: "rule-then"}, el("h3", {}, "Then"), MSK.describeConclusions(rule.then))),
        el("h3", {}, "Sources"),
        el("ul", {class: "rule-cites"}, rule.citations.map((id) => citationItem(id, citations)))));
  }

  function applyFilters(updateUrl) {
    const ruleset = rulesetFilter.value;
    const words = textFilter.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const entry of entries) {
      const visible = (!ruleset || entry.rule.ruleset === ruleset) && words.every((w) => entry.text.includes(w));
      entry.node.hidden = !visible;
      if (visible) shown += 1;
    }
    const scope = ruleset ? ` in ruleset ${ruleset}` : "";
    count.textContent = shown === entries.length
      ? `Showing all ${entries.length} rules.`
      : `Showing ${shown} of ${entries.length} rules${scope}${words.length ? ` containing “${textFilter.value.trim()}”` : ""}.`;
    if (updateUrl) {
      const params = new URLSearchParams();
      if (ruleset) params.set("ruleset", ruleset);
      if (textFilter.value.trim()) params.set("q", textFilter.value.trim());
      const query = params.toString();
      history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
    }
  }

  function showTarget() {
    const id = decodeURIComponent(location.hash.slice(1));
    if (!id.startsWith("rule-")) return;
    const node = document.getElementById(id);
    if (!node) return;
    if (node.hidden) {  // a link to a rule the filters hide: show everything
      rulesetFilter.value = "";
      textFilter.value = "";
      applyFilters(true);
    }
    node.scrollIntoView({block: "start"});
    node.focus({preventScroll: true});
  }

  async function load() {
    let rules;
    let citations = new Map();
    try {
      const [catalog, bibliography] = await Promise.all([api("/v1/rules"), api("/v1/citations")]);
      if (!catalog.ok) throw new Error(MSK.problemMessage(catalog));
      rules = catalog.data.rules;
      if (bibliography.ok) citations = new Map(bibliography.data.citations.map((c) => [c.id, c]));
    } catch (error) {
      MSK.setStatus(count, "The rules could not be loaded.", true);
      MSK.showConnectionError(error.message);
      return;
    }
    const rulesets = [...new Set(rules.map((rule) => rule.ruleset))];
    for (const name of rulesets) {
      const n = rules.filter((rule) => rule.ruleset === name).length;
      rulesetFilter.append(el("option", {value: name}, `${name} (${n})`));
    }
    entries = rules.map((rule) => {
      const node = ruleNode(rule, citations);
      const text = [rule.id, rule.ruleset, rule.stage, node.textContent].join(" ").toLowerCase();
      return {rule, node, text};
    });
    list.replaceChildren(...entries.map((entry) => entry.node));
    const params = new URLSearchParams(location.search);
    if (params.get("ruleset") && rulesets.includes(params.get("ruleset"))) rulesetFilter.value = params.get("ruleset");
    if (params.get("q")) textFilter.value = params.get("q");
    applyFilters(false);
    list.setAttribute("aria-busy", "false");
    showTarget();
  }

  rulesetFilter.addEventListener("change", () => applyFilters(true));
  textFilter.addEventListener("input", () => applyFilters(true));
  document.getElementById("rule-filters").addEventListener("submit", (event) => event.preventDefault());
  window.addEventListener("hashchange", showTarget);
  list.setAttribute("aria-busy", "true");
  load();
})();
