"""The guided tour in Chromium: the arrow keys and the dots move through it, the step
follows the browser's Back and Forward and survives a reload, drawing changes the numbers
and gets an answer (the canvas's own toolbar hidden, the tour's Undo and Clear in its
place), the live lesson learns on screen, and every step reads on a projector in
presentation mode and fits a phone."""

from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import expect

from dashboard.tour import STEPS
from tests.browser import after, exception_boxes, wait_for_app
from tests.test_browser_draw import DIGITS, stroke
from tests.test_browser_draw_layout import CANVAS_TOOLBAR, TOOLBAR_SHOWN
from tests.test_browser_presentation import COUNT_LOADS, LOADS, wait_for_reload

# app.py's page icon (":material/edit:") makes Streamlit fetch the favicon from Google's
# font server, which a machine offline cannot reach: that console error is not the tour's.
FAVICON = "https://fonts.gstatic.com/**"
BLANK_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"/>'
DOTS = ".st-key-tour_nav [data-testid=stButtonGroup] [role=radio]"
PROJECTOR, PHONE = {"width": 1024, "height": 768}, {"width": 390, "height": 844}
# Each step's main picture (or canvas, or button): what the class is meant to look at.
MAIN = {
    1: ".st-key-tour_grid",
    2: ".st-key-tour_neuron_panels",
    3: ".st-key-tour_chances",
    4: ".st-key-tour button:has-text('Start learning')",
    5: "[class*=st-key-tour_canvas_turn]",
    6: ".st-key-tour_mistakes",
    7: ".st-key-tour_slide",
}
# The size in px of every piece of text drawn in the tour, page and charts, by its text.
FONT_SIZES = """() => {
  const out = {};
  const walker = document.createTreeWalker(
      document.querySelector('.st-key-tour'), NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement, text = n.textContent.trim();
    const r = el?.getBoundingClientRect();
    if (!text || !r.width || !r.height) continue;
    const key = (el instanceof SVGElement ? 'chart: ' : 'page: ') + text.slice(0, 40);
    out[key] = Math.min(out[key] ?? Infinity, parseFloat(getComputedStyle(el).fontSize));
  }
  return out;
}"""
# Whether the page scrolls sideways; whether an element is within the width, its middle in
# view and nothing (such as the page's header) drawn over it there.
OVERFLOW = """() => [document.documentElement, document.querySelector('[data-testid=stMain]')]
    .some((el) => el && el.scrollWidth > el.clientWidth + 1)"""
UNCOVERED = """(el) => {
  const r = el.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
  return r.left >= 0 && r.right <= innerWidth && y >= 0 && y <= innerHeight
      && el.contains(document.elementFromPoint(x, y));
}"""


def heading(page):
    return page.locator(".st-key-tour h1").first


def current_dot(page) -> str:
    """The number on the dot the tour shows as current."""
    return page.locator(f"{DOTS}[aria-checked=true]").inner_text()


@pytest.fixture
def page(page):
    page.route(FAVICON, lambda route: route.fulfill(body=BLANK_SVG, content_type="image/svg+xml"))
    return page


def open_tour(app_server, page):
    page.goto(app_server.url)
    wait_for_app(page)
    after(page, lambda: page.get_by_role("button", name="See how it works").click())
    expect(heading(page)).to_have_text(f"1. {STEPS[0]}")


@pytest.mark.browser
def test_arrow_keys_dots_and_reload_move_through_the_tour(app_server, page):
    open_tour(app_server, page)
    dots = page.locator(DOTS)
    expect(dots).to_have_count(len(STEPS))
    assert current_dot(page) == "1"
    for i in range(2, len(STEPS) + 1):
        after(page, lambda: page.keyboard.press("ArrowRight"))
        expect(heading(page)).to_have_text(f"{i}. {STEPS[i - 1]}", timeout=30_000)
        assert current_dot(page) == str(i)
        assert re.search(rf"[?&]step={i}\b", page.url), page.url
    page.go_back()  # the browser's Back and Forward go through the steps visited
    wait_for_app(page)
    expect(heading(page)).to_have_text(f"{len(STEPS) - 1}. {STEPS[-2]}")
    page.go_forward()
    wait_for_app(page)
    expect(heading(page)).to_have_text(f"{len(STEPS)}. {STEPS[-1]}")
    after(page, lambda: page.keyboard.press("ArrowRight"))  # past the end: it stays
    expect(heading(page)).to_have_text(f"{len(STEPS)}. {STEPS[-1]}")
    after(page, lambda: page.keyboard.press("ArrowLeft"))
    expect(heading(page)).to_have_text(f"{len(STEPS) - 1}. {STEPS[-2]}")
    after(page, lambda: dots.nth(2).click())  # a dot jumps there
    expect(heading(page)).to_have_text(f"3. {STEPS[2]}")
    assert current_dot(page) == "3"
    page.reload()
    wait_for_app(page)
    expect(heading(page)).to_have_text(f"3. {STEPS[2]}")
    page.goto(re.sub(r"step=\d+", "step=abc", page.url))
    wait_for_app(page)
    expect(heading(page)).to_have_text(f"1. {STEPS[0]}")
    assert exception_boxes(page) == []
    assert page.console.errors == []


@pytest.mark.browser
def test_drawing_changes_the_numbers_and_gets_an_answer(app_server, page):
    open_tour(app_server, page)
    ink = page.locator(".st-key-tour_ink")
    expect(ink).to_contain_text("of 784 squares")
    before = ink.inner_text()
    canvas = page.locator("canvas.upper-canvas")
    expect(canvas).to_be_visible()
    rng = np.random.default_rng(3)
    assert_one_undo_and_one_clear(page, canvas.bounding_box())
    stroke(page, canvas.bounding_box(), DIGITS["1"][0], rng)
    expect(ink).not_to_have_text(before, timeout=10_000)
    wait_for_app(page)
    page.goto(re.sub(r"/tour.*", "/tour?step=5", page.url))
    wait_for_app(page)
    answer = page.locator(".st-key-tour_answer")
    expect(answer).to_contain_text("Draw one of 0 to 9")  # a fresh session: nothing drawn
    canvas = page.locator("canvas.upper-canvas")
    assert_one_undo_and_one_clear(page, canvas.bounding_box())
    stroke(page, canvas.bounding_box(), [(0.63, 0.2), (0.55, 0.5), (0.45, 0.85)], rng)
    expect(answer.locator("h2")).to_contain_text("It reads 1", timeout=10_000)
    stroke(page, canvas.bounding_box(), [(0.3, 0.21), (0.48, 0.2), (0.64, 0.2)], rng)
    expect(answer.locator("h2")).to_contain_text("It reads 7", timeout=10_000)
    wait_for_app(page)
    assert_one_undo_and_one_clear(page, canvas.bounding_box())
    after(page, page.get_by_role("button", name="Undo stroke").click)  # the bar on top
    expect(answer.locator("h2")).to_contain_text("It reads 1", timeout=10_000)
    after(page, page.get_by_role("button", name="Clear").click)
    expect(answer).to_contain_text("Draw one of 0 to 9")
    canvas = page.locator("canvas.upper-canvas")  # a fresh one
    assert_one_undo_and_one_clear(page, canvas.bounding_box())
    for points in DIGITS["7"]:
        stroke(page, canvas.bounding_box(), points, rng)
    expect(answer.locator("h2")).to_contain_text("It reads 7", timeout=10_000)
    wait_for_app(page)
    # The arrow keys still move on after drawing; the drawing follows to the last step.
    after(page, lambda: page.keyboard.press("ArrowRight"))
    after(page, lambda: page.keyboard.press("ArrowRight"))
    expect(heading(page)).to_have_text(f"7. {STEPS[6]}")
    expect(page.get_by_text("this is a test digit")).to_have_count(0)
    assert exception_boxes(page) == []
    assert page.console.errors == []


@pytest.mark.browser
def test_the_live_lesson_learns_on_screen(app_server, page):
    page.goto(f"{app_server.url}/tour?step=4")
    wait_for_app(page)
    page.get_by_role("button", name="Start learning").click()
    expect(page.get_by_text("Done.")).to_be_visible(timeout=120_000)
    wait_for_app(page)
    read = page.locator("[data-testid=stMetric]").filter(has_text="Practice exam read right")
    value = float(re.search(r"([\d.]+)%", read.inner_text()).group(1))
    assert value >= 90, read.inner_text()
    assert exception_boxes(page) == []
    assert page.console.errors == []


def assert_one_undo_and_one_clear(page, canvas) -> None:
    """With the pointer over the canvas, where its own toolbar would show, none of it shows:
    the tour's one Undo and one Clear stand in for it."""
    page.mouse.move(canvas["x"] + canvas["width"] - 20, canvas["y"] + 10)
    assert not page.evaluate(TOOLBAR_SHOWN)
    for name in CANVAS_TOOLBAR:
        expect(page.get_by_role("button", name=name, exact=True)).to_be_hidden()
    for name in ("undo", "clear"):
        buttons = page.get_by_role("button", name=re.compile(name, re.I)).all()
        assert len([b for b in buttons if b.is_visible()]) == 1, name


def tour_page(browser, viewport, **options):
    context = browser.new_context(viewport=viewport, **options)
    context.route(FAVICON, lambda r: r.fulfill(body=BLANK_SVG, content_type="image/svg+xml"))
    context.add_init_script(COUNT_LOADS)
    return context, context.new_page()


def uncovered(page, locator) -> bool:
    locator.scroll_into_view_if_needed()
    return page.evaluate(UNCOVERED, locator.element_handle())


def next_step(pages, i: int) -> None:
    """Press Next in every tab (their reruns run at once), and wait for step `i` in each."""
    for page in pages:
        page.locator(".st-key-tour_next button").click()
    for page in pages:
        expect(heading(page)).to_have_text(f"{i}. {STEPS[i - 1]}", timeout=30_000)
        wait_for_app(page)


def assert_step(page, i: int) -> None:
    expect(heading(page)).to_have_text(f"{i}. {STEPS[i - 1]}")
    assert exception_boxes(page) == [], i
    assert not page.evaluate(OVERFLOW), f"step {i} scrolls sideways"


@pytest.mark.browser
def test_every_step_reads_large_in_presentation_mode_and_fits_a_phone(app_server, browser):
    """Two tabs walk the tour side by side. A projector's, ?present=1 at 1024x768: every
    piece of text 1.5x its size outside the mode, Next in view and not under the header,
    each step's main picture within the width. A phone's, at 390x844 outside the mode (the
    sizes outside it: text is sized in rem and px, not by the width): nothing wider than the
    screen, Back and Next within reach."""
    contexts = []
    try:
        context, present = tour_page(browser, PROJECTOR)
        contexts.append(context)
        context, phone = tour_page(browser, PHONE, is_mobile=True, has_touch=True)
        contexts.append(context)
        present.goto(f"{app_server.url}/tour?present=1")
        phone.goto(f"{app_server.url}/tour")
        wait_for_reload(present, 1)  # the page loads itself again as ?present=true
        for page in (present, phone):
            wait_for_app(page, 60_000)
        for i in range(1, len(STEPS) + 1):
            if i > 1:
                next_step([present, phone], i)
            for page in (present, phone):
                assert_step(page, i)
            assert uncovered(present, present.locator(".st-key-tour_next button")), i
            small, large = phone.evaluate(FONT_SIZES), present.evaluate(FONT_SIZES)
            both = small.keys() & large.keys()
            assert len(both) >= 5 and (i in (4, 5, 6) or any(k.startswith("chart") for k in both))
            too_small = {k: (small[k], large[k]) for k in both if large[k] < 1.49 * small[k]}
            assert too_small == {}, f"step {i}: px outside the mode and in it {too_small}"
            for page in (present, phone):
                assert uncovered(page, page.locator(MAIN[i]).first), i
            for name in ("back", "next"):
                assert uncovered(phone, phone.locator(f".st-key-tour_{name} button")), (i, name)
            for page in (present, phone):
                page.locator("[data-testid=stMain]").evaluate("(el) => el.scrollTo(0, 0)")
        assert present.evaluate(LOADS) == 2  # loaded once more, as ?present=true, no more
        phone.locator(".st-key-tour_back button").tap()
        expect(heading(phone)).to_have_text(f"{len(STEPS) - 1}. {STEPS[-2]}")
    finally:
        for context in contexts:
            context.close()
