"""Training configuration: one flat, JSON-friendly record, validated in one place.

The CLI, the dashboard, the sweeps and the run store all speak `TrainConfig`;
`problems()` is the single source of every validation message they show.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .architecture import cnn_fits
from .memory import available_memory, memory_parts, peak
from .model import INITS, MAX_UNITS, PADDINGS

ARCHS = ("mlp", "cnn")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")
SCHEDULES = ("constant", "step", "cosine")
MNIST_TRAIN_POOL = 60_000  # images in the training file, before the validation split
# The smallest positive float32 that is not a denormal; training flushes denormals to zero
# (core/fpu.py), so a smaller setting would silently be 0.
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
# Positive settings that reach float32 arithmetic.
FLOAT32_SETTINGS = (
    "lr",
    "weight_decay",
    "step_gamma",
    "momentum",
    "dropout",
    "aug_rotate",
    "aug_shift",
    "aug_scale",
    "aug_elastic",
    "aug_elastic_sigma",
)
# The settings the memory estimate reads: it is only made once they are all valid.
MEMORY_SETTINGS = (
    "arch",
    "hidden",
    "conv",
    "kernel_size",
    "padding",
    "activation",
    "dropout",
    "batchnorm",
    "optimizer",
    "momentum",
    "weight_decay",
    "batch_size",
    "train_size",
    "val_size",
    "aug_rotate",
    "aug_shift",
    "aug_scale",
    "aug_elastic",
)


# One line of plain language per setting, shown by the CLI's --help and the Train page.
HELP: dict[str, str] = {
    "arch": "mlp: layers of neurons that each see every pixel; cnn: convolution filters first",
    "hidden": "neurons in each hidden dense layer, e.g. 128,64",
    "conv": "filters in each convolution block (each block halves the image), e.g. 32,64",
    "kernel_size": "width in pixels of each convolution filter",
    "padding": "same: filters may hang over the border; valid: they stay inside it",
    "activation": "the non-linearity after each hidden layer",
    "init": "he suits ReLU; lecun is the original's randn * sqrt(1/n)",
    "dropout": "fraction of hidden neurons switched off at random in each training step",
    "batchnorm": "normalize each layer's outputs over the batch; trains faster and steadier",
    "optimizer": "how the gradient moves the weights: sgd (with momentum), adam, rmsprop, adagrad",
    "lr": "learning rate: how big a step each update takes",
    "momentum": "sgd only: fraction of the previous step's direction carried into the next",
    "nesterov": "sgd only: look ahead along the momentum before taking the gradient",
    "weight_decay": "L2 penalty pulling weights towards zero, against overfitting",
    "schedule": "how the learning rate changes: constant, step (drops), cosine (smooth decay)",
    "warmup_epochs": "epochs over which the learning rate ramps up from zero",
    "step_every": "step schedule: epochs between learning-rate drops",
    "step_gamma": "step schedule: factor applied at each drop",
    "batch_size": "images per update; the whole training set makes it full-batch",
    "epochs": "passes over the training set",
    "patience": "stop after this many epochs without a better validation accuracy (0: never)",
    "aug_rotate": "augmentation: rotate each training image by up to this many degrees",
    "aug_shift": "augmentation: shift each training image by up to this many pixels",
    "aug_scale": "augmentation: scale each training image by up to this fraction",
    "aug_elastic": "augmentation: strength (alpha) of elastic distortion, 0 for none",
    "aug_elastic_sigma": "augmentation: smoothness (sigma) of the elastic distortion",
    "train_size": "train on a random subset of this many images (0: all)",
    "val_size": "images held out to choose the best epoch; never trained on",
    "seed": "the same seed gives the same weights, batches and results",
    "data_dir": "folder of MNIST-format IDX files (empty: the bundled MNIST)",
}


class ConfigError(ValueError):
    """A setting is invalid; `field` names it and the message says what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


@dataclass
class TrainConfig:
    """Every setting of a training run; the defaults are the `default` preset."""

    # Architecture
    arch: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [128, 64])
    conv: list[int] = field(default_factory=lambda: [32, 64])
    kernel_size: int = 3
    padding: str = "same"
    activation: str = "relu"
    init: str = "he"
    dropout: float = 0.0
    batchnorm: bool = False
    # Optimization
    optimizer: str = "sgd"
    lr: float = 1.0
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0001
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    step_every: int = 10
    step_gamma: float = 0.1
    batch_size: int = 128
    epochs: int = 30
    patience: int = 0
    # Augmentation (0 turns each one off)
    aug_rotate: float = 0.0
    aug_shift: float = 0.0
    aug_scale: float = 0.0
    aug_elastic: float = 0.0
    aug_elastic_sigma: float = 4.0
    # Data
    train_size: int = 0
    val_size: int = 5000
    seed: int = 0
    data_dir: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Every setting by name, JSON-friendly."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The settings as JSON, keys sorted (the same config gives the same text)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict, coercing types; unknown or malformed settings raise ConfigError."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        defaults = cls()
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(key, f"unknown setting; known settings are {', '.join(known)}")
            kwargs[key] = _coerce(key, value, getattr(defaults, key))
        return cls(**kwargs)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with `changes`, coerced and checked as `from_dict` does."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    @property
    def augments(self) -> bool:
        """Whether any augmentation is on."""
        return any((self.aug_rotate, self.aug_shift, self.aug_scale, self.aug_elastic))


def _coerce(key: str, value: Any, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, list):
            if isinstance(value, str):
                value = value.replace(" ", "")
                # "128,,64" is a typo, not a two-layer network: reject the empty entry.
                return [int(v) for v in value.split(",")] if value else []
            return [int(v) for v in value]
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        kind = {
            bool: "true or false",
            list: "a list of whole numbers like 128,64",
            int: "a whole number",
            float: "a number",
            str: "text",
        }[type(default)]
        raise ConfigError(key, f"{value!r} is not {kind}") from None


def memory_estimate(cfg: TrainConfig, train_pool: int = MNIST_TRAIN_POOL) -> int:
    """Bytes a training run of `cfg` needs at its peak, beyond the dataset already loaded.

    What it counts is in core/memory.py. `train_pool` is the number of images in the
    training file.
    """
    return peak(memory_parts(cfg, train_pool))


def byte_size(n_bytes: float) -> str:
    """A number of bytes as people read it: 4.0 GiB, 513.0 MiB, 812 bytes."""
    if n_bytes >= 2**30:
        return f"{n_bytes / 2**30:.1f} GiB"
    if n_bytes >= 2**20:
        return f"{n_bytes / 2**20:.1f} MiB"
    return f"{n_bytes:,.0f} bytes"


def _memory_problem(cfg: TrainConfig, train_pool: int, free: int) -> ConfigError | None:
    """A ConfigError if `cfg` needs more than `free` bytes, on the setting most to blame."""
    parts = memory_parts(cfg, train_pool)
    need = peak(parts)
    if need <= free:
        return None
    if parts["training"] > max(parts["weights"], parts["evaluation"]):
        name = "batch_size"
    elif cfg.arch == "cnn" and (
        parts["evaluation"] > parts["weights"] or max(cfg.conv) >= max(cfg.hidden, default=0)
    ):
        name = "conv"
    else:
        name = "hidden"
    return ConfigError(
        name,
        f"this network needs about {byte_size(need)} of memory at batch size {cfg.batch_size} "
        f"but {byte_size(free)} is free: use fewer filters/units or a smaller batch",
    )


def problems(
    cfg: TrainConfig, train_pool: int = MNIST_TRAIN_POOL, free_memory: int | None = None
) -> list[ConfigError]:
    """Every invalid setting of `cfg`, each with a plain message (empty when valid).

    `train_pool` is the number of images in the training file before the validation split;
    `free_memory` the bytes available to training (default: what the machine has free now).
    """
    out: list[ConfigError] = []

    def check(ok: bool, name: str, message: str) -> None:
        if not ok:
            out.append(ConfigError(name, message))

    def choice(name: str, allowed: tuple[str, ...]) -> None:
        value = getattr(cfg, name)
        check(value in allowed, name, f"{value!r} is not one of {', '.join(allowed)}")

    def finite(name: str) -> bool:
        value = getattr(cfg, name)
        ok = isinstance(value, (int, float)) and math.isfinite(value)
        check(ok, name, f"{value!r} is not a finite number")
        return ok

    choice("arch", ARCHS)
    choice("activation", ACTIVATIONS)
    choice("init", INITS)
    choice("optimizer", OPTIMIZERS)
    choice("schedule", SCHEDULES)
    choice("padding", PADDINGS)
    for name in ("hidden", "conv"):
        sizes = getattr(cfg, name)
        check(
            all(1 <= s <= MAX_UNITS for s in sizes),
            name,
            f"every layer needs between 1 and {MAX_UNITS} units, got {sizes}",
        )
        check(len(sizes) <= 8, name, f"at most 8 layers, got {len(sizes)}")
    check(
        cfg.arch != "cnn" or len(cfg.conv) >= 1,
        "conv",
        "a CNN needs at least one convolution block, e.g. 32,64",
    )
    check(
        1 <= cfg.kernel_size <= 28,
        "kernel_size",
        f"must be between 1 and 28 pixels, got {cfg.kernel_size}",
    )
    if cfg.arch == "cnn" and cfg.conv and 1 <= cfg.kernel_size <= 28:
        check(
            cnn_fits(cfg),
            "kernel_size",
            f"kernel {cfg.kernel_size}x{cfg.kernel_size} with {len(cfg.conv)} convolution "
            f"blocks and '{cfg.padding}' padding is larger than its input; "
            "use a smaller kernel, 'same' padding or fewer blocks",
        )
    if finite("dropout"):
        check(0 <= cfg.dropout < 1, "dropout", f"must be in [0, 1), got {cfg.dropout}")
    if finite("lr"):
        msg = f"learning rate must be above 0 and at most 100, got {cfg.lr}"
        check(0 < cfg.lr <= 100, "lr", msg)
    if finite("momentum"):
        check(0 <= cfg.momentum < 1, "momentum", f"must be in [0, 1), got {cfg.momentum}")
    if finite("weight_decay"):
        check(
            0 <= cfg.weight_decay <= 1,
            "weight_decay",
            f"L2 weight decay must be in [0, 1], got {cfg.weight_decay}",
        )
    if finite("warmup_epochs"):
        check(
            0 <= cfg.warmup_epochs <= max(cfg.epochs, 0),
            "warmup_epochs",
            f"must be between 0 and the number of epochs ({cfg.epochs}), got {cfg.warmup_epochs}",
        )
    check(cfg.step_every >= 1, "step_every", f"must be at least 1 epoch, got {cfg.step_every}")
    if finite("step_gamma"):
        check(0 < cfg.step_gamma <= 1, "step_gamma", f"must be in (0, 1], got {cfg.step_gamma}")
    check(1 <= cfg.epochs <= 1000, "epochs", f"must be between 1 and 1000, got {cfg.epochs}")
    check(cfg.patience >= 0, "patience", f"must be 0 (off) or more epochs, got {cfg.patience}")
    for name, low, high in (
        ("aug_rotate", 0, 90), ("aug_shift", 0, 10), ("aug_scale", 0, 0.5),
        ("aug_elastic", 0, 100), ("aug_elastic_sigma", 0.5, 20),
    ):  # fmt: skip
        if finite(name):
            value = getattr(cfg, name)
            check(low <= value <= high, name, f"must be between {low} and {high}, got {value}")
    check(
        1 <= cfg.val_size < train_pool - 10,
        "val_size",
        f"must be between 1 and {train_pool - 11}, got {cfg.val_size}",
    )
    available = train_pool - cfg.val_size
    check(cfg.train_size >= 0, "train_size", f"must be 0 (all) or more, got {cfg.train_size}")
    check(
        cfg.train_size <= available,
        "train_size",
        f"only {available} training images remain after the validation split, got {cfg.train_size}",
    )
    n_train = cfg.train_size or available
    check(cfg.batch_size >= 1, "batch_size", f"must be at least 1, got {cfg.batch_size}")
    check(
        cfg.batch_size <= max(n_train, 1),
        "batch_size",
        f"{cfg.batch_size} is larger than the training set ({n_train} images)",
    )
    check(0 <= cfg.seed < 2**32, "seed", f"must be between 0 and 2**32-1, got {cfg.seed}")
    for name in FLOAT32_SETTINGS:
        if any(p.field == name for p in out):
            continue  # already refused, perhaps as not a number at all
        value = getattr(cfg, name)
        check(
            not 0 < value < FLOAT32_TINY,
            name,
            f"{value!r} is below float32's smallest normal number ({FLOAT32_TINY:.3g}), so "
            "training would use 0; use 0 or a larger value",
        )
    if not any(p.field in MEMORY_SETTINGS for p in out):
        free = available_memory() if free_memory is None else free_memory
        memory = _memory_problem(cfg, train_pool, free) if free is not None else None
        if memory is not None:
            out.append(memory)
    return out


def validate(cfg: TrainConfig, train_pool: int = MNIST_TRAIN_POOL) -> TrainConfig:
    """Return `cfg` if valid, else raise the first ConfigError."""
    found = problems(cfg, train_pool)
    if found:
        raise found[0]
    return cfg
