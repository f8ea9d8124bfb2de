"""The settings a run can change while it trains: its knobs.

    lr            the base learning rate; the schedule (warm-up, step, cosine) goes on
                  scaling it, so "lr 0.1 → 0.01" divides every later step by ten
    momentum      SGD's momentum
    weight_decay  the L2 penalty
    dropout       the rate of the network's dropout layers (a network built without
                  dropout has none to change)
    pace          at most this many batches a second (0: as fast as it can), to let a
                  class watch the first epoch unfold; it changes nothing the run learns

A change asked for during a batch applies from the next one (`Knobs.request`, then
`Knobs.apply` between batches), so no batch ever mixes old and new values.
"""

from __future__ import annotations

import math
from typing import Any

from .config import TrainConfig, problems
from .layers import Dropout
from .model import Model
from .optimizers import SGD, Optimizer

KNOBS = ("lr", "momentum", "weight_decay", "dropout", "pace")
LABELS = {
    "lr": "learning rate",
    "momentum": "momentum",
    "weight_decay": "weight decay",
    "dropout": "dropout",
    "pace": "pace (batches a second)",
}
SHORT = {"lr": "lr", "momentum": "momentum", "weight_decay": "decay", "dropout": "dropout"}
MAX_PACE = 1000.0  # batches a second: far above what any network here trains at


class KnobError(ValueError):
    """A knob change that cannot be made; the message says why, in a user's words."""


def check_changes(config: TrainConfig, changes: dict[str, Any]) -> dict[str, float]:
    """The changes as numbers, checked against the run's config; KnobError for the first
    one that is not a knob, not a number, out of range, or meaningless for this run."""
    checked: dict[str, float] = {}
    for key, value in changes.items():
        if key not in KNOBS:
            raise KnobError(
                f"{key!r} cannot be changed while a run trains; knobs: {', '.join(KNOBS)}"
            )
        if isinstance(value, bool):
            raise KnobError(f"{key} must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise KnobError(f"{key} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise KnobError(f"{key} must be a finite number, got {value!r}")
        checked[key] = number
    if "pace" in checked and not 0 <= checked["pace"] <= MAX_PACE:
        raise KnobError(f"pace must be from 0 (full speed) to {MAX_PACE:g} batches a second")
    if "momentum" in checked and config.optimizer != "sgd":
        raise KnobError(f"momentum is a setting of sgd; this run trains with {config.optimizer}")
    if "dropout" in checked and config.dropout == 0:
        raise KnobError(
            "this network was built without dropout layers (dropout 0), so there is no "
            "dropout to change; start a run with dropout above 0"
        )
    settings = {k: v for k, v in checked.items() if k != "pace"}
    if settings:
        for problem in problems(config.replace(**settings)):
            if problem.field in settings:
                raise KnobError(f"{problem.field}: {problem.message}")
    return checked


def parse_assignments(texts: list[str]) -> dict[str, str]:
    """`["lr=0.01", "momentum=0.5"]` as {"lr": "0.01", "momentum": "0.5"}; KnobError if one
    is not of the form key=value."""
    out = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise KnobError(f"{text!r} is not of the form key=value (e.g. lr=0.01)")
        out[key.strip()] = value.strip()
    return out


def starting_values(config: TrainConfig) -> dict[str, float]:
    """The knobs' values before any change: the config's, at full speed."""
    return {
        "lr": config.lr,
        "momentum": config.momentum,
        "weight_decay": config.weight_decay,
        "dropout": config.dropout,
        "pace": 0.0,
    }


class Knobs:
    """The live values of a training run's knobs, bound to its model and optimizer."""

    def __init__(self, config: TrainConfig) -> None:
        self.values = starting_values(config)
        self.pending: dict[str, float] = {}
        self.model: Model | None = None
        self.optimizer: Optimizer | None = None

    @property
    def lr(self) -> float:
        """The base learning rate now (before the schedule scales it)."""
        return self.values["lr"]

    def bind(self, model: Model, optimizer: Optimizer) -> None:
        """Attach the model and optimizer that changes are made to (`fit` does this)."""
        self.model, self.optimizer = model, optimizer
        self.pending = {**self.values, **self.pending}
        self.apply()

    def request(self, changes: dict[str, float]) -> dict[str, tuple[float, float]]:
        """Ask for changes from the next batch on; returns what changes, as (from, to)."""
        done = {}
        for key, value in changes.items():
            before = self.pending.get(key, self.values[key])
            if value != before:
                done[key] = (before, value)
            self.pending[key] = value
        return done

    def apply(self) -> None:
        """Make the pending changes (between two batches)."""
        if not self.pending:
            return
        self.values.update(self.pending)
        self.pending = {}
        if self.optimizer is not None:
            self.optimizer.weight_decay = self.values["weight_decay"]
            if isinstance(self.optimizer, SGD):
                self.optimizer.momentum = self.values["momentum"]
        if self.model is not None:
            for layer in self.model.layers:
                if isinstance(layer, Dropout):
                    layer.rate = self.values["dropout"]
