"""The training loop. `fit` is the one way into training; every other is a thin layer on it:

    fit(cfg, dataset, callbacks, should_stop)   the loop, here
    ├── python -m core train --no-store         fit with a progress bar (core/cli.py)
    ├── recorder.train_run(store, run)          fit with a Recorder writing the run store
    │   ├── python -m core train                a run created running, trained in place
    │   ├── worker.run_queue(store)             the runs the dashboard queued, one at a time
    │   └── sweep.run_local(store, runs, n)     sweep trials, in one process per core
    └── sweep.train_remote(config_json)         a sweep trial on a Dask worker; the sweep
                                                records what it returns (record_remote)

Progress goes to callbacks, per batch and per epoch. The loop keeps the weights
of the best validation epoch, stops on request, on early stopping, or when the
loss diverges, and touches the test set only once, at the very end. A run that
ends no better than guessing is marked `learned_nothing`, with advice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from . import augment
from .architecture import spec_from_config
from .config import TrainConfig, validate
from .data import Dataset, batch_jobs, load_dataset, prefetch, stratified_split, subset
from .fpu import flush_denormals
from .knobs import Knobs
from .metrics import evaluate
from .model import Model
from .optimizers import Optimizer, learning_rate, make_optimizer

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]
DIVERGED_LOSS = 100.0  # ln(10) ≈ 2.3 is chance; a loss this high means the weights blew up
# Below this many times the accuracy of guessing (1 / classes), a run has learned nothing.
CHANCE_FACTOR = 1.5
# Learning rates that usually train this project's networks, per optimizer (SGD's momentum
# rule keeps the step size independent of the momentum, so one value fits all momenta).
USUAL_LR = {"sgd": 1.0, "adam": 1e-3, "rmsprop": 1e-3, "adagrad": 1e-2}


@dataclass
class BatchStats:
    epoch: int  # 1-based
    batch: int  # 1-based within the epoch
    batches: int
    loss: float
    accuracy: float
    lr: float
    elapsed: float  # seconds since training started


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    seconds: float  # this epoch's wall time
    elapsed: float

    def to_dict(self) -> dict[str, float]:
        """The stats by name, as the run store records an epoch."""
        return asdict(self)


@dataclass
class TrainResult:
    model: Model
    config: TrainConfig
    status: str  # finished, stopped, diverged or learned_nothing
    reason: str
    history: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float = 0.0
    test_accuracy: float | None = None
    test_loss: float | None = None
    seconds: float = 0.0  # wall time of the training loop, without the final test

    def summary(self) -> dict[str, Any]:
        """How the run ended, as the CLI prints it, a saved model and the run store record it."""
        return {
            "status": self.status,
            "reason": self.reason,
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss,
            "val_accuracy": self.best_val_accuracy,
            "best_epoch": self.best_epoch,
            "epochs": len(self.history),
            "seconds": self.seconds,
        }


class Callback:
    """Override any of these; the loop calls them in order for every callback."""

    def on_train_begin(self, model: Model, config: TrainConfig, n_train: int) -> None: ...
    def on_batch_end(self, stats: BatchStats) -> None: ...
    def on_epoch_end(self, stats: EpochStats, model: Model) -> None: ...
    def on_train_end(self, result: TrainResult) -> None: ...


@dataclass
class Start:
    """Where a continued run starts: its parent's weights and, if saved, optimizer state."""

    weights: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray] | None = None


@dataclass
class Step:
    batch: int  # 0-based within the epoch
    labels: np.ndarray
    loss: float
    logits: np.ndarray
    lr: float


def lr_at(cfg: TrainConfig, epoch: float, base: float | None = None) -> float:
    """The learning rate of `cfg` at fractional `epoch` (0 at the start of training), from
    its own base rate or from `base` (a knob changed while it trains)."""
    return learning_rate(
        cfg.lr if base is None else base,
        epoch,
        cfg.epochs,
        cfg.schedule,
        cfg.warmup_epochs,
        cfg.step_every,
        cfg.step_gamma,
    )


def train_steps(
    model: Model,
    optimizer: Optimizer,
    cfg: TrainConfig,
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    rng: np.random.Generator,
    transform: Transform | None,
    epoch: int,
    knobs: Knobs | None = None,
) -> Iterator[Step]:
    """One epoch of training, yielding each batch's loss before its update is applied.

    The update is made when the caller asks for the next step, so a caller that stops
    (a diverging loss) leaves the weights as they were. Batches are prepared, and augmented,
    in a background thread while the previous one trains. Knob changes asked for while a
    batch was out are made before the next one starts.
    """
    n_batches = math.ceil(len(indices) / cfg.batch_size)
    jobs = batch_jobs(images, labels, indices, cfg.batch_size, rng, transform)
    base = cfg.lr
    for b, (x, y) in enumerate(prefetch(jobs)):
        if knobs is not None:
            knobs.apply()
            base = knobs.lr
        # The midpoint of the batch, so warm-up never starts at 0 nor cosine ends at 0.
        lr = lr_at(cfg, epoch + (b + 0.5) / n_batches, base)
        loss, logits = model.loss_and_grads(x, y)
        yield Step(b, y, loss, logits, lr)
        optimizer.step(model.params, lr)


def setup(
    cfg: TrainConfig, n_classes: int = 10
) -> tuple[Model, Optimizer, np.random.Generator, Transform | None]:
    """The seeded model, optimizer, data rng and augmentation a config trains with."""
    model = Model(spec_from_config(cfg, n_classes), seed=cfg.seed)
    optimizer = make_optimizer(cfg.optimizer, cfg.momentum, cfg.nesterov, cfg.weight_decay)
    rng = np.random.default_rng([cfg.seed, 1])  # shuffling and augmentation
    transform = augment.batch_transform(cfg) if cfg.augments else None
    return model, optimizer, rng, transform


@dataclass
class Split:
    train: np.ndarray  # indices into dataset.train_images
    val: np.ndarray


def split_for(cfg: TrainConfig, dataset: Dataset) -> Split:
    """The seeded, stratified train/validation split (and training subset) of a config."""
    train_idx, val_idx = stratified_split(dataset.train_labels, cfg.val_size, cfg.seed)
    if cfg.train_size:
        train_idx = subset(train_idx, dataset.train_labels, cfg.train_size, cfg.seed)
    return Split(train_idx, val_idx)


def fit(
    cfg: TrainConfig,
    dataset: Dataset | None = None,
    callbacks: Sequence[Callback] = (),
    should_stop: Callable[[], bool] | None = None,
    evaluate_test: bool = True,
    threads: int = 1,
    knobs: Knobs | None = None,
    start: Start | None = None,
) -> TrainResult:
    """Train a model for `cfg` on `dataset` (default: the config's data) and return the result.

    `knobs` lets a caller change settings while it trains (core/knobs.py); `start` begins
    from trained weights instead of random ones.
    """
    with compute_settings(threads):
        return _fit(cfg, dataset, callbacks, should_stop, evaluate_test, knobs, start)


@contextmanager
def compute_settings(threads: int = 1) -> Iterator[None]:
    """The numeric setting training runs under: BLAS threads, and denormals flushed to zero.

    One BLAS thread is the default: on these small matrices a second one costs more in
    synchronisation than it saves (benchmarks/bench_mlp.py shows it). Convolution and
    pooling layers use the second core their own way, by splitting each batch in two
    (core/layers/conv.py).
    """
    with threadpool_limits(limits=threads, user_api="blas"), flush_denormals():
        yield


def _fit(
    cfg: TrainConfig,
    dataset: Dataset | None,
    callbacks: Sequence[Callback],
    should_stop: Callable[[], bool] | None,
    evaluate_test: bool,
    knobs: Knobs | None,
    start: Start | None,
) -> TrainResult:
    dataset = dataset if dataset is not None else load_dataset(cfg.data_dir or None)
    validate(cfg, train_pool=len(dataset.train_labels))
    split = split_for(cfg, dataset)
    model, optimizer, rng, transform = setup(cfg, len(dataset.class_names))
    if start is not None:
        model.set_weights(start.weights)
        if start.optimizer is not None:
            optimizer.load_state(start.optimizer, model.params)
    if knobs is not None:
        knobs.bind(model, optimizer)
    images, labels = dataset.train_images, dataset.train_labels
    val_images, val_labels = images[split.val], labels[split.val]
    n_batches = math.ceil(len(split.train) / cfg.batch_size)

    for cb in callbacks:
        cb.on_train_begin(model, cfg, len(split.train))
    result = TrainResult(model, cfg, "finished", "")
    best_weights = model.get_weights()
    best_val = -1.0
    stale = 0
    start = time.perf_counter()

    for epoch in range(cfg.epochs):
        epoch_start = time.perf_counter()
        loss_sum = correct = seen = 0.0
        steps = train_steps(
            model, optimizer, cfg, images, labels, split.train, rng, transform, epoch, knobs
        )
        with closing(steps):  # stops the prefetch thread as soon as the loop is left
            for step in steps:
                b, y, loss, logits, lr = step.batch, step.labels, step.loss, step.logits, step.lr
                if not math.isfinite(loss) or loss > DIVERGED_LOSS:
                    result.status = "diverged"
                    base = knobs.lr if knobs is not None else cfg.lr
                    result.reason = (
                        f"Training diverged at epoch {epoch + 1}, batch {b + 1}: the loss became "
                        f"{loss:.4g}. The learning rate {base:g} is probably too high; "
                        f"try {base / 10:g} or lower."
                    )
                    break  # leaving the loop skips the update that this loss would have made
                batch_correct = int(np.count_nonzero(logits.argmax(axis=1) == y))
                loss_sum += loss * len(y)
                correct += batch_correct
                seen += len(y)
                stats = BatchStats(
                    epoch + 1,
                    b + 1,
                    n_batches,
                    loss,
                    batch_correct / len(y),
                    lr,
                    time.perf_counter() - start,
                )
                for cb in callbacks:
                    cb.on_batch_end(stats)
                if should_stop is not None and should_stop():
                    result.status, result.reason = (
                        "stopped",
                        f"Stopped by request in epoch {epoch + 1}.",
                    )
                    break
        if result.status == "diverged" or seen == 0:
            break
        val = evaluate(model, val_images, val_labels)
        now = time.perf_counter()
        stats = EpochStats(
            epoch + 1,
            loss_sum / seen,
            correct / seen,
            val.loss,
            val.accuracy,
            lr_at(cfg, epoch, knobs.lr if knobs is not None else None),
            now - epoch_start,
            now - start,
        )
        result.history.append(stats)
        if val.accuracy > best_val:
            best_val, stale = val.accuracy, 0
            best_weights = model.get_weights()
            result.best_epoch = epoch + 1
        else:
            stale += 1
        for cb in callbacks:
            cb.on_epoch_end(stats, model)
        if result.status == "stopped":
            break
        if cfg.patience and stale >= cfg.patience:
            result.reason = (
                f"Early stopping after epoch {epoch + 1}: validation accuracy has not improved "
                f"for {cfg.patience} epochs; kept epoch {result.best_epoch}."
            )
            break

    result.seconds = time.perf_counter() - start
    if result.history:
        # A diverged run keeps its best epoch too: its test accuracy is that epoch's.
        model.set_weights(best_weights)
        result.best_val_accuracy = best_val
        if evaluate_test:
            test = evaluate(model, dataset.test_images, dataset.test_labels)
            result.test_accuracy, result.test_loss = test.accuracy, test.loss
    n_classes = len(dataset.class_names)
    if result.status == "finished" and result.history and best_val < CHANCE_FACTOR / n_classes:
        result.status = "learned_nothing"
        result.reason = learned_nothing_reason(cfg, best_val, n_classes)
    if not result.reason and result.status == "finished":
        n = len(result.history)
        result.reason = f"Finished {n} epoch{'s' if n != 1 else ''}."
    for cb in callbacks:
        cb.on_train_end(result)
    return result


def learned_nothing_cause(cfg: TrainConfig) -> str:
    """The likeliest reason a run of `cfg` learned nothing: "lr_high" (steps so big they
    overshoot), "lr_low" (too small to get anywhere), "saturated" (its sigmoid or tanh
    units stuck at their limits) or "unclear"."""
    usual = USUAL_LR.get(cfg.optimizer, 1.0)
    if cfg.lr > 3 * usual:
        return "lr_high"
    if cfg.lr < usual / 30:
        return "lr_low"
    if cfg.activation in ("sigmoid", "tanh"):
        return "saturated"
    return "unclear"


def learned_nothing_reason(cfg: TrainConfig, val_accuracy: float, n_classes: int) -> str:
    """Why a run that ended near chance accuracy is not a result, and what to try instead."""
    usual = USUAL_LR.get(cfg.optimizer, 1.0)
    cause = learned_nothing_cause(cfg)
    if cause == "lr_high":
        advice = f"Try a lower learning rate (e.g. {cfg.lr / 10:g})"
        if cfg.activation in ("sigmoid", "tanh"):
            advice += f": with steps this big, {cfg.activation} units saturate and stop learning"
    elif cause == "lr_low":
        advice = (
            f"Try a higher learning rate (e.g. {usual:g}, which usually suits {cfg.optimizer}) "
            "or more epochs"
        )
    elif cause == "saturated":
        advice = f"Try relu instead of {cfg.activation}, or a lower learning rate"
    else:
        advice = "Try more epochs or more training images, or a lower learning rate"
    return (
        f"Learned nothing: validation accuracy {val_accuracy * 100:.2f} % is what guessing "
        f"gives ({100 / n_classes:.0f} % for {n_classes} classes). {advice}."
    )


def result_meta(result: TrainResult, dataset: Dataset) -> dict[str, Any]:
    """What a saved model records about how it was trained."""
    return {
        "config": result.config.to_dict(),
        "dataset": dataset.name,
        "class_names": list(dataset.class_names),
        **result.summary(),
    }
