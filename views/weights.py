"""Weights: what the selected network has learned, and a replay of how its first layer formed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from core import analysis, replay
from core.config import ACTIVATIONS
from core.data import Dataset
from core.losses import softmax
from core.model import Model, ModelFileError
from core.runs import Run
from dashboard import computed, images, presentation, state, weights_figures
from dashboard.grids import CHART_CONFIG, CLICKABLE, selected_custom

SIGNED = ("tanh", "leaky_relu")  # activations that can be negative
IN_URL_AND_SESSION = {"bind": "query-params", "persist_state": "session"}


@dataclass(frozen=True)
class Shown:
    """The network on show (the selected model, or one epoch's snapshot of it) and its data."""

    net: Model
    key: state.FileKey  # its file, for the cached computations
    data: Dataset
    data_dir: str
    names: list[str]  # the classes
    titles: dict[int, str]  # a readable title per layer index


def _on_neuron_click() -> None:
    neuron = selected_custom(st.session_state.get("weights_grid"))
    if neuron is not None:
        st.session_state["weights_neuron"] = int(neuron)


def _random_digit(n: int) -> None:
    st.session_state["weights_act_index"] = int(np.random.default_rng().integers(n))


def pick_moment(
    choice: state.ModelChoice, run: Run | None, moments: list[replay.Moment], best: int | None
) -> replay.Moment | None:
    """The slider of the run's snapshots, when it saved them; else a note on why there is none."""
    if run is not None and moments:
        best_moment = replay.Moment(best) if best is not None else None
        return st.select_slider(
            "Weights at",
            options=moments,
            value=best_moment if best_moment in moments else moments[-1],
            format_func=lambda m: replay.moment_label(m, offset=run.epoch_offset),
            key=f"weights_epoch_{choice.key}",
            persist_state="session",
            help="The weights as they were at the random start, after the first 1, 2, 4, … "
            "batches (a batch is a handful of images the network learns from at once), and "
            "after each epoch (one pass over all the training images).",
        )
    if choice.run_id is None:
        st.info(
            "The shipped model comes with its final weights only, shown here; **Replay of "
            "training** plays how its first layer formed. To step through its weights after "
            "every pass over the training images (epoch), **pick a run you trained in the "
            "sidebar**, or train one (it takes under a minute).",
            icon=":material/history:",
        )
        st.page_link("views/train.py", label="Train a network", icon=":material/model_training:")
    else:
        st.info(
            "This run saved no snapshots of its weights along the way, so there is nothing to "
            "replay: below are its final weights.",
            icon=":material/history:",
        )
    return None


def neurons_tab(shown: Shown) -> None:
    net, data = shown.net, shown.data
    first = analysis.first_layer_images(net)
    if first is None:
        first_filters(shown)
        return
    weights, biases = first
    units = len(weights)
    st.markdown(
        f"Each square is one of the **{units} neurons of the first layer**: its "
        f"{weights.shape[1] * weights.shape[2]} weights, one per pixel, laid out like the "
        "image. **Red** pixels excite the neuron when there is ink there, **blue** ones hold "
        "it back, white ones do not matter."
    )
    neuron = int(st.session_state.get("weights_neuron", 0))
    if not 0 <= neuron < units:
        neuron = 0
    grid_column, detail_column = st.columns([3, 2], gap="large")
    with grid_column:
        dead_units = computed.dead_units(shown.key, shown.data_dir)
        dead = analysis.dead_after(net, dead_units, analysis.weighted_layers(net)[0])
        st.plotly_chart(
            weights_figures.weight_grid(weights, biases, highlight=neuron, dead=dead, tile_px=44),
            key="weights_grid",
            on_select=_on_neuron_click,
            **CLICKABLE,
        )
        st.caption(weights_figures.grid_caption(len(dead)))
    with detail_column:
        figure = weights_figures.weight_image(weights[neuron], title=f"Neuron {neuron}", height=320)
        st.plotly_chart(figure, key="weights_neuron_large", config=CHART_CONFIG)
        st.metric(
            "Head start (bias)",
            f"{biases[neuron]:+.3f}",
            help="A number the neuron adds to its weighted sum of the pixels before passing "
            "it on: a negative bias makes the neuron harder to excite.",
        )
        top, drive = computed.strongest(shown.key, shown.data_dir, neuron)
        figure = weights_figures.strongest_grid(data.test_images, top, drive)
        st.plotly_chart(figure, key="weights_neuron_top", config=CHART_CONFIG)
        st.caption("The test digits that excite this neuron most.")


def replay_tab(choice: state.ModelChoice, run: Run | None) -> None:
    """The first layer from the random start to the end of training, played in the browser."""
    frames = replay_of(choice, run)
    if frames is None:
        st.info(
            "There is no training to replay for this model: it saved no snapshots of its "
            "weights, or its first layer is not one picture per neuron or pattern finder.",
            icon=":material/history:",
        )
        return
    if frames.unreadable:
        st.warning(
            f"Some snapshots could not be read and are left out: {', '.join(frames.unreadable)}."
        )
    what = (
        "neurons of the first layer"
        if frames.layer == "dense"
        else "first layer's pattern finders (filters)"
    )
    st.markdown(
        f"Press **Play** to watch the {what} form: from the random start, after the first "
        "1, 2, 4, … batches (handfuls of images), then after each pass over the training "
        "images (epoch). **Pause** and drag the slider to any moment."
    )
    figure = weights_figures.replay_figure(
        frames,
        tile_px=56 if frames.layer == "dense" else 40,
        text_scale=presentation.text_scale(),
    )
    st.plotly_chart(figure, key="weights_replay", config=CHART_CONFIG, width="content")
    st.caption(weights_figures.replay_caption(frames.layer, len(frames.units), frames.layer_units))


def replay_of(choice: state.ModelChoice, run: Run | None) -> replay.Replay | None:
    """A run's replay from its snapshots (through the one cached model loader), or the one
    shipped beside a shipped model."""
    if run is not None:
        return replay.replay_of_run(run, load=state.model_at)
    path = replay.replay_beside(choice.path)
    try:
        return shipped_replay(*state.file_key(path))
    except (replay.ReplayError, OSError):
        return None


@st.cache_data(show_spinner=False, max_entries=4)
def shipped_replay(path: str, mtime: float) -> replay.Replay:
    """The replay file shipped beside a model, read once per modification time."""
    return replay.load_replay(path)


def first_filters(shown: Shown) -> None:
    """A convolutional network's first filters (pattern finders), in place of first-layer
    neurons."""
    net = shown.net
    conv = next((i for i in analysis.weighted_layers(net) if net.layers[i].kind == "conv2d"), None)
    if conv is None:
        st.info("This network has no layer that looks at the pixels directly.")
        return
    layer = net.layers[conv]
    st.markdown(
        f"The first layer of this network is **{shown.titles[conv]}**. Each of these "
        "pattern finders (*filters*) is a tiny picture slid over the whole digit (that "
        "sliding is what makes the network *convolutional*): it lights up wherever the image "
        "looks like it (red: ink wanted, blue: no ink wanted)."
    )
    figure = weights_figures.conv_filters_figure(layer.params["W"], layer.params["b"], tile_px=72)
    st.plotly_chart(figure, key="weights_first_filters", config=CHART_CONFIG)
    st.caption(
        "Hover a pattern finder for its bias: a number it adds to its score everywhere, so a "
        "negative one makes it harder to light up."
    )


def layers_tab(shown: Shown) -> None:
    net, titles = shown.net, shown.titles
    weighted = analysis.weighted_layers(net)
    st.subheader("How big the weights are, layer by layer")
    params = [(titles[i], net.layers[i].params["W"], net.layers[i].params["b"]) for i in weighted]
    st.plotly_chart(weights_figures.histogram_figure(params), key="weights_histograms")
    st.caption(
        "How many weights (left) and biases (right; the number each neuron adds before "
        "passing its sum on) have each value, layer by layer. Training typically spreads them "
        "out from the narrow random start." + weights_figures.constant_bias_note(net, titles)
    )
    st.subheader("Neurons that never fire")
    dead_units(shown)
    st.subheader("Each layer's weights")
    for i in weighted:
        if i == weighted[0] and analysis.first_layer_images(net) is not None:
            continue  # drawn as images on the first tab
        st.markdown(f"**{titles[i]}**")
        figure, caption = weights_figures.layer_weights(net.layers[i])
        if net.layers[i].kind == "dense":  # a matrix: zoom into it with the mode bar
            st.plotly_chart(figure, key=f"weights_matrix_{i}")
        else:
            st.plotly_chart(figure, key=f"weights_filters_{i}", config=CHART_CONFIG)
        st.caption(caption)


def dead_units(shown: Shown) -> None:
    net, n_test = shown.net, len(shown.data.test_labels)
    dead = computed.dead_units(shown.key, shown.data_dir)
    kinds = sorted({layer.kind for layer in net.layers if layer.kind in ACTIVATIONS})
    if not dead and not kinds:
        st.info("This network has no hidden layer, so it has no hidden neurons to die.")
    elif not dead:
        st.info(
            "This network uses no ReLU (the step that turns negatives into zero), so no "
            "neuron can get stuck at zero: its squeezing steps "
            f"({', '.join(kinds)}) always let something through."
        )
    else:
        metrics = weights_figures.dead_metrics(net, dead, shown.titles)
        for column, metric in zip(st.columns(len(dead)), metrics, strict=True):
            column.metric(**metric)
        st.caption(
            f"A neuron that outputs zero for all {n_test:,} test images is **dead**: it passes "
            "nothing on, and since no correction flows back through it either (its gradient is "
            "zero), it no longer learns. Only ReLU neurons, which turn negatives into zero, can "
            "die this way."
        )


def activations_tab(shown: Shown) -> None:
    net, data, n_test = shown.net, shown.data, len(shown.data.test_labels)
    pick, shuffle, _ = st.columns([2, 1, 3], vertical_alignment="bottom")
    last = n_test - 1
    index = pick.number_input(
        f"Which test image (0 to {last:,})", 0, last, key="weights_act_index", **IN_URL_AND_SESSION
    )
    shuffle.button("Random digit", icon=":material/casino:", on_click=_random_digit, args=(n_test,))
    outputs = computed.activations(shown.key, shown.data_dir, int(index))
    probs = softmax(outputs[-1][None])[0]
    left, right = st.columns([1, 2], gap="large")
    with left:
        image, true = data.test_images[index], int(data.test_labels[index])
        digit, bars = images.prediction(image, probs, shown.names, true, heights=(220, 260))
        st.plotly_chart(digit, key="weights_act_digit", config=CHART_CONFIG)
        st.plotly_chart(bars, key="weights_act_probs", config=CHART_CONFIG)
    with right:
        hidden = analysis.activation_layers(net)[:-1]
        if not hidden:
            st.info(
                "This network has no hidden layer (no layer between the pixels and the answer): "
                "each pixel is weighed directly into the ten scores, so there is nothing to "
                "show between them."
            )
        for i in hidden:
            st.markdown(f"**{shown.titles[i]}**")
            figure = weights_figures.activation_figure(outputs[i], net.layers[i].kind in SIGNED)
            st.plotly_chart(figure, key=f"weights_act_{i}", config=CHART_CONFIG)
        if hidden:
            st.caption(
                "Each square is what one neuron passes on for this digit (its *activation*), "
                "brighter for stronger; a picture is what one pattern finder passes on. The last "
                "layer turns them into the chances on the left."
            )


st.title("Weights")
choice, model, meta = state.selected_model()
data, data_dir, names = state.model_data(meta)
run = state.run_of(choice)
moments = replay.moments(run) if run is not None else []
moment = pick_moment(choice, run, moments, meta.get("best_epoch"))
path: Path = choice.path if moment is None else replay.snapshot_path(run, moment)
try:
    key = state.file_key(path)
    net, snapshot_meta = state.cached_model(*key)
except (ModelFileError, OSError) as exc:
    what = (
        "this model"
        if moment is None
        else f"“{replay.moment_label(moment, offset=run.epoch_offset)}”"
    )
    st.error(
        f"The weights of {what} could not be loaded ({exc}). Pick another moment, or "
        "another model in the sidebar."
    )
    st.stop()
if moment is not None:
    val, best = snapshot_meta.get("val_accuracy"), meta.get("best_epoch")
    st.caption(weights_figures.snapshot_caption(moment, val, best))
titles = {info.index: weights_figures.plain_title(info) for info in analysis.describe_layers(net)}
shown = Shown(net, key, data, data_dir, names, titles)

state.lazy_tabs(
    {
        "What each neuron looks for": lambda: neurons_tab(shown),
        "Replay of training": lambda: replay_tab(choice, run),
        "All layers": lambda: layers_tab(shown),
        "What lights up inside": lambda: activations_tab(shown),
    },
    key="weights_tab",
    renamed={"Activations": "What lights up inside"},
)
with st.expander("For the curious", icon=":material/science:"):
    st.markdown(weights_figures.curious_notes(analysis.describe_layers(net)))
