"""Presentation mode in Chromium at a projector's 1024×768: what only a browser can tell.

Font sizes are measured in px on the drawn page, the sidebar's state is read from the
DOM, and contrast is computed from the colours the browser resolved (WCAG 2 formula).
"""

from __future__ import annotations

import re

import pytest

from tests.browser import after, exception_boxes, wait_for_app

pytestmark = pytest.mark.browser

PROJECTOR = {"width": 1024, "height": 768}
CHART = ".st-key-eval_confusion .js-plotly-plot .main-svg"

# Every axis tick label on the page: its size in px and whether it sticks out of its chart.
TICKS = """() => {
  const out = [];
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const box = gd.querySelector('.main-svg')?.getBoundingClientRect();
    for (const t of gd.querySelectorAll('.xtick text, .ytick text')) {
      const r = t.getBoundingClientRect();
      if (!box || r.width === 0) continue;
      out.push({px: parseFloat(getComputedStyle(t).fontSize), text: t.textContent,
                clipped: r.left < box.left - 0.5 || r.right > box.right + 0.5
                      || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5});
    }
  }
  return out;
}"""

PAGE_STATE = """() => {
  const side = document.querySelector('[data-testid="stSidebar"]');
  const text = document.querySelector(
    '[data-testid="stMain"] [data-testid="stMarkdownContainer"] p');
  return {
    sidebarCollapsed: side ? side.getAttribute('data-collapsed') === 'true' : null,
    textPx: parseFloat(getComputedStyle(text).fontSize),
    modebars: Array.from(document.querySelectorAll('.modebar-container'))
      .map(m => getComputedStyle(m).display),
  };
}"""

# The WCAG contrast of the text in the main area: captions and chart labels included, text
# on controls that are switched off excluded (WCAG exempts inactive components). Colours are
# blended with their opacity over the nearest background, as the eye sees them.
CONTRAST = r"""() => {
  const parse = c => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (fg, bg) => [0, 1, 2].map(i => fg[i] * fg[3] + bg[i] * (1 - fg[3])).concat([1]);
  const lum = c => { const f = v => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const background = el => { const layers = [];
    for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
      const b = parse(getComputedStyle(e).backgroundColor);
      if (b && b[3] > 0) { layers.push(b); if (b[3] >= 1) break; } }
    let bg = [255, 255, 255, 1];
    for (const l of layers.reverse()) bg = over(l, bg);
    return bg; };
  const opacity = el => { let o = 1;
    for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
      o *= parseFloat(getComputedStyle(e).opacity); }
    return o; };
  const AXES = '.xtick, .ytick, .g-xtitle, .g-ytitle, .legendtext, .gtitle, .cbaxis';
  const out = [], seen = new Set();
  const main = document.querySelector('[data-testid="stMain"]');
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || seen.has(el) || !n.textContent.trim()) continue;
    seen.add(el);
    const r = el.getBoundingClientRect(), cs = getComputedStyle(el);
    if (r.width === 0 || r.height === 0 || cs.visibility === 'hidden') continue;
    if (el.closest('[disabled], [aria-disabled="true"]')) continue;
    const svg = el instanceof SVGElement;
    if (svg && !el.closest(AXES)) continue;  // labels drawn on a picture or a coloured cell
    let fg = parse(svg ? cs.fill : cs.color);
    if (!fg) continue;
    fg = [fg[0], fg[1], fg[2], fg[3] * (svg ? parseFloat(cs.fillOpacity) : 1) * opacity(el)];
    const bg = background(el), L1 = lum(over(fg, bg)), L2 = lum(bg);
    out.push({ratio: (Math.max(L1, L2) + 0.05) / (Math.min(L1, L2) + 0.05),
              text: n.textContent.trim().slice(0, 50),
              caption: !!el.closest('[data-testid="stCaptionContainer"]')});
  }
  return out;
}"""


# Each document this tab loads counts itself: the app reloads itself to switch modes, and
# Streamlit rewrites the URL before that, so the URL alone cannot tell the reload happened.
COUNT_LOADS = "sessionStorage.loads = String(Number(sessionStorage.loads || 0) + 1);"
LOADS = "() => Number(sessionStorage.loads || 0)"


@pytest.fixture
def projector(browser):
    """A fresh tab at 1024×768, a projector's resolution."""
    context = browser.new_context(viewport=PROJECTOR)
    context.add_init_script(COUNT_LOADS)
    yield context.new_page()
    context.close()


def open_evaluate(page, url: str) -> None:
    loads = page.evaluate(LOADS) if page.url.startswith("http") else 0
    page.goto(url)
    if "present=1" in url:  # the page loads itself again as ?present=true
        wait_for_reload(page, loads + 1)
    settle(page)


def wait_for_reload(page, loads: int) -> None:
    """Wait until the tab has loaded a document after its `loads`-th."""
    page.wait_for_function(f"() => ({LOADS})() > {loads}", timeout=60_000)
    page.wait_for_load_state()


def settle(page) -> None:
    wait_for_app(page, 120_000)
    page.wait_for_selector(CHART, timeout=60_000)
    wait_for_app(page, 120_000)


def switch(page, toggle, on: bool) -> None:
    """Flip the toggle and wait for the page to load again in the new mode."""
    loads = page.evaluate(LOADS)
    toggle.click()
    wait_for_reload(page, loads)
    assert ("present=true" in page.url) == on
    settle(page)


def min_tick_px(page) -> float:
    ticks = page.evaluate(TICKS)
    assert ticks, "no tick labels drawn"
    return min(t["px"] for t in ticks)


def test_a_link_with_present_1_gives_a_page_a_class_can_read(app_server, projector, browser):
    page = projector
    open_evaluate(page, f"{app_server.url}/evaluate?present=1")
    assert re.search(r"[?&]present=true\b", page.url)  # the link now keeps the mode
    assert exception_boxes(page) == []
    state = page.evaluate(PAGE_STATE)
    assert state["sidebarCollapsed"] is True
    assert state["modebars"] and set(state["modebars"]) == {"none"}
    ticks = page.evaluate(TICKS)
    assert min(t["px"] for t in ticks) >= 16
    assert [t["text"] for t in ticks if t["clipped"]] == []
    contrast = page.evaluate(CONTRAST)
    assert any(c["caption"] for c in contrast)
    assert [c for c in contrast if c["ratio"] < 4.5] == []

    # The same page in another browser session, meanwhile, is untouched and 1.5x smaller.
    context = browser.new_context(viewport=PROJECTOR)
    try:
        other = context.new_page()
        open_evaluate(other, f"{app_server.url}/evaluate")
        plain = other.evaluate(PAGE_STATE)
        assert plain["sidebarCollapsed"] is False
        captions = [c for c in other.evaluate(CONTRAST) if c["caption"]]
        assert captions and min(c["ratio"] for c in captions) >= 4.5  # outside the mode too
        assert state["textPx"] >= 1.5 * plain["textPx"]
        assert min_tick_px(page) >= 1.5 * min_tick_px(other)
    finally:
        context.close()


def test_the_toggle_switches_the_mode_and_stays_within_reach(app_server, projector):
    page = projector
    open_evaluate(page, f"{app_server.url}/evaluate")
    assert min_tick_px(page) < 16
    toggle = page.get_by_test_id("stSidebar").get_by_text("Presentation mode")
    switch(page, toggle, on=True)  # the page loads again in the new mode
    assert page.evaluate(PAGE_STATE)["sidebarCollapsed"] is True
    assert min_tick_px(page) >= 16  # the charts already on the screen too

    # Folded, not gone: the arrow at the top opens the sidebar, toggle and all.
    page.get_by_test_id("stExpandSidebarButton").click()
    toggle.wait_for(state="visible", timeout=10_000)
    switch(page, toggle, on=False)
    state = page.evaluate(PAGE_STATE)
    assert state["sidebarCollapsed"] is False
    assert min_tick_px(page) < 16


def test_a_sidebar_opened_by_hand_earlier_still_folds(app_server, projector):
    page = projector
    open_evaluate(page, f"{app_server.url}/evaluate")
    # Closing and opening the sidebar by hand makes Streamlit remember "open" in this browser.
    page.get_by_test_id("stSidebar").hover()
    after(page, lambda: page.get_by_test_id("stSidebarCollapseButton").locator("button").click())
    page.get_by_test_id("stExpandSidebarButton").click()
    remembered = page.evaluate(
        "() => Object.keys(localStorage).filter(k => k.startsWith('stSidebarCollapsed-'))"
        ".map(k => localStorage.getItem(k))"
    )
    assert remembered == ["false"]
    open_evaluate(page, f"{app_server.url}/evaluate?present=1")
    assert page.evaluate(PAGE_STATE)["sidebarCollapsed"] is True


@pytest.mark.parametrize("name", ["data", "weights"])
def test_the_other_inspection_pages_read_as_well(app_server, projector, name):
    page = projector
    page.goto(f"{app_server.url}/{name}?present=true")
    wait_for_app(page, 120_000)
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
    wait_for_app(page, 120_000)
    assert exception_boxes(page) == []
    assert page.evaluate(PAGE_STATE)["sidebarCollapsed"] is True
    ticks = page.evaluate(TICKS)
    assert all(t["px"] >= 16 for t in ticks) and not [t for t in ticks if t["clipped"]]
    assert [c for c in page.evaluate(CONTRAST) if c["ratio"] < 4.5] == []
