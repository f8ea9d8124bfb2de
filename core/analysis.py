"""What the Evaluate, Weights and Data pages compute: NumPy arrays in, NumPy arrays out.

Abstaining below a confidence threshold, accuracy under rotation, shift and noise, the
examples behind a confusion-matrix cell, what each layer holds (dead ReLU units, constant
biases), a 2-D PCA map, and the per-class summaries of a data set. Nothing here draws or
knows about Streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .augment import warp
from .config import ACTIVATIONS
from .data import to_float
from .model import Model

F32 = np.float32
WEIGHTED = ("dense", "conv2d")  # the layers that have weights and biases

# The amounts a robustness curve is measured at, per kind of damage: degrees of rotation,
# pixels of shift, and the standard deviation of Gaussian noise on pixels in [0, 1].
PERTURBATIONS: dict[str, np.ndarray] = {
    "rotate": np.arange(0, 61, 10, dtype=F32),
    "shift": np.arange(0, 7, 1, dtype=F32),
    "noise": np.round(np.arange(0, 0.61, 0.1), 2).astype(F32),
}


# Confidence and abstaining


def threshold_curve(
    confidence: np.ndarray, correct: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and selective accuracy for each threshold.

    The model answers an image when its confidence is at least the threshold. Coverage is
    the share of images answered; accuracy is the share right among those (NaN if none).
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    n = len(confidence)
    if n == 0:
        nan = np.full(thresholds.shape, np.nan)
        return nan, nan.copy()
    order = np.argsort(confidence, kind="stable")
    first = np.searchsorted(confidence[order], thresholds, side="left")
    answered = n - first
    # right_from[i]: correct answers among the images from sorted position i on.
    right_from = np.concatenate([np.cumsum(correct[order][::-1])[::-1], [0]])
    right = right_from[first]
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(answered > 0, right / np.maximum(answered, 1), np.nan)
    return answered / n, accuracy


@dataclass(frozen=True)
class Abstention:
    """What a model does when it answers only at or above a confidence threshold."""

    total: int  # images
    answered: int
    right: int  # right answers among the answered

    @property
    def coverage(self) -> float:
        return self.answered / self.total if self.total else math.nan

    @property
    def accuracy(self) -> float:
        """The share right among the answered images (NaN when it answers none)."""
        return self.right / self.answered if self.answered else math.nan

    @property
    def abstained(self) -> int:
        return self.total - self.answered

    @property
    def mistakes_left(self) -> int:
        return self.answered - self.right


def abstain(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> Abstention:
    """The counts behind one point of `threshold_curve`: answered, and right among them."""
    # In float64, as threshold_curve compares, so the counts and the curve agree.
    answered = np.asarray(confidence, dtype=np.float64) >= float(threshold)
    right = int(np.count_nonzero(np.asarray(correct, dtype=bool) & answered))
    return Abstention(len(answered), int(np.count_nonzero(answered)), right)


# The examples behind a confusion-matrix cell


def select_examples(
    labels: np.ndarray,
    predictions: np.ndarray,
    confidence: np.ndarray,
    true: int | None = None,
    predicted: int | None = None,
) -> np.ndarray:
    """Indices of the examples for a (true, predicted) filter, in viewing order.

    A diagonal cell (true == predicted) gives the correct answers of that class, least
    confident first: the ones it nearly got wrong. Anything else gives the mistakes that
    match the filter (None matches any class), most confidently wrong first.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    confidence = np.asarray(confidence)
    if true is not None and predicted is not None and true == predicted:
        picked = np.flatnonzero((labels == true) & (predictions == true))
        return picked[np.argsort(confidence[picked], kind="stable")]
    mask = labels != predictions
    if true is not None:
        mask &= labels == true
    if predicted is not None:
        mask &= predictions == predicted
    picked = np.flatnonzero(mask)
    return picked[np.argsort(-confidence[picked], kind="stable")]


# Robustness


def perturb(
    x: np.ndarray, kind: str, amount: float, seed: int = 0, rows: np.ndarray | None = None
) -> np.ndarray:
    """Damage float32 images (N, H, W) in [0, 1] by `amount`, reproducibly.

    rotate: each image turns by `amount` degrees, clockwise or anticlockwise at random;
    shift: each moves `amount` pixels in a random direction; noise: Gaussian noise of
    standard deviation `amount` on every pixel. The result is clipped to [0, 1]. With
    `rows`, only those images are damaged and returned, each exactly as when all are.
    """
    if kind not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {kind!r}; choose one of {', '.join(PERTURBATIONS)}")
    x = np.asarray(x, dtype=F32)
    n = len(x)
    # The random directions depend only on the seed, so the same image is turned the same
    # way at every amount and a curve over amounts is smooth rather than jittery. They are
    # drawn for all N images, so an image's damage does not depend on which rows are asked.
    picked = slice(None) if rows is None else np.asarray(rows, dtype=np.intp)
    rng = np.random.default_rng(seed)
    x = x[picked]
    ones, zeros = np.ones(len(x), F32), np.zeros(len(x), F32)
    if kind == "rotate":
        sign = np.where(rng.random(n) < 0.5, -1, 1).astype(F32)[picked]
        out = warp(x, sign * F32(amount), ones, zeros, zeros)
    elif kind == "shift":
        direction = (rng.random(n).astype(F32) * F32(2 * np.pi))[picked]
        out = warp(x, zeros, ones, F32(amount) * np.sin(direction), F32(amount) * np.cos(direction))
    else:
        noise = rng.standard_normal((n, *x.shape[1:]), dtype=F32)[picked]
        out = x + F32(amount) * noise
    return np.clip(out, 0, 1).astype(F32, copy=False)


@dataclass
class Robustness:
    kind: str
    amounts: np.ndarray  # (levels,)
    accuracy: np.ndarray  # (levels,)
    predictions: np.ndarray  # (levels, N) the predicted class of every image at every level
    seed: int = 0  # of the random directions and noise


def robustness_curve(
    model: Model,
    images: np.ndarray,
    labels: np.ndarray,
    kind: str,
    amounts: np.ndarray | None = None,
    seed: int = 0,
) -> Robustness:
    """Accuracy of `model` on uint8 `images` damaged by each amount of `kind`."""
    amounts = PERTURBATIONS[kind] if amounts is None else np.asarray(amounts, dtype=F32)
    x = to_float(images)[..., 0]
    predictions = np.empty((len(amounts), len(images)), dtype=np.int64)
    for i, amount in enumerate(amounts):
        damaged = perturb(x, kind, float(amount), seed)
        predictions[i] = model.predict_proba(damaged[..., None]).argmax(axis=1)
    accuracy = (predictions == np.asarray(labels)[None, :]).mean(axis=1)
    return Robustness(kind, amounts, accuracy, predictions, seed)


def first_of_each_class(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The position of the first example of each class in `labels` (every class present)."""
    labels = np.asarray(labels)
    return np.array([int(np.flatnonzero(labels == c)[0]) for c in range(n_classes)])


def damaged_examples(
    images: np.ndarray, labels: np.ndarray, curve: Robustness, level: int, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """One image of each class among the uint8 `images` a robustness curve was measured on,
    damaged as at `level` of the curve (only those are damaged), and what the model read."""
    shown = first_of_each_class(labels, n_classes)
    x = to_float(images)[..., 0]
    damaged = perturb(x, curve.kind, float(curve.amounts[level]), curve.seed, rows=shown)
    return damaged, curve.predictions[level, shown]


# Inside the network


@dataclass
class LayerInfo:
    index: int  # position in model.layers
    kind: str
    title: str  # e.g. "Dense 1 (784 → 128)"
    output_shape: tuple[int, ...]


def describe_layers(model: Model) -> list[LayerInfo]:
    """Every layer with a short readable title, counting layers of the same kind from 1."""
    counts: dict[str, int] = {}
    names = {
        "dense": "Dense", "conv2d": "Convolution", "relu": "ReLU", "leaky_relu": "Leaky ReLU",
        "tanh": "tanh", "sigmoid": "Sigmoid", "maxpool2d": "Max-pool", "batchnorm": "Batch norm",
        "dropout": "Dropout", "flatten": "Flatten",
    }  # fmt: skip
    out = []
    for i, layer in enumerate(model.layers):
        counts[layer.kind] = counts.get(layer.kind, 0) + 1
        shape_in, shape_out = model.shapes[i], model.shapes[i + 1]
        title = f"{names.get(layer.kind, layer.kind)} {counts[layer.kind]}"
        if layer.kind == "dense":
            title += f" ({shape_in[0]} → {shape_out[0]})"
        elif layer.kind == "conv2d":
            k = layer.params["W"].shape[0]
            title += f" ({shape_out[-1]} filters of {k}×{k})"
        else:
            title += f" ({' × '.join(str(s) for s in shape_out)})"
        out.append(LayerInfo(i, layer.kind, title, tuple(shape_out)))
    return out


def activation_layers(model: Model) -> list[int]:
    """Indices of the layers whose outputs are the hidden representations (after each
    non-linearity), then the last layer (the logits)."""
    hidden = [i for i, layer in enumerate(model.layers[:-1]) if layer.kind in ACTIVATIONS]
    return [*hidden, len(model.layers) - 1]


def weighted_layers(model: Model) -> list[int]:
    """Indices of the dense and convolution layers: the ones with weights and biases."""
    return [i for i, layer in enumerate(model.layers) if layer.kind in WEIGHTED]


def unit_noun(model: Model, index: int) -> str:
    """What a unit of layer `index` is: a channel of an image-shaped output, else a neuron."""
    return "channels" if len(model.shapes[index + 1]) == 3 else "neurons"


def constant_biases(model: Model) -> list[int]:
    """The weighted layers whose biases all have one value (they never moved in training)."""
    return [i for i in weighted_layers(model) if np.ptp(model.layers[i].params["b"]) < 1e-6]


def feeds_batch_norm(model: Model, index: int) -> bool:
    """Whether layer `index`'s output goes straight into a batch norm (a max-pool between
    them changes nothing: the batch norm still subtracts any constant bias)."""
    after = (layer.kind for layer in model.layers[index + 1 :] if layer.kind != "maxpool2d")
    return next(after, "") == "batchnorm"


def first_layer_images(model: Model) -> tuple[np.ndarray, np.ndarray] | None:
    """(units, H, W) incoming weights and (units,) biases of a dense first layer that sees
    the raw pixels; None when the first layer with weights is not such a dense layer."""
    h, w, c = model.shapes[0]
    for layer in model.layers:
        if not layer.params:
            continue
        if layer.kind != "dense" or c != 1 or layer.params["W"].shape[0] != h * w:
            return None
        W = layer.params["W"]
        return W.T.reshape(-1, h, w).copy(), layer.params["b"].copy()
    return None


def first_layer_pictures(model: Model) -> tuple[str, np.ndarray] | None:
    """The kind of the first layer with weights ("dense" or "conv2d") and its weights as one
    picture per unit (units, H, W): a dense layer's neurons over the pixels, or the filters
    of a convolution on the one-channel image; None when that layer is neither."""
    dense = first_layer_images(model)
    if dense is not None:
        return "dense", dense[0]
    weighted = weighted_layers(model)
    if not weighted or model.layers[weighted[0]].kind != "conv2d":
        return None
    W = model.layers[weighted[0]].params["W"]  # (kh, kw, channels, filters)
    if W.shape[2] != 1:
        return None
    return "conv2d", W[:, :, 0, :].transpose(2, 0, 1).copy()


def strongest_inputs(
    weights: np.ndarray, bias: float, images: np.ndarray, k: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` uint8 images that drive a first-layer neuron hardest (largest weighted sum of
    pixels plus bias, before the activation), strongest first, and those sums."""
    pixels = images.reshape(len(images), -1)
    drive = pixels @ (np.asarray(weights, dtype=np.float32).ravel() / F32(255)) + F32(bias)
    k = min(k, len(drive))
    top = np.argpartition(-drive, k - 1)[:k] if k else np.array([], dtype=np.intp)
    top = top[np.argsort(-drive[top], kind="stable")]
    return top, drive[top]


@dataclass
class DeadUnits:
    index: int  # position in model.layers
    units: int  # neurons (dense) or channels (convolution)
    dead: np.ndarray  # indices of the units that never output more than zero


def dead_units(model: Model, images: np.ndarray, batch_size: int = 500) -> list[DeadUnits]:
    """Units of every ReLU layer that stay at zero on all of uint8 `images`.

    A convolutional unit is a channel: it is dead when no position of any image lights it.
    """
    relus = [i for i, layer in enumerate(model.layers) if layer.kind == "relu"]
    alive = {i: np.zeros(model.shapes[i + 1][-1], dtype=bool) for i in relus}
    if not relus:
        return []
    for start in range(0, len(images), batch_size):
        outputs = model.activations(to_float(images[start : start + batch_size]))
        for i in relus:
            out = outputs[i]
            alive[i] |= (out.reshape(-1, out.shape[-1]) > 0).any(axis=0)
    return [DeadUnits(i, len(alive[i]), np.flatnonzero(~alive[i])) for i in relus]


def dead_after(model: Model, dead: Sequence[DeadUnits], index: int) -> np.ndarray:
    """The units of weighted layer `index` that never fire: the dead units of the ReLU that
    takes its output (through batch norm, dropout or max-pool); none if no ReLU does."""
    for i in range(index + 1, len(model.layers)):
        kind = model.layers[i].kind
        if kind == "relu":
            return next((d.dead for d in dead if d.index == i), np.array([], dtype=np.intp))
        if kind in WEIGHTED or kind in ACTIVATIONS or kind == "flatten":
            break  # the units are no longer this layer's, one for one
    return np.array([], dtype=np.intp)


def layer_outputs(
    model: Model, images: np.ndarray, layer: int | None, batch_size: int = 500
) -> np.ndarray:
    """(N, features) flattened outputs of layer `layer` for uint8 `images` (None: the pixels)."""
    if layer is None:
        return to_float(images).reshape(len(images), -1)
    chunks = []
    for start in range(0, len(images), batch_size):
        out = model.activations(to_float(images[start : start + batch_size]))[layer]
        chunks.append(out.reshape(len(out), -1))
    return np.concatenate(chunks)


def layer_map(
    model: Model, images: np.ndarray, layer: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 `images` as layer `layer` sees them (None: the pixels), mapped to 2-D by PCA:
    (N, 2) coordinates, the variance each axis explains, and the model's predictions."""
    coords, explained = pca_2d(layer_outputs(model, images, layer))
    return coords, explained, model.predict_proba(to_float(images)).argmax(axis=1)


def pca_2d(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal components of (N, D) `features`.

    Returns (N, 2) coordinates and the share of the variance each component explains.
    Signs are fixed (the largest loading of each component is positive) so the map does
    not flip between runs.

    Plainly: centre X, take its SVD X = U S Vᵀ, coordinates U[:, :2] S[:2]. Only the top
    two singular triplets are needed, so ARPACK finds just those (scipy's `svds`, from a
    fixed start so the result is the same every time): 0.5 s instead of 9 s for 2,000
    images of a first convolution layer's 2,704 outputs. tests/test_analysis.py checks it
    against the full SVD.
    """
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0)
    total = float((x**2).sum())
    coords, explained = np.zeros((len(x), 2)), np.zeros(2)
    if total == 0:  # every point the same: no direction to map
        return coords, explained
    k = min(2, *x.shape)
    if min(x.shape) > k:
        # Imported here: 0.3 s and 30 MB that only a map needs (scipy.stats has it anyway).
        from scipy.sparse.linalg import svds

        u, s, vt = svds(x, k=k, v0=np.ones(min(x.shape)))
        order = np.argsort(s)[::-1]  # largest first
        u, s, vt = u[:, order], s[order], vt[order]
    else:  # svds needs k below both sides; so small a matrix costs nothing in full
        u, s, vt = np.linalg.svd(x, full_matrices=False)
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])
    signs[signs == 0] = 1
    coords[:, :k] = u[:, :k] * s[:k] * signs
    explained[:k] = s[:k] ** 2 / total
    return coords, explained


# The data set


def class_counts(labels: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """How many examples of each class."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)


def mean_images(images: np.ndarray, labels: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """(classes, H, W) the average of each class's uint8 images, in [0, 1] (zeros if absent)."""
    labels = np.asarray(labels)
    out = np.zeros((n_classes, *images.shape[1:]), dtype=F32)
    for cls in range(n_classes):
        members = images[labels == cls]
        if len(members):
            out[cls] = members.mean(axis=0, dtype=np.float64) / 255
    return out


def sample_per_class(labels: np.ndarray, k: int, seed: int, n_classes: int = 10) -> np.ndarray:
    """(classes, k) indices: k random examples of each class (fewer if the class is smaller,
    padded with -1)."""
    rng = np.random.default_rng(seed)
    out = np.full((n_classes, k), -1, dtype=np.int64)
    for cls in range(n_classes):
        members = np.flatnonzero(np.asarray(labels) == cls)
        picked = rng.choice(members, size=min(k, len(members)), replace=False)
        out[cls, : len(picked)] = np.sort(picked)
    return out
