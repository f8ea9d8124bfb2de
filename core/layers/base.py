"""The layer interface every layer implements, the registry that builds layers from a spec,
and the one rule a layer must keep: gradients are written in place.

Arrays are float32 and images are NHWC (batch, height, width, channels). A layer's
`backward(dy)` receives dLoss/dOutput, stores dLoss/dParameter in `grads` (same keys as
`params`) and returns dLoss/dInput. A forward pass keeps what backward needs on the layer
but computes its output from local values only, so one loaded model can answer several
dashboard sessions at once.

The in-place contract. Once a Model is built, every `params[name]` and `grads[name]` is a
view into one of the model's flat buffers (core/model.py, `_collect_params`), which the
optimizer updates in one vectorized pass. So `backward` writes each gradient into the
array it is given, whole, every time (`np.matmul(a, b, out=self.grads["W"])`,
`self.grads["b"][...] = ...`), and never rebinds it (`self.grads["W"] = ...`): a rebound
array is detached from the buffer, and the optimizer would go on, silently, with whatever
the buffer last held. The buffers are not zeroed between steps, so a gradient is
overwritten, never accumulated. `state` (batch norm's running statistics) is not in the
buffers and may be replaced. tests/test_layers.py checks the contract for every layer type.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np

F32 = np.float32
Shape = tuple[int, ...]


class Layer:
    """Base class: no parameters, identity shape.

    A subclass with parameters creates `params` and `grads` in `build`, and its
    `backward` writes into `grads[name]` in place, never rebinding it: after the model is
    built, those arrays are views into the model's flat gradient buffers, the only ones
    the optimizer reads (see this module's docstring).
    """

    kind: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Layer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Layer.registry[cls.kind] = cls

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}  # written in place by backward, never rebound
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
        """The layer's output for a batch `x`; keeps on the layer what `backward` needs."""
        raise NotImplementedError

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        """Write dLoss/dParameter into `grads` in place; return dLoss/dInput (None if not needed).

        `dy` is dLoss/dOutput for the batch of the last `forward`.
        """
        raise NotImplementedError

    def vjp(self, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """dLoss/dInput at inputs `x` in evaluation mode, given dLoss/dOutput `dy`.

        It runs `forward` and `backward` on a scratch copy of the layer, so the parameters'
        gradients and what the last forward pass kept are left as they were.
        """
        scratch = copy.copy(self)
        scratch.grads = {name: np.empty_like(grad) for name, grad in self.grads.items()}
        scratch.forward(x, training=False)
        dx = scratch.backward(dy)
        assert dx is not None  # backward returns dLoss/dInput whenever need_dx is true
        return dx

    def get_config(self) -> dict[str, Any]:
        """The settings that rebuild this layer through `from_config`."""
        return {"type": self.kind}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "type")
        return f"{type(self).__name__}({args})"


def from_config(spec: dict[str, Any]) -> Layer:
    """Build a layer from its config dict, e.g. {"type": "dense", "units": 128}."""
    args = {k: v for k, v in spec.items() if k != "type"}
    return Layer.registry[spec["type"]](**args)
