"""The live view of a training run: what its first layer looks like now, and how it reads
ten fixed test digits.

While a run trains, `LiveView` rewrites one small file in the run's folder (`live.npz`)
about twice a second, and at once whenever the run is held paused, so the Train page can
show the weights changing without ever touching the trainer's memory. It holds:

    kind      "dense" (an MLP's first layer) or "conv2d" (a CNN's first convolution)
    weights   (units, H, W): the first MAX_UNITS neurons' weights over the pixels, or the
              convolution's filters
    maps      (filters, H, W) for a CNN: the filters' outputs for the first fixed digit,
              before pooling
    digits    (10, 28, 28): the first test image of each class, in class order
    labels    (10,) their classes
    probs     (10, classes): the network's probabilities for them now
    where     [batches trained, fractional epoch, seconds since training began]
"""

from __future__ import annotations

import time
from contextlib import suppress
from pathlib import Path

import numpy as np

from .analysis import first_layer_pictures
from .config import TrainConfig
from .data import Dataset, to_float
from .model import Model
from .model_save import save_arrays
from .train import BatchStats, Callback, EpochStats

MAX_UNITS = 64  # neurons shown for an MLP: enough to see features form, small to redraw
INTERVAL = 0.5  # seconds between rewrites: the page refreshes once a second


def fixed_digits(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The first test image of each class, in class order, and their labels."""
    labels = dataset.test_labels
    picks = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    return dataset.test_images[picks], labels[picks]


def first_maps(model: Model, image: np.ndarray) -> np.ndarray | None:
    """(filters, H, W): the first convolution's outputs for one float image (H, W, 1), at
    full size (before pooling); None when the network does not start with a convolution."""
    x = image[None]
    for layer in model.layers:
        x = layer.forward(x, training=False)
        if layer.kind == "conv2d":
            return np.moveaxis(x[0], -1, 0).copy()
        if layer.params:  # a weighted layer before any convolution: not a CNN's start
            return None
    return None


def read(path: Path) -> dict[str, np.ndarray] | None:
    """The live view written at `path`, or None if there is none (yet) or it is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError):
        return None


class LiveView(Callback):
    """Rewrites a run's live view (`path`) every `interval` seconds while it trains."""

    def __init__(self, path: Path, dataset: Dataset, interval: float | None = None) -> None:
        self.path = path
        self.interval = INTERVAL if interval is None else interval
        self.digits, self.labels = fixed_digits(dataset)
        self.model: Model | None = None
        self.steps, self.epoch, self.elapsed = 0, 0.0, 0.0
        self.last = 0.0

    def on_train_begin(self, model: Model, config: TrainConfig, n_train: int) -> None:
        self.model = model
        self.write()

    def on_batch_end(self, stats: BatchStats) -> None:
        self.steps += 1
        self.epoch = stats.epoch - 1 + stats.batch / stats.batches
        self.elapsed = stats.elapsed
        if time.monotonic() - self.last >= self.interval:
            self.write()

    def on_epoch_end(self, stats: EpochStats, model: Model) -> None:
        self.write()

    def write(self) -> None:
        """Write the view now (the loop calls it when due; the controller when it holds)."""
        self.last = time.monotonic()
        model = self.model
        if model is None:
            return
        pictures = first_layer_pictures(model)
        arrays: dict[str, np.ndarray] = {
            "digits": self.digits,
            "labels": self.labels,
            "probs": model.predict_proba(to_float(self.digits)),
            "where": np.array([self.steps, self.epoch, self.elapsed]),
        }
        if pictures is not None:
            kind, weights = pictures
            arrays["kind"] = np.array(kind)
            arrays["weights"] = weights[:MAX_UNITS].astype(np.float32)
            if kind == "conv2d":
                maps = first_maps(model, to_float(self.digits[:1])[0])
                if maps is not None:
                    arrays["maps"] = maps
        with suppress(OSError):  # a view missed is not worth stopping the training for
            save_arrays(self.path, arrays, sync=False)
