"""Layers: each owns its parameters and implements `forward` and `backward`.

Arrays are float32 and images are NHWC (batch, height, width, channels). A
layer's `backward(dy)` receives dLoss/dOutput, stores dLoss/dParameter in
`grads` (same keys as `params`) and returns dLoss/dInput. A forward pass keeps
what backward needs on the layer but computes its output from local values only,
so one loaded model can answer several dashboard sessions at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

F32 = np.float32
Shape = tuple[int, ...]
# Conv2D and MaxPool2D split batches of at least SPLIT_MIN images in two halves and work
# on both at once, one on this helper thread: NumPy releases the GIL inside its loops and
# matrix products, so the halves run on two cores.
SPLIT_MIN = 32
_SIDE = ThreadPoolExecutor(1, thread_name_prefix="layers")
T = TypeVar("T")


def halves(n: int) -> list[slice]:
    """A batch of n images as two halves when it is worth two cores, else as one part."""
    return [slice(0, n // 2), slice(n // 2, n)] if n >= SPLIT_MIN else [slice(0, n)]


def on_two_cores(work: Callable[[Any], T], parts: Sequence[Any]) -> list[T]:
    """work(part) for every part, all but the last on the helper thread; results in order."""
    futures = [_SIDE.submit(work, part) for part in parts[:-1]]
    last = work(parts[-1])
    return [future.result() for future in futures] + [last]


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
        return self.output_shape(input_shape)

    def output_shape(self, input_shape: Shape) -> Shape:
        """The output shape for inputs of `input_shape`, computed without allocating anything.

        Raises ValueError when the input does not fit the layer.
        """
        return input_shape

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """The shape of each parameter `build` would create, without allocating it."""
        return {}

    def state_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """The shape of each state array (saved, not trained) `build` would create."""
        return {}

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
        keep = self.rng.random(x.shape, dtype=F32) >= self.rate
        self.mask = keep.astype(x.dtype) / (1 - self.rate)
        return x * self.mask

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy if self.mask is None else dy * self.mask

    def get_config(self) -> dict[str, Any]:
        return {"type": self.kind, "rate": self.rate}


class BatchNorm(Layer):
    """Normalizes each feature (dense) or channel (conv) over the batch; running stats in eval.

    Elementwise work runs on a wide view of an image batch, (N·H, W·C) with the
    per-channel vectors tiled W times, because NumPy broadcasts a vector of a few
    channels over millions of rows at a fraction of its speed on rows of hundreds.
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
            m = x.size // c
            # Column sums as a matrix-vector product: far faster than sum(axis=0) on few columns.
            ones = np.ones(m, x.dtype)
            mean = ones @ x.reshape(m, c) / m
            centred = wide - np.tile(mean, tiles)
            squares = centred * centred
            var = ones @ squares.reshape(m, c) / m
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
        m = dy.size // c
        wide = dy.reshape(self.centred.shape)
        tiles = wide.shape[1] // c
        ones = np.ones(m, dy.dtype)
        product = wide * self.centred
        # dγ = Σ dy x̂ and dβ = Σ dy, per channel.
        self.grads["gamma"][...] = ones @ product.reshape(m, c) * self.inv_std
        self.grads["beta"][...] = ones @ dy.reshape(m, c)
        if not need_dx:
            return None
        scale = self.params["gamma"] * self.inv_std
        if not self.training:  # the statistics are constants
            return (wide * np.tile(scale, tiles)).reshape(self.shape)
        # The textbook dx = γ/σ (dy - mean(dy) - x̂ mean(dy x̂)), written per channel as
        # scale·dy - slope·centred - offset; the means are the beta and gamma gradients / m.
        slope = scale * self.inv_std * self.grads["gamma"] / m
        offset = scale * self.grads["beta"] / m
        dx = wide * np.tile(scale, tiles)
        np.multiply(self.centred, np.tile(slope, tiles), out=product)
        dx -= product
        dx -= np.tile(offset, tiles)
        return dx.reshape(self.shape)

    def get_config(self) -> dict[str, Any]:
        return {"type": self.kind, "momentum": self.momentum, "eps": self.eps}


class Conv2D(Layer):
    """2-D convolution, stride 1, as one matrix product over im2col columns.

    W has Keras's layout (kh, kw, channels, filters), so that each column of the image,
    (kh, kw, channels) with channels innermost, is copied from contiguous memory. The
    columns end with a column of ones, so the same product adds the bias and, backwards,
    sums its gradient. 'same' pads by (k-1)/2 on each side (the extra pixel of an even
    kernel goes bottom/right).
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

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(f"a convolution needs an image input, got shape {input_shape}")
        h, w, _ = input_shape
        k = self.kernel_size
        before, after = self._pads()
        out_h, out_w = h + before + after - k + 1, w + before + after - k + 1
        if out_h < 1 or out_w < 1:
            raise ValueError(f"kernel {k}x{k} is larger than its {h}x{w} input")
        return out_h, out_w, self.filters

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        k = self.kernel_size
        return {"W": (k, k, input_shape[-1], self.filters), "b": (self.filters,)}

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        out_h, out_w, _ = self.output_shape(input_shape)
        c, k = input_shape[-1], self.kernel_size
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
        k, (n, h, w, _) = self.kernel_size, x.shape
        y = np.empty((n, h - k + 1, w - k + 1, self.filters), x.dtype)
        weights = np.vstack([self.params["W"].reshape(-1, self.filters), self.params["b"]])

        def work(rows: slice) -> np.ndarray:
            cols = im2col(x[rows], k)
            np.matmul(cols, weights, out=y[rows].reshape(-1, self.filters))
            return cols

        parts = halves(n)
        self.parts = list(zip(parts, on_two_cores(work, parts), strict=True))
        self.padded_shape = x.shape
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        dx = np.zeros(self.padded_shape, dy.dtype) if need_dx else None

        def work(part: tuple[slice, np.ndarray]) -> np.ndarray:
            rows, cols = part
            if dx is not None:
                self._add_input_gradient(dy[rows], dx[rows])
            # The last row, against the ones column, is the bias's gradient.
            return cols.T @ dy[rows].reshape(-1, self.filters)

        grads = sum(on_two_cores(work, self.parts))
        self.grads["W"].reshape(-1, self.filters)[...] = grads[:-1]
        self.grads["b"][...] = grads[-1]
        if dx is None:
            return None
        before, after = self._pads()
        if before or after:
            dx = dx[:, before : dx.shape[1] - after, before : dx.shape[2] - after, :]
        return dx

    def _add_input_gradient(self, dy: np.ndarray, dx: np.ndarray) -> None:
        """col2im, one kernel offset at a time: the input gradient of every pixel that the
        offset (i, j) touched is dy @ W[i, j]ᵀ, added over the whole batch at once."""
        n, out_h, out_w, _ = dy.shape
        dy2 = dy.reshape(-1, self.filters)
        W = self.params["W"]
        for i in range(self.kernel_size):
            for j in range(self.kernel_size):
                dx_ij = (dy2 @ W[i, j].T).reshape(n, out_h, out_w, -1)
                dx[:, i : i + out_h, j : j + out_w, :] += dx_ij

    def get_config(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "padding": self.padding,
            "init": self.init,
        }


def im2col(x: np.ndarray, k: int) -> np.ndarray:
    """(N·H'·W', k·k·C + 1): every k×k window of x (N, H, W, C) as a row, then a 1.

    With one input channel a window row would be copied a pixel at a time, so the
    columns are built transposed instead, one contiguous image shift per kernel offset,
    and returned as a transposed view: matmul reads either layout at full speed.
    """
    n, h, w, c = x.shape
    out_h, out_w = h - k + 1, w - k + 1
    m = n * out_h * out_w
    if c == 1:
        cols_t = np.empty((k * k + 1, n, out_h, out_w), x.dtype)
        for i in range(k):
            for j in range(k):
                cols_t[i * k + j] = x[:, i : i + out_h, j : j + out_w, 0]
        cols_t[-1] = 1
        return cols_t.reshape(k * k + 1, m).T
    cols = np.empty((m, k * k * c + 1), x.dtype)
    windows = sliding_window_view(x, (k, k), axis=(1, 2))  # (N, H', W', C, k, k)
    np.copyto(cols[:, :-1].reshape(n, out_h, out_w, k, k, c), windows.transpose(0, 1, 2, 4, 5, 3))
    cols[:, -1] = 1
    return cols


class MaxPool2D(Layer):
    """Max over non-overlapping p×p windows; a tie sends the gradient to the first maximum.

    The max is taken in two rounds, first down each window's columns and then across
    them, because NHWC memory keeps a window's rows whole and wide: the first round, on
    the full input, reads long contiguous rows. "First" is therefore in column-major order
    (leftmost column, then topmost row). `which` remembers each round's winners for the
    backward pass. Rows and columns beyond the last whole window are dropped.
    """

    kind = "maxpool2d"

    def __init__(self, pool_size: int = 2) -> None:
        super().__init__()
        self.pool_size = int(pool_size)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(f"max-pooling needs an image input, got shape {input_shape}")
        h, w, c = input_shape
        p = self.pool_size
        if h < p or w < p:
            raise ValueError(f"pool {p}x{p} is larger than its {h}x{w} input")
        return h // p, w // p, c

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        n, h, w, c = self.in_shape = x.shape
        p = self.pool_size
        oh, ow = h // p, w // p
        y = np.empty((n, oh, ow, c), x.dtype)

        def work(rows: slice) -> tuple[np.ndarray, np.ndarray]:
            part = np.ascontiguousarray(x[rows, : oh * p, : ow * p])  # a copy only if cropped
            m = len(part)
            columns, down = first_max(part.reshape(m, oh, p, ow * p * c))  # (m, oh, ow·p·c)
            y[rows], across = first_max(columns.reshape(m, oh, ow, p, c))
            return down, across

        parts = halves(n)
        self.parts = list(zip(parts, on_two_cores(work, parts), strict=True))
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        _, h, w, c = self.in_shape
        p = self.pool_size
        oh, ow = h // p, w // p
        cropped = (oh * p, ow * p) != (h, w)
        dx = np.zeros(self.in_shape, dy.dtype) if cropped else np.empty(self.in_shape, dy.dtype)

        def work(part: tuple[slice, tuple[np.ndarray, np.ndarray]]) -> None:
            rows, (down, across) = part
            m = len(down)
            columns = route(dy[rows], across, p, np.empty((m, oh, ow, p, c), dy.dtype))
            columns = columns.reshape(m, oh, ow * p * c)
            if cropped:
                out = np.empty((m, oh, p, ow * p * c), dy.dtype)
                dx[rows, : oh * p, : ow * p] = route(columns, down, p, out).reshape(
                    m, oh * p, ow * p, c
                )
            else:
                route(columns, down, p, dx[rows].reshape(m, oh, p, ow * p * c))

        on_two_cores(work, self.parts)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {"type": self.kind, "pool_size": self.pool_size}


def first_max(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The max over axis -2 of (..., p, k) and the index of its first occurrence (uint8)."""
    best, which = x[..., 0, :], None
    for k in range(1, x.shape[-2]):
        challenger = x[..., k, :]
        wins = (challenger > best).view(np.uint8)
        # k exceeds every earlier index, so a max marks where the challenger won.
        which = wins if which is None else np.maximum(which, wins * np.uint8(k))
        best = np.maximum(best, challenger)
    if which is None:  # a pool of one
        return best.copy(), np.zeros(best.shape, np.uint8)
    return best, which


def route(dy: np.ndarray, which: np.ndarray, p: int, dx: np.ndarray) -> np.ndarray:
    """The inverse of `first_max`: (..., k) gradients sent to the winners in dx (..., p, k)."""
    for k in range(1, p):
        np.multiply(dy, which == k, out=dx[..., k, :])
    # The first position gets what no later one won: dy minus dy or 0, exactly. (One
    # subtraction instead of a comparison and a product, on the common 2x2 pool.)
    later = dx[..., 1, :] if p == 2 else dx[..., 1:, :].sum(axis=-2)
    np.subtract(dy, later, out=dx[..., 0, :])
    return dx


def from_config(spec: dict[str, Any]) -> Layer:
    """Build a layer from its config dict, e.g. {"type": "dense", "units": 128}."""
    args = {k: v for k, v in spec.items() if k != "type"}
    return Layer.registry[spec["type"]](**args)
