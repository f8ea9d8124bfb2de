"""The replay of how a first layer formed: its frames from a real stored run's snapshots
and from the shipped files, the file they are kept in, the figure that plays them, and the
figure playing and scrubbed in Chromium."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from core import analysis
from core.config import TrainConfig
from core.model_load import load_model
from core.recorder import train_run
from core.replay import (
    MAX_UNITS,
    Moment,
    ReplayError,
    load_replay,
    moment_label,
    moments,
    replay_beside,
    replay_moments,
    replay_of_run,
    save_replay,
    snapshot_path,
)
from core.runs import RunStore
from dashboard import weights_figures
from tests.browser import exception_boxes, wait_for_app

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "data" / "models"
SHIPPED = [("default.npz", "conv2d", 16), ("mlp.npz", "dense", 128)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist):
    """A run store with a small MLP run (3 epochs of 32 batches) and a small CNN run."""
    store = RunStore(tmp_path_factory.mktemp("replay") / "runs")
    configs = {
        "mlp": TrainConfig(train_size=1000, batch_size=32, epochs=3),
        "cnn": TrainConfig(
            arch="cnn", conv=[4, 8], hidden=[16], padding="valid", lr=0.5, train_size=500, epochs=2
        ),
    }
    trained = {}
    for name, config in configs.items():
        run = store.create(config, name, status="running", pid=os.getpid())
        train_run(store, run, mnist)
        trained[name] = store.get(run.id)
    return trained


def first_layer(path: Path) -> np.ndarray:
    """The first layer of the model saved at `path`, one picture per unit."""
    model, _ = load_model(path)
    return analysis.first_layer_pictures(model)[1]


# Which moments, and their words


def test_moments_in_words_and_in_training_order():
    assert moment_label(Moment(0)) == "untrained"
    assert moment_label(Moment(0, 1)) == "after 1 batch"
    assert moment_label(Moment(0, 64)) == "after 64 batches"
    assert moment_label(Moment(3), 0.97801) == "epoch 3 · 97.8 % val"
    assert moment_label(Moment(3), float("nan")) == "epoch 3"
    shuffled = [Moment(2), Moment(0, 4), Moment(1), Moment(0), Moment(0, 1)]
    assert sorted(shuffled) == [Moment(0), Moment(0, 1), Moment(0, 4), Moment(1), Moment(2)]


def test_a_long_run_replays_every_early_moment_and_a_few_epochs_denser_early():
    found = sorted([Moment(e) for e in range(61)] + [Moment(0, 2**k) for k in range(9)])
    picked = replay_moments(found, best_epoch=57)
    assert picked[:10] == [Moment(0)] + [Moment(0, 2**k) for k in range(9)]
    epochs = [m.epoch for m in picked[10:]]
    assert epochs[:3] == [1, 2, 3] and epochs[-1] == 60 and 57 in epochs
    assert epochs == sorted(set(epochs)) and len(epochs) <= 15
    assert sum(e <= 15 for e in epochs) > len(epochs) / 2  # most in the first quarter
    short = sorted([Moment(e) for e in range(13)] + [Moment(0, 1)])
    assert replay_moments(short) == short  # 12 epochs: all of them


# A stored run's replay


def test_an_mlp_runs_replay_is_its_snapshots_in_training_order(runs):
    run = runs["mlp"]
    found = moments(run)
    assert found[:4] == [Moment(0), Moment(0, 1), Moment(0, 2), Moment(0, 4)]  # the recorder's
    assert found[-3:] == [Moment(1), Moment(2), Moment(3)]
    replay = replay_of_run(run)
    assert replay.layer == "dense" and replay.layer_units == 128
    assert replay.units.tolist() == list(range(MAX_UNITS))
    assert replay.weights.shape == (len(found), MAX_UNITS, 28, 28)
    assert replay.weights.dtype == np.float16 and replay.unreadable == ()
    for i, moment in enumerate(found):
        _, meta = load_model(snapshot_path(run, moment))
        assert replay.labels[i] == moment_label(moment, meta.get("val_accuracy"))
        weights = first_layer(snapshot_path(run, moment))[:MAX_UNITS]
        np.testing.assert_allclose(replay.weights[i], weights, rtol=1e-3, atol=1e-6)
    assert replay.labels[0] == "untrained" and replay.labels[1] == "after 1 batch"
    assert replay.labels[-1].startswith("epoch 3 · ") and replay.labels[-1].endswith(" % val")
    assert not np.array_equal(replay.weights[0], replay.weights[-1])


def test_a_cnn_runs_replay_is_its_first_filters(runs):
    run = runs["cnn"]
    replay = replay_of_run(run)
    assert replay.layer == "conv2d" and replay.layer_units == 4
    assert replay.weights.shape[1:] == (4, 3, 3) and len(replay.labels) == len(moments(run))
    model, _ = load_model(run.checkpoint)
    W = model.layers[0].params["W"]  # (3, 3, 1, 4)
    best = replay.labels.index(next(t for t in replay.labels if t.startswith("epoch 2")))
    np.testing.assert_allclose(replay.weights[best], W[:, :, 0, :].transpose(2, 0, 1), rtol=1e-3)


def test_an_unreadable_snapshot_is_left_out_and_named(runs, tmp_path):
    run = runs["mlp"]
    broken = snapshot_path(run, Moment(0, 2))

    def load(path: Path):
        if path == broken:
            raise OSError("gone")
        return load_model(path)

    replay = replay_of_run(run, load=load)
    assert replay.unreadable == ("after 2 batches",)
    assert "after 2 batches" not in replay.labels and len(replay.labels) == len(moments(run)) - 1


def test_a_replay_file_holds_what_was_saved_and_refuses_what_is_not_one(runs, tmp_path):
    replay = replay_of_run(runs["mlp"])
    path = save_replay(replay, tmp_path / "mlp.replay.npz")
    back = load_replay(path)
    assert back.layer == replay.layer and back.layer_units == replay.layer_units
    assert back.labels == replay.labels
    np.testing.assert_array_equal(back.weights, replay.weights)
    np.testing.assert_array_equal(back.units, replay.units)
    np.testing.assert_array_equal(back.val_accuracy, replay.val_accuracy)
    with pytest.raises(ReplayError, match="has no "):
        load_replay(MODELS / "mlp.npz")  # a model file is not a replay
    with np.load(path) as npz:
        arrays = dict(npz)
    np.savez(tmp_path / "short.npz", **{**arrays, "labels": arrays["labels"][:-1]})
    with pytest.raises(ReplayError, match="not one label per frame"):
        load_replay(tmp_path / "short.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ReplayError, match="is not a replay file"):
        load_replay(tmp_path / "junk.npz")


# The shipped files


@pytest.mark.parametrize(("name", "layer", "units"), SHIPPED)
def test_a_shipped_models_replay_ends_in_its_weights(name, layer, units):
    model_path = MODELS / name
    replay = load_replay(replay_beside(model_path))
    model, meta = load_model(model_path)
    assert replay.layer == layer and replay.layer_units == units
    assert replay.labels[:3] == ("untrained", "after 1 batch", "after 2 batches")
    assert 15 <= len(replay.labels) <= 26
    # The frame of the best epoch is the shipped model's first layer, with its accuracy.
    best = [i for i, t in enumerate(replay.labels) if t.startswith(f"epoch {meta['best_epoch']} ")]
    assert len(best) == 1
    shipped = analysis.first_layer_pictures(model)[1][replay.units]
    np.testing.assert_allclose(replay.weights[best[0]], shipped, rtol=1e-3, atol=1e-6)
    assert replay.val_accuracy[best[0]] == pytest.approx(meta["val_accuracy"])
    assert replay.labels[-1].startswith(f"epoch {meta['epochs']} ")


def test_the_shipped_replays_are_small():
    sizes = [replay_beside(MODELS / name).stat().st_size for name, _, _ in SHIPPED]
    assert sum(sizes) < 8 * 2**20


# The figure


def test_the_replay_figure_plays_every_frame_and_its_slider_follows(runs):
    replay = replay_of_run(runs["mlp"])
    figure = weights_figures.replay_figure(replay)
    frames = len(replay.labels)
    assert [f.name for f in figure.frames] == [str(i) for i in range(frames)]
    (slider,) = figure.layout.sliders
    assert [s.label for s in slider.steps] == list(replay.labels)
    assert [list(s.args[0]) for s in slider.steps] == [[str(i)] for i in range(frames)]
    assert all(s.method == "animate" for s in slider.steps)
    play, pause = figure.layout.updatemenus[0].buttons
    assert play.args[0] is None and play.args[1]["fromcurrent"]  # from the frame on show
    assert list(pause.args[0]) == [None]  # Plotly's way to stop an animation
    tiles = next(t for t in figure.data if t.name == "tiles")
    assert list(tiles.customdata) == replay.units.tolist()
    for i, frame in enumerate(figure.frames):
        z = np.asarray(frame.data[0].z)
        assert z.dtype == np.uint8 and z.shape == (8 * 29 - 1, 8 * 29 - 1)
        weights = replay.weights[i].astype(np.float32)
        strong = np.percentile(np.abs(weights), 99.5) / 4
        for j in range(0, MAX_UNITS, 7):
            r, c = divmod(j, 8)
            tile = z[r * 29 : r * 29 + 28, c * 29 : c * 29 + 28].astype(int)
            assert np.all(tile[weights[j] > strong] > 128)  # red: excites
            assert np.all(tile[weights[j] < -strong] < 128)  # blue: holds back
            assert np.all(tile >= 1)
        assert np.all(z[28::29] == 0) and np.all(z[:, 28::29] == 0)  # the see-through gaps
    np.testing.assert_array_equal(figure.data[0].z, figure.frames[0].data[0].z)
    per_frame = len(json.dumps(figure.to_plotly_json()["frames"][0], default=str))
    assert per_frame < 100_000  # a byte a pixel, base64: a 25-frame replay is about 2 MB


# In the browser


# The replay's slider label and a checksum of the picture Plotly draws now.
ON_SHOW = """() => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')].find(p => p.layout.sliders);
    const label = plot.querySelector('.slider-container g.slider-group > text').textContent;
    let sum = 0, i = 0;
    for (const row of plot._fullData[0].z) for (const v of row) sum += v * (i++ % 251 + 1);
    return {label, sum};
}"""


def checksum(z: np.ndarray) -> int:
    """ON_SHOW's checksum of a frame's picture."""
    flat = np.asarray(z, dtype=np.int64).ravel()
    return int((flat * (np.arange(flat.size) % 251 + 1)).sum())


@pytest.mark.browser
def test_the_shipped_mlps_replay_plays_pauses_and_scrubs_in_the_browser(app_server, page):
    replay = load_replay(replay_beside(MODELS / "mlp.npz"))
    figure = weights_figures.replay_figure(replay, tile_px=56)
    frame_of = {checksum(f.data[0].z): i for i, f in enumerate(figure.frames)}
    assert len(frame_of) == len(replay.labels)  # every frame tells itself apart

    def shown() -> tuple[int, str]:
        """The frame on show, and the label over the slider."""
        now = page.evaluate(ON_SHOW)
        return frame_of[now["sum"]], now["label"]

    page.goto(f"{app_server.url}/weights?model=mlp&weights_tab=Replay+of+training")
    wait_for_app(page)
    page.wait_for_selector(".slider-container", timeout=30_000)
    assert shown() == (0, "untrained")

    page.locator(".updatemenu-button", has_text="Play").click()
    seen = []
    for _ in range(12):
        page.wait_for_timeout(200)
        frame, label = shown()
        assert label == replay.labels[frame]  # the slider follows the frames
        seen.append(frame)
    assert seen == sorted(seen) and seen[-1] >= 2  # it plays, forward

    page.locator(".updatemenu-button", has_text="Pause").click()
    page.wait_for_timeout(300)
    paused = shown()
    page.wait_for_timeout(1500)
    assert shown() == paused  # and stays paused

    # Dragging the handle past the end shows the last frame; a click at the start the first.
    # (Scrolled to first, as a person would: the mouse reaches only what is on screen.)
    page.locator(".slider-container").scroll_into_view_if_needed()
    rail = page.locator(".slider-container rect.slider-rail-rect").bounding_box()
    grip = page.locator(".slider-container rect.slider-grip-rect").bounding_box()
    page.mouse.move(grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2)
    page.mouse.down()
    page.mouse.move(rail["x"] + rail["width"] + 20, rail["y"] + rail["height"] / 2, steps=8)
    page.mouse.up()
    page.wait_for_timeout(500)
    last = len(replay.labels) - 1
    assert shown() == (last, replay.labels[last])
    page.mouse.click(rail["x"] + 2, rail["y"] + rail["height"] / 2)
    page.wait_for_timeout(500)
    assert shown() == (0, "untrained")
    assert exception_boxes(page) == []
    # Pausing or scrubbing interrupts Play, and Plotly rejects Play's promise, which its own
    # buttons never handle: the browser reports that as an uncaught "undefined". Nothing else.
    assert [e for e in page.console.errors if e != "undefined"] == []


def test_a_continued_run_counts_its_moments_on_from_its_parent():
    assert moment_label(Moment(0), offset=3) == "start (epoch 3, trained before)"
    assert moment_label(Moment(2), 0.975, offset=3) == "epoch 5 · 97.5 % val"
    assert moment_label(Moment(0, 4), offset=3) == "after 4 batches more"
    assert moment_label(Moment(0)) == "untrained" and moment_label(Moment(2)) == "epoch 2"
