"""Regenerate the README's screenshots: start the app, train two small runs, photograph every page.

    python scripts/screenshots.py            # writes docs/screenshots/*.png

It runs `streamlit run app.py` on a free port with a temporary run store, trains two quick
runs through the CLI (so Train, Weights and Compare have something to show), and drives
Chromium with Playwright, navigating by clicking as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from tests.browser import launch_browser, start_app, stop_app, wait_for_app  # noqa: E402

OUT = REPO / "docs" / "screenshots"


def train(runs: Path, *args: str) -> None:
    env = {**os.environ, "MNIST_RUNS_DIR": str(runs), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "core", "train", "--quiet", *args], cwd=REPO, env=env,
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip


def go(page: Page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
    wait_for_app(page)
    page.wait_for_timeout(1500)  # let Plotly finish drawing


def pick_model(page: Page, label_start: str) -> None:
    """Choose a model in the sidebar's picker, as a user would."""
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").click()
    page.get_by_role("option").filter(has_text=label_start).first.click()
    wait_for_app(page)


def draw_digit(page: Page) -> None:
    """Draw a 3 on the Draw page's canvas with the mouse."""
    canvas = page.locator("canvas.upper-canvas")
    box = canvas.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    points = [(0.3, 0.2), (0.6, 0.18), (0.68, 0.33), (0.45, 0.48), (0.7, 0.62), (0.62, 0.8),
              (0.3, 0.8)]  # fmt: skip
    page.mouse.move(x0 + points[0][0] * w, y0 + points[0][1] * h)
    page.mouse.down()
    for px, py in points[1:]:
        page.mouse.move(x0 + px * w, y0 + py * h, steps=8)
    page.mouse.up()
    wait_for_app(page)
    page.wait_for_timeout(1500)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        train(runs, "--train-size", "10000", "--epochs", "8", "--name", "sgd lr 1")
        train(runs, "--train-size", "10000", "--epochs", "8", "--lr", "0.1", "--name", "sgd lr 0.1")
        server = start_app(runs, Path(tmp) / "streamlit.log")
        try:
            with sync_playwright() as playwright:
                browser = launch_browser(playwright)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(server.url)
                wait_for_app(page)
                page.screenshot(path=OUT / "home.png", full_page=True)
                for title in ("Draw", "Train", "Evaluate", "Weights", "Data", "Compare"):
                    go(page, title)
                    if title == "Draw":
                        draw_digit(page)
                    if title == "Weights":  # a trained run: its neurons, and the epoch replay
                        pick_model(page, "#1 sgd lr 1")
                        page.wait_for_timeout(1500)
                    page.screenshot(path=OUT / f"{title.lower()}.png", full_page=True)
                    print(f"wrote {OUT / (title.lower() + '.png')}")
                browser.close()
        finally:
            stop_app(server)


if __name__ == "__main__":
    main()
