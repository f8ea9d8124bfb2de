"""Benchmark: how long people wait on each page, in Chromium, against a trivial Streamlit app.

    python benchmarks/bench_pages.py                 # one pass, one extra session for memory
    python benchmarks/bench_pages.py --repeats 3 --sessions 10 --json

It starts the real app (`streamlit run app.py`, over a run store of five small runs) and, in
the same invocation, a trivial two-page Streamlit app: the floor that no Streamlit page can
beat on this machine. Chromium (Debian's, through Playwright) then measures, from the click
to everything drawn (the script finished, no skeleton or stale element left, every chart
rendered):

- cold start: from launching the server to Home's title painted in a new browser;
- every page, first visit and warm (second visit), with the shipped CNN and the shipped MLP;
- every tab of the pages that have tabs, first and warm;
- Compare opened from a link to 5 runs, in a new browser context, against the floor's page
  with one table and one chart opened the same way (and a text-only one);
- Draw's first stroke: from releasing the mouse to the answer on the page;
- the server's memory (RSS) after all that, and what each extra session adds.

Each time is a median over `--repeats` fresh servers, and is shown with its ratio to the
floor's page switch (or cold start). The targets are those of issue 17.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from core import nondigits  # noqa: E402
from core.config import TrainConfig  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.recorder import train_run  # noqa: E402
from core.runs import RunStore  # noqa: E402
from tests.browser import APP_SETTLED, launch_browser, start_app, stop_app  # noqa: E402

PAGES = ["Home", "How it works", "Draw", "Train", "Sweep", "Evaluate", "Weights", "Data", "Compare"]
MODELS = {"default": "the shipped CNN", "mlp": "the shipped MLP"}
# Drawn: the script is done and settled, and every chart on the page has rendered.
DRAWN = f"""() => ({APP_SETTLED})() && [...document.querySelectorAll(
    '[data-testid="stPlotlyChart"]')].every((chart) => chart.querySelector('.main-svg, canvas'))"""
STROKE = nondigits.BROWSER_STROKES[1][0]  # a 1, as the browser tests draw it
TARGETS = {"page": 2.0, "page_vs_floor": 1.5, "cold_vs_floor": 1.3, "compare_link": 2.5,
           "first_stroke_ms": 300, "rss_mb": 400, "session_mb": 30}  # fmt: skip
FLOOR_APP = textwrap.dedent(
    """
    import streamlit as st

    def one():
        st.title("One")
        st.write("A trivial page.")

    def two():
        st.title("Two")
        st.write("Another trivial page.")

    def three():  # the least a page with a table and a chart costs, e.g. Compare
        import pandas as pd
        import plotly.graph_objects as go

        st.title("Three")
        table = pd.DataFrame({"run": [1, 2, 3], "accuracy": [0.97, 0.98, 0.99]})
        st.dataframe(table, key="table", on_select="rerun", selection_mode="multi-row")
        st.plotly_chart(go.Figure(go.Scatter(x=[1, 2, 3], y=[0.97, 0.98, 0.99])))

    st.navigation([
        st.Page(one, title="One", default=True),
        st.Page(two, title="Two"),
        st.Page(three, title="Three"),
    ]).run()
    """
)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def clock(page, action, timeout: float = 60_000) -> float:
    """Seconds from doing `action` until the page is drawn again."""
    start = time.perf_counter()
    action()
    page.wait_for_timeout(50)  # let the click reach the server before looking
    page.wait_for_function(DRAWN, timeout=timeout, polling=25)
    return time.perf_counter() - start


STARTED: list = []  # every server launched, stopped at the end even if a measurement fails


def cold_start(browser, launch, title: str) -> tuple[float, object]:
    """Seconds from launching a server to `title` painted in a new browser context."""
    start = time.perf_counter()
    server = launch()
    STARTED.append(server)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(server.url)
    page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
    seconds = time.perf_counter() - start
    page.wait_for_function(DRAWN, timeout=60_000)
    return seconds, (server, context, page)


def sidebar(page, title: str):
    return lambda: (
        page.locator('[data-testid="stSidebarNav"]')
        .get_by_role("link", name=title, exact=True)
        .click()
    )


def tabs(page) -> list[str]:
    # One read of the page: tab by tab, a rerun that redraws them between two reads would
    # leave the second waiting for a tab that is gone.
    return [text.strip() for text in page.get_by_role("tab").all_inner_texts()]


def one_pass(browser, root: Path, sessions: int, times: dict, memory: dict) -> None:
    """Start both servers, measure everything once, stop them."""
    floor_log = root / "floor.log"
    seconds, (floor, floor_context, floor_page) = cold_start(
        browser,
        lambda: start_app(root / "floor-runs", floor_log, script=root / "floor.py"),
        "One",
    )
    times["floor: cold start"].append(seconds)
    for _ in range(3):
        times["floor: page switch"].append(clock(floor_page, sidebar(floor_page, "Two")))
        times["floor: page switch"].append(clock(floor_page, sidebar(floor_page, "One")))
    # What any Streamlit link costs a browser that has never seen the server: the frontend's
    # own scripts and the session's start (to compare with Compare from a link).
    other = browser.new_context(viewport={"width": 1400, "height": 1000})
    fresh = other.new_page()
    times["floor: link in a new browser"].append(
        clock(fresh, lambda: fresh.goto(f"{floor.url}/two"))
    )
    other.close()
    # The same for a page with one table and one chart: Streamlit's browser code for those
    # comes in chunks of its own, which a new browser fetches and compiles first.
    other = browser.new_context(viewport={"width": 1400, "height": 1000})
    fresh = other.new_page()
    times["floor: table and chart in a new browser"].append(
        clock(fresh, lambda: fresh.goto(f"{floor.url}/three"))
    )
    other.close()
    floor_context.close()
    stop_app(floor)

    seconds, (server, context, page) = cold_start(
        browser, lambda: start_app(root / "runs", root / "app.log"), "See a neural network"
    )
    times["app: cold start"].append(seconds)
    for model in MODELS:
        page.goto(f"{server.url}/?model={model}")
        page.wait_for_function(DRAWN, timeout=60_000)
        for visit in ("first", "warm"):
            for title in PAGES:
                times[f"{title} ({model}): {visit}"].append(clock(page, sidebar(page, title)))
                names = tabs(page)
                for name in names[1:] + names[:1]:  # the first tab is open already: last
                    tab = page.get_by_role("tab", name=name, exact=True)
                    times[f"{title} › {name} ({model}): {visit}"].append(clock(page, tab.click))
    memory["one session"].append(rss_mb(server.process.pid))

    # Compare from a link, in a browser that has never seen the app.
    ids = ",".join(str(r.id) for r in RunStore(root / "runs").runs()[:5])
    other = browser.new_context(viewport={"width": 1400, "height": 1000})
    fresh = other.new_page()
    times["Compare from a 5-run link"].append(
        clock(fresh, lambda: fresh.goto(f"{server.url}/compare?runs={ids}"))
    )
    other.close()

    # Draw's first stroke after the page loads.
    page.goto(f"{server.url}/draw")
    page.wait_for_function(DRAWN, timeout=60_000)
    times["Draw: first stroke (ms)"].append(1000 * first_stroke(page))

    extras = []
    for _ in range(sessions):
        extra = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = extra.new_page()
        for path in ("", "/draw", "/evaluate", "/weights"):
            tab.goto(server.url + path)
            tab.wait_for_function(DRAWN, timeout=60_000)
        extras.append(extra)
    if extras:
        memory["per extra session"].append(
            (rss_mb(server.process.pid) - memory["one session"][-1]) / len(extras)
        )
    for extra in extras:
        extra.close()
    context.close()
    stop_app(server)


def first_stroke(page) -> float:
    """Seconds from releasing the mouse after a stroke to the answer changing on the page."""
    page.evaluate(
        """() => {
        const headline = () => document.querySelector('.st-key-draw_answer')?.innerText ?? '';
        const t = window.__stroke = {before: headline()};
        window.addEventListener('mouseup', () => { t.up = performance.now(); },
                                {capture: true, once: true});
        new MutationObserver((_, observer) => {
            if (t.up && headline() !== t.before) {
                t.changed = performance.now();
                observer.disconnect();
            }
        }).observe(document.body, {subtree: true, childList: true, characterData: true});
    }"""
    )
    box = page.locator("canvas.upper-canvas").bounding_box()

    def at(x: float, y: float) -> tuple[float, float]:
        return box["x"] + x * box["width"], box["y"] + y * box["height"]

    page.mouse.move(*at(*STROKE[0]))
    page.mouse.down()
    for point in STROKE[1:]:
        page.mouse.move(*at(*point), steps=8)
    page.mouse.up()
    page.wait_for_function("() => window.__stroke.changed", timeout=30_000)
    return page.evaluate("() => (window.__stroke.changed - window.__stroke.up) / 1000")


def make_store(runs: Path) -> None:
    """Five small finished runs, for Compare and the model picker."""
    store, data = RunStore(runs), load_dataset()
    for lr in (0.05, 0.1, 0.2, 0.5, 1.0):
        cfg = TrainConfig(train_size=1000, val_size=500, epochs=2, lr=lr)
        train_run(store, store.create(cfg, f"lr={lr}", status="running", pid=os.getpid()), data)


def verdicts(medians: dict[str, float], mem: dict[str, float]) -> list[tuple[str, float, str]]:
    """(what, measured, target as text) for each target of issue 17."""
    floor_switch = medians["floor: page switch"]
    page_limit = max(TARGETS["page"], TARGETS["page_vs_floor"] * floor_switch)
    out = [
        (k, v, f"≤ {page_limit:.2f} s")
        for k, v in medians.items()
        if k.endswith(": warm") and not k.startswith("floor")
    ]
    out.append(("app: cold start", medians["app: cold start"],
                f"≤ {TARGETS['cold_vs_floor'] * medians['floor: cold start']:.2f} s"))  # fmt: skip
    out.append(("Compare from a 5-run link", medians["Compare from a 5-run link"],
                f"≤ {TARGETS['compare_link']:.2f} s"))  # fmt: skip
    out.append(("Draw: first stroke (ms)", medians["Draw: first stroke (ms)"],
                f"≤ {TARGETS['first_stroke_ms']} ms"))  # fmt: skip
    out.append(("server RSS, one session (MB)", mem["one session"], f"≤ {TARGETS['rss_mb']} MB"))
    if "per extra session" in mem:
        out.append(("each extra session (MB)", mem["per extra session"],
                    f"≤ {TARGETS['session_mb']} MB"))  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="fresh servers to measure on")
    parser.add_argument("--sessions", type=int, default=1, help="extra sessions for memory")
    parser.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = parser.parse_args()
    times: dict[str, list[float]] = defaultdict(list)
    memory: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        root = Path(tmp)
        (root / "floor.py").write_text(FLOOR_APP)
        make_store(root / "runs")
        browser = launch_browser(playwright)
        try:
            for _ in range(args.repeats):
                one_pass(browser, root, args.sessions, times, memory)
        finally:
            for server in STARTED:
                stop_app(server)
        browser.close()
    medians = {k: statistics.median(v) for k, v in times.items()}
    mem = {k: statistics.median(v) for k, v in memory.items()}
    if args.json:
        print(json.dumps({"seconds": medians, "memory_mb": mem, "repeats": args.repeats}))
        return
    floor_switch, floor_cold = medians["floor: page switch"], medians["floor: cold start"]
    print(f"{'what':<58} {'median':>8} {'× floor':>8}")
    for what, seconds in medians.items():
        if what.endswith("(ms)"):
            print(f"{what:<58} {seconds:>6.0f}ms")
            continue
        floor = floor_cold if "cold start" in what else floor_switch
        if "link" in what and not what.startswith("floor"):
            floor = medians["floor: table and chart in a new browser"]
        elif what.startswith("floor"):
            floor = seconds
        print(f"{what:<58} {seconds:>7.2f}s {seconds / floor:>8.2f}")
    print(f"\n{'target':<58} {'measured':>9} {'limit':>12}  met")
    for what, value, limit in verdicts(medians, mem):
        bound = float(limit.split()[1])
        print(f"{what:<58} {value:>9.2f} {limit:>12}  {'yes' if value <= bound else 'NO'}")
    print(f"\nmedians of {args.repeats} fresh server(s); {args.sessions} extra session(s)")


if __name__ == "__main__":
    main()
