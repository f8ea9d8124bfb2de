"""Optimizers and learning-rate schedules.

Each optimizer updates a list of `Param`s in place; `lr` is passed to every
step so a schedule can change it. L2 weight decay adds `weight_decay * W` to the
gradient of weights (never biases or batch-norm parameters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Param:
    value: np.ndarray
    grad: np.ndarray
    decay: bool  # whether L2 weight decay applies


class Optimizer:
    """Base class: applies weight decay, then `update` each parameter in place.

    Updates avoid temporaries: every parameter gets a scratch buffer of its own size, since
    allocating arrays the size of the first layer's weights costs more than the arithmetic.
    """

    def __init__(self, weight_decay: float = 0.0) -> None:
        self.weight_decay = weight_decay
        self.t = 0  # steps taken
        self.buffers: dict[tuple[int, str], np.ndarray] = {}

    def buffer(self, i: int, name: str, like: np.ndarray) -> np.ndarray:
        """Parameter i's state array `name`, created as zeros on first use."""
        key = (i, name)
        if key not in self.buffers:
            self.buffers[key] = np.zeros_like(like)
        return self.buffers[key]

    # Buffers that are only scratch space, rebuilt on the next step: not part of the state.
    SCRATCH = ("scratch", "decayed_grad")

    def state(self) -> dict[str, np.ndarray]:
        """The optimizer's memory (steps taken, momentum, moments) as named arrays."""
        out = {"t": np.array(self.t)}
        for (i, name), value in self.buffers.items():
            if name not in self.SCRATCH:
                out[f"{i}.{name}"] = value.copy()
        return out

    def load_state(self, state: dict[str, np.ndarray], params: list[Param]) -> None:
        """Take up the memory `state()` gave, for the same parameters; ValueError if it
        does not fit them."""
        buffers = {}
        for key, value in state.items():
            if key == "t":
                continue
            index, _, name = key.partition(".")
            if not index.isdigit() or int(index) >= len(params) or not name:
                raise ValueError(f"the optimizer state has an unknown entry {key!r}")
            if value.shape != params[int(index)].value.shape:
                raise ValueError(
                    f"the optimizer state's {key} has shape {value.shape}, the parameter "
                    f"{params[int(index)].value.shape}"
                )
            buffers[(int(index), name)] = value.astype(params[int(index)].value.dtype)
        self.t = int(state["t"]) if "t" in state else 0
        self.buffers = buffers

    def step(self, params: list[Param], lr: float) -> None:
        self.t += 1
        for i, p in enumerate(params):
            g = p.grad
            if self.weight_decay and p.decay:
                g = self.buffer(i, "decayed_grad", g)
                np.multiply(p.value, self.weight_decay, out=g)
                g += p.grad
            self.update(i, p.value, g, lr, self.buffer(i, "scratch", g))

    def update(self, i: int, w: np.ndarray, g: np.ndarray, lr: float, tmp: np.ndarray) -> None:
        """Change `w` in place from its gradient `g`; `tmp` is free scratch space."""
        raise NotImplementedError


class SGD(Optimizer):
    """The original's momentum rule: v = β v + (1-β) g, w -= lr v (β = 0: plain SGD).

    Nesterov looks ahead along the velocity: w -= lr (β v + (1-β) g). Both keep
    u = v / (1-β), so that u = β u + g and w -= lr (1-β) u: the same rule, one pass
    over the weights cheaper.

    With a constant rate this is the textbook v = μ v - η g, w += v (μ = β, η = lr (1-β)).
    Under a schedule the two differ: here each step's rate scales the whole step when it
    is taken, as in PyTorch (whose SGD is this rule with lr (1-β)); the textbook form bakes
    each gradient's rate into the velocity. tests/test_optimizers.py holds both as loops.
    """

    def __init__(self, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(weight_decay)
        self.momentum, self.nesterov = momentum, nesterov

    def update(self, i: int, w: np.ndarray, g: np.ndarray, lr: float, tmp: np.ndarray) -> None:
        beta = self.momentum
        if beta == 0:
            np.multiply(g, lr, out=tmp)
            w -= tmp
            return
        u = self.buffer(i, "velocity", w)
        u *= beta
        u += g
        if self.nesterov:  # step along β u + g
            np.multiply(u, beta, out=tmp)
            tmp += g
            tmp *= lr * (1 - beta)
        else:
            np.multiply(u, lr * (1 - beta), out=tmp)
        w -= tmp


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias-corrected first and second moments."""

    def __init__(
        self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0
    ) -> None:
        super().__init__(weight_decay)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def update(self, i: int, w: np.ndarray, g: np.ndarray, lr: float, tmp: np.ndarray) -> None:
        m, v = self.buffer(i, "m", w), self.buffer(i, "v", w)
        b1, b2 = self.beta1, self.beta2
        m *= b1
        np.multiply(g, 1 - b1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        # Both bias corrections folded into the step size, as in the paper's Section 2.
        step = lr * math.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        np.sqrt(v, out=tmp)
        tmp += self.eps
        np.divide(m, tmp, out=tmp)
        tmp *= step
        w -= tmp


class RMSprop(Optimizer):
    """RMSprop (Hinton): divide the gradient by a running RMS of recent gradients."""

    def __init__(self, rho: float = 0.9, eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(weight_decay)
        self.rho, self.eps = rho, eps

    def update(self, i: int, w: np.ndarray, g: np.ndarray, lr: float, tmp: np.ndarray) -> None:
        s = self.buffer(i, "square", w)
        s *= self.rho
        np.multiply(g, g, out=tmp)
        tmp *= 1 - self.rho
        s += tmp
        _scaled_step(w, g, s, lr, self.eps, tmp)


class AdaGrad(Optimizer):
    """AdaGrad (Duchi et al., 2011): per-weight steps shrink with the sum of squared gradients."""

    def __init__(self, eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(weight_decay)
        self.eps = eps

    def update(self, i: int, w: np.ndarray, g: np.ndarray, lr: float, tmp: np.ndarray) -> None:
        s = self.buffer(i, "total", w)
        np.multiply(g, g, out=tmp)
        s += tmp
        _scaled_step(w, g, s, lr, self.eps, tmp)


def _scaled_step(
    w: np.ndarray, g: np.ndarray, square: np.ndarray, lr: float, eps: float, tmp: np.ndarray
) -> None:
    """w -= lr g / (sqrt(square) + eps), in place."""
    np.sqrt(square, out=tmp)
    tmp += eps
    np.divide(g, tmp, out=tmp)
    tmp *= lr
    w -= tmp


def make_optimizer(
    name: str, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0
) -> Optimizer:
    """The optimizer called `name` (sgd, adam, rmsprop, adagrad)."""
    if name == "sgd":
        return SGD(momentum, nesterov, weight_decay)
    if name == "adam":
        return Adam(weight_decay=weight_decay)
    if name == "rmsprop":
        return RMSprop(weight_decay=weight_decay)
    if name == "adagrad":
        return AdaGrad(weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}")


def learning_rate(
    base: float,
    epoch: float,
    epochs: int,
    schedule: str = "constant",
    warmup_epochs: float = 0.0,
    step_every: int = 10,
    step_gamma: float = 0.1,
) -> float:
    """The learning rate at fractional `epoch` (0 at the start of training).

    Warm-up ramps linearly from 0 over `warmup_epochs`; after it, `step` multiplies
    by `step_gamma` every `step_every` epochs and `cosine` decays to 0 at the end.
    """
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return base * epoch / warmup_epochs
    if schedule == "constant":
        return base
    if schedule == "step":
        return base * step_gamma ** int(epoch // step_every)
    if schedule == "cosine":
        span = max(epochs - warmup_epochs, 1e-9)
        progress = min(max((epoch - warmup_epochs) / span, 0.0), 1.0)
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}")
