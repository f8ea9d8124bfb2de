"""Hints: what a run's curves and insides say is wrong with its settings, and the fix.

Each rule looks at a run's per-epoch history (as the run store keeps it: one mapping per
epoch with train_loss, train_accuracy, val_loss, val_accuracy), its config and status, and,
for two rules, at what its layers output on a few hundred images (`Internals`, measured by
`measure_internals` from a checkpoint). A rule that fires gives a `Hint`: one plain
sentence for someone who has never trained a network, and the settings to change, which
the dashboard turns into a "Try this" link to the Train page.

The thresholds were set on runs of this project (MNIST, 5,000 validation images): each
names the runs it was measured on, and none fires at any epoch of the `default` preset's
30 epochs (tests/test_hints.py keeps that run's history). Nothing here knows about
Streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .analysis import dead_units
from .config import TrainConfig
from .data import to_float
from .model import MAX_UNITS, Model
from .presets import AUGMENT
from .train import CHANCE_FACTOR, DIVERGED_LOSS, USUAL_LR, learned_nothing_cause

Epochs = Sequence[Mapping[str, float]]  # the run store's per-epoch rows, oldest first

# Diverging: the epoch's training loss more than doubled from its lowest (a healthy run's
# only falls, epoch after epoch); below LOSS_FLOOR a doubling is noise in tiny numbers
# (the default preset ends at 0.002).
DIVERGING_RISE = 2.0
LOSS_FLOOR = 0.1
RECENT_BATCHES = 5  # sampled batch losses whose median says where the loss is now
# Too slow: a learning rate at most a tenth of the one that usually trains this project's
# networks (core/train.py's USUAL_LR); sgd at 0.01 and adam at 1e-4 were at 90 % after 10
# and 5 epochs where the usual rates are at 97 % after 2.
SLOW_FACTOR = 10.0
SLOW_MIN_EPOCHS = 2
# Every preset's network passes 97 % validation accuracy within a few epochs; a run below it
# has room to improve (the 784-128-64-10 MLP reaches 96 % after one epoch).
GOOD_ACCURACY = 0.97
# Overfitting: validation loss 10 % above its lowest while the training accuracy runs 3
# points ahead of the validation accuracy, and further ahead than at that lowest point.
# The default preset's validation loss rises 20 % in epoch 7 but its gap is 1.6 points; on
# 1,000 training images without L2 the gap is 11.6 points by epoch 12 (loss +13 %).
OVERFIT_LOSS_RISE = 0.10
OVERFIT_GAP = 0.03
OVERFIT_MIN_EPOCHS = 3
# Underfitting: after 5 epochs, training and validation accuracy both below GOOD_ACCURACY,
# within OVERFIT_GAP of each other, and validation accuracy up less than one point over
# the last 3 epochs (a 784-4-10 MLP: 79.4 % to 80.0 %).
UNDERFIT_MIN_EPOCHS = 5
UNDERFIT_WINDOW = 3
UNDERFIT_FLAT = 0.01
# Too few epochs: a finished run at its best in its last epoch, still gaining at least half
# a point of validation accuracy per epoch over its last fifth (at least one epoch). A
# constant rate of 0.1 for 3 epochs gained 0.62 points in its last; the default preset ends
# flat, and 3 epochs of it gain 0.28 in the last.
FEW_EPOCHS_GAIN = 0.005
FEW_EPOCHS_WINDOW = 5  # the last 1/5 of the epochs
# Dead and saturated units: more than 30 % of one layer's units. The shipped MLP has 3 %
# dead in its first layer; a run at learning rate 10 had 75 % and 86 %. A sigmoid or tanh
# unit is saturated when it sits within 2 % of an end of its range on 90 % of the images:
# none is in healthy sigmoid and tanh runs, 78 % of a layer at learning rate 50.
STUCK_SHARE = 0.30
SATURATION_MARGIN = 0.02
SATURATED_IMAGES = 0.90
# Images the internal rules run on: enough to see a unit switch on (a dead count on 300
# images equals the one on 10,000 for both shipped models), few enough to take about
# 20 ms for the shipped MLP and 0.1 s for the shipped CNN, once per checkpoint.
DENSE_IMAGES = 256
CONV_IMAGES = 64
RANGES = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}  # the outputs of the squashing units


@dataclass(frozen=True)
class Hint:
    """One thing to change, said plainly: `rule` names the rule, `sentence` says what is
    wrong and what to do, `fix` holds the settings to change (empty when there is no
    one-click fix) and `label` is the button's short text."""

    rule: str
    sentence: str
    fix: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def fixed(self, config: TrainConfig) -> TrainConfig:
        """`config` with the fix applied: the settings the "Try this" link carries."""
        return config.replace(**self.fix)


@dataclass(frozen=True)
class Internals:
    """What a network's layers do on a few images: the largest share of dead units in any
    ReLU layer, and of saturated units in any sigmoid or tanh layer (None: no such layer)."""

    dead: float | None = None
    saturated: float | None = None


def sample_size(model: Model) -> int:
    """How many images the internal rules run through `model` (fewer for a CNN: each
    image costs it about 20 times as much)."""
    return CONV_IMAGES if any(layer.kind == "conv2d" for layer in model.layers) else DENSE_IMAGES


def measure_internals(model: Model, images: np.ndarray) -> Internals:
    """Dead and saturated units of `model` on uint8 `images` (pass `sample_size` of them)."""
    dead = dead_units(model, images)  # runs the images only if the model has a ReLU
    dead_share = max((len(d.dead) / d.units for d in dead), default=None)
    squash = [i for i, layer in enumerate(model.layers) if layer.kind in RANGES]
    saturated = None
    if squash:
        outputs = model.activations(to_float(images))
        for i in squash:
            low, high = RANGES[model.layers[i].kind]
            out = outputs[i].reshape(len(images), -1)
            margin = SATURATION_MARGIN * (high - low)
            at_end = (out < low + margin) | (out > high - margin)
            share = float(np.mean(at_end.mean(axis=0) >= SATURATED_IMAGES))
            saturated = share if saturated is None else max(saturated, share)
    return Internals(dead_share, saturated)


def hints(
    config: TrainConfig,
    epochs: Epochs,
    status: str = "finished",
    batch_losses: Sequence[Sequence[float]] = (),
    internals: Internals | None = None,
    n_classes: int = 10,
) -> list[Hint]:
    """The hints for a run of `config`, most important first (none for a healthy run).

    `epochs` is its history so far, `status` the run store's (a running run gets no hint
    about how it ended), `batch_losses` the sampled (step, epoch, loss) rows, `internals`
    what its latest checkpoint's layers do.
    """
    found = _diverging(config, epochs, status, batch_losses, n_classes)
    if found:  # a run that blew up says nothing reliable about anything else
        return [found]
    found = _learned_nothing(config, epochs, status, n_classes)
    if found:
        return [found]
    out = [
        h
        for h in (
            _slow(config, epochs),
            _overfitting(config, epochs),
            _dead(internals),
            _saturated(config, internals),
        )
        if h is not None
    ]
    rules = {h.rule for h in out}
    if not rules & {"slow", "overfitting"}:  # a slow run is also low and flat
        out += [h for h in (_underfitting(config, epochs),) if h is not None]
    if "overfitting" not in rules:  # more epochs would only memorise more
        out += [h for h in (_too_few_epochs(config, epochs, status),) if h is not None]
    return out


# The rules. Each returns a Hint or None.


def _column(epochs: Epochs, name: str) -> list[float]:
    return [float(e[name]) for e in epochs]


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def _round(value: float) -> float:
    """A setting as a person would type it: three significant digits."""
    return float(f"{value:.3g}")


def _lr_hint(config: TrainConfig, rule: str, sentence: str) -> Hint:
    lr = _round(config.lr / 10)
    sentence += f" (try {lr:g} instead of {config.lr:g})."
    return Hint(rule, sentence, {"lr": lr}, f"learning rate {lr:g}")


def _diverging(
    config: TrainConfig,
    epochs: Epochs,
    status: str,
    batch_losses: Sequence[Sequence[float]],
    n_classes: int,
) -> Hint | None:
    losses = _column(epochs, "train_loss") + _column(epochs, "val_loss")
    blew_up = status == "diverged" or any(not math.isfinite(x) or x > DIVERGED_LOSS for x in losses)
    train = _column(epochs, "train_loss")
    if len(train) >= 2 and train[-1] > max(DIVERGING_RISE * min(train), LOSS_FLOOR):
        blew_up = True
    recent = [float(b[2]) for b in batch_losses[-RECENT_BATCHES:]]
    earlier = [float(b[2]) for b in batch_losses[:-RECENT_BATCHES]]
    chance_loss = math.log(n_classes)  # the loss of spreading the chances evenly
    if recent and earlier and min(earlier) < chance_loss / 2:
        # It had learned something, and now does worse than guessing.
        now = float(np.median(recent))
        blew_up = blew_up or not math.isfinite(now) or now > chance_loss
    if not blew_up:
        return None
    return _lr_hint(
        config,
        "diverging",
        "The error shot up instead of going down, because the learning rate (how big a step "
        "each update takes) is so large that every step overshoots: make it ten times smaller",
    )


def _learned_nothing(
    config: TrainConfig, epochs: Epochs, status: str, n_classes: int
) -> Hint | None:
    val = _column(epochs, "val_accuracy")
    chance = 1 / n_classes
    if status != "learned_nothing" and not (val and max(val) < CHANCE_FACTOR * chance):
        return None
    best = max(val) if val else chance
    start = (
        f"It learned nothing: it gets {_pct(best)} of the validation digits right, no better "
        f"than guessing one of {n_classes} answers at random ({_pct(chance)})"
    )
    usual = USUAL_LR.get(config.optimizer, 1.0)
    # The diagnosis the CLI gives (core/train.py), as one setting to change.
    cause = learned_nothing_cause(config)
    if cause == "lr_low":
        lr = _round(usual)
        return Hint(
            "learned_nothing",
            f"{start}; its learning rate (how big a step each update takes) is too small to "
            f"get anywhere, so try {lr:g}, which usually suits {config.optimizer}.",
            {"lr": lr},
            f"learning rate {lr:g}",
        )
    if cause == "saturated":
        return Hint(
            "learned_nothing",
            f"{start}; its {config.activation} neurons may be stuck at their limits, so try "
            "relu, the activation (what each neuron does with its sum) that usually works.",
            {"activation": "relu", "init": "he"},
            "relu activation",
        )
    return _lr_hint(
        config,
        "learned_nothing",
        f"{start}, often because the learning rate (how big a step each update takes) is too "
        "large for it to settle: make it ten times smaller",
    )


def _slow(config: TrainConfig, epochs: Epochs) -> Hint | None:
    usual = USUAL_LR.get(config.optimizer, 1.0)
    val = _column(epochs, "val_accuracy")
    if config.lr > usual / SLOW_FACTOR or len(val) < SLOW_MIN_EPOCHS or val[-1] >= GOOD_ACCURACY:
        return None
    lr = _round(min(config.lr * 10, 100.0))  # core/config.py allows up to 100
    return Hint(
        "slow",
        f"It is learning slowly: its learning rate (how big a step each update takes) is "
        f"{config.lr:g}, where about {usual:g} usually works with {config.optimizer}, so try "
        f"{lr:g}, ten times bigger.",
        {"lr": lr},
        f"learning rate {lr:g}",
    )


def _overfitting(config: TrainConfig, epochs: Epochs) -> Hint | None:
    if len(epochs) < OVERFIT_MIN_EPOCHS:
        return None
    val_loss = _column(epochs, "val_loss")
    gaps = [e["train_accuracy"] - e["val_accuracy"] for e in epochs]
    low = int(np.argmin(val_loss))
    rising = val_loss[-1] > val_loss[low] * (1 + OVERFIT_LOSS_RISE)
    if not (rising and gaps[-1] >= OVERFIT_GAP and gaps[-1] > gaps[low]):
        return None
    fix, how = _against_overfitting(config)
    last = epochs[-1]
    return Hint(
        "overfitting",
        f"It is memorising its training digits instead of learning what digits look like: "
        f"it gets {_pct(last['train_accuracy'])} of them right but only "
        f"{_pct(last['val_accuracy'])} of digits it never trains on, and the gap is growing, "
        f"so {how}.",
        fix,
        "make training harder" if fix else "",
    )


def _against_overfitting(config: TrainConfig) -> tuple[dict[str, Any], str]:
    """The next remedy for overfitting this config has not used yet, and how to say it."""
    if not config.augments:
        return dict(AUGMENT), (
            "show it slightly rotated, shifted and resized copies of each digit (augmentation)"
        )
    if config.weight_decay < 1e-3:
        decay = _round(config.weight_decay * 10) if config.weight_decay else 1e-4
        return {"weight_decay": decay}, (
            f"pull its weights harder towards zero (L2 weight decay {decay:g})"
        )
    if config.dropout < 0.5:
        dropout = _round(config.dropout + 0.2)
        return {"dropout": dropout}, (
            f"switch off {dropout:.0%} of its neurons at random in each step (dropout)"
        )
    if config.train_size:
        return {"train_size": 0}, "train it on all the training digits"
    return {}, "give it more training digits"


def _underfitting(config: TrainConfig, epochs: Epochs) -> Hint | None:
    if len(epochs) < UNDERFIT_MIN_EPOCHS:
        return None
    val = _column(epochs, "val_accuracy")
    train = epochs[-1]["train_accuracy"]
    flat = val[-1] - val[-1 - UNDERFIT_WINDOW] < UNDERFIT_FLAT
    if not (val[-1] < GOOD_ACCURACY and train < GOOD_ACCURACY and flat):
        return None
    if train - val[-1] >= OVERFIT_GAP:
        return None
    if config.weight_decay >= 1e-3 or config.dropout >= 0.5:
        fix = {"weight_decay": 1e-4, "dropout": 0.0}
        how, label = "hold it back less (less weight decay and no dropout)", "hold it back less"
    elif config.arch == "cnn":
        fix = {"conv": [min(2 * c, MAX_UNITS) for c in config.conv]}
        how, label = "give it twice as many filters", "twice the filters"
    else:
        hidden = [min(max(2 * h, 128), MAX_UNITS) for h in config.hidden] or [128]
        fix = {"hidden": hidden}
        how = f"give it more neurons ({','.join(map(str, hidden))} in its hidden layers)"
        label = "more neurons"
    return Hint(
        "underfitting",
        f"It is too simple for the task: it gets only {_pct(train)} of even its training "
        f"digits right and has stopped improving, so {how}.",
        fix,
        label,
    )


def _too_few_epochs(config: TrainConfig, epochs: Epochs, status: str) -> Hint | None:
    val = _column(epochs, "val_accuracy")
    if status != "finished" or len(val) < 2 or len(val) < config.epochs or val[-1] < max(val):
        return None  # still going, stopped early, or past its best
    window = max(1, len(val) // FEW_EPOCHS_WINDOW)
    gained = val[-1] - val[-1 - window]
    if gained / window < FEW_EPOCHS_GAIN:
        return None
    more = min(2 * config.epochs, 1000)
    if more == config.epochs:
        return None
    return Hint(
        "too_few_epochs",
        f"It was still getting better when its training ended (up {gained * 100:.1f} points "
        f"of accuracy in its last {window} epoch{'s' if window > 1 else ''}, each a pass over "
        f"all its training digits), so train it for {more} epochs.",
        {"epochs": more},
        f"{more} epochs",
    )


def _dead(internals: Internals | None) -> Hint | None:
    if internals is None or internals.dead is None or internals.dead <= STUCK_SHARE:
        return None
    return Hint(
        "dead_units",
        f"{_pct(internals.dead)} of the neurons in one layer never switch on (they output 0 "
        "for every digit, so they can no longer learn): try leaky ReLU, a kind of neuron that "
        "cannot switch off for good.",
        {"activation": "leaky_relu"},
        "leaky ReLU",
    )


def _saturated(config: TrainConfig, internals: Internals | None) -> Hint | None:
    if internals is None or internals.saturated is None or internals.saturated <= STUCK_SHARE:
        return None
    kind = config.activation if config.activation in RANGES else "sigmoid or tanh"
    return Hint(
        "saturated",
        f"{_pct(internals.saturated)} of the {kind} neurons in one layer are stuck at their "
        "highest or lowest output, where they barely learn: try relu, a kind of neuron that "
        "does not get stuck that way.",
        {"activation": "relu", "init": "he"},
        "relu activation",
    )
