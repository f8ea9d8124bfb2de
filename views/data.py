"""Data: the handwritten digits the network learns from, and how its hidden layers sort them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core import analysis
from core.config import TrainConfig
from core.data import Dataset, subset, to_float
from core.model import load_model
from core.train import split_for
from dashboard import images, inspect, state
from dashboard.state import CACHED

CHART_CONFIG = {"displayModeBar": False}
PER_CLASS = 12  # sample images shown per class
MAP_SIZE = 2000  # test images on the map (200 of each class)
MAX_SHOWN = 40  # selected digits shown beside the map


@st.cache_data(show_spinner=False, max_entries=CACHED)
def _split_counts(data_key: str, _data: Dataset) -> dict[str, np.ndarray]:
    split = split_for(TrainConfig(), _data)
    k = len(_data.class_names)
    return {
        "training": analysis.class_counts(_data.train_labels[split.train], k),
        "validation": analysis.class_counts(_data.train_labels[split.val], k),
        "test": analysis.class_counts(_data.test_labels, k),
    }


@st.cache_data(show_spinner="Averaging 60,000 images…", max_entries=CACHED)
def _means(data_key: str, _data: Dataset) -> np.ndarray:
    return analysis.mean_images(_data.train_images, _data.train_labels, len(_data.class_names))


@st.cache_data(show_spinner=False, max_entries=CACHED)
def _map_rows(data_key: str, _data: Dataset) -> np.ndarray:
    everything = np.arange(len(_data.test_labels))
    return subset(everything, _data.test_labels, MAP_SIZE, seed=0)


@st.cache_data(
    show_spinner="Running 2,000 test images through the network and mapping them…",
    max_entries=CACHED,
)
def _map(
    path: str, mtime: float, data_key: str, layer: int | None, _data: Dataset
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    model, _ = load_model(path)
    x = _data.test_images[_map_rows(data_key, _data)]
    coords, explained = analysis.pca_2d(analysis.layer_outputs(model, x, layer))
    predictions = model.predict_proba(to_float(x)).argmax(axis=1)
    return coords, explained, predictions


def _on_map_select() -> None:
    event = st.session_state.get("data_map") or {}
    points = (event.get("selection") or {}).get("points") or []
    rows = [int(p["customdata"]) for p in points if p.get("customdata") is not None]
    if rows:
        st.session_state["data_map_picked"] = rows


def _reshuffle() -> None:
    st.session_state["data_sample_seed"] = st.session_state.get("data_sample_seed", 0) + 1


st.title("Data")
choice, model, meta = state.selected_model()
data, data_dir, names = state.model_data(meta)
noun = "digit" if data.name == "MNIST" else "class"
k = len(names)
h, w = data.image_shape
st.caption(
    f"**{data.name}**: {len(data.train_labels):,} training and {len(data.test_labels):,} test "
    f"images of {h}×{w} pixels, in {k} classes."
)

samples_tab, balance_tab, mean_tab, map_tab = st.tabs(
    ["Examples", "Class balance", f"The average {noun}", "How the network sorts them"],
    key="data_tab",
    bind="query-params",
    on_change="rerun",
)

if samples_tab.open:
    with samples_tab:
        seed = st.session_state.get("data_sample_seed", 0)
        picked = analysis.sample_per_class(data.train_labels, PER_CLASS, seed, k)
        flat = picked.ravel()
        shown = np.where(flat >= 0, flat, 0)
        pictures = data.train_images[shown] / 255
        pictures[flat < 0] = np.nan  # a class with fewer images than the row: leave gaps
        left, right = st.columns([4, 1], vertical_alignment="bottom")
        left.markdown(
            f"{PER_CLASS} training images of each {noun}, picked at random. The same {noun} "
            "can look very different from one example to the next: the network has to learn "
            "what they have in common."
        )
        right.button("Show others", icon=":material/shuffle:", on_click=_reshuffle)
        st.plotly_chart(
            inspect.tile_grid(
                pictures,
                PER_CLASS,
                hover=[
                    f"training image #{i}: a {names[c]}"
                    for c, i in zip(np.repeat(range(k), PER_CLASS), flat, strict=True)
                ],
                row_labels=names,
                tile_px=52,
            ),
            key="data_samples",
            config=CHART_CONFIG,
        )

if balance_tab.open:
    with balance_tab:
        counts = _split_counts(data_dir, data)
        st.plotly_chart(inspect.class_balance_figure(counts, names, noun=noun), key="data_balance")
        st.caption(
            "Each bar is the share of one part of the data that is this class; the dotted line "
            f"is a perfectly even split. The **validation** set is {counts['validation'].sum():,} "
            "training images set aside (the same share of every class, picked with seed 0) to "
            "choose the best epoch: the network never trains on them. The **test** set is only "
            "used to score the finished network."
        )
        table = pd.DataFrame(
            {noun.capitalize(): names, **{p.capitalize(): c for p, c in counts.items()}}
        )
        st.dataframe(table, hide_index=True)

if mean_tab.open:
    with mean_tab:
        means = _means(data_dir, data)
        difference = st.toggle(
            f"Show how each {noun} differs from the average of all of them",
            key="data_mean_difference",
        )
        if difference:
            delta = means - means.mean(axis=0)
            top = inspect.symmetric_range(delta, 100)
            figure = inspect.tile_grid(
                delta,
                10,
                colorscale=images.DIVERGING,
                zmin=-top,
                zmax=top,
                captions=names,
                hover=[f"{noun} {n}" for n in names],
                colorbar_title="ink vs average",
                tile_px=96,
            )
            note = (
                "Red: where this class has more ink than the average digit; blue: less. This is "
                "roughly what a network with no hidden layer would learn to look for."
            )
        else:
            figure = inspect.tile_grid(
                means,
                10,
                captions=names,
                hover=[f"the average {noun} {n}" for n in names],
                tile_px=96,
            )
            note = (
                "Every training image of a class laid on top of each other: bright where most "
                "people put ink. The blur shows how much handwriting varies."
            )
        st.plotly_chart(figure, key="data_means", config=CHART_CONFIG)
        st.caption(note)

if map_tab.open:
    with map_tab:
        hidden = analysis.activation_layers(model)[:-1]
        titles = {info.index: info.title for info in analysis.describe_layers(model)}
        options = [None, *hidden]
        layer = st.selectbox(
            "Map the digits as seen by",
            options,
            index=len(options) - 1,
            format_func=lambda i: (
                "the raw pixels (before the network)" if i is None else f"hidden layer {titles[i]}"
            ),
            key=f"data_map_layer_{choice.key}",
            persist_state="session",
            help="Each test image becomes the list of numbers this layer outputs for it; the "
            "map squeezes those lists down to two dimensions (PCA) so they can be drawn.",
        )
        coords, explained, predictions = _map(
            str(choice.path), choice.path.stat().st_mtime, data_dir, layer, data
        )
        rows = _map_rows(data_dir, data)
        labels = data.test_labels[rows]
        picked = [r for r in st.session_state.get("data_map_picked", []) if 0 <= r < len(rows)]
        left, right = st.columns([3, 2], gap="large")
        with left:
            st.plotly_chart(
                inspect.pca_figure(
                    coords, labels, names, explained, highlight=picked[:MAX_SHOWN], noun=noun
                ),
                key="data_map",
                on_select=_on_map_select,
                selection_mode=("points", "box", "lasso"),
            )
            st.caption(
                f"{len(rows):,} test images ({len(rows) // k} of each {noun}), one dot each, "
                "coloured by the true class. Dots close together look alike to this layer. "
                "Compare the raw pixels with the last hidden layer: the network pulls the "
                "classes apart."
            )
        with right:
            if not picked:
                st.info(
                    "**Click a dot** to see its digit here, or drag a box or lasso around a "
                    "group of dots (pick the tool at the top right of the map).",
                    icon=":material/touch_app:",
                )
            elif len(picked) == 1:
                r = picked[0]
                st.plotly_chart(
                    images.digit(data.test_images[rows[r]] / 255, height=260),
                    key="data_map_digit",
                    config=CHART_CONFIG,
                )
                st.markdown(
                    f"Test image #{rows[r]}: a **{names[labels[r]]}**, which the network reads "
                    f"as **{names[predictions[r]]}**."
                )
            else:
                chosen = np.array(picked[:MAX_SHOWN])
                st.markdown(
                    f"**{len(picked)} dots selected**"
                    + (f" (the first {MAX_SHOWN} shown)" if len(picked) > MAX_SHOWN else "")
                    + ": "
                    + ", ".join(
                        f"{np.count_nonzero(labels[picked] == c)} × {names[c]}"
                        for c in range(k)
                        if np.any(labels[picked] == c)
                    )
                )
                st.plotly_chart(
                    inspect.tile_grid(
                        data.test_images[rows[chosen]] / 255,
                        8,
                        hover=[
                            f"test image #{rows[r]}: a {names[labels[r]]}, "
                            f"read as {names[predictions[r]]}"
                            for r in chosen
                        ],
                        captions=[names[labels[r]] for r in chosen],
                        tile_px=48,
                    ),
                    key="data_map_group",
                    config=CHART_CONFIG,
                )
