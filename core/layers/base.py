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
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

F32 = np.float32
Shape = tuple[int, ...]


class Exchange:
    """Where the parts of one batch, each trained on a thread of its own, meet.

    `total` adds up every part's partial sums, always in part order (part 0 + part 1), so
    the result is the same on every thread and in every run, however the threads were
    scheduled. `once` computes a value for the whole batch exactly once, whichever part
    asks first. `abort` releases the other parts when one fails, so none waits forever.
    """

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties)
        # Two sets of slots, used in turn: a part can be at most one `total` ahead of the
        # others (the barrier holds it there), so the set it writes is never being read.
        self.slots: list[list[Any]] = [[None] * parties, [None] * parties]
        self.calls = [0] * parties
        self.lock = threading.Lock()
        self.cache: dict[Any, Any] = {}

    def total(self, part: int, partial: np.ndarray) -> np.ndarray:
        """The sum over all parts of `partial`, added in part order."""
        slots = self.slots[self.calls[part] % 2]
        self.calls[part] += 1
        slots[part] = partial
        self.barrier.wait()
        out = slots[0].copy()
        for other in slots[1:]:
            out += other
        return out

    def once(self, key: Any, make: Callable[[], Any]) -> Any:
        """make(), computed by the first part to ask for `key` and shared with the others."""
        with self.lock:
            if key not in self.cache:
                self.cache[key] = make()
            return self.cache[key]

    def abort(self) -> None:
        """Wake every part waiting in `total` with threading.BrokenBarrierError."""
        self.barrier.abort()


@dataclass
class Share:
    """A layer copy's part of a batch that is split across threads (core/model.py).

    rows: which of the batch's images this part holds; n: images in the whole batch; part:
    this part's number (part 0 also keeps the running statistics); exchange: where the
    parts add up their sums.
    """

    part: int
    rows: slice
    n: int
    exchange: Exchange

    def total(self, partial: np.ndarray) -> np.ndarray:
        """The whole batch's sum of a per-part sum (see Exchange.total)."""
        return self.exchange.total(self.part, partial)


class Layer:
    """Base class: no parameters, identity shape.

    A subclass with parameters creates `params` and `grads` in `build`, and its
    `backward` writes into `grads[name]` in place, never rebinding it: after the model is
    built, those arrays are views into the model's flat gradient buffers, the only ones
    the optimizer reads (see this module's docstring).
    """

    kind: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Layer]]] = {}
    # Set on a layer's per-thread copy when Model splits a training batch across threads:
    # which part of the batch this copy sees. Layers that need the whole batch (batch
    # norm's statistics, dropout's random numbers) use it; None is a whole batch.
    share: Share | None = None

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
