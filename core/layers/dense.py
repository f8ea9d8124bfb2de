"""Dense, and the layers that go between dense layers: activations, dropout and flatten."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import F32, Layer, Shape


class Dense(Layer):
    """y = x W + b, with W of shape (inputs, units).

    The original network wrote W as (units, inputs); this layout is the same weights
    transposed, which lets BLAS run both x W and xᵀ dy without transposing W (20 % faster).
    """

    kind = "dense"

    def __init__(self, units: int, init: str = "he") -> None:
        super().__init__()
        self.units, self.init = int(units), init
        self.decayed = ("W",)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"a dense layer needs a flat input, got shape {input_shape}")
        return (self.units,)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"W": (input_shape[0], self.units), "b": (self.units,)}

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        out = self.output_shape(input_shape)
        (n_in,) = input_shape
        gain = 2.0 if self.init == "he" else 1.0  # "lecun" is the original sqrt(1/n_in)
        W = rng.standard_normal((n_in, self.units), dtype=F32) * F32(np.sqrt(gain / n_in))
        self.params = {"W": W, "b": np.zeros(self.units, F32)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return out

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.x = x
        y = x @ self.params["W"]
        y += self.params["b"]
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        np.matmul(self.x.T, dy, out=self.grads["W"])
        np.sum(dy, axis=0, out=self.grads["b"])
        return dy @ self.params["W"].T if need_dx else None

    def get_config(self) -> dict[str, Any]:
        return {"type": self.kind, "units": self.units, "init": self.init}


class ReLU(Layer):
    kind = "relu"

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.y = y = np.maximum(x, 0)
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy * (self.y > 0)


class LeakyReLU(Layer):
    kind = "leaky_relu"

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.positive = positive = x > 0
        return np.where(positive, x, x * self.alpha)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return np.where(self.positive, dy, dy * self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {"type": self.kind, "alpha": self.alpha}


class Tanh(Layer):
    kind = "tanh"

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.y = y = np.tanh(x)
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy * (1 - self.y * self.y)


class Sigmoid(Layer):
    kind = "sigmoid"

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        # Written through tanh so that large |x| cannot overflow exp.
        self.y = y = 0.5 * (1 + np.tanh(0.5 * x))
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy * self.y * (1 - self.y)


class Flatten(Layer):
    kind = "flatten"

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy.reshape(self.shape)


class Dropout(Layer):
    """Inverted dropout: scales kept units by 1/(1-rate) in training, identity at evaluation."""

    kind = "dropout"

    def __init__(self, rate: float = 0.5) -> None:
        super().__init__()
        self.rate = float(rate)

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        self.rng = np.random.default_rng(rng.integers(2**63))
        return self.output_shape(input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.rate == 0:
            self.mask = None
            return x
        if self.share is None:
            keep = self.rng.random(x.shape, dtype=F32) >= self.rate
        else:
            # A part of a split batch: the whole batch's numbers are drawn once, by whichever
            # part comes first, so the masks are the same however the batch is split.
            share, shape = self.share, (self.share.n, *x.shape[1:])
            whole = share.exchange.once(id(self.rng), lambda: self.rng.random(shape, dtype=F32))
            keep = whole[share.rows] >= self.rate
        self.mask = keep.astype(x.dtype) / (1 - self.rate)
        return x * self.mask

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy if self.mask is None else dy * self.mask

    def get_config(self) -> dict[str, Any]:
        return {"type": self.kind, "rate": self.rate}
