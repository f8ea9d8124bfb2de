"""Steering a run from the Train page: buttons, live knobs, event lines, the live view and
Train more, through Streamlit's AppTest on views/train.py (runs made directly in a tmp
store, owned by this process, so no trainer is needed), and the pure figure builders."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import control
from core.architecture import spec_from_config
from core.config import TrainConfig
from core.live import LiveView, read
from core.model import Model
from core.runs import RunStore
from dashboard import curves, live_figures

REPO = Path(__file__).resolve().parent.parent
SMALL = TrainConfig(epochs=2, train_size=1000)


@pytest.fixture
def store(monkeypatch, tmp_path) -> RunStore:
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr("core.worker.ensure_worker", lambda store: None)
    return RunStore(tmp_path / "runs")


def page() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/train.py").run()
    assert not at.exception, at.exception
    return at


def running(store: RunStore, cfg: TrainConfig = SMALL):
    run = store.create(cfg, "steered", status="running", pid=os.getpid())
    store.set_progress(
        run.id,
        {"epoch": 1, "epochs": cfg.epochs, "batch": 3, "batches": 16, "loss": None, "step": 3},
    )
    return store.get(run.id)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_pause_queues_a_pause_command(store):
    run = running(store)
    at = page()
    button(at, "Pause").click().run()
    assert not at.exception
    assert store.take_commands(run.id) == [{"action": "pause"}]


def test_paused_run_offers_resume_and_says_where_it_is(store):
    run = running(store)
    store.set_progress(run.id, {**store.get(run.id).progress, "paused": True})
    at = page()
    assert not any(b.label == "Pause" for b in at.button)
    button(at, "Resume").click().run()
    assert store.take_commands(run.id) == [{"action": "resume"}]
    button(at, "Step 1 batch").click().run()
    button(at, "Step to end of epoch").click().run()
    assert store.take_commands(run.id) == [
        {"action": "step", "batches": 1},
        {"action": "step", "epoch": True},
    ]
    texts = [str(p.proto.text) for p in at.get("progress")]
    assert any("Paused at epoch 1, batch 3 of 16" in t for t in texts)


def test_moving_the_lr_knob_queues_a_set_command(store):
    run = running(store)
    at = page()
    at.select_slider(key=f"knob_lr_{run.id}_0").set_value(0.01).run()
    assert not at.exception
    assert store.take_commands(run.id) == [{"action": "set", "changes": {"lr": 0.01}}]


def test_knobs_follow_the_events_and_hide_what_does_not_apply(store):
    run = running(store, SMALL.replace(optimizer="adam", lr=0.001))
    at = page()
    keys = {w.key for w in at.select_slider} | {w.key for w in at.slider}
    assert f"knob_lr_{run.id}_0" in keys and f"knob_pace_{run.id}_0" in keys
    assert f"knob_momentum_{run.id}_0" not in keys and f"knob_dropout_{run.id}_0" not in keys
    event = {"step": 5, "epoch": 0.3, "time": time.time(), "kind": "set"}
    store.add_events(run.id, [{**event, "detail": {"lr": [0.001, 0.05]}}])
    at.run()
    assert at.select_slider(key=f"knob_lr_{run.id}_1").value == 0.05
    sgd = running(store, SMALL.replace(dropout=0.2))
    at.run()
    at.selectbox(key="train_watch").set_value(sgd.id).run()
    keys = {w.key for w in at.slider}
    assert {f"knob_momentum_{sgd.id}_0", f"knob_dropout_{sgd.id}_0"} <= keys


def live_file(path: Path, cfg: TrainConfig, mnist) -> None:
    view = LiveView(path, mnist)
    view.model = Model(spec_from_config(cfg), seed=0)
    view.write()


def test_the_live_view_is_drawn_while_it_trains(store, mnist):
    run = running(store)
    live_file(run.live_view, run.config, mnist)
    at = page()
    assert not at.exception
    assert any("Watch it learn" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) >= 2


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_live_figures_have_a_tile_per_unit_and_digit(tmp_path, mnist, arch):
    cfg = TrainConfig(arch=arch)
    live_file(tmp_path / "live.npz", cfg, mnist)
    view = read(tmp_path / "live.npz")
    weights = live_figures.live_weights(view)
    tiles = next(t for t in weights.data if t.name == "tiles")
    units = len(view["weights"]) if arch == "mlp" else 2 * min(16, len(view["weights"]))
    assert len(tiles.x) == units and (arch == "cnn" or units >= 32)
    guesses = live_figures.live_guesses(view, mnist.class_names)
    assert len(next(t for t in guesses.data if t.name == "tiles").x) == 10
    wrong = (view["probs"].argmax(1) != view["labels"]).sum()
    texts = [a.text for a in guesses.layout.annotations]
    assert sum(t.startswith("✗") for t in texts) == wrong


def test_event_lines_are_labelled_and_merged():
    rows = [
        {"epoch": e, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5}
        for e in (1, 2, 3)
    ]
    events = [
        {"step": 10, "epoch": 0.5, "time": 0, "kind": "pause", "detail": {}},
        {"step": 11, "epoch": 0.51, "time": 0, "kind": "step", "detail": {"batches": 1}},
        {"step": 12, "epoch": 0.52, "time": 0, "kind": "step", "detail": {"batches": 1}},
        {"step": 40, "epoch": 2.0, "time": 0, "kind": "set", "detail": {"lr": [0.1, 0.01]}},
    ]
    fig = curves.training_curves(rows, events=events, epoch_offset=4)
    lines = [s for s in fig.layout.shapes if s.xref == "x"]
    assert [s.x0 for s in lines] == [4.5, 6.0]
    texts = [a.text for a in fig.layout.annotations]
    assert "paused, step 1 batch ×2" in texts and control.describe(events[3]) in texts
    assert list(fig.data[0].x) == [5, 6, 7]
    assert not curves.training_curves(rows).layout.shapes  # old callers: no lines


def test_train_more_queues_a_continued_run(store):
    run = running(store)
    Model(spec_from_config(run.config), seed=0).save(run.checkpoint)
    store.finish(run.id, "finished", "Done.", best_epoch=2, test_accuracy=0.9, train_seconds=5.0)
    at = page()
    at.number_input(key=f"more_epochs_{run.id}").set_value(3)
    button(at, "Train more").click().run()
    assert not at.exception and not at.error
    new = max(store.runs(), key=lambda r: r.id)
    assert new.parent == run.id and new.config.epochs == 3 and new.epoch_offset == 2
    assert at.session_state["train_watch"] == new.id
