"""The guided tour in Chromium: the arrow keys and the dots move through it, the step
follows the browser's Back and Forward and survives a reload, drawing changes the numbers
and gets an answer, and the live lesson learns on screen."""

from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import expect

from dashboard.tour import STEPS
from tests.browser import after, exception_boxes, wait_for_app
from tests.test_browser_draw import DIGITS, stroke

# app.py's page icon (":material/edit:") makes Streamlit fetch the favicon from Google's
# font server, which a machine offline cannot reach: that console error is not the tour's.
FAVICON = "https://fonts.gstatic.com/**"
BLANK_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"/>'
DOTS = ".st-key-tour_nav [data-testid=stButtonGroup] [role=radio]"


def heading(page):
    return page.locator(".st-key-tour h2").first


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
    stroke(page, canvas.bounding_box(), DIGITS["1"][0], rng)
    expect(ink).not_to_have_text(before, timeout=10_000)
    wait_for_app(page)
    page.goto(re.sub(r"/tour.*", "/tour?step=5", page.url))
    wait_for_app(page)
    answer = page.locator(".st-key-tour_answer")
    expect(answer).to_contain_text("Draw one of 0 to 9")  # a fresh session: nothing drawn
    canvas = page.locator("canvas.upper-canvas")
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
