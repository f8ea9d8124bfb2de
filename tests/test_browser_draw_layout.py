"""The Draw page on a classroom projector and on a phone, in Chromium: after a digit is
drawn its answer is in view without scrolling, and the canvas shows no toolbar of its own
beside the page's one Undo and one Clear."""

from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.browser import ConsoleLog, exception_boxes, touch_stroke, wait_for_app
from tests.test_browser_draw import ANSWER, SEVEN, stroke

VERDICT = ".st-key-draw_verdict"  # the answer itself: the digit and how sure
CANVAS_TOOLBAR = ["Update the app with this drawing", "Undo", "Redo", "Reset canvas & history"]
# True while any canvas's own toolbar shows: it would on hover or with keyboard focus in it.
TOOLBAR_SHOWN = """() => [...document.querySelectorAll('[data-testid=stBidiComponentIsolated]')]
    .map((host) => host.shadowRoot?.querySelector('.dc-toolbar')).filter(Boolean)
    .some((bar) => getComputedStyle(bar).display !== 'none'
        && (bar.matches(':focus-within') || bar.matches(':hover')))"""
# The main area's scroll offset: the answer must be in view without scrolling to it.
SCROLLED = "() => document.querySelector('[data-testid=stMain]')?.scrollTop ?? 0"


# A Material page icon (app.py's page_icon) is a favicon fetched from Google's font server,
# out of reach on an offline machine: not the Draw page's to answer for.
PAGE_ICON = "https://fonts.gstatic.com/s/i/short-term/release/materialsymbolsrounded/"


def new_page(browser, **options):
    context = browser.new_context(**options)
    page = context.new_page()
    console = ConsoleLog()

    def record(message) -> None:
        url = message.location.get("url", "")
        if message.type == "error" and not url.startswith(PAGE_ICON):
            console.record(message.text, url)

    page.on("console", record)
    page.on("pageerror", lambda exc: console.record(str(exc)))
    page.console = console
    return context, page


def open_draw(app_server, page):
    """The Draw page straight from its address; the box of its drawing layer."""
    page.goto(f"{app_server.url}/draw")
    wait_for_app(page)
    canvas = page.locator("canvas.upper-canvas")
    expect(canvas).to_be_visible()
    expect(page.locator(ANSWER)).to_contain_text("Draw a digit")
    return canvas.bounding_box()


def in_view(box, viewport) -> bool:
    return (
        box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= viewport["width"]
        and box["y"] + box["height"] <= viewport["height"]
    )


def assert_the_toolbar_is_hidden(page, canvas) -> None:
    """With the pointer over the canvas, where its toolbar would show, none of it shows."""
    page.mouse.move(canvas["x"] + canvas["width"] - 20, canvas["y"] + 10)
    assert not page.evaluate(TOOLBAR_SHOWN)
    for name in CANVAS_TOOLBAR:
        expect(page.get_by_role("button", name=name, exact=True)).to_be_hidden()
    # The page's own: exactly one way to undo, one to clear.
    for pattern, own in (
        ("undo", "Undo last stroke"),
        (r"\bclear\b(?! all)|reset canvas", "Clear"),
    ):
        buttons = page.get_by_role("button", name=re.compile(pattern, re.I)).all()
        shown = [
            b.inner_text() or b.get_attribute("aria-label") or "" for b in buttons if b.is_visible()
        ]
        assert len(shown) == 1 and shown[0].endswith(own), shown  # after its icon's name


@pytest.mark.browser
def test_on_a_projector_with_the_sidebar_open_the_answer_is_beside_the_canvas(app_server, browser):
    viewport = {"width": 1024, "height": 768}
    context, page = new_page(browser, viewport=viewport)
    try:
        canvas = open_draw(app_server, page)
        sidebar = page.locator("[data-testid=stSidebar]")
        expect(sidebar).to_be_visible()
        bar = sidebar.bounding_box()
        assert bar["x"] == 0 and bar["width"] > 200, bar  # open, beside the page
        # Icons from the Material font, not emoji that need a font of their own.
        assert page.locator("h1").first.inner_text() == "Draw a digit"
        icons = page.locator(".st-key-draw_source [data-testid=stIconMaterial]")
        assert [i.inner_text() for i in icons.all()] == ["draw", "photo_camera"]
        # Tabbing through the page with the keyboard never shows the canvas's toolbar.
        for _ in range(60):
            page.keyboard.press("Tab")
            assert not page.evaluate(TOOLBAR_SHOWN)
            if page.evaluate("() => document.activeElement?.innerText?.endsWith('Clear')"):
                break
        else:
            pytest.fail("Tab never reached the page's Clear button")
        assert_the_toolbar_is_hidden(page, canvas)
        rng = np.random.default_rng(1)
        stroke(page, canvas, [(0.63, 0.2), (0.55, 0.5), (0.45, 0.85)], rng)
        expect(page.locator(f"{VERDICT} h1")).to_have_text("1", timeout=10_000)
        stroke(page, canvas, [(0.3, 0.21), (0.48, 0.2), (0.64, 0.2)], rng)  # a bar on top
        expect(page.locator(f"{VERDICT} h1")).to_have_text("7", timeout=10_000)
        wait_for_app(page)
        answer = page.locator(VERDICT).bounding_box()
        print(f"\n1024x768, sidebar open: canvas {canvas}, answer {answer}")
        assert page.evaluate(SCROLLED) == 0
        assert in_view(answer, viewport), answer
        # Next to the canvas: to its right, level with it.
        assert answer["x"] >= canvas["x"] + canvas["width"]
        assert canvas["y"] - 60 <= answer["y"] < canvas["y"] + canvas["height"]
        assert_the_toolbar_is_hidden(page, canvas)
        page.get_by_role("button", name="Undo last stroke").click()  # the bar
        expect(page.locator(f"{VERDICT} h1")).to_have_text("1", timeout=10_000)
        page.get_by_role("button", name="Clear", exact=True).click()
        expect(page.locator(f"{VERDICT} h3")).to_contain_text("Draw a digit in the black box")
        assert_the_toolbar_is_hidden(page, page.locator("canvas.upper-canvas").bounding_box())
        assert exception_boxes(page) == []
        assert page.console.errors == []
    finally:
        context.close()


@pytest.mark.browser
def test_on_a_phone_the_answer_is_right_under_the_canvas_without_scrolling(app_server, browser):
    viewport = {"width": 390, "height": 844}
    context, page = new_page(browser, viewport=viewport, has_touch=True, is_mobile=True)
    try:
        canvas = open_draw(app_server, page)
        touch_stroke(context, page, canvas, SEVEN)
        expect(page.locator(f"{VERDICT} h1")).to_have_text("7", timeout=10_000)
        wait_for_app(page)
        answer = page.locator(VERDICT).bounding_box()
        print(f"\n390x844: canvas {canvas}, answer {answer}")
        assert page.evaluate(SCROLLED) == 0
        assert in_view(answer, viewport), answer
        # Right under the canvas: below it, with at most the Undo and Clear row between.
        assert canvas["y"] + canvas["height"] <= answer["y"] <= canvas["y"] + canvas["height"] + 120
        expect(page.locator(VERDICT)).to_contain_text("% sure")
        for name in CANVAS_TOOLBAR:
            expect(page.get_by_role("button", name=name, exact=True)).to_be_hidden()
        assert exception_boxes(page) == []
        assert page.console.errors == []
    finally:
        context.close()
