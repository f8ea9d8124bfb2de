"""A broken run store in the real app (AppTest and Chromium): the pages that do not need it
work untouched, the pages that do show one message saying what is wrong and what to do,
unreadable rows are skipped and listed, and a database deleted at run time comes back."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import expect
from streamlit.testing.v1 import AppTest

from core.config import TrainConfig
from core.recorder import train_run
from core.runs import DB_NAME, RunStore
from tests.browser import after, exception_boxes, start_app, stop_app, wait_for_app

REPO = Path(__file__).resolve().parent.parent
STORE_MESSAGE = "Your training runs cannot be used right now"
EVERY_PAGE = ["home", "draw", "train", "evaluate", "weights", "data", "compare"]
NEEDS_STORE = {"train", "compare"}


def open_page(runs: Path, page: str, **params: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    if page != "home":
        at.switch_page(f"views/{page}.py").run()
    return at


def store_messages(at: AppTest) -> list[str]:
    return [e.value for e in at.error if STORE_MESSAGE in e.value]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, mnist) -> tuple[Path, int]:
    """A store holding one small finished run; returns (runs folder, run id)."""
    root = tmp_path_factory.mktemp("faults") / "runs"
    store = RunStore(root)
    cfg = TrainConfig(train_size=1000, val_size=500, epochs=1)
    run = store.create(cfg, "tiny", status="running", pid=os.getpid())
    train_run(store, run, mnist)
    return root, run.id


def garbage_store(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / DB_NAME).write_bytes(b"this is not a database, just bytes " * 100)
    return root


@pytest.mark.parametrize("page", EVERY_PAGE)
def test_a_garbage_store_takes_down_only_what_needs_it(monkeypatch, tmp_path, page):
    root = garbage_store(tmp_path / "runs")
    monkeypatch.setenv("MNIST_RUNS_DIR", str(root))
    at = open_page(root, page)
    assert not at.exception, [e.value for e in at.exception]
    if page in NEEDS_STORE:
        (message,) = store_messages(at)
        assert "is not a run store database" in message or "not a database" in message
    else:
        assert not at.error, [e.value for e in at.error]
        # The sidebar says why no trained runs are listed, and still offers the shipped models.
        assert at.sidebar.selectbox(key="model").options[:2] == [
            "Default model (shipped CNN)",
            "Shipped MLP (784-128-64-10)",
        ]
        assert any("Trained runs are not listed" in c.value for c in at.sidebar.caption)


def test_a_database_deleted_while_the_app_runs_is_recreated(monkeypatch, tmp_path):
    root = tmp_path / "runs"
    monkeypatch.setenv("MNIST_RUNS_DIR", str(root))
    at = open_page(root, "train")
    assert not at.exception and not store_messages(at)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{root / DB_NAME}{suffix}").unlink(missing_ok=True)
    at.switch_page("views/compare.py").run()
    assert not at.exception and not store_messages(at), [e.value for e in at.error]
    at.switch_page("views/train.py").run()
    assert not at.exception and not store_messages(at)
    assert (root / DB_NAME).exists()
    assert RunStore(root).runs() == []


def test_a_row_from_a_newer_version_is_skipped_and_listed(monkeypatch, tmp_path, finished_run):
    source, _ = finished_run
    root = tmp_path / "runs"
    RunStore(root)  # an empty store of this version's schema
    with sqlite3.connect(source / DB_NAME) as src, sqlite3.connect(root / DB_NAME) as dst:
        row = src.execute("SELECT name, status, config, created, dir FROM runs").fetchone()
        dst.execute(
            "INSERT INTO runs (name, status, config, created, dir) VALUES (?, ?, ?, ?, ?)", row
        )
        future = {**json.loads(row[2]), "quantum_dropout": 0.5}
        dst.execute(
            "INSERT INTO runs (name, status, config, created, dir) VALUES (?, ?, ?, ?, ?)",
            ("from the future", "finished", json.dumps(future), row[3], "x"),
        )
    monkeypatch.setenv("MNIST_RUNS_DIR", str(root))
    for page in ("train", "compare"):
        at = open_page(root, page)
        assert not at.exception and not store_messages(at), page
        notes = [w.value for w in at.warning if "could not be read" in w.value]
        assert len(notes) == 1, (page, [w.value for w in at.warning], [e.value for e in at.error])
        (note,) = notes
        assert "#2" in note and "quantum_dropout" in note
    at = open_page(root, "home")
    assert not at.exception and not at.error


@pytest.mark.browser
def test_home_and_draw_work_in_a_browser_with_a_garbage_store(tmp_path, browser):
    root = garbage_store(tmp_path / "runs")
    server = start_app(root, tmp_path / "streamlit.log")
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(server.url)
        wait_for_app(page)
        assert exception_boxes(page) == []
        expect(page.locator("h1").first).to_contain_text("See a neural network learn")
        after(page, page.get_by_role("button", name="Draw a digit").click)
        canvas = page.locator("canvas.upper-canvas")
        expect(canvas).to_be_visible()
        box = canvas.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.52, box["y"] + box["height"] * 0.17)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.49, box["y"] + box["height"] * 0.84, steps=10)
        after(page, page.mouse.up)
        expect(page.locator(".st-key-draw_answer h1")).to_have_text("1", timeout=10_000)
        assert exception_boxes(page) == []
        nav = page.locator('[data-testid="stSidebarNav"]')
        after(page, nav.get_by_role("link", name="Train").click)
        expect(page.get_by_text(STORE_MESSAGE)).to_be_visible()
        assert exception_boxes(page) == []
        context.close()
    finally:
        stop_app(server)


def test_a_read_only_store_is_shown_and_starting_a_run_says_why_not(
    monkeypatch, tmp_path, finished_run
):
    from tests.test_store_faults import read_only

    source, run_id = finished_run
    root = tmp_path / "runs"
    shutil.copytree(source, root)
    monkeypatch.setenv("MNIST_RUNS_DIR", str(root))
    with read_only(root / DB_NAME, root):
        at = open_page(root, "train")
        assert not at.exception and not store_messages(at), [e.value for e in at.error]
        assert at.selectbox(key="train_watch").value == run_id  # its runs are still shown
        next(b for b in at.button if b.label == "Start").click().run()
        assert not at.exception
        (message,) = [e.value for e in at.error if "could not be started" in e.value]
        assert "read-only" in message
        at.switch_page("views/compare.py").run()
        assert not at.exception and not store_messages(at)
        options = at.selectbox(key="model").options
        assert any(o.startswith(f"#{run_id} tiny") for o in options), options
