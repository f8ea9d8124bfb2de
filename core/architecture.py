"""The network a training config describes: its architecture settings as a model spec.

`spec_from_config` turns `arch`, `hidden`, `conv`, `kernel_size`, `padding`,
`activation`, `init`, `dropout` and `batchnorm` into the layer list core/model.py
builds; `cnn_fits` says whether a config's convolution blocks fit the image at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .model import INPUT_SHAPE, N_CLASSES

# Only a type here: core/config.py imports this module (cnn_fits).
if TYPE_CHECKING:
    from .config import TrainConfig


def spec_from_config(cfg: TrainConfig, n_classes: int = N_CLASSES) -> dict[str, Any]:
    """The layer list for a training config's architecture settings."""
    layers: list[dict[str, Any]] = []

    def activation() -> None:
        if cfg.batchnorm:
            layers.append({"type": "batchnorm"})
        layers.append({"type": cfg.activation})

    if cfg.arch == "cnn":
        for filters in cfg.conv:
            layers.append(
                {
                    "type": "conv2d",
                    "filters": filters,
                    "kernel_size": cfg.kernel_size,
                    "padding": cfg.padding,
                    "init": cfg.init,
                }
            )
            # Pooling straight after the convolution leaves batch norm and the activation
            # a quarter of the numbers. The activation commutes with max (every one here is
            # increasing); batch norm does not when γ < 0, so this normalizes the pooled
            # maxima, a common choice that trains as well (see the README's results).
            layers.append({"type": "maxpool2d", "pool_size": 2})
            activation()
    layers.append({"type": "flatten"})
    for units in cfg.hidden:
        layers.append({"type": "dense", "units": units, "init": cfg.init})
        activation()
        if cfg.dropout > 0:
            layers.append({"type": "dropout", "rate": cfg.dropout})
    layers.append({"type": "dense", "units": n_classes, "init": "lecun"})
    return {"input_shape": list(INPUT_SHAPE), "layers": layers}


def cnn_fits(cfg: TrainConfig, side: int = INPUT_SHAPE[0]) -> bool:
    """Whether every convolution + 2x2 max-pool block still has an input to work on."""
    for _ in cfg.conv:
        if cfg.kernel_size > side:
            return False
        if cfg.padding == "valid":
            side -= cfg.kernel_size - 1
        if side < 2:
            return False
        side //= 2
    return True
