"""What the Evaluate, Weights and Data pages compute, cached: each a call into core.

A result is cached per model file (`model`: its path and modification time, from
`state.file_key`) and data folder (`data_dir`, '' for MNIST; the data set itself comes
from the cache in `state`). Every model comes from the one cached loader in `state`, as a
private copy (`state.working_copy`) wherever it runs on many images.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from core import analysis
from core.config import TrainConfig
from core.data import subset, to_float
from core.metrics import Evaluation, evaluate
from core.train import split_for
from dashboard.state import CACHED, FileKey, cached_model, load_data, working_copy

SAMPLE_SIZE = 2000  # test images (200 of each class) for robustness curves and the map
FIRST_DAMAGE = "rotate"  # the kind of damage Evaluate's Damaged digits tab opens on


@st.cache_data(
    show_spinner="Running the model on every test image (once per model)…", max_entries=CACHED
)
def evaluation(model: FileKey, data_dir: str) -> Evaluation:
    """The model scored on every test image."""
    data = load_data(data_dir)
    return evaluate(working_copy(*model), data.test_images, data.test_labels)


@st.cache_data(show_spinner=False, max_entries=CACHED)
def sample_rows(data_dir: str) -> np.ndarray:
    """The same test images of every class (seed 0), for robustness and the map."""
    labels = load_data(data_dir).test_labels
    return subset(np.arange(len(labels)), labels, SAMPLE_SIZE, seed=0)


@st.cache_data(
    show_spinner="Damaging 2,000 test images step by step and measuring…", max_entries=CACHED
)
def robustness(model: FileKey, data_dir: str, kind: str) -> analysis.Robustness:
    """Accuracy on the sample rows under each amount of damage of `kind`."""
    data, rows = load_data(data_dir), sample_rows(data_dir)
    images, labels = data.test_images[rows], data.test_labels[rows]
    return analysis.robustness_curve(working_copy(*model), images, labels, kind)


@st.cache_data(
    show_spinner="Running the 10,000 test images through the network…", max_entries=CACHED
)
def dead_units(model: FileKey, data_dir: str) -> list[analysis.DeadUnits]:
    """The ReLU units that never fire on any test image."""
    return analysis.dead_units(working_copy(*model), load_data(data_dir).test_images)


@st.cache_data(show_spinner=False, max_entries=256)
def activations(model: FileKey, data_dir: str, index: int) -> list[np.ndarray]:
    """Every layer's output for test image `index`."""
    x = to_float(load_data(data_dir).test_images[index : index + 1])
    return [a[0] for a in working_copy(*model).activations(x)]


@st.cache_data(show_spinner=False, max_entries=256)
def strongest(model: FileKey, data_dir: str, neuron: int) -> tuple[np.ndarray, np.ndarray]:
    """The test images that excite first-layer neuron `neuron` most, and their sums."""
    weights, biases = analysis.first_layer_images(cached_model(*model)[0])
    images = load_data(data_dir).test_images
    return analysis.strongest_inputs(weights[neuron], float(biases[neuron]), images)


@st.cache_data(
    show_spinner="Running 2,000 test images through the network and mapping them…",
    max_entries=CACHED,
)
def layer_map(
    model: FileKey, data_dir: str, layer: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sample rows mapped to 2-D as layer `layer` sees them (None: the pixels)."""
    images = load_data(data_dir).test_images[sample_rows(data_dir)]
    return analysis.layer_map(working_copy(*model), images, layer)


@st.cache_data(show_spinner=False, max_entries=CACHED)
def split_counts(data_dir: str) -> dict[str, np.ndarray]:
    """How many images of each class are in training, validation (as Train splits) and test."""
    data = load_data(data_dir)
    split = split_for(TrainConfig(), data)
    k = len(data.class_names)
    return {
        "training": analysis.class_counts(data.train_labels[split.train], k),
        "validation": analysis.class_counts(data.train_labels[split.val], k),
        "test": analysis.class_counts(data.test_labels, k),
    }


@st.cache_data(show_spinner="Averaging 60,000 images…", max_entries=CACHED)
def means(data_dir: str) -> np.ndarray:
    """The average training image of each class."""
    data = load_data(data_dir)
    return analysis.mean_images(data.train_images, data.train_labels, len(data.class_names))
