"""The Sweep page through AppTest, with real sweeps in detached background processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.runs import RunStore
from dashboard import sweep_process

REPO = Path(__file__).resolve().parent.parent
WAIT = 120.0  # seconds a tiny sweep may take on a busy machine before the test gives up


@pytest.fixture
def started(monkeypatch) -> list[subprocess.Popen]:
    """Every sweep process the page starts; their process groups are killed at the end."""
    procs: list[subprocess.Popen] = []
    launch = sweep_process._launch

    def recording(*args, **kwargs):
        proc = launch(*args, **kwargs)
        procs.append(proc)
        return proc

    monkeypatch.setattr(sweep_process, "_launch", recording)
    yield procs
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):  # its own session: the sweep's group
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.fixture
def store(monkeypatch, tmp_path) -> RunStore:
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    return RunStore(tmp_path / "runs")


@pytest.fixture
def page(store, started) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/sweep.py").run()
    assert not at.exception
    return at


def fill(at: AppTest, name: str, values: str, epochs: int, train_size: int, seeds: int) -> None:
    at.text_input(key="sweep_name").set_value(name)
    at.number_input(key="sweep_epochs").set_value(epochs)
    at.number_input(key="sweep_train_size").set_value(train_size)
    at.text_input(key="sweep_values_lr").set_value(values)
    at.number_input(key="sweep_seeds").set_value(seeds)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def press(at: AppTest, label: str) -> None:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception


def wait_for(store: RunStore, name: str, done, timeout: float = WAIT) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = store.sweep_runs(name)
        if runs and done(runs):
            return runs
        time.sleep(0.5)
    pytest.fail(f"sweep {name}: {[(r.id, r.status) for r in store.sweep_runs(name)]}")


def texts(at: AppTest) -> str:
    return "\n".join(m.value for m in [*at.markdown, *at.caption, *at.error, *at.warning])


def test_a_tiny_grid_runs_in_the_background_and_is_ranked(page, store, started):
    fill(page, "tiny", "0.1, 0.5", epochs=1, train_size=1000, seeds=2)
    assert "4 runs, about" in texts(page)
    assert "How this is estimated" in texts(page) and "MLP" in texts(page)
    press(page, "Start")
    assert len(started) == 1 and "Sweep tiny started: 4 runs." in page.success[0].value
    runs = wait_for(store, "tiny", lambda rs: len(rs) == 4 and not any(r.active for r in rs))
    assert {r.status for r in runs} == {"finished"}
    assert {(r.config.lr, r.config.seed) for r in runs} == {(0.1, 0), (0.1, 1), (0.5, 0), (0.5, 1)}
    page.run()
    assert "Leaderboard" in texts(page) and "4 of 4 runs finished" in texts(page)
    board = page.dataframe[-1].value
    assert list(board["rank"]) == [1, 2, 3, 4] and set(board["run"]) == {r.id for r in runs}
    # The same name again is refused in the command line's words; nothing is started.
    press(page, "Start")
    assert "sweep 'tiny' already has 4 runs" in texts(page) and len(started) == 1


def test_stop_ends_the_trials_as_stopped_and_resume_finishes_them(page, store, started):
    # 30 epochs on 10,000 images: each trial trains for seconds, several times as long as
    # Stop takes to land, and the three trials Resume runs again still end soon after.
    fill(page, "long", "0.05, 0.1, 0.2", epochs=30, train_size=10_000, seeds=1)
    page.number_input(key="sweep_workers").set_value(1).run()
    press(page, "Start")
    wait_for(store, "long", lambda rs: any(r.status == "running" for r in rs))
    page.run()
    press(page, "Stop")
    runs = wait_for(store, "long", lambda rs: not any(r.active for r in rs))
    assert "stopped" in {r.status for r in runs}
    assert {r.status for r in runs} <= {"stopped", "finished"}
    started[0].wait(timeout=60)
    page.run()
    press(page, "Resume")
    assert len(started) == 2 and "Sweep long resumed." in page.success[0].value
    wait_for(
        store,
        "long",
        lambda rs: sum(r.status == "finished" for r in rs) == 3 and not any(r.active for r in rs),
        timeout=3 * WAIT,
    )
    page.run()
    board = page.dataframe[-1].value
    assert list(board["status"]) == ["finished"] * 3


def test_an_import_fills_the_form_and_a_bad_one_is_explained(page):
    good = b"name: imported\nbase: {preset: default, epochs: 2}\ngrid: {momentum: [0.0, 0.9]}\n"
    page.file_uploader(key="sweep_upload").upload("good.yaml", good).run()
    assert not page.exception and page.text_input(key="sweep_name").value == "imported"
    assert page.multiselect(key="sweep_fields").value == ["momentum"]
    assert "2 runs, about" in texts(page)
    bad = b"name: broken\ngrid: {lr: []}\n"
    page.file_uploader(key="sweep_upload").set_value(("bad.yaml", bad, "application/yaml")).run()
    assert "bad.yaml was not imported: bad.yaml: grid.lr must be a non-empty list" in texts(page)
    assert page.text_input(key="sweep_name").value == "imported"  # nothing lost
    odd = b"name: odd\ngrid: {aug_elastic: [0.0, 34.0]}\nrandom: {lr: {log_uniform: [0.01, 1]}}\n"
    page.file_uploader(key="sweep_upload").set_value(("odd.yaml", odd, "application/yaml")).run()
    assert not page.exception and page.multiselect(key="sweep_fields").value == [
        "aug_elastic",
        "lr",
    ]
    assert page.selectbox(key="sweep_how_lr").value == "log_uniform"
    assert "2 runs, about" in texts(page)  # no trials: in the spec: one draw, as the CLI does


def test_a_bad_scheduler_address_is_refused_before_anything_starts(page, store, started):
    page.radio(key="sweep_where").set_value("A Dask cluster").run()
    page.text_input(key="sweep_scheduler").set_value("my laptop").run()
    press(page, "Start")
    assert "'my laptop' is not a scheduler address" in texts(page)
    assert not started and not store.sweep_runs("lr-sweep")
