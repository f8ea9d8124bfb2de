"""A sequential model built from a declarative spec: the network, and nothing about training.

A spec is plain JSON: {"input_shape": [28, 28, 1], "layers": [{"type": "dense",
"units": 128}, ...]}. The same spec and seed give the same weights. `spec_plan` gives
every layer's shapes without building anything. A model's `.npz` file is read by
core/model_load.py and written by core/model_save.py; the spec a training config
describes is core/architecture.py.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import layers as L
from .layers import conv
from .losses import softmax, softmax_cross_entropy
from .optimizers import Param

F32 = np.float32
INPUT_SHAPE = (28, 28, 1)
N_CLASSES = 10  # every dataset here has ten classes, so every model has ten outputs
# What a layer may be, for a training config (core/config.py) and a model file alike.
MAX_UNITS = 8192  # neurons in a dense layer, or filters in a convolution
INITS = ("he", "lecun")
PADDINGS = ("same", "valid")


class ModelFileError(Exception):
    """A model file is missing, corrupt, or does not match its own architecture."""


class Model:
    """Layers applied in order; the last one's outputs are the logits of a softmax."""

    def __init__(self, spec: dict[str, Any], seed: int = 0) -> None:
        self.spec = json.loads(json.dumps(spec))  # a private, JSON-clean copy
        rng = np.random.default_rng(seed)
        self.layers = [L.from_config(s) for s in self.spec["layers"]]
        shape = tuple(self.spec["input_shape"])
        self.shapes = [shape]
        for layer in self.layers:
            shape = layer.build(shape, rng)
            self.shapes.append(shape)
        self._collect_params()
        # Layers up to the first one with parameters need no input gradient.
        with_params = [i for i, layer in enumerate(self.layers) if layer.params]
        self._first_trainable = with_params[0] if with_params else len(self.layers)
        # A training step runs on copies of the layers (see `_step_on_copies`), and splits
        # its batch across two threads, only for a network with a convolution, whose step
        # (tens of ms) is long enough to pay for them; an MLP's takes under a millisecond.
        self._on_copies = any(isinstance(layer, L.Conv2D) for layer in self.layers)
        self._parts: list[list[L.Layer]] = []  # the last such step's layer copies
        # A convolution followed by a max-pool that drops its last rows or columns (a 2x2
        # pool after an 11x11 output uses 10x10): in a training step the convolution
        # computes only the outputs the pool uses, which changes neither the loss nor any
        # gradient (the dropped outputs have none).
        self._pooled: dict[int, tuple[int, int]] = {}
        for i, (layer, after) in enumerate(zip(self.layers, self.layers[1:], strict=False)):
            if isinstance(layer, L.Conv2D) and isinstance(after, L.MaxPool2D):
                h, w, _ = self.shapes[i + 1]
                p = after.pool_size
                if (h % p, w % p) != (0, 0):
                    self._pooled[i] = (h // p * p, w // p * p)

    def _collect_params(self) -> None:
        """Move all parameters into two flat buffers (with and without weight decay).

        Each layer keeps views into them, so an optimizer updates the whole model in one
        vectorized pass per buffer instead of one small pass per array.
        """
        groups: dict[bool, list[tuple[L.Layer, str]]] = {True: [], False: []}
        for layer in self.layers:
            for name in layer.params:
                groups[name in layer.decayed].append((layer, name))
        self.params = []
        self._places: list[tuple[int, int, str, slice]] = []  # (buffer, layer, name, where)
        index = {id(layer): i for i, layer in enumerate(self.layers)}
        for decay, members in groups.items():
            if not members:
                continue
            values = np.concatenate([layer.params[name].ravel() for layer, name in members])
            grads = np.zeros_like(values)
            offset = 0
            for layer, name in members:
                shape, size = layer.params[name].shape, layer.params[name].size
                where = slice(offset, offset + size)
                layer.params[name] = values[where].reshape(shape)
                layer.grads[name] = grads[where].reshape(shape)
                self._places.append((len(self.params), index[id(layer)], name, where))
                offset += size
            self.params.append(Param(values, grads, decay))
        self._spare_grads: list[np.ndarray] | None = None  # the second part's, made when needed

    def astype(self, dtype: type) -> Model:
        """Convert every array to `dtype` in place (float64 serves the gradient checks)."""
        for layer in self.layers:
            for arrays in (layer.params, layer.grads, layer.state):
                for name, value in arrays.items():
                    arrays[name] = value.astype(dtype)
        self._collect_params()
        return self

    def __repr__(self) -> str:
        """The layer stack with each layer's settings, output shape and parameters (Keras's
        summary)."""
        rows = [("layer", "output shape", "parameters")]
        stack = zip(self.layers, self.spec["layers"], self.shapes[1:], strict=True)
        for layer, config, shape in stack:
            settings = "".join(f" {k}={v}" for k, v in config.items() if k != "type")
            n_params = sum(value.size for value in layer.params.values())
            rows.append((layer.kind + settings, str(shape), f"{n_params:,}"))
        width = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [f"Model(input {self.shapes[0]}, {self.n_params:,} parameters)"]
        for name, shape, count in rows:
            lines.append(f"  {name:<{width[0]}}  {shape:<{width[1]}}  {count:>{width[2]}}")
        return "\n".join(lines)

    @property
    def n_classes(self) -> int:
        """The number of outputs, one per class."""
        return self.shapes[-1][0]

    @property
    def n_params(self) -> int:
        """The number of trainable parameters."""
        return sum(p.value.size for p in self.params)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """The logits for inputs `x`; `training` switches dropout and batch statistics on."""
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dlogits: np.ndarray) -> None:
        """Fill every layer's `grads` from dLoss/dlogits."""
        self._backward(self.layers, dlogits)

    def _backward(self, layers: list[L.Layer], dlogits: np.ndarray) -> None:
        dy = dlogits
        for i in range(len(layers) - 1, self._first_trainable - 1, -1):
            dy = layers[i].backward(dy, need_dx=i > self._first_trainable)

    def loss_and_grads(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """One training forward and backward pass; returns the mean loss and the logits.

        A convolutional network's batch of conv.SPLIT_MIN images or more is split in two
        halves, each run through the whole network on a thread of its own (see
        `_step_on_copies`); the result is the whole batch's loss and gradients either way.
        """
        if self._on_copies:
            return self._step_on_copies(x, labels, conv.halves(len(x)))
        logits = self.forward(x, training=True)
        loss, dlogits = softmax_cross_entropy(logits, labels)
        self.backward(dlogits)
        return loss, logits

    def _step_on_copies(
        self, x: np.ndarray, labels: np.ndarray, parts: list[slice]
    ) -> tuple[float, np.ndarray]:
        """loss_and_grads on copies of the layers, with the batch's parts on two cores.

        Each part runs forward, loss and backward through copies of the layers that share
        the parameters (Layer.share says which part a copy sees), on a thread of its own:
        data parallelism. Part 0 writes its gradients into the model's buffers, part 1 into
        spare ones, and the two are added in that order afterwards, so a seeded run gives
        the same weights every time. The loss divides by the whole batch's size, so the
        halves' gradients add up to the batch's. Batch norm exchanges its sums between the
        parts (its statistics are the whole batch's) and dropout draws its mask for the
        whole batch once. One part (a small batch, or one core) runs on this thread alone.
        The copies also let a convolution skip the outputs its pool drops (`_pooled`)
        without changing what the model's own layers compute.
        """
        n = len(x)
        exchange = L.Exchange(len(parts))
        spare = self._spare() if len(parts) > 1 else []
        self._parts = []
        for k, rows in enumerate(parts):
            share = L.Share(k, rows, n, exchange) if len(parts) > 1 else None
            copies = []
            for i, layer in enumerate(self.layers):
                twin = copy.copy(layer)  # its own forward state; params are the model's
                twin.share = share
                if i in self._pooled:
                    twin.needed = self._pooled[i]
                if k > 0 and layer.grads:
                    twin.grads = {}
                copies.append(twin)
            if k > 0:
                for buffer, i, name, where in self._places:
                    shape = self.layers[i].grads[name].shape
                    copies[i].grads[name] = spare[k - 1][buffer][where].reshape(shape)
            self._parts.append(copies)

        def step(k: int) -> tuple[float, np.ndarray]:
            rows = parts[k]
            out = x[rows]
            for layer in self._parts[k]:
                out = layer.forward(out, True)
            loss, dlogits = softmax_cross_entropy(out, labels[rows], count=n)
            self._backward(self._parts[k], dlogits)
            return loss, out

        if len(parts) == 1:
            return step(0)
        results = _on_threads(step, len(parts), exchange)
        for k in range(1, len(parts)):
            for p, extra in zip(self.params, spare[k - 1], strict=True):
                p.grad += extra
        loss = results[0][0]
        for part_loss, _ in results[1:]:
            loss += part_loss
        return loss, np.concatenate([logits for _, logits in results])

    def _spare(self) -> list[list[np.ndarray]]:
        """Gradient buffers for the parts after the first, laid out as the model's."""
        if self._spare_grads is None:
            self._spare_grads = [np.empty_like(p.grad) for p in self.params]
        return [self._spare_grads]

    def predict_proba(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Class probabilities for float32 inputs (N, 28, 28, 1), in evaluation mode."""
        return (
            np.concatenate(
                [softmax(self.forward(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
            )
            if len(x)
            else np.zeros((0, self.n_classes), F32)
        )

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for inputs `x` in evaluation mode (the last is the logits)."""
        outs = []
        for layer in self.layers:
            x = layer.forward(x, training=False)
            outs.append(x)
        return outs

    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and state array, keyed as in the saved file."""
        return {key: value.copy() for key, value in self.arrays().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load arrays from `get_weights()` or a file into the layers, checking every shape."""
        expected = self.arrays()
        missing = sorted(set(expected) - set(weights))
        extra = sorted(set(weights) - set(expected))
        if missing or extra:
            raise ModelFileError(
                f"the weights do not fit this architecture (missing: {missing[:3]}, "
                f"unexpected: {extra[:3]})"
            )
        for key, target in expected.items():
            value = weights[key]
            if value.shape != target.shape:
                raise ModelFileError(
                    f"{key} has shape {value.shape} but the architecture needs {target.shape}"
                )
            target[...] = value

    def arrays(self) -> dict[str, np.ndarray]:
        """Every parameter and state array, keyed as in the saved file: the model's own, not
        copies (`get_weights` copies)."""
        out = {}
        for i, layer in enumerate(self.layers):
            for group, arrays in (("param", layer.params), ("state", layer.state)):
                for name, value in arrays.items():
                    out[f"{group}.{i}.{name}"] = value
        return out

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Write spec, metadata and weights to one `.npz`, atomically (core/model_save.py)."""
        from .model_save import save_model  # the file format is built on this module

        return save_model(self, path, meta)


def _on_threads(
    work: Callable[[int], tuple[float, np.ndarray]], parts: int, exchange: L.Exchange
) -> list[tuple[float, np.ndarray]]:
    """work(k) for every part k, all but the last on the layers' helper thread.

    A part that fails releases the others from the exchange (they fail with
    BrokenBarrierError), every part is waited for, and the first real error is raised.
    """

    def guarded(k: int) -> tuple[float, np.ndarray]:
        try:
            return work(k)
        except BaseException:
            exchange.abort()
            raise

    futures = [conv._SIDE.submit(guarded, k) for k in range(parts - 1)]
    results, errors = [], []
    try:
        last = guarded(parts - 1)
    except BaseException as error:
        errors.append(error)
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as error:
            errors.append(error)
    if errors:
        broken = threading.BrokenBarrierError
        raise next((e for e in errors if not isinstance(e, broken)), errors[0])
    return [*results, last]


@dataclass
class LayerPlan:
    """One layer of a spec: its shapes and the arrays `build` would give it, none allocated."""

    layer: L.Layer
    input_shape: L.Shape
    output_shape: L.Shape
    params: dict[str, L.Shape]
    state: dict[str, L.Shape]


def spec_plan(spec: dict[str, Any]) -> list[LayerPlan]:
    """Every layer of `spec` with its shapes, from a pure shape pass that allocates nothing.

    Raises ValueError (or KeyError / TypeError for a malformed layer) if the spec does not build.
    """
    shape = tuple(spec["input_shape"])
    plan = []
    for config in spec["layers"]:
        layer = L.from_config(config)
        out = layer.output_shape(shape)
        plan.append(
            LayerPlan(layer, shape, out, layer.param_shapes(shape), layer.state_shapes(shape))
        )
        shape = out
    return plan


def plan_arrays(plan: list[LayerPlan]) -> dict[str, L.Shape]:
    """The shape of every array a model of this plan saves, keyed as in its file."""
    out = {}
    for i, step in enumerate(plan):
        for group, shapes in (("param", step.params), ("state", step.state)):
            for name, shape in shapes.items():
                out[f"{group}.{i}.{name}"] = shape
    return out
