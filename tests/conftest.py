from __future__ import annotations

import os

import numpy as np
import pytest

from core.data import Dataset, load_dataset
from core.presets import preset
from core.train import fit

# No background warm-up in the tests' app (AppTest) or the servers they start: its thread
# would fill caches that tests clear and patch. tests/test_warmup.py tests it directly.
os.environ["MNIST_WARM_UP"] = "0"


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    return load_dataset()


@pytest.fixture(scope="session")
def small_model_path(mnist, tmp_path_factory) -> str:
    """A model trained for a few seconds on 10,000 images (about 94 % accurate)."""
    cfg = preset("default").replace(train_size=10_000, epochs=3)
    result = fit(cfg, mnist)
    path = tmp_path_factory.mktemp("models") / "small.npz"
    result.model.save(path, meta={"config": cfg.to_dict(), "class_names": list("0123456789")})
    return str(path)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The real app, `streamlit run app.py`, on a free port with an empty run store."""
    from tests.browser import start_app, stop_app

    root = tmp_path_factory.mktemp("app")
    server = start_app(root / "runs", root / "streamlit.log")
    yield server
    stop_app(server)


@pytest.fixture(scope="session")
def browser():
    """Chromium driven by Playwright (the system's Chromium: Playwright's download is not used)."""
    from playwright.sync_api import sync_playwright

    from tests.browser import launch_browser

    with sync_playwright() as playwright:
        chromium = launch_browser(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser page; `page.console` lists console errors and uncaught page errors."""
    from tests.browser import ConsoleLog

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    console = ConsoleLog()
    tab.on(
        "console",
        lambda msg: (
            console.record(msg.text, msg.location.get("url", "")) if msg.type == "error" else None
        ),
    )
    tab.on("pageerror", lambda exc: console.record(str(exc)))
    tab.console = console
    yield tab
    context.close()
