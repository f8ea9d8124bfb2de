"""Every page of the real app in Chromium: it renders, with no exception box or console error."""

from __future__ import annotations

import pytest

from tests.browser import exception_boxes, wait_for_app

PAGES = ["Draw", "Train", "Sweep", "Evaluate", "Weights", "Data", "Compare", "Home"]


@pytest.mark.browser
def test_every_page_renders_without_errors(app_server, page):
    page.goto(app_server.url)
    wait_for_app(page)
    assert "See a neural network learn" in page.inner_text("h1")
    nav = page.locator('[data-testid="stSidebarNav"]')
    for title in PAGES:
        nav.get_by_role("link", name=title).click()
        wait_for_app(page)
        page.wait_for_timeout(500)
        assert exception_boxes(page) == [], f"{title}: {exception_boxes(page)}"
        assert page.locator("h1").first.is_visible(), f"{title} shows no title"
    assert page.console.errors == []


@pytest.mark.browser
def test_home_reaches_a_prediction_page_in_one_click(app_server, page):
    page.goto(app_server.url)
    wait_for_app(page)
    page.get_by_role("button", name="Draw a digit").click()
    wait_for_app(page)
    assert "Draw" in page.inner_text("h1")
    assert exception_boxes(page) == [] and page.console.errors == []
