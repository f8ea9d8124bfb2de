"""The lab bench in Chromium: pause a training run, step it, turn its learning-rate knob and
see the event on the chart, watch its first layer change, resume it to the end."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from core import control
from core.config import TrainConfig
from core.runs import RunStore
from core.worker import ensure_worker
from tests.browser import after, exception_boxes, start_app, stop_app, wait_for_app

# 5,000 images in batches of 100: 50 batches an epoch, a few seconds for all three epochs.
CFG = TrainConfig(train_size=5000, val_size=1000, epochs=3, batch_size=100, schedule="constant")


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    server = start_app(root / "runs", root / "streamlit.log")
    yield server
    stop_app(server)


def step_count(store: RunStore, run_id: int) -> int:
    return store.get(run_id).progress.get("step", -1)


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.browser
def test_pause_step_turn_the_lr_knob_and_resume_from_the_page(lab_server, page):
    store = RunStore(lab_server.runs_dir)
    run = store.create(CFG, "lab bench")
    control.send(store, run.id, control.command("pause"))  # held as soon as it starts
    # Slow motion, 10 batches a second, so it is still training when Pause is pressed.
    control.send(store, run.id, control.command("set", pace=10))
    ensure_worker(store)
    wait_until(lambda: store.get(run.id).paused)
    page.goto(lab_server.url + "/train")
    wait_for_app(page)
    expect(page.get_by_text(re.compile(r"Paused at epoch 1"))).to_be_visible(timeout=15_000)

    # Resume, then Pause: the batch counter stops.
    after(page, page.get_by_role("button", name="Resume").click)
    wait_until(lambda: not store.get(run.id).paused and step_count(store, run.id) > 0)
    after(page, page.get_by_role("button", name="Pause").click)
    wait_until(lambda: store.get(run.id).paused)
    held = step_count(store, run.id)
    time.sleep(1.0)
    assert step_count(store, run.id) == held
    expect(page.get_by_role("button", name="Resume")).to_be_visible(timeout=10_000)

    # The live weights, then Step: exactly one batch more, and the pictures change.
    weights = page.locator(f".st-key-live_weights_{run.id}")
    expect(weights).to_be_visible(timeout=10_000)
    before = weights.screenshot()
    after(page, page.get_by_role("button", name="Step 1 batch").click)
    wait_until(lambda: step_count(store, run.id) == held + 1 and store.get(run.id).paused)
    after(page, page.get_by_role("button", name="Step to end of epoch").click)
    wait_until(lambda: store.get(run.id).paused and store.get(run.id).progress["batch"] == 50)
    page.wait_for_timeout(2500)  # the live view is rewritten when held; the page each second
    assert weights.screenshot() != before, "the first layer's pictures did not change"

    # The learning-rate knob, one notch down: an event (and below, its line on the chart).
    knob = page.locator('[class*="st-key-knob_lr_"] [tabindex="0"]').first
    knob.focus()
    after(page, lambda: knob.press("ArrowLeft"))
    wait_until(lambda: any("lr" in e["detail"] for e in store.events(run.id)))
    (event,) = [e for e in store.events(run.id) if "lr" in e["detail"]]
    old, new = event["detail"]["lr"]
    assert old == 1.0 and new < old
    # Resume to the end, at full speed: the batches after the event trained with the new rate.
    control.send(store, run.id, control.command("set", pace=0))
    after(page, page.get_by_role("button", name="Resume").click)
    wait_until(lambda: store.get(run.id).status == "finished", timeout=90)
    lrs = {step: lr for step, _, lr in store.batch_lrs(run.id)}
    assert lrs[event["step"]] == old and lrs[event["step"] + 1] == pytest.approx(new)
    # The charts appear with the first whole epoch; the event has its labelled line there.
    label = control.describe(event)
    expect(page.locator(f".st-key-curves_{run.id}").get_by_text(label).first).to_be_visible(
        timeout=15_000
    )
    assert exception_boxes(page) == []
