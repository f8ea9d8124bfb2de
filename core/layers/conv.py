"""Convolution and max-pooling, each split over the machine's two cores.

Conv2D is im2col plus one matrix product; MaxPool2D takes the max in two rounds along
NHWC memory. Both split every batch of SPLIT_MIN images or more into two halves and work
on both at once, one on a helper thread: NumPy releases the GIL inside its loops and
matrix products, so each half gets a core. `set_two_cores(False)` keeps every batch whole
on the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .base import F32, Layer, Shape

# Below this many images a batch is not worth a second thread.
SPLIT_MIN = 32
_SIDE = ThreadPoolExecutor(1, thread_name_prefix="layers")
T = TypeVar("T")
# Off when other processes train on the other cores (core/worker.py with several slots): a
# second thread would then only compete with them for a core.
_two_cores = True


def set_two_cores(enabled: bool) -> bool:
    """Whether `halves` may split a batch over two cores (the default); returns the old setting."""
    global _two_cores
    old, _two_cores = _two_cores, bool(enabled)
    return old


def halves(n: int) -> list[slice]:
    """A batch of n images as two halves when it is worth two cores, else as one part."""
    if _two_cores and n >= SPLIT_MIN:
        return [slice(0, n // 2), slice(n // 2, n)]
    return [slice(0, n)]


def on_two_cores(work: Callable[[Any], T], parts: Sequence[Any]) -> list[T]:
    """work(part) for every part, all but the last on the helper thread; results in order."""
    futures = [_SIDE.submit(work, part) for part in parts[:-1]]
    last = work(parts[-1])
    return [future.result() for future in futures] + [last]


def parts_of(layer: Layer, n: int) -> list[slice]:
    """How `layer` cuts a batch of n images: in halves (see `halves`), unless the batch
    already is one part of a batch that Model split across the threads (Layer.share)."""
    return [slice(0, n)] if layer.share is not None else halves(n)


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
        # In a training step, the output rows and columns the next layer uses, when Model
        # knows it uses fewer (a max-pool that drops the last ones); None: all of them.
        self.needed: tuple[int, int] | None = None

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
        k = self.kernel_size
        self.padded_shape = x.shape
        if training and self.needed is not None:
            # Only the windows of the outputs that are used; backward's dx stays zero
            # beyond them, as those outputs' gradient is.
            x = x[:, : self.needed[0] + k - 1, : self.needed[1] + k - 1]
        n, h, w, _ = x.shape
        y = np.empty((n, h - k + 1, w - k + 1, self.filters), x.dtype)
        weights = np.vstack([self.params["W"].reshape(-1, self.filters), self.params["b"]])

        def work(rows: slice) -> np.ndarray:
            cols = im2col(x[rows], k)
            np.matmul(cols, weights, out=y[rows].reshape(-1, self.filters))
            return cols

        parts = parts_of(self, n)
        self.parts = list(zip(parts, on_two_cores(work, parts), strict=True))
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        dx = np.zeros(self.padded_shape, dy.dtype) if need_dx else None

        def work(part: tuple[slice, np.ndarray]) -> np.ndarray:
            rows, cols = part
            if dx is not None:
                self._add_input_gradient(dy[rows], dx[rows])
            # colsᵀ dy, computed as (dyᵀ cols)ᵀ: BLAS runs this shape of the same product
            # 20 % faster. Its last row, against the ones column, is the bias's gradient.
            return (dy[rows].reshape(-1, self.filters).T @ cols).T

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
        # One scratch array for the nine products: a fresh one each time costs more.
        dx_ij = np.empty((len(dy2), W.shape[2]), dy.dtype)
        for i in range(self.kernel_size):
            for j in range(self.kernel_size):
                np.matmul(dy2, W[i, j].T, out=dx_ij)
                dx[:, i : i + out_h, j : j + out_w, :] += dx_ij.reshape(n, out_h, out_w, -1)

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

    The plain formula, for every image n, window (i, j) and channel c:

        y[n, i, j, c] = max over a, b < p of x[n, p·i + a, p·j + b, c]
        dx[n, p·i + a, p·j + b, c] = dy[n, i, j, c] at the window's first maximum, else 0

    where "first" is column-major: the leftmost column b holding the maximum, then the
    topmost row a in it. Rows and columns beyond the last whole window are dropped (their
    dx is 0). tests/test_layers.py holds this as a loop over windows.

    The code takes the max in two rounds, first down each window's columns (over a) and
    then across them (over b), because NHWC memory keeps a window's rows whole and wide:
    the first round, on the full input, reads long contiguous rows. That order is what
    makes "first" column-major. `first_max` remembers each round's winners, and `route`
    sends the gradient back through the same two rounds.
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

        parts = parts_of(self, n)
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
