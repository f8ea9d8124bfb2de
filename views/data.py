"""Data: the handwritten digits the network learns from, and how its hidden layers sort them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core import analysis
from core.data import Dataset
from core.model import Model
from dashboard import computed, data_figures, images, presentation, state
from dashboard.grids import CHART_CONFIG
from dashboard.weights_figures import plain_title

PER_CLASS = 12  # sample images shown per class
MAX_SHOWN = 40  # selected digits shown beside the map


def _on_map_select() -> None:
    event = st.session_state.get("data_map") or {}
    points = (event.get("selection") or {}).get("points") or []
    rows = [int(p["customdata"]) for p in points if p.get("customdata") is not None]
    if rows:
        st.session_state["data_map_picked"] = rows


def _reshuffle() -> None:
    st.session_state["data_sample_seed"] = st.session_state.get("data_sample_seed", 0) + 1


def samples_tab(data: Dataset, names: list[str], noun: str) -> None:
    seed = st.session_state.get("data_sample_seed", 0)
    picked = analysis.sample_per_class(data.train_labels, PER_CLASS, seed, len(names))
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    left.markdown(
        f"{PER_CLASS} training images of each {noun}, picked at random. The same {noun} can "
        "look very different from one example to the next: the network has to learn what "
        "they have in common."
    )
    right.button("Show others", icon=":material/shuffle:", on_click=_reshuffle)
    figure = data_figures.samples_grid(data.train_images, picked, names)
    st.plotly_chart(figure, key="data_samples", config=CHART_CONFIG)


def balance_tab(data: Dataset, data_dir: str, names: list[str], noun: str) -> None:
    counts = computed.split_counts(data_dir)
    st.plotly_chart(data_figures.class_balance_figure(counts, names, noun=noun), key="data_balance")
    st.caption(
        f"Each bar is the share of one part of the data that is this {noun}; the dotted line "
        f"is a perfectly even split. The **validation** set is "
        f"{counts['validation'].sum():,} training images set aside (the same share of every "
        f"{noun}, picked with seed 0) to choose the best moment to stop (the best epoch): the "
        "network never trains on them. The **test** set is only used to score the finished "
        "network."
    )
    table = pd.DataFrame(
        {noun.capitalize(): names, **{p.capitalize(): c for p, c in counts.items()}}
    )
    st.dataframe(table, hide_index=True)


def mean_tab(data: Dataset, data_dir: str, names: list[str], noun: str) -> None:
    means = computed.means(data_dir)
    difference = st.toggle(
        f"Show how each {noun} differs from the average of all of them",
        key="data_mean_difference",
    )
    figure = data_figures.means_figure(means, names, noun, difference)
    st.plotly_chart(figure, key="data_means", config=CHART_CONFIG)
    if difference:
        st.caption(
            f"Red: where this {noun} has more ink than the average of all of them; blue: less. "
            "This is roughly what a network with no hidden layer (nothing between the pixels "
            "and the answer) would learn to look for."
        )
    else:
        st.caption(
            f"Every training image of a {noun} laid on top of each other: bright where most "
            "people put ink. The blur shows how much handwriting varies."
        )


def map_tab(
    choice: state.ModelChoice,
    model: Model,
    data: Dataset,
    data_dir: str,
    names: list[str],
    noun: str,
) -> None:
    hidden = analysis.activation_layers(model)[:-1]
    titles = {info.index: plain_title(info) for info in analysis.describe_layers(model)}
    options = [None, *hidden]
    layer = st.selectbox(
        "Map the digits as seen by",
        options,
        index=len(options) - 1,
        format_func=lambda i: (
            "the raw pixels (before the network)" if i is None else f"inside: {titles[i]}"
        ),
        key=f"data_map_layer_{choice.key}",
        persist_state="session",
        help="Each test image becomes the list of numbers this layer outputs for it; the map "
        "squeezes those long lists down to two numbers, the two directions along which the "
        "images differ most, so they can be drawn (principal component analysis, PCA).",
    )
    coords, explained, predictions = computed.layer_map(
        state.file_key(choice.path), data_dir, layer
    )
    rows = computed.sample_rows(data_dir)
    labels = data.test_labels[rows]
    picked = [r for r in st.session_state.get("data_map_picked", []) if 0 <= r < len(rows)]
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.plotly_chart(
            data_figures.pca_figure(
                coords, labels, names, explained, highlight=picked[:MAX_SHOWN], noun=noun
            ),
            key="data_map",
            on_select=_on_map_select,
            selection_mode=("points", "box", "lasso"),
        )
        st.caption(
            f"{len(rows):,} test images ({len(rows) // len(names)} of each {noun}), one dot "
            f"each, coloured by the {noun} it really is. Dots close together look alike to this "
            "layer. Compare the raw pixels with the last layer inside: the network pulls the "
            f"{noun}s apart."
        )
    with right:
        picked_dots(data, names, rows, labels, predictions, picked)


def picked_dots(
    data: Dataset,
    names: list[str],
    rows: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    picked: list[int],
) -> None:
    """The digits behind the dots picked on the map (`picked`: positions in `rows`)."""
    if not picked:
        tools = (
            ""  # presentation mode hides the chart's toolbar, box and lasso with it
            if presentation.is_on()
            else ", or drag a box or lasso around a group of dots (pick the tool at the top "
            "right of the map)"
        )
        st.info(f"**Click a dot** to see its digit here{tools}.", icon=":material/touch_app:")
    elif len(picked) == 1:
        r = picked[0]
        figure = images.digit(data.test_images[rows[r]] / 255, height=260)
        st.plotly_chart(figure, key="data_map_digit", config=CHART_CONFIG)
        st.markdown(
            f"Test image #{rows[r]}: a **{names[labels[r]]}**, which the network reads as "
            f"**{names[predictions[r]]}**."
        )
    else:
        chosen = np.array(picked[:MAX_SHOWN])
        counts = [
            f"{np.count_nonzero(labels[picked] == c)} × {names[c]}"
            for c in range(len(names))
            if np.any(labels[picked] == c)
        ]
        more = f" (the first {MAX_SHOWN} shown)" if len(picked) > MAX_SHOWN else ""
        st.markdown(f"**{len(picked)} dots selected**{more}: " + ", ".join(counts))
        st.plotly_chart(
            data_figures.group_grid(
                data.test_images, rows[chosen], labels[chosen], predictions[chosen], names
            ),
            key="data_map_group",
            config=CHART_CONFIG,
        )


st.title("Data")
choice, model, meta = state.selected_model()
data, data_dir, names = state.model_data(meta)
noun = "digit" if data.name == "MNIST" else "item"
h, w = data.image_shape
kinds = "the 10 digits" if noun == "digit" else f"{len(names)} kinds ({', '.join(names)})"
st.caption(
    f"**{data.name}**: {len(data.train_labels):,} training and {len(data.test_labels):,} test "
    f"images of {h}×{w} pixels, of {kinds}."
)

state.lazy_tabs(
    {
        "Examples": lambda: samples_tab(data, names, noun),
        "How many of each": lambda: balance_tab(data, data_dir, names, noun),
        f"The average {noun}": lambda: mean_tab(data, data_dir, names, noun),
        "How the network sorts them": lambda: map_tab(choice, model, data, data_dir, names, noun),
    },
    key="data_tab",
    renamed={"Class balance": "How many of each"},
)
with st.expander("For the curious", icon=":material/science:"):
    st.markdown(data_figures.curious_notes(data.name, analysis.describe_layers(model)))
