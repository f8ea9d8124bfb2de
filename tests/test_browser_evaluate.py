"""The Evaluate page in Chromium: clicking a confusion-matrix cell opens that cell's examples."""

from __future__ import annotations

import pytest

from tests.browser import exception_boxes, wait_for_app

pytestmark = pytest.mark.browser

# The cell with the most mistakes, its count, and where it is on the screen: read from the
# figure the browser actually drew (Plotly keeps it on the chart's DOM node).
FIND_CELL = """() => {
  const gd = document.querySelector('.st-key-eval_confusion .js-plotly-plot');
  if (!gd || !gd._fullLayout || !gd._fullData) return null;
  const cells = gd._fullData.find(t => t.name === 'cells');
  let best = null;
  for (const [t, p, count] of cells.customdata) {
    if (t !== p && (!best || count > best.count)) best = {t, p, count};
  }
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const box = gd.getBoundingClientRect();
  best.x = box.left + xa._offset + xa.l2p(best.p);
  best.y = box.top + ya._offset + ya.l2p(best.t);
  return best;
}"""

TILES = """() => {
  const gd = document.querySelector('.st-key-eval_examples .js-plotly-plot');
  if (!gd || !gd._fullData) return null;
  const tiles = gd._fullData.find(t => t.name === 'tiles');
  return {ids: Array.from(tiles.customdata),
          captions: (gd.layout.annotations || []).map(a => a.text)};
}"""


def open_evaluate(page, url: str) -> None:
    page.goto(url)
    wait_for_app(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Evaluate").click()
    page.wait_for_selector(".st-key-eval_confusion .js-plotly-plot .main-svg", timeout=60_000)
    wait_for_app(page)


def test_clicking_a_confusion_cell_shows_its_examples(app_server, page):
    open_evaluate(page, app_server.url)
    cell = page.evaluate(FIND_CELL)
    assert cell is not None and cell["count"] > 0
    before = page.evaluate(TILES)
    assert len(before["ids"]) == 40  # all mistakes, first page

    page.mouse.move(cell["x"], cell["y"])
    page.mouse.click(cell["x"], cell["y"])
    t, p, count = cell["t"], cell["p"], cell["count"]
    page.get_by_text(f"{count} {t}s read as {p}", exact=False).wait_for(timeout=30_000)
    wait_for_app(page)

    shown = page.evaluate(TILES)
    assert len(shown["ids"]) == count
    assert all(c.startswith(f"{t}→{p} ") for c in shown["captions"])
    # The filters now name the cell, so it can be changed from there too.
    assert page.locator(".st-key-eval_true input").input_value() == str(t)
    assert page.locator(".st-key-eval_pred input").input_value() == str(p)
    # The clicked cell is outlined in the matrix.
    shapes = page.evaluate(
        "() => document.querySelector('.st-key-eval_confusion .js-plotly-plot').layout.shapes"
    )
    assert [(s["x0"], s["y0"]) for s in shapes] == [(p - 0.5, t - 0.5)]

    # Clicking an example shows its probabilities.
    tile = page.evaluate(
        """() => {
          const gd = document.querySelector('.st-key-eval_examples .js-plotly-plot');
          const tiles = gd._fullData.find(t => t.name === 'tiles');
          const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
          const box = gd.getBoundingClientRect();
          const i = tiles.x.length - 1;
          return {id: tiles.customdata[i], x: box.left + xa._offset + xa.l2p(tiles.x[i]),
                  y: box.top + ya._offset + ya.l2p(tiles.y[i])};
        }"""
    )
    page.mouse.move(tile["x"], tile["y"])
    page.mouse.click(tile["x"], tile["y"])
    page.locator(".st-key-eval_bars").get_by_text(f"Test image #{tile['id']}").wait_for(
        timeout=30_000
    )
    wait_for_app(page)

    assert exception_boxes(page) == []
    assert page.console.errors == []
