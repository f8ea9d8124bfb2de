"""Finite-difference gradient checks, run in float64 so the tolerance can be tight."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TOLERANCE = 1e-6  # relative error between analytic and central-difference gradients
EPS = 1e-5


def numeric_grad(loss: Callable[[], float], array: np.ndarray, indices: list[tuple]) -> np.ndarray:
    """Central differences of `loss` with respect to `array` at `indices` (edited in place)."""
    out = np.empty(len(indices))
    for k, idx in enumerate(indices):
        saved = array[idx]
        array[idx] = saved + EPS
        plus = loss()
        array[idx] = saved - EPS
        minus = loss()
        array[idx] = saved
        out[k] = (plus - minus) / (2 * EPS)
    return out


def sample_indices(shape: tuple[int, ...], rng: np.random.Generator, n: int = 40) -> list[tuple]:
    """Up to `n` distinct positions in an array of `shape`."""
    size = int(np.prod(shape))
    flat = rng.choice(size, size=min(n, size), replace=False)
    return [np.unravel_index(i, shape) for i in flat]


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    # Below the floor, compare absolute errors: finite differences cannot resolve the
    # round-off (about 1e-10) on near-zero entries.
    scale = np.maximum(np.abs(analytic) + np.abs(numeric), 1e-2)
    return float(np.max(np.abs(analytic - numeric) / scale))


def check_layer(layer, x: np.ndarray, training: bool, seed: int = 0) -> dict[str, float]:
    """Compare a built float64 layer's backward with finite differences of sum(forward * R).

    Returns the worst relative error for the input and for each parameter.
    """
    rng = np.random.default_rng(seed)
    fixed_rng = hasattr(layer, "rng")  # dropout: the same mask in every forward pass

    def forward() -> np.ndarray:
        if fixed_rng:
            layer.rng = np.random.default_rng(seed)
        return layer.forward(x, training)

    out = forward()
    weights = rng.standard_normal(out.shape)

    def loss() -> float:
        return float(np.sum(forward() * weights))

    forward()
    dx = layer.backward(weights)
    analytic = {name: g.copy() for name, g in layer.grads.items()}
    errors = {}
    idx = sample_indices(x.shape, rng)
    errors["x"] = relative_error(np.array([dx[i] for i in idx]), numeric_grad(loss, x, idx))
    for name, value in layer.params.items():
        idx = sample_indices(value.shape, rng)
        numeric = numeric_grad(loss, value, idx)
        errors[name] = relative_error(np.array([analytic[name][i] for i in idx]), numeric)
    return errors
