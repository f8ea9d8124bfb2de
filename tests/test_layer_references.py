"""The fast layers against the plain formulas in their docstrings, written as naive loops.

MaxPool2D takes its max in two rounds along NHWC memory and BatchNorm works on a tiled
wide view; here each is held to a loop over windows and to the textbook batch norm in
float64, which they must match.
"""

from __future__ import annotations

import numpy as np
import pytest

from core import layers
from core.layers import conv

# Max-pooling


def naive_maxpool(x: np.ndarray, p: int) -> tuple[np.ndarray, dict[tuple, tuple]]:
    """y, and for every output (n, i, j, c) the input position its gradient goes to.

    A loop over windows; among tied maxima the first in column-major order wins: the
    leftmost column that holds the maximum, then the topmost row in it.
    """
    n, h, w, channels = x.shape
    y = np.empty((n, h // p, w // p, channels), x.dtype)
    winners = {}
    for index in np.ndindex(y.shape):
        image, i, j, c = index
        window = x[image, p * i : p * i + p, p * j : p * j + p, c]
        best = window.max()
        a, b = next((a, b) for b in range(p) for a in range(p) if window[a, b] == best)
        y[index] = best
        winners[index] = (image, p * i + a, p * j + b, c)
    return y, winners


def naive_maxpool_backward(x: np.ndarray, dy: np.ndarray, p: int) -> np.ndarray:
    """dx: each output's gradient at its window's first maximum, zero everywhere else."""
    _, winners = naive_maxpool(x, p)
    dx = np.zeros_like(x)
    for index, position in winners.items():
        dx[position] = dy[index]
    return dx


POOL_CASES = [
    (2, (3, 6, 6, 3)),
    (2, (2, 5, 7, 2)),  # odd sides: the last row and column are dropped
    (3, (2, 7, 8, 1)),
    (4, (2, 9, 8, 2)),
    (1, (2, 3, 3, 2)),
]


@pytest.mark.parametrize("split", [False, True], ids=["one piece", "split over two cores"])
@pytest.mark.parametrize("values", ["random", "ties"])
@pytest.mark.parametrize(("p", "shape"), POOL_CASES, ids=[f"{p}x{p} on {s}" for p, s in POOL_CASES])
def test_maxpool_matches_a_loop_over_windows(p, shape, values, split, monkeypatch, rng):
    monkeypatch.setattr(conv, "SPLIT_MIN", 2 if split else 10**9)
    if values == "ties":  # three values only: most windows tie, many several ways
        x = rng.integers(0, 3, shape).astype(np.float32)
    else:
        x = rng.standard_normal(shape, dtype=np.float32)
    layer = layers.MaxPool2D(p)
    layer.build(shape[1:], rng)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx = layer.backward(dy)
    want_y, _ = naive_maxpool(x, p)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(dx, naive_maxpool_backward(x, dy, p))
    assert len(layer.parts) == (2 if split else 1)


def test_maxpool_ties_really_happen_in_the_tie_cases(rng):
    x = rng.integers(0, 3, (3, 6, 6, 3)).astype(np.float32)
    windows = x.reshape(3, 3, 2, 3, 2, 3)
    tied = (windows == windows.max(axis=(2, 4), keepdims=True)).sum(axis=(2, 4)) > 1
    assert tied.mean() > 0.5


# Batch normalization


def textbook_batchnorm(
    x: np.ndarray,
    dy: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    momentum: float,
    eps: float,
    training: bool,
) -> dict[str, np.ndarray]:
    """y, dx, dγ, dβ and the new running statistics, in float64, as Ioffe & Szegedy write them."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    axes = tuple(range(x.ndim - 1))  # every axis but the channel's
    m = x.size // x.shape[-1]
    if training:
        mu = x.mean(axis=axes)
        sigma2 = ((x - mu) ** 2).mean(axis=axes)
        new_mean = momentum * mean + (1 - momentum) * mu
        new_var = momentum * var + (1 - momentum) * sigma2 * m / (m - 1)
    else:
        mu, sigma2, new_mean, new_var = mean, var, mean, var
    x_hat = (x - mu) / np.sqrt(sigma2 + eps)
    y = gamma * x_hat + beta
    dgamma = (dy * x_hat).sum(axis=axes)
    dbeta = dy.sum(axis=axes)
    if training:
        dx = (
            gamma
            / np.sqrt(sigma2 + eps)
            * (dy - dy.mean(axis=axes) - x_hat * (dy * x_hat).mean(axis=axes))
        )
    else:
        dx = gamma / np.sqrt(sigma2 + eps) * dy
    return {"y": y, "dx": dx, "gamma": dgamma, "beta": dbeta, "mean": new_mean, "var": new_var}


BATCHNORM_SHAPES = [(64, 10), (8, 6, 5, 3), (4, 7, 7, 16), (2, 3, 1, 4)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", BATCHNORM_SHAPES, ids=[str(s) for s in BATCHNORM_SHAPES])
def test_batchnorm_matches_the_textbook_formula(shape, training, dtype, rng):
    c = shape[-1]
    layer = layers.BatchNorm(momentum=0.8, eps=1e-3)
    layer.build(shape[1:], rng)
    arrays = {
        "gamma": rng.uniform(-2, 2, c),
        "beta": rng.standard_normal(c),
        "mean": rng.standard_normal(c),
        "var": rng.uniform(0.5, 3, c),
    }
    for name, value in arrays.items():
        group = layer.params if name in layer.params else layer.state
        group[name] = value.astype(dtype)
        if name in layer.grads:
            layer.grads[name] = np.zeros(c, dtype)
    x = (rng.standard_normal(shape) * rng.uniform(0.5, 3, c) + rng.standard_normal(c)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    got = {"y": layer.forward(x, training), "dx": layer.backward(dy)}
    got |= {name: layer.grads[name] for name in ("gamma", "beta")}
    got |= {name: layer.state[name] for name in ("mean", "var")}
    want = textbook_batchnorm(x, dy, *arrays.values(), momentum=0.8, eps=1e-3, training=training)
    tight = dtype == np.float64
    for name, value in want.items():
        assert got[name].dtype == dtype, name
        scale = np.abs(value).max()
        np.testing.assert_allclose(
            got[name],
            value,
            rtol=1e-10 if tight else 2e-4,
            atol=(1e-12 if tight else 2e-5) * scale,
            err_msg=name,
        )
