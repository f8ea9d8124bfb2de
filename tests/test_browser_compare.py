"""The Compare page in a real browser: it opens cleanly, honours `?runs=`, and ticks and renames
runs through the real table (whose rows are drawn on a canvas, so only a browser can click them)."""

from __future__ import annotations

import contextlib
import re
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from core.runs import Run, RunStore
from tests.browser import exception_boxes, wait_for_app
from tests.test_compare import BASE, seed_run

pytestmark = pytest.mark.browser
SWEEP = "browser-compare"
ROW_HEIGHT = 35  # st.dataframe's default row height, and its header's, in pixels


@pytest.fixture
def seeded(app_server) -> list[Run]:
    """The issue's example in the app's own store: learning rate 0.01 / 0.1 / 1, one sweep."""
    store = RunStore(app_server.runs_dir)
    runs = [
        seed_run(store, f"browser lr {lr:g}", BASE.replace(lr=lr), val, test=val[-1],
                 seconds=20.0 + i, sweep=SWEEP)
        for i, (lr, val) in enumerate(
            [(0.01, (0.41, 0.52, 0.6)), (0.1, (0.8, 0.86, 0.9)), (1.0, (0.9, 0.93, 0.94))]
        )
    ]  # fmt: skip
    yield runs
    for run in runs:  # the server is shared by every browser test: leave its store as found
        with contextlib.suppress(KeyError):
            store.delete(run.id)


def open_compare(page, url: str) -> None:
    """Load the app's root, then `url`, as a user following a shared link in an open tab."""
    page.goto(url.split("/compare")[0])
    wait_for_app(page)
    page.goto(url)
    wait_for_app(page)
    page.get_by_text("runs shown").wait_for()


def assert_clean(page) -> None:
    assert exception_boxes(page) == []
    assert page.console.errors == []


def legend(page) -> list[str]:
    page.locator(".js-plotly-plot .legendtext").first.wait_for(state="attached")
    return [t.text_content() for t in page.locator(".js-plotly-plot .legendtext").all()]


def test_compare_opens_from_the_sidebar_without_errors(app_server, page, seeded):
    page.goto(app_server.url)
    wait_for_app(page)
    page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Compare").click()
    wait_for_app(page)
    page.get_by_role("heading", name="Compare runs").wait_for()
    page.locator('[data-testid="stDataFrame"] canvas').first.wait_for()
    assert re.search(r"\d+ of \d+ runs shown", page.get_by_text("runs shown").inner_text())
    assert_clean(page)


def test_a_link_overlays_the_runs_and_names_the_setting_that_differs(app_server, page, seeded):
    ids = [r.id for r in seeded]
    open_compare(page, f"{app_server.url}/compare?runs={','.join(map(str, ids))}")
    assert legend(page) == [f"#{ids[0]} lr=0.01", f"#{ids[1]} lr=0.1", f"#{ids[2]} lr=1"]
    assert parse_qs(urlparse(page.url).query)["runs"] == [",".join(map(str, ids))]
    assert page.get_by_text("Settings that differ").is_visible()

    page.get_by_role("tab", name="Settings against accuracy").click()
    wait_for_app(page)
    chart = page.locator(".js-plotly-plot").filter(has_text="lr (log)").first
    chart.wait_for()
    assert chart.locator(".scatterlayer .trace").count() == 3  # a line per run, in SVG
    page.get_by_role("tab", name="Accuracy against time").click()
    wait_for_app(page)
    assert legend(page)[-3:] == [f"#{ids[0]} lr=0.01", f"#{ids[1]} lr=0.1", f"#{ids[2]} lr=1"]
    assert_clean(page)


def test_ticking_a_row_selects_it_and_a_rename_reaches_the_sidebar(app_server, page, seeded):
    newest = seeded[-1]
    (newest.dir / "model.npz").write_bytes(b"stand-in")  # the sidebar lists runs with a model
    open_compare(page, f"{app_server.url}/compare?sweep={SWEEP}")
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.locator("canvas").first.wait_for()
    box = grid.bounding_box()
    # The tick box of the first row (the newest run): left column, just below the header.
    page.mouse.click(box["x"] + 18, box["y"] + ROW_HEIGHT * 1.5)
    page.wait_for_url(re.compile(rf"runs={newest.id}(&|$)"))
    wait_for_app(page)
    assert legend(page) == [f"#{newest.id} browser lr 1"]

    page.get_by_label("Name", exact=True).fill("renamed in the browser")
    page.get_by_role("button", name="Save name and tags").click()
    wait_for_app(page)
    page.get_by_text(f"Saved run #{newest.id}").wait_for()
    # The run picker beside the form shows the new name too, not the one it was first shown.
    picker = page.locator(".st-key-compare_edit").get_by_role("combobox")
    expect(picker).to_have_value(f"#{newest.id} renamed in the browser")
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").click()
    options = page.get_by_role("option").all_inner_texts()
    assert any(o.startswith(f"#{newest.id} renamed in the browser") for o in options), options
    page.keyboard.press("Escape")
    assert_clean(page)


POINTS = "() => document.querySelector('.js-plotly-plot')?.data?.[0]?.x?.length ?? 0"
STATUS = """id => [...document.querySelectorAll('[data-testid="stDataFrame"] tr')]
    .map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent))
    .find(cells => cells[0] === String(id))?.[2]"""


def test_curves_follow_a_run_while_it_trains(app_server, page):
    store = RunStore(app_server.runs_dir)
    # Running under this test's process id, so the app never reaps it as dead.
    run = seed_run(store, "browser live", BASE.replace(lr=0.5), (0.5,), status="running")
    try:
        open_compare(page, f"{app_server.url}/compare?runs={run.id}")
        page.wait_for_function(f"{POINTS} === 1")
        metrics = {"epoch": 2, "train_loss": 0.5, "train_accuracy": 0.7, "val_loss": 0.6,
                   "val_accuracy": 0.72, "lr": 0.5, "seconds": 1.0, "elapsed": 2.0}  # fmt: skip
        store.add_epoch(run.id, metrics, [])
        page.wait_for_function(f"{POINTS} === 2", timeout=20_000)  # no reload, no click
        page.wait_for_function(f"({STATUS})({run.id}) === 'running'", timeout=20_000)
        store.finish(run.id, "finished", best_val_accuracy=0.72, test_accuracy=0.71)
        page.wait_for_function(f"({STATUS})({run.id}) === 'finished'", timeout=20_000)
        assert_clean(page)
    finally:
        if store.get(run.id).active:
            store.finish(run.id, "stopped")
        store.delete(run.id)
