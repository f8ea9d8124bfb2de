"""Batch normalization (Ioffe & Szegedy, 2015), on a wide view of image batches for speed."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import F32, Layer, Shape


class BatchNorm(Layer):
    """Normalizes each feature (dense) or channel (conv) over the batch; running stats in eval.

    The plain formula, per channel, over its m values in the batch (m = N, or N·H·W):

        training:   μ = mean(x),  σ² = mean((x - μ)²),  x̂ = (x - μ) / √(σ² + ε)
                    y = γ x̂ + β
                    running mean ← k·mean + (1-k)·μ,  running var ← k·var + (1-k)·σ²·m/(m-1)
        evaluation: y = γ (x - running mean) / √(running var + ε) + β
        backward:   dγ = Σ dy·x̂,  dβ = Σ dy
                    dx = γ/√(σ² + ε) · (dy - mean(dy) - x̂·mean(dy·x̂))   (training)
                    dx = γ/√(running var + ε) · dy                       (evaluation)

    with k the momentum. The code computes exactly this (tests/test_layers.py holds it as
    a float64 loop) with three tricks. Elementwise work runs on a wide view of an image
    batch, (N·H, W·C) with the per-channel vectors tiled W times, because NumPy broadcasts
    a vector of a few channels over millions of rows at a fraction of its speed on rows of
    hundreds. Per-channel sums are matrix-vector products with a vector of ones. And x̂ is
    never stored: y = (γ/σ)·(x - μ) + β, and dx = (γ/σ)·dy - slope·(x - μ) - offset, with
    slope = (γ/σ)·dγ/(σ·m) and offset = (γ/σ)·dβ/m per channel.

    When Model splits a training batch across two threads (Layer.share), each part adds up
    its own sums and the parts exchange them (μ, σ², and backwards dγ, dβ), so the
    statistics are still those of the whole batch, not of each half.
    """

    kind = "batchnorm"

    def __init__(self, momentum: float = 0.9, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = float(momentum), float(eps)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"gamma": input_shape[-1:], "beta": input_shape[-1:]}

    def state_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"mean": input_shape[-1:], "var": input_shape[-1:]}

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        c = input_shape[-1]
        self.params = {"gamma": np.ones(c, F32), "beta": np.zeros(c, F32)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.state = {"mean": np.zeros(c, F32), "var": np.ones(c, F32)}
        return self.output_shape(input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        c = x.shape[-1]
        wide = x.reshape(-1, x.shape[-2] * c) if x.ndim > 2 else x
        tiles = wide.shape[1] // c
        if training:
            rows = x.size // c  # this array's values per channel
            m = self._batch_count(rows, len(x))
            # Column sums as a matrix-vector product: far faster than sum(axis=0) on few columns.
            ones = np.ones(rows, x.dtype)
            mean = self._total(ones @ x.reshape(rows, c)) / m
            centred = wide - np.tile(mean, tiles)
            squares = centred * centred
            var = self._total(ones @ squares.reshape(rows, c)) / m
            if self.share is None or self.share.part == 0:  # once per batch, not per part
                keep = self.momentum
                self.state["mean"] = keep * self.state["mean"] + (1 - keep) * mean
                # The running variance is unbiased, as in Keras and PyTorch.
                unbiased = var * (m / max(m - 1, 1))
                self.state["var"] = keep * self.state["var"] + (1 - keep) * unbiased
        else:
            centred = wide - np.tile(self.state["mean"], tiles)
            var = self.state["var"]
        inv_std = 1 / np.sqrt(var + self.eps)
        # y = γ x̂ + β with x̂ = centred / σ, in two passes: x̂ itself is never stored.
        y = centred * np.tile(self.params["gamma"] * inv_std, tiles)
        y += np.tile(self.params["beta"], tiles)
        self.shape, self.training = x.shape, training
        self.centred, self.inv_std = centred, inv_std
        return y.reshape(x.shape)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        c = dy.shape[-1]
        rows = dy.size // c
        wide = dy.reshape(self.centred.shape)
        tiles = wide.shape[1] // c
        ones = np.ones(rows, dy.dtype)
        product = wide * self.centred
        # dγ = Σ dy x̂ and dβ = Σ dy, per channel (over this part of a split batch: the
        # model adds the parts' gradients up).
        dgamma = ones @ product.reshape(rows, c) * self.inv_std
        dbeta = ones @ dy.reshape(rows, c)
        self.grads["gamma"][...] = dgamma
        self.grads["beta"][...] = dbeta
        if not need_dx:
            return None
        scale = self.params["gamma"] * self.inv_std
        if not self.training:  # the statistics are constants
            return (wide * np.tile(scale, tiles)).reshape(self.shape)
        # The textbook dx = γ/σ (dy - mean(dy) - x̂ mean(dy x̂)), written per channel as
        # scale·dy - slope·centred - offset; the means are the whole batch's beta and gamma
        # gradients / m.
        m = self._batch_count(rows, len(dy))
        if self.share is not None:
            both = self.share.total(np.concatenate([dgamma, dbeta]))
            dgamma, dbeta = both[:c], both[c:]
        slope = scale * self.inv_std * dgamma / m
        offset = scale * dbeta / m
        dx = wide * np.tile(scale, tiles)
        np.multiply(self.centred, np.tile(slope, tiles), out=product)
        dx -= product
        dx -= np.tile(offset, tiles)
        return dx.reshape(self.shape)

    def _batch_count(self, rows: int, n: int) -> int:
        """Values per channel in the whole batch, given `rows` of them in `n` images here."""
        return rows if self.share is None else rows // n * self.share.n

    def _total(self, sums: np.ndarray) -> np.ndarray:
        """Per-channel sums over the whole batch, from this part's (see Layer.share)."""
        return sums if self.share is None else self.share.total(sums)

    def get_config(self) -> dict[str, Any]:
        return {"type": self.kind, "momentum": self.momentum, "eps": self.eps}
