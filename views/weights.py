"""Weights: what the selected network has learned, and how it formed epoch by epoch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from core import analysis
from core.data import Dataset, to_float
from core.model import Model, ModelFileError, load_model
from core.runs import StoreError
from dashboard import images, inspect, state
from dashboard.state import CACHED

CHART_CONFIG = {"displayModeBar": False}
SIGNED = ("tanh", "leaky_relu")  # activations that can be negative


@st.cache_resource(show_spinner="Loading the weights…", max_entries=64)
def _weights_at(path: str, mtime: float) -> tuple[Model, dict[str, Any]]:
    # Only read from (never run) in this page: forward passes use private copies below.
    return load_model(path)


@st.cache_data(
    show_spinner="Running the 10,000 test images through the network…", max_entries=CACHED
)
def _dead_units(path: str, mtime: float, data_key: str, _data: Dataset) -> list[analysis.DeadUnits]:
    model, _ = load_model(path)
    return analysis.dead_units(model, _data.test_images)


@st.cache_data(show_spinner=False, max_entries=256)
def _activations(
    path: str, mtime: float, data_key: str, index: int, _data: Dataset
) -> list[np.ndarray]:
    model, _ = load_model(path)
    return [a[0] for a in model.activations(to_float(_data.test_images[index : index + 1]))]


@st.cache_data(show_spinner=False, max_entries=256)
def _strongest(
    path: str, mtime: float, data_key: str, neuron: int, _data: Dataset
) -> tuple[np.ndarray, np.ndarray]:
    weights, biases = analysis.first_layer_images(_weights_at(path, mtime)[0])
    return analysis.strongest_inputs(weights[neuron], float(biases[neuron]), _data.test_images)


def _on_neuron_click() -> None:
    neuron = inspect.selected_custom(st.session_state.get("weights_grid"))
    if neuron is not None:
        st.session_state["weights_neuron"] = int(neuron)


def _random_digit(n: int) -> None:
    st.session_state["weights_act_index"] = int(np.random.default_rng().integers(n))


st.title("Weights")
choice, model, meta = state.selected_model()
data, data_dir, names = state.model_data(meta)
n_test = len(data.test_labels)

run = None
if choice.run_id is not None:
    try:
        run = state.store().get(choice.run_id)
    except (KeyError, StoreError):  # deleted, or the store broke: the weights still show
        run = None
epochs = run.snapshots() if run is not None else []

path: Path = choice.path
if run is not None and epochs:
    best = meta.get("best_epoch")
    default = best if best in epochs else epochs[-1]
    epoch = st.select_slider(
        "Epoch",
        options=epochs,
        value=default,
        format_func=lambda e: "0 (untrained)" if e == 0 else str(e),
        key=f"weights_epoch_{choice.key}",
        persist_state="session",
        help="The weights as they were after each epoch of training. Epoch 0 is the random start.",
    )
    path = run.snapshot(epoch)
else:
    epoch = None
    if choice.run_id is None:
        st.info(
            "The shipped model was trained without saving its weights after every epoch, so "
            "there is no training to replay here. **Pick a run you trained in the sidebar**, "
            "or train one (it takes under a minute) and come back to watch its neurons form "
            "epoch by epoch. Below are its final weights.",
            icon=":material/history:",
        )
        st.page_link("views/train.py", label="Train a network", icon=":material/model_training:")
    else:
        st.info(
            "This run saved no per-epoch snapshots, so there is nothing to replay: below are "
            "its final weights.",
            icon=":material/history:",
        )

try:
    mtime = path.stat().st_mtime
    net, snapshot_meta = _weights_at(str(path), mtime)
except (ModelFileError, OSError) as exc:
    st.error(
        f"The weights of epoch {epoch} could not be loaded ({exc}). Pick another epoch, or "
        "another model in the sidebar."
    )
    st.stop()
if epoch is not None:
    val = snapshot_meta.get("val_accuracy")
    st.caption(
        ("The untrained network: random weights. " if epoch == 0 else f"After epoch {epoch}. ")
        + (f"Validation accuracy then: {val:.2%}. " if val is not None else "")
        + (
            f"The selected model is the best epoch, {meta['best_epoch']}."
            if meta.get("best_epoch")
            else ""
        )
    )

layers = analysis.describe_layers(net)
first = analysis.first_layer_images(net)
first_tab, layers_tab, activations_tab = st.tabs(
    ["What each neuron looks for", "All layers", "Activations"],
    key="weights_tab",
    on_change="rerun",
    bind="query-params",
)

if first_tab.open:
    with first_tab:
        if first is not None:
            weights, biases = first
            units = len(weights)
            st.markdown(
                f"Each square is one of the **{units} neurons of the first layer**: its "
                f"{weights.shape[1] * weights.shape[2]} weights, one per pixel, laid out like "
                "the image. **Red** pixels excite the neuron when there is ink there, **blue** "
                "ones hold it back, white ones do not matter."
            )
            neuron = int(st.session_state.get("weights_neuron", 0))
            if not 0 <= neuron < units:
                neuron = 0
            grid_col, detail_col = st.columns([3, 2], gap="large")
            with grid_col:
                frame = st.empty()
                if (
                    epochs
                    and len(epochs) > 1
                    and st.button(
                        "Replay training",
                        icon=":material/play_arrow:",
                        help="Show the first layer after every epoch, from the random start.",
                    )
                ):
                    for e in epochs:
                        snapshot = run.snapshot(e)
                        try:
                            frame_net, _ = _weights_at(str(snapshot), snapshot.stat().st_mtime)
                        except (ModelFileError, OSError):
                            st.warning(f"The snapshot of epoch {e} could not be read; skipped it.")
                            continue
                        w, b = analysis.first_layer_images(frame_net)
                        figure = inspect.weight_grid(w, b, tile_px=44)
                        figure.update_layout(title=f"Epoch {e}", margin=dict(t=30))
                        frame.plotly_chart(figure, key=f"weights_replay_{e}", config=CHART_CONFIG)
                        time.sleep(0.6)  # slow enough to see each epoch's features
                # The first ReLU after this layer tells which of its neurons never fire.
                dead = next(
                    (
                        d.dead
                        for d in _dead_units(str(path), mtime, data_dir, data)
                        if d.units == units
                    ),
                    np.array([], dtype=int),
                )
                frame.plotly_chart(
                    inspect.weight_grid(weights, biases, highlight=neuron, dead=dead, tile_px=44),
                    key="weights_grid",
                    on_select=_on_neuron_click,
                    selection_mode="points",
                    config=CHART_CONFIG,
                )
                st.caption(
                    "One colour scale for the whole layer, centred on zero. Hover a neuron for "
                    "its bias; **click one** to see it large."
                    + (
                        f" {len(dead)} of them never fire on the test set (dead): their hover "
                        "says so."
                        if len(dead)
                        else ""
                    )
                )
            with detail_col:
                st.plotly_chart(
                    inspect.weight_image(weights[neuron], title=f"Neuron {neuron}", height=320),
                    key="weights_neuron_large",
                    config=CHART_CONFIG,
                )
                st.metric(
                    "Bias",
                    f"{biases[neuron]:+.3f}",
                    help="Added to the weighted sum of the pixels before the activation: a "
                    "negative bias makes the neuron harder to excite.",
                )
                top, drive = _strongest(str(path), mtime, data_dir, neuron, data)
                st.plotly_chart(
                    inspect.tile_grid(
                        data.test_images[top] / 255,
                        8,
                        hover=[
                            f"test image #{i}: weighted sum {d:+.2f}"
                            for i, d in zip(top, drive, strict=True)
                        ],
                        tile_px=44,
                    ),
                    key="weights_neuron_top",
                    config=CHART_CONFIG,
                )
                st.caption("The test digits that excite this neuron most.")
        else:
            conv = next(
                (info for info in layers if info.kind == "conv2d"),
                None,
            )
            if conv is None:
                st.info("This network has no layer that looks at the pixels directly.")
            else:
                layer = net.layers[conv.index]
                st.markdown(
                    f"The first layer of this convolutional network is **{conv.title}**. Each "
                    "filter is a tiny picture slid over the whole digit: it lights up wherever "
                    "the image looks like it (red: ink wanted, blue: no ink wanted)."
                )
                st.plotly_chart(
                    inspect.conv_filters_figure(layer.params["W"], layer.params["b"], tile_px=72),
                    key="weights_first_filters",
                    config=CHART_CONFIG,
                )
                st.caption("Hover a filter for its bias.")

if layers_tab.open:
    with layers_tab:
        with_weights = [info for info in layers if info.kind in ("dense", "conv2d")]
        st.subheader("Weight and bias distributions")
        st.plotly_chart(
            inspect.histogram_figure(
                [
                    (
                        info.title,
                        net.layers[info.index].params["W"],
                        net.layers[info.index].params["b"],
                    )
                    for info in with_weights
                ]
            ),
            key="weights_histograms",
        )
        constant = [
            info for info in with_weights if np.ptp(net.layers[info.index].params["b"]) < 1e-6
        ]
        note = ""
        if constant:
            # A max-pool between the layer and its batch norm does not change that.
            after = [[lyr.kind for lyr in net.layers[i.index + 1 :]] for i in constant]
            norm = all(
                next((kind for kind in kinds if kind != "maxpool2d"), "") == "batchnorm"
                for kinds in after
            )
            note = (
                f" Not drawn: the biases of {', '.join(info.title for info in constant)}, which "
                "all have the same value"
                + (
                    " (the batch norm after them does their job, so they never move)."
                    if norm
                    else "."
                )
            )
        st.caption(
            "How the values of each layer's weights (left) and biases (right) are spread. "
            "Training typically widens them from the narrow random start." + note
        )

        st.subheader("Neurons that never fire")
        dead = _dead_units(str(path), mtime, data_dir, data)
        kinds = sorted({i.kind for i in layers if i.kind in analysis.ACTIVATIONS})
        if not dead and not kinds:
            st.info("This network has no hidden layer, so it has no hidden neurons to die.")
        elif not dead:
            st.info(
                "This network uses no ReLU, so no neuron can get stuck at zero: "
                f"{', '.join(kinds)} always lets something through."
            )
        else:
            columns = st.columns(len(dead))
            titles = {info.index: info.title for info in layers}
            for column, d in zip(columns, dead, strict=True):
                unit = "channels" if len(net.shapes[d.index + 1]) == 3 else "neurons"
                column.metric(
                    titles[d.index],
                    f"{len(d.dead)} of {d.units} {unit}",
                    help="Units whose ReLU output is zero for every one of the test images: "
                    "they pass nothing on and no longer learn.",
                )
            st.caption(
                f"A ReLU unit that outputs zero for all {n_test:,} test images is **dead**: "
                "it passes nothing on, and since its gradient is zero too, it no longer learns."
            )

        st.subheader("Each layer's weights")
        for info in with_weights:
            layer = net.layers[info.index]
            if info.kind == "dense" and info.index == with_weights[0].index and first is not None:
                continue  # drawn as images on the first tab
            st.markdown(f"**{info.title}**")
            if info.kind == "dense":
                n_in, n_out = layer.params["W"].shape
                st.plotly_chart(
                    inspect.matrix_figure(
                        layer.params["W"],
                        f"input (one of {n_in})",
                        f"neuron (one of {n_out})",
                        height=min(520, max(220, 6 * n_out + 80)),
                    ),
                    key=f"weights_matrix_{info.index}",
                )
                st.caption(
                    "One row per neuron of this layer, one column per neuron feeding it: "
                    "red connections excite, blue ones inhibit."
                )
            else:
                st.plotly_chart(
                    inspect.conv_filters_figure(layer.params["W"], layer.params["b"]),
                    key=f"weights_filters_{info.index}",
                    config=CHART_CONFIG,
                )
                st.caption(
                    "One row per filter, one small image per input channel it reads."
                    if layer.params["W"].shape[2] > 1
                    else "One small image per filter."
                )

if activations_tab.open:
    with activations_tab:
        pick, shuffle, _ = st.columns([2, 1, 3], vertical_alignment="bottom")
        index = pick.number_input(
            f"Test image (0 to {n_test - 1:,})", 0, n_test - 1, 0, 1, key="weights_act_index",
            bind="query-params", persist_state="session",
        )  # fmt: skip
        shuffle.button(
            "Random digit", icon=":material/casino:", on_click=_random_digit, args=(n_test,)
        )
        outputs = _activations(str(path), mtime, data_dir, int(index), data)
        true_name = names[data.test_labels[index]]
        probs = np.exp(outputs[-1] - outputs[-1].max())
        probs /= probs.sum()
        left, right = st.columns([1, 2], gap="large")
        with left:
            st.plotly_chart(
                images.digit(data.test_images[index] / 255, height=220),
                key="weights_act_digit",
                config=CHART_CONFIG,
            )
            st.plotly_chart(
                images.probability_bars(
                    probs,
                    names,
                    highlight=int(probs.argmax()),
                    title=f"A {true_name}, read as {names[int(probs.argmax())]}",
                ),
                key="weights_act_probs",
                config=CHART_CONFIG,
            )
        with right:
            titles = {info.index: info.title for info in layers}
            hidden = analysis.activation_layers(net)[:-1]
            if not hidden:
                st.info(
                    "This network has no hidden layer: each pixel is weighed directly into the "
                    "ten output scores, so the only activations are the probabilities."
                )
            for i in hidden:
                out = outputs[i]
                st.markdown(f"**{titles[i]}**")
                if out.ndim == 3:
                    channels = out.shape[-1]
                    size = 80 if channels <= 8 else 56 if channels <= 16 else 40
                    figure = inspect.feature_maps(out, cols=min(16, channels), tile_px=size)
                else:
                    figure = inspect.neuron_grid(out, signed=net.layers[i].kind in SIGNED)
                st.plotly_chart(figure, key=f"weights_act_{i}", config=CHART_CONFIG)
            if hidden:
                st.caption(
                    "Each square is one neuron's output for this digit, brighter for stronger; "
                    "the last layer turns them into the probabilities on the left."
                )
