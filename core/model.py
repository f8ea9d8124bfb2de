"""A sequential model built from a declarative spec: the network, and nothing about training.

A spec is plain JSON: {"input_shape": [28, 28, 1], "layers": [{"type": "dense",
"units": 128}, ...]}. The same spec and seed give the same weights. `spec_plan` gives
every layer's shapes without building anything. A model's `.npz` file is read by
core/model_load.py and written by core/model_save.py; the spec a training config
describes is core/architecture.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import layers as L
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
        for decay, members in groups.items():
            if not members:
                continue
            values = np.concatenate([layer.params[name].ravel() for layer, name in members])
            grads = np.zeros_like(values)
            offset = 0
            for layer, name in members:
                shape, size = layer.params[name].shape, layer.params[name].size
                layer.params[name] = values[offset : offset + size].reshape(shape)
                layer.grads[name] = grads[offset : offset + size].reshape(shape)
                offset += size
            self.params.append(Param(values, grads, decay))

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
        dy = dlogits
        for i in range(len(self.layers) - 1, self._first_trainable - 1, -1):
            dy = self.layers[i].backward(dy, need_dx=i > self._first_trainable)

    def loss_and_grads(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """One training forward and backward pass; returns the mean loss and the logits."""
        logits = self.forward(x, training=True)
        loss, dlogits = softmax_cross_entropy(logits, labels)
        self.backward(dlogits)
        return loss, logits

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
