"""Layers: each owns its parameters and implements `forward` and `backward`.

Arrays are float32 and images are NHWC (batch, height, width, channels). A
layer's `backward(dy)` receives dLoss/dOutput, stores dLoss/dParameter in
`grads` (same keys as `params`) and returns dLoss/dInput. A forward pass keeps
what backward needs on the layer but computes its output from local values only,
so one loaded model can answer several dashboard sessions at once.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

F32 = np.float32
Shape = tuple[int, ...]


class Layer:
    """Base class: no parameters, identity shape."""

    kind: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Layer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Layer.registry[cls.kind] = cls

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}  # saved with the model, not trained
        self.decayed: tuple[str, ...] = ()  # parameters L2 weight decay applies to

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        """Create parameters for inputs of `input_shape` (no batch axis); return output shape."""
        return input_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"type": self.kind}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "type")
        return f"{type(self).__name__}({args})"


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

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        (n_in,) = input_shape
        gain = 2.0 if self.init == "he" else 1.0  # "lecun" is the original sqrt(1/n_in)
        W = rng.standard_normal((n_in, self.units), dtype=F32) * F32(np.sqrt(gain / n_in))
        self.params = {"W": W, "b": np.zeros(self.units, F32)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return (self.units,)

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

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        return (int(np.prod(input_shape)),)

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
        return input_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.rate == 0:
            self.mask = None
            return x
        keep = self.rng.random(x.shape, dtype=F32) >= self.rate
        self.mask = keep.astype(x.dtype) / (1 - self.rate)
        return x * self.mask

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy if self.mask is None else dy * self.mask

    def get_config(self) -> dict[str, Any]:
        return {"type": self.kind, "rate": self.rate}


class BatchNorm(Layer):
    """Normalizes each feature (dense) or channel (conv) over the batch; running stats in eval."""

    kind = "batchnorm"

    def __init__(self, momentum: float = 0.9, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = float(momentum), float(eps)

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        c = input_shape[-1]
        self.params = {"gamma": np.ones(c, F32), "beta": np.zeros(c, F32)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.state = {"mean": np.zeros(c, F32), "var": np.ones(c, F32)}
        return input_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.shape = x.shape
        x2 = x.reshape(-1, x.shape[-1])  # (positions, channels): a view, channels last
        if training:
            m = len(x2)
            # Column sums as a matrix-vector product: far faster than sum(axis=0) on few columns.
            self.ones = np.ones(m, x.dtype)
            mean = self.ones @ x2 / m
            centred = x2 - mean
            var = self.ones @ (centred * centred) / m
            keep = self.momentum
            self.state["mean"] = keep * self.state["mean"] + (1 - keep) * mean
            # The running variance is unbiased, as in Keras and PyTorch.
            unbiased = var * (m / max(m - 1, 1))
            self.state["var"] = keep * self.state["var"] + (1 - keep) * unbiased
        else:
            centred = x2 - self.state["mean"]
            var = self.state["var"]
        inv_std = 1 / np.sqrt(var + self.eps)
        xhat = centred
        xhat *= inv_std
        self.training, self.inv_std, self.xhat = training, inv_std, xhat
        y = xhat * self.params["gamma"]
        y += self.params["beta"]
        return y.reshape(x.shape)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        dy2 = dy.reshape(-1, dy.shape[-1])
        ones = self.ones if self.training else np.ones(len(dy2), dy.dtype)
        self.grads["gamma"][...] = ones @ (dy2 * self.xhat)
        self.grads["beta"][...] = ones @ dy2
        if not need_dx:
            return None
        scale = self.params["gamma"] * self.inv_std
        if not self.training:  # the statistics are constants
            return (dy2 * scale).reshape(self.shape)
        # The textbook dx = γ/σ (dy - mean(dy) - x̂ mean(dy x̂)), with both means already at
        # hand as the beta and gamma gradients divided by the number of positions.
        m = len(dy2)
        dx = self.xhat * (self.grads["gamma"] / m)
        dx += self.grads["beta"] / m
        np.subtract(dy2, dx, out=dx)
        dx *= scale
        return dx.reshape(self.shape)

    def get_config(self) -> dict[str, Any]:
        return {"type": self.kind, "momentum": self.momentum, "eps": self.eps}


class Conv2D(Layer):
    """2-D convolution, stride 1, as one matrix product over im2col columns.

    W has Keras's layout (kh, kw, channels, filters), so that each column of the image,
    (kh, kw, channels) with channels innermost, is copied from contiguous memory. 'same'
    pads by (k-1)/2 on each side (the extra pixel of an even kernel goes bottom/right).
    """

    kind = "conv2d"

    def __init__(
        self, filters: int, kernel_size: int = 3, padding: str = "same", init: str = "he"
    ) -> None:
        super().__init__()
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.padding, self.init = padding, init
        self.decayed = ("W",)

    def _pads(self) -> tuple[int, int]:
        if self.padding == "valid":
            return 0, 0
        total = self.kernel_size - 1
        return total // 2, total - total // 2

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        h, w, c = input_shape
        k = self.kernel_size
        before, after = self._pads()
        out_h, out_w = h + before + after - k + 1, w + before + after - k + 1
        if out_h < 1 or out_w < 1:
            raise ValueError(f"kernel {k}x{k} is larger than its {h}x{w} input")
        fan_in = c * k * k
        gain = 2.0 if self.init == "he" else 1.0
        W = rng.standard_normal((k, k, c, self.filters), dtype=F32) * F32(np.sqrt(gain / fan_in))
        self.params = {"W": W, "b": np.zeros(self.filters, F32)}
        self.grads = {name: np.zeros_like(v) for name, v in self.params.items()}
        return out_h, out_w, self.filters

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        before, after = self._pads()
        if before or after:
            x = np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))
        k = self.kernel_size
        windows = sliding_window_view(x, (k, k), axis=(1, 2))  # (N, H', W', C, k, k)
        n, out_h, out_w = windows.shape[:3]
        # Copy into contiguous columns ordered (kh, kw, C), matching W's layout.
        cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * out_h * out_w, -1)
        self.cols, self.padded_shape = cols, x.shape
        y = cols @ self.params["W"].reshape(-1, self.filters)
        y += self.params["b"]
        return y.reshape(n, out_h, out_w, self.filters)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        dy2 = dy.reshape(-1, self.filters)
        np.matmul(self.cols.T, dy2, out=self.grads["W"].reshape(-1, self.filters))
        np.sum(dy2, axis=0, out=self.grads["b"])
        if not need_dx:
            return None
        n, out_h, out_w, _ = dy.shape
        W = self.params["W"]
        # col2im, one kernel offset at a time: the input gradient of every pixel that the
        # offset (i, j) touched is dy @ W[i, j]ᵀ, added over the whole batch at once.
        dx = np.zeros(self.padded_shape, dy.dtype)
        for i in range(self.kernel_size):
            for j in range(self.kernel_size):
                dx_ij = (dy2 @ W[i, j].T).reshape(n, out_h, out_w, -1)
                dx[:, i : i + out_h, j : j + out_w, :] += dx_ij
        before, after = self._pads()
        if before or after:
            dx = dx[:, before : dx.shape[1] - after, before : dx.shape[2] - after, :]
        return dx

    def get_config(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "padding": self.padding,
            "init": self.init,
        }


class MaxPool2D(Layer):
    """Max over non-overlapping p×p windows; a tie sends the gradient to the first maximum.

    The window's p² positions are read as p² strided views of the input (no copies), and
    `which` remembers the winning position of every output for the backward pass.
    """

    kind = "maxpool2d"

    def __init__(self, pool_size: int = 2) -> None:
        super().__init__()
        self.pool_size = int(pool_size)

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        h, w, c = input_shape
        p = self.pool_size
        if h < p or w < p:
            raise ValueError(f"pool {p}x{p} is larger than its {h}x{w} input")
        return h // p, w // p, c

    def _views(self, x: np.ndarray) -> list[np.ndarray]:
        """The p² positions of every window in row-major order, each an (N, H/p, W/p, C) view."""
        p = self.pool_size
        oh, ow = x.shape[1] // p, x.shape[2] // p
        return [x[:, i : oh * p : p, j : ow * p : p, :] for i in range(p) for j in range(p)]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.in_shape = x.shape
        # A knock-out tournament between the window's positions: each round keeps the larger
        # of every pair (the earlier one on a tie) and which position it came from.
        players = [(view, np.uint8(k)) for k, view in enumerate(self._views(x))]
        while len(players) > 1:
            winners = []
            for (a, where_a), (b, where_b) in zip(players[::2], players[1::2], strict=False):
                winners.append((np.maximum(a, b), np.where(b > a, where_b, where_a)))
            players = winners + players[len(winners) * 2 :]
        y, self.which = players[0]
        return np.array(y)  # a copy when the pool is 1x1 and y is still a view of x

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        dx = np.zeros(self.in_shape, dy.dtype)
        for position, view in enumerate(self._views(dx)):
            np.multiply(dy, self.which == position, out=view)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {"type": self.kind, "pool_size": self.pool_size}


def from_config(spec: dict[str, Any]) -> Layer:
    """Build a layer from its config dict, e.g. {"type": "dense", "units": 128}."""
    args = {k: v for k, v in spec.items() if k != "type"}
    return Layer.registry[spec["type"]](**args)
