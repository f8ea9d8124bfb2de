"""Named starting points for training; each is a partial TrainConfig."""

from __future__ import annotations

from typing import Any

from .config import TrainConfig

PRESETS: dict[str, dict[str, Any]] = {
    "seed": {
        "about": "The original project: 784-128-64-10, full-batch gradient descent with "
        "momentum, weights scaled by sqrt(1/n). About 95 %.",
        "config": {
            "init": "lecun",
            "optimizer": "sgd",
            "lr": 0.5,
            "momentum": 0.9,
            "weight_decay": 0.0,
            "schedule": "constant",
            "batch_size": 55000,
            "epochs": 300,
        },
    },
    "mlp": {
        "about": "The original 784-128-64-10 shape with the best of the roadmap: random "
        "rotations, shifts and rescaling of every training batch, L2, a cosine schedule. "
        "About 99.2 % in a minute.",
        "config": {"epochs": 60, "aug_rotate": 10.0, "aug_shift": 2.0, "aug_scale": 0.1},
    },
    "default": {
        "about": "The same 784-128-64-10 network with mini-batches of 128, a little L2 and "
        "a cosine learning-rate schedule: 98 % in well under 30 s.",
        "config": {},
    },
}


def preset_names() -> list[str]:
    return list(PRESETS)


def preset(name: str) -> TrainConfig:
    """The TrainConfig of preset `name`."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return TrainConfig.from_dict(PRESETS[name]["config"])
