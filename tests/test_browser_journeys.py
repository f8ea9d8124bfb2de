"""Journeys in Chromium: what people do across pages, not single visits.

A seeded random walk over the sidebar (every page several times, in changing order, with
something done on each), browser Back and Forward, a reload and a shared link opened in a
second browser; and the Train form kept across pages, Back and the URL, with Start watching
the run it queued. No step may show an exception box.
"""

from __future__ import annotations

import itertools
import os
import random
import re
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from core.config import TrainConfig
from core.recorder import train_run
from core.runs import RunStore
from dashboard.tour import STEPS
from tests.browser import after, exception_boxes, start_app, stop_app, wait_for_app

PAGES = ["Home", "How it works", "Draw", "Train", "Sweep", "Evaluate", "Weights", "Data", "Compare"]
TITLES = {
    "Home": "See a neural network learn", "Draw": "Draw a digit", "Train": "Train a network",
    "Sweep": "Sweep: try many settings",
    "Evaluate": "Evaluate", "Weights": "Weights", "Data": "Data", "Compare": "Compare runs",
    # The tour's heading is its step's: "1. A picture is numbers", and so on.
    "How it works": re.compile(r"^[1-7]\. (" + "|".join(map(re.escape, STEPS)) + ")$"),
}  # fmt: skip
TABBED = ("Evaluate", "Weights", "Data", "Compare")
ANSWER = ".st-key-draw_answer h1"


@pytest.fixture(scope="module")
def journey_server(tmp_path_factory, mnist):
    """The real app over a store holding two small finished runs."""
    root = tmp_path_factory.mktemp("journey")
    store = RunStore(root / "runs")
    for lr in (0.1, 0.5):
        cfg = TrainConfig(train_size=1000, val_size=500, epochs=2, lr=lr)
        run = store.create(cfg, f"tiny lr={lr}", status="running", pid=os.getpid())
        train_run(store, run, mnist)
    server = start_app(root / "runs", root / "streamlit.log")
    yield server
    stop_app(server)


def trainer_report(server) -> str:
    """What the store (read afresh), the trainer's slots and logs say: for a failure message."""
    runs_dir = server.runs_dir
    store = RunStore(runs_dir)
    lines = [f"{r.id} {r.name} {r.status} pid={r.pid} {r.progress}" for r in store.runs()]
    lines.append(f"files: {sorted(p.name for p in runs_dir.iterdir())}")
    log = runs_dir / "worker.log"
    text = log.read_text(errors="replace")[-3000:] if log.exists() else "(none)"
    lines.append(f"worker.log:\n{text}")
    lines.append("streamlit.log:\n" + server.output()[-3000:])
    return "\n".join(lines)


def walk(rng: random.Random, rounds: int = 2) -> list[str]:
    """Every page `rounds` times, shuffled, never the same page twice in a row."""
    while True:
        order = PAGES * rounds
        rng.shuffle(order)
        if all(a != b for a, b in itertools.pairwise(order)):
            return order


def sidebar(page, title: str) -> None:
    link = page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title)
    after(page, link.click)


def assert_clean(page, where: str) -> None:
    boxes = exception_boxes(page)
    assert boxes == [], f"{where}: {boxes}"


def selected_tab(page) -> str:
    return page.get_by_role("tab", selected=True).first.inner_text().strip()


def chosen_model(page) -> str:
    return page.locator('[data-testid="stSidebar"] [role="combobox"]').input_value()


def epochs_input(page):
    return page.locator(".st-key-cfg_epochs input")


def set_epochs(page, value: int) -> None:
    box = epochs_input(page)
    box.fill(str(value))
    after(page, lambda: box.press("Enter"))


def sweep_name(page):
    return page.locator(".st-key-sweep_name input")


def url_params(page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


@pytest.mark.browser
def test_a_random_walk_over_every_page_shows_no_exception(journey_server, browser):
    rng = random.Random(20261130)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(journey_server.url)
    wait_for_app(page)
    remembered: dict[str, object] = {}  # what each page should still show when we come back
    order = walk(rng)
    assert len(order) == 2 * len(PAGES) and all(order.count(p) >= 2 for p in PAGES)
    for step, title in enumerate(order):
        sidebar(page, title)
        where = f"step {step} ({title})"
        assert_clean(page, where)
        expect(page.locator("h1").first).to_contain_text(TITLES[title])
        # Whatever was chosen on this page before is still chosen.
        if title in TABBED and title in remembered:
            assert selected_tab(page) == remembered[title], where
        if title == "Draw" and "Draw" in remembered:  # the drawing is still there
            model, answer = remembered["Draw"]
            if model == chosen_model(page):
                expect(page.locator(ANSWER)).to_have_text(answer)
            else:  # another model reads the same drawing
                expect(page.locator(ANSWER)).to_have_text(re.compile(r"^\d\??$"))
        if title == "How it works" and "How it works" in remembered:  # the step it was on
            expect(page.locator("h1").first).to_have_text(remembered["How it works"])
        if title == "Train" and "Train" in remembered:
            assert epochs_input(page).input_value() == str(remembered["Train"]), where
            assert url_params(page).get("epochs") == [str(remembered["Train"])], where
        # Then do something there.
        if title in TABBED:
            tabs = page.get_by_role("tab")
            tab = tabs.nth(rng.randrange(tabs.count()))
            remembered[title] = tab.inner_text().strip()
            after(page, tab.click)
        elif title == "Train":
            remembered["Train"] = rng.randrange(2, 60)
            set_epochs(page, remembered["Train"])
        elif title == "How it works":  # a step on, or a dot
            if rng.random() < 0.5:
                after(page, page.locator(".st-key-tour_next button").click)
            else:
                dots = page.locator(".st-key-tour_nav [role=radio]")
                after(page, dots.nth(rng.randrange(dots.count())).click)
            remembered["How it works"] = page.locator("h1").first.inner_text()
        elif title == "Sweep":
            if "Sweep" in remembered:  # the name typed on the last visit is still there
                assert sweep_name(page).input_value() == remembered["Sweep"], where
            remembered["Sweep"] = f"walk-{rng.randrange(1000)}"
            sweep_name(page).fill(remembered["Sweep"])
            after(page, lambda: sweep_name(page).press("Enter"))
        elif title == "Draw":
            canvas = page.locator("canvas.upper-canvas")
            box = canvas.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.8, steps=8)
            after(page, page.mouse.up)
            expect(page.locator(ANSWER)).to_have_text(re.compile(r"^1\??$"))  # a 1, drawn on
            remembered["Draw"] = (chosen_model(page), page.locator(ANSWER).inner_text())
        elif rng.random() < 0.5:  # Home: pick another model in the sidebar
            picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]')
            after(page, picker.click)
            options = page.get_by_role("option")
            after(page, options.nth(rng.randrange(options.count())).click)
        assert_clean(page, where + " after acting")

    for move in ("go_back", "go_back", "go_forward"):
        getattr(page, move)()
        wait_for_app(page)
        assert_clean(page, move)
    page.reload()
    wait_for_app(page)
    assert_clean(page, "reload")

    # The address, shared: a second browser opens it cold.
    shared = page.url
    other = browser.new_context(viewport={"width": 1024, "height": 768})
    second = other.new_page()
    second.goto(shared)
    wait_for_app(second)
    assert_clean(second, f"shared link {shared}")
    other.close()
    context.close()


@pytest.mark.browser
def test_the_train_form_survives_leaving_and_start_watches_the_new_run(journey_server, page):
    page.goto(journey_server.url + "/train")
    wait_for_app(page)
    set_epochs(page, 1)
    data = page.locator('[data-testid="stExpander"] summary', has_text="Data")
    after(page, data.click)
    slider = page.locator(".st-key-cfg_train_size input")
    after(page, lambda: slider.press("Home"))  # the smallest training set: 500 images
    assert url_params(page)["epochs"] == ["1"] and url_params(page)["train_size"] == ["500"]

    sidebar(page, "Draw")
    sidebar(page, "Train")
    assert_clean(page, "back on Train by the sidebar")
    assert epochs_input(page).input_value() == "1"
    assert url_params(page)["epochs"] == ["1"] and url_params(page)["train_size"] == ["500"]

    sidebar(page, "Evaluate")
    page.go_back()
    wait_for_app(page)
    if "/train" not in page.url:  # Streamlit records a page and its settled URL separately
        page.go_back()
        wait_for_app(page)
    assert_clean(page, "back on Train by the browser's Back")
    assert epochs_input(page).input_value() == "1"
    assert url_params(page)["train_size"] == ["500"]

    watched = page.locator(".st-key-train_watch").get_by_role("combobox")
    before = watched.input_value()
    after(page, page.get_by_role("button", name="Start", exact=True).click)
    assert_clean(page, "after Start")
    newest = max(RunStore(journey_server.runs_dir).runs(), key=lambda r: r.id)
    expect(watched).to_have_value(re.compile(rf"^#{newest.id} "))
    assert watched.input_value() != before
    # The selector's label follows the run to its end without a reload.
    try:
        expect(watched).to_have_value(re.compile(r"· finished$"), timeout=90_000)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{trainer_report(journey_server)}") from None
    assert_clean(page, "after the run finished")


@pytest.mark.browser
def test_the_run_selector_shows_the_watched_run_s_new_status(journey_server, page, mnist):
    """A run that ends while watched is labelled with its new status in the selector itself,
    not only in the panel below it (the browser keeps the label it was last sent a value
    with, unless the page sends the value again)."""
    store = RunStore(journey_server.runs_dir)
    cfg = TrainConfig(train_size=1000, val_size=500, epochs=1)
    run = store.create(cfg, "held by the test", status="running", pid=os.getpid())
    page.goto(journey_server.url + "/train")
    wait_for_app(page)
    watched = page.locator(".st-key-train_watch").get_by_role("combobox")
    expect(watched).to_have_value(f"#{run.id} held by the test · running")
    train_run(store, run, mnist)  # ends it while the page looks
    expect(page.get_by_text("Test accuracy")).to_be_visible(timeout=30_000)
    expect(watched).to_have_value(f"#{run.id} held by the test · finished")
    assert_clean(page, "after the watched run ended")
