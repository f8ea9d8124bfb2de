"""The Draw page in Chromium: digits drawn with the mouse, as a person draws them, are named live.

The canvas (streamlit-drawable-canvas 0.13, a components-v2 component) renders in the page
itself, inside an open shadow root that Playwright's selectors pierce: no iframe.
"""

from __future__ import annotations

import re
import statistics

import numpy as np
import pytest
from playwright.sync_api import expect

from core import nondigits
from tests.browser import ConsoleLog, exception_boxes, touch_stroke, wait_for_app

ANSWER = ".st-key-draw_answer"
# Strokes as fractions of the canvas, the way people draw these digits: a 1 as one line, a 0
# as one loop, a 7 as a bar and a slant in one go, a 4 as two strokes.
DIGITS = {str(d): strokes for d, strokes in nondigits.BROWSER_STROKES.items()}
SEVEN = [(90, 65), (170, 62), (235, 66), (190, 170), (150, 275)]  # px on a 320 box, in one go
# True when the point (x, y) of the viewport lands on the canvas's drawing layer.
DRAWABLE = """([x, y]) => [...document.querySelectorAll('[data-testid=stBidiComponentIsolated]')]
    .some((host) => host.shadowRoot?.elementFromPoint(x, y)?.classList.contains('upper-canvas'))"""
# Records, in the page's own clock, when the mouse is released and when the answer's
# headline first shows something else: the round trip a person waits for.
WATCH = """() => {
    const headline = () => document.querySelector(
        '.st-key-draw_answer h1, .st-key-draw_answer h3')?.textContent ?? '';
    const t = window.__drawTiming = {before: headline()};
    window.addEventListener('mouseup', () => { t.up = performance.now(); },
                            {capture: true, once: true});
    new MutationObserver((_, observer) => {
        if (t.up && headline() !== t.before) {
            t.changed = performance.now();
            observer.disconnect();
        }
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def open_draw_page(app_server, page):
    page.goto(app_server.url)
    wait_for_app(page)
    # Wait for the home page's first run to finish before clicking in its sidebar.
    expect(page.locator("h1").first).to_contain_text("See a neural network learn")
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Draw").click()
    wait_for_app(page)
    canvas = page.locator("canvas.upper-canvas")
    expect(canvas).to_be_visible()
    expect(page.locator(ANSWER)).to_contain_text("Draw a digit")
    return canvas.bounding_box()


def stroke(page, box, points, rng, measure: bool = False) -> float | None:
    """Press, move through `points` in several small steps each, release; ms to an answer."""
    side = box["width"]

    def at(x: float, y: float) -> tuple[float, float]:
        jitter = rng.normal(0, 0.008 * side, 2)  # a hand is not a plotter
        return box["x"] + x * side + jitter[0], box["y"] + y * side + jitter[1]

    start = at(*points[0])
    # A canvas just mounted (after Clear) takes a frame or two to stack its drawing layer on
    # top; a person never starts that fast, and a stroke there would miss it.
    page.wait_for_function(DRAWABLE, arg=start, timeout=5_000)
    page.mouse.move(*start)
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(*at(x, y), steps=int(rng.integers(5, 10)))
    if measure:
        page.evaluate(WATCH)
    page.mouse.up()
    if not measure:
        return None
    page.wait_for_function("() => window.__drawTiming.changed", timeout=10_000)
    return page.evaluate("() => window.__drawTiming.changed - window.__drawTiming.up")


def settled_answer(page, expected: str) -> str:
    """The answer once the last stroke's run is over, waiting up to 10 s for `expected`."""
    headline = page.locator(f"{ANSWER} h1")
    expect(headline).to_have_text(expected, timeout=10_000)
    page.wait_for_timeout(400)  # a later stroke's run, if any, has begun by now
    wait_for_app(page)
    return page.locator(ANSWER).inner_text()


# True when the drawing layer of the canvas holds no ink (it is black where nothing is drawn).
EMPTY_CANVAS = """() => {
    const c = [...document.querySelectorAll('[data-testid=stBidiComponentIsolated]')]
        .map((host) => host.shadowRoot?.querySelector('canvas.dc-canvas')).find(Boolean);
    if (!c) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) if (d[i] > 0) return false;
    return true;
}"""


def clear(page) -> None:
    page.get_by_role("button", name="Clear", exact=True).click()
    expect(page.locator(f"{ANSWER} h3")).to_contain_text("Draw a digit in the black box")
    expect(page.locator(f"{ANSWER} h1")).to_have_count(0)
    page.wait_for_function(EMPTY_CANVAS, timeout=5_000)


@pytest.mark.browser
def test_digits_drawn_by_hand_are_named_live_and_clear_starts_over(app_server, page):
    box = open_draw_page(app_server, page)
    rng = np.random.default_rng(7)
    round_trips, server = [], []
    for digit, strokes in DIGITS.items():
        for i, points in enumerate(strokes):
            took = stroke(page, box, points, rng, measure=i == 0)
            if took is not None:
                round_trips.append(took)
        text = settled_answer(page, digit)
        assert "% sure" in text and "Not sure" not in text, f"{digit}: {text}"
        server.append(int(re.search(r"Answered in (\d+) ms", text).group(1)))
        # The probabilities and the 28x28 picture the network saw are shown with the answer.
        expect(page.locator(f"{ANSWER} .stPlotlyChart")).to_have_count(2)
        assert not page.evaluate(EMPTY_CANVAS)
        clear(page)
    print(
        f"\nDraw page, {len(round_trips)} strokes: mouse-up to answer median "
        f"{statistics.median(round_trips):.0f} ms (max {max(round_trips):.0f}); "
        f"server compute median {statistics.median(server)} ms (max {max(server)})"
    )
    assert statistics.median(round_trips) <= 300, round_trips
    assert statistics.median(server) <= 50, server
    assert exception_boxes(page) == []
    assert page.console.errors == []


@pytest.mark.browser
def test_undo_takes_back_the_last_stroke_and_a_dot_is_not_a_digit(app_server, page):
    box = open_draw_page(app_server, page)
    rng = np.random.default_rng(1)
    stroke(page, box, [(0.5, 0.45), (0.51, 0.47)], rng)  # a tap, not a digit
    expect(page.locator(f"{ANSWER} h3")).to_contain_text("only a dot. Draw a digit")
    clear(page)
    stroke(page, box, [(0.63, 0.2), (0.55, 0.5), (0.45, 0.85)], rng)
    settled_answer(page, "1")
    stroke(page, box, [(0.3, 0.21), (0.48, 0.2), (0.64, 0.2)], rng)  # a bar across the top
    settled_answer(page, "7")
    page.get_by_role("button", name="Undo last stroke").click()
    settled_answer(page, "1")
    assert exception_boxes(page) == []
    assert page.console.errors == []


# A letter and a shape as a person draws them: an A in two strokes, a five-pointed star in one.
NOT_DIGITS = {
    "A": [[(0.28, 0.85), (0.5, 0.15), (0.72, 0.85)], [(0.37, 0.58), (0.63, 0.58)]],
    "star": [[(0.5, 0.13), (0.63, 0.84), (0.16, 0.4), (0.84, 0.4), (0.37, 0.84), (0.5, 0.13)]],
}


@pytest.mark.browser
def test_a_letter_and_a_shape_are_said_not_to_be_digits(app_server, page):
    box = open_draw_page(app_server, page)
    rng = np.random.default_rng(3)
    for strokes in NOT_DIGITS.values():
        for points in strokes:
            stroke(page, box, points, rng)
        heading = page.locator(f"{ANSWER} h2")
        expect(heading).to_have_text("Not a digit?", timeout=10_000)
        page.wait_for_timeout(400)  # the last stroke's run, if still going, has begun by now
        wait_for_app(page)
        expect(heading).to_have_text("Not a digit?")
        expect(page.locator(ANSWER)).to_contain_text("That doesn't look like a digit")
        expect(page.locator(f"{ANSWER} h1")).to_have_count(0)  # no digit named
        clear(page)
    assert exception_boxes(page) == []
    assert page.console.errors == []


@pytest.mark.browser
def test_a_finger_on_a_tablet_draws_too(app_server, browser):
    # An iPad held upright: the sidebar takes a third, and the answer still fits beside the canvas.
    context = browser.new_context(viewport={"width": 1024, "height": 1366}, has_touch=True)
    try:
        page = context.new_page()
        console = ConsoleLog()
        page.on("console", lambda m: console.record(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: console.record(str(exc)))
        page.goto(app_server.url)
        wait_for_app(page)
        expect(page.locator("h1").first).to_contain_text("See a neural network learn")
        page.get_by_role("button", name="Draw a digit").tap()
        canvas = page.locator("canvas.upper-canvas")
        expect(canvas).to_be_visible()
        box = canvas.bounding_box()
        assert box["width"] == box["height"] == 320 and box["x"] + box["width"] <= 1024
        touch_stroke(context, page, box, SEVEN)
        expect(page.locator(f"{ANSWER} h1")).to_have_text("7", timeout=10_000)
        page.get_by_role("button", name="Clear", exact=True).tap()
        expect(page.locator(f"{ANSWER} h3")).to_contain_text("Draw a digit in the black box")
        assert exception_boxes(page) == []
        assert console.errors == []
    finally:
        context.close()
