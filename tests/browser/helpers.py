"""What the browser tests do on the pages, as a clinician or reviewer would."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

# WCAG 2 contrast of every rendered text against its effective background. Returns failures.
CONTRAST_JS = """
() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const lum = ({r, g, b}) => {
    const f = (v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = parse(getComputedStyle(el).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const failures = [];
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || seen.has(el) || el.closest("option, script")) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    const rect = el.getBoundingClientRect();
    if (style.visibility === "hidden" || rect.width <= 1 || rect.height <= 1) continue;
    const fg = parse(style.color);
    const bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (parseInt(style.fontWeight, 10) >= 700 && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) {
      const text = node.textContent.trim().slice(0, 40);
      failures.push(`${el.tagName}.${el.className} "${text}" ${ratio.toFixed(2)}`);
    }
  }
  return failures;
}
"""


def by_id(element_id: str) -> str:
    """A CSS selector for an id with dots in it (the form's ids are dotted field paths)."""
    return f'[id="{element_id}"]'


def api_get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=30) as response:  # noqa: S310 - loopback
        return json.load(response)


def api_post(base: str, path: str, body: Any) -> Any:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        return json.load(response)


def answer(page: Any, path: str, choice: str) -> None:
    """Click Yes, No or Not asked of a yes/no finding, as a person clicks the label."""
    suffix = {"yes": "", "no": "--no", "not asked": "--unknown"}[choice]
    page.click(f'label[for="{path}{suffix}"]')


def fill_presentation(page: Any, presentation: dict[str, Any]) -> None:
    """Enter a presentation into the intake form, field by field."""
    for section, values in presentation.items():
        for name, value in values.items():
            path = f"{section}.{name}"
            if isinstance(value, bool):
                answer(page, path, "yes" if value else "no")
            elif isinstance(value, list):
                for item in value:
                    first = page.locator(f'input[name="{path}"]').first.get_attribute("value")
                    target = path if item == first else f"{path}--{item}"
                    page.click(f'label[for="{target}"]')
            elif isinstance(value, str):
                page.select_option(by_id(path), value)
            else:
                page.fill(by_id(path), str(value))


def tab_to(page: Any, element_id: str, limit: int = 400) -> int:
    """Press Tab until the element has focus; return how many presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.id") == element_id:
            return presses
    raise AssertionError(f"{element_id} cannot be reached with the Tab key")


def visible_texts(page: Any, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(selector).all_inner_texts()]
