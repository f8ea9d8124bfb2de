"""Shared pieces for browser tests: the real app served by `streamlit run`, and Chromium.

Use the `app_server` and `browser_page` fixtures (registered in conftest.py). A test
that finds no Chromium fails with the command that installs it; it never skips.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppServer:
    url: str
    runs_dir: Path
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_app(
    runs_dir: Path, log: Path, timeout: float = 60.0, script: Path | str = "app.py"
) -> AppServer:
    """Start `streamlit run app.py` (or `script`) on a free port with its own run store; wait
    until healthy."""
    port = free_port()
    env = {**os.environ, "MNIST_RUNS_DIR": str(runs_dir), "PYTHONPATH": str(REPO)}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
             "--server.headless", "true", "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return AppServer(url, runs_dir, process, log)
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"streamlit did not become healthy in {timeout}s:\n{log.read_text()}")


def stop_app(server: AppServer) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, 15)
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, 9)


def require_chromium() -> str:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(
            f"No Chromium at {CHROMIUM}. Install it with `apt-get install -y chromium` "
            "(.ci/run does), or point $CHROMIUM at one."
        )
    return CHROMIUM


@dataclass
class ConsoleLog:
    """Browser console errors and uncaught page errors, minus Streamlit's own URL probes."""

    errors: list[str] = field(default_factory=list)

    def record(self, text: str, location_url: str = "") -> None:
        # Loading a page's URL makes Streamlit's front end probe <page>/_stcore/... and log
        # 404s that are not the app's fault; exactly those are ignored.
        if "/_stcore/" in location_url and "404" in text:
            return
        if "Failed to load resource" in text and "/_stcore/" in location_url:
            return
        self.errors.append(text)


APP_SETTLED = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app && app.getAttribute('data-test-script-state') === 'notRunning'
        && !document.querySelector('[data-testid="stSkeleton"]')
        && !document.querySelector('[data-stale="true"]');
}"""


# Counts every change of the script's state from now on (once per document): a rerun that
# starts and ends before `after` looks still shows as a change.
WATCH_SCRIPT_STATE = """() => {
    if (window.__scriptStateChanges === undefined) {
        window.__scriptStateChanges = 0;
        new MutationObserver((records) => { window.__scriptStateChanges += records.length; })
            .observe(document, {subtree: true, attributes: true,
                                attributeFilter: ['data-test-script-state']});
    }
    return window.__scriptStateChanges;
}"""
# A rerun has begun since `seen` changes were counted: the state changed since, or it is
# not 'notRunning' now (a new document has no count: a navigation is a rerun too).
RERUN_BEGUN = """(seen) => window.__scriptStateChanges !== seen
    || document.querySelector('[data-testid="stApp"]')
        ?.getAttribute('data-test-script-state') !== 'notRunning'"""


def wait_for_app(page, timeout: float = 30_000) -> None:
    """Wait until Streamlit has finished running the script and drawn every element.

    The app's root carries the script's state; widgets still loading their code show as
    skeletons for a moment after the script has finished, and stale elements are greyed.
    """
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    # Settled twice, 300 ms apart: a rerun that was about to start has begun by the second look.
    page.wait_for_function(APP_SETTLED, timeout=timeout)
    page.wait_for_timeout(300)
    page.wait_for_function(APP_SETTLED, timeout=timeout)


def after(page, action, timeout: float = 30_000) -> None:
    """Do `action` (a click, a key press) and wait for the rerun it causes to finish."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    seen = page.evaluate(WATCH_SCRIPT_STATE)
    action()
    # A rerun over before this looks counts as begun; an action that starts none waits 1.5 s.
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function(RERUN_BEGUN, arg=seen, timeout=1500)
    wait_for_app(page, timeout)


def exception_boxes(page) -> list[str]:
    """The text of every Streamlit exception box on the page."""
    return [e.inner_text() for e in page.query_selector_all('[data-testid="stException"]')]


def touch_stroke(context, page, box, path, steps: int = 8) -> None:
    """Draw with a finger, as a phone or tablet reports it: touch down at `path[0]` (px from
    the top left of `box`), slide through the other points in `steps` moves each, lift.

    Touch events go through the DevTools protocol: Playwright's own touch API taps only.
    """
    cdp = context.new_cdp_session(page)

    def touch(kind: str, x: float = 0, y: float = 0) -> None:
        points = [] if kind == "touchEnd" else [{"x": box["x"] + x, "y": box["y"] + y}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", *path[0])
    for (x0, y0), (x1, y1) in itertools.pairwise(path):
        for i in range(1, steps):
            t = i / (steps - 1)
            touch("touchMove", x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
    touch("touchEnd")


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_FLAGS)


def browser_context(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context
    context.close()
