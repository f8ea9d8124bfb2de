"""Training a stored run: `train_run` runs `fit` with a `Recorder`, which writes the run's
progress, epochs, weight snapshots and best checkpoint into the run store as it goes, a
`LiveView` of its first layer (core/live.py) and a `Controller` that carries out the
commands sent to it (core/control.py); `record_result` closes it with how training ended."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

from .config import TrainConfig
from .control import Controller
from .data import Dataset, load_dataset
from .knobs import Knobs
from .lineage import start_of
from .live import LiveView
from .model import Model
from .model_save import save_arrays
from .runs import Run, RunStore, StoreError, progress_fraction
from .train import BatchStats, Callback, EpochStats, TrainResult, fit, result_meta

BATCH_LOSS_POINTS = 400  # per-batch losses kept per run: plenty for a curve
# Weight snapshots after this many batches of the first epoch: features form in seconds.
EARLY_SNAPSHOTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Recorder(Callback):
    """Writes a training run into the store as it goes: progress, epochs, snapshots, checkpoint
    (with the optimizer's state beside it when `knobs` gives access to the optimizer).

    Progress touches the database at most every `interval` seconds, so the store costs the
    training loop nothing measurable.
    """

    def __init__(
        self,
        store: RunStore,
        run: Run,
        dataset: Dataset,
        interval: float = 0.5,
        knobs: Knobs | None = None,
    ) -> None:
        self.store, self.run, self.dataset, self.interval = store, run, dataset, interval
        self.knobs = knobs
        self.meta = {
            "run_id": run.id,
            "run_name": run.name,
            "dataset": dataset.name,
            "class_names": list(dataset.class_names),
        }
        self.pending: list[tuple[int, float, float, float]] = []
        self.step = 0
        self.last_poll = 0.0
        self.last: BatchStats | None = None
        self.best_val = -1.0

    def on_train_begin(self, model: Model, config: TrainConfig, n_train: int) -> None:
        self.config, self.n_train, self.model = config, n_train, model
        self.store.start(self.run.id, os.getpid(), model.n_params)
        self.every = max(
            1, math.ceil(config.epochs * math.ceil(n_train / config.batch_size) / BATCH_LOSS_POINTS)
        )
        self.run.snapshot_dir.mkdir(parents=True, exist_ok=True)
        model.save(self.run.snapshot(0), self._meta(epoch=0))  # the untrained weights

    def on_batch_end(self, stats: BatchStats) -> None:
        self.step += 1
        self.last = stats
        if self.step % self.every == 0:
            epoch = stats.epoch - 1 + stats.batch / stats.batches
            self.pending.append((self.step, epoch, stats.loss, stats.lr))
        if stats.epoch == 1 and stats.batch - 1 in EARLY_SNAPSHOTS:
            # The update of this batch is not made yet: the weights are those after batch - 1.
            done = stats.batch - 1
            self.model.save(self.run.batch_snapshot(done), self._meta(epoch=0, batches=done))
        now = time.monotonic()
        if now - self.last_poll >= self.interval:
            self.last_poll = now
            self._progress(stats.epoch, stats.batch, stats.batches, stats.loss, stats.elapsed)

    def flush(self, paused: bool) -> None:
        """Write the progress now, saying whether the run is held paused."""
        stats = self.last
        if stats is None:  # held before its first batch
            batches = math.ceil(self.n_train / self.config.batch_size)
            self._progress(1, 0, batches, None, 0.0, paused)
        else:
            self._progress(
                stats.epoch, stats.batch, stats.batches, stats.loss, stats.elapsed, paused
            )

    def _progress(
        self,
        epoch: int,
        batch: int,
        batches: int,
        loss: float | None,
        elapsed: float,
        paused: bool = False,
    ) -> None:
        progress: dict[str, Any] = {
            "epoch": epoch,
            "epochs": self.config.epochs,
            "batch": batch,
            "batches": batches,
            "loss": loss,
            "elapsed": elapsed,
            "step": self.step,
            "paused": paused,
        }
        done = progress_fraction(progress)
        progress["eta"] = elapsed * (1 - done) / done if done > 0 and not paused else None
        self.store.set_progress(self.run.id, progress)

    def on_epoch_end(self, stats: EpochStats, model: Model) -> None:
        self.store.add_epoch(self.run.id, stats.to_dict(), self.pending)
        self.pending = []
        batches = math.ceil(self.n_train / self.config.batch_size)
        self._progress(stats.epoch, batches, batches, stats.train_loss, stats.elapsed)
        meta = self._meta(epoch=stats.epoch, val_accuracy=stats.val_accuracy)
        model.save(self.run.snapshot(stats.epoch), meta)
        if stats.val_accuracy > self.best_val:  # the checkpoint is the best epoch so far
            self.best_val = stats.val_accuracy
            model.save(self.run.checkpoint, meta)
            if self.knobs is not None and self.knobs.optimizer is not None:
                save_arrays(self.run.optimizer_state, self.knobs.optimizer.state())

    def on_train_end(self, result: TrainResult) -> None:
        # Whatever the ending (a diverged run too), the model holds the best epoch's weights:
        # its checkpoint says how the run ended.
        if result.history:
            meta = {**self.meta, **result_meta(result, self.dataset)}
            result.model.save(self.run.checkpoint, meta)
        record_result(self.store, self.run.id, result.summary())

    def _meta(self, **extra: Any) -> dict[str, Any]:
        return {**self.meta, "config": self.config.to_dict(), **extra}


def record_result(store: RunStore, run_id: int, summary: dict[str, Any]) -> None:
    """Close a run in the store with how its training ended (`TrainResult.summary()`).

    A run that recorded no epoch has no best epoch nor best validation accuracy.
    """
    trained = summary["epochs"] > 0
    store.finish(
        run_id,
        summary["status"],
        summary["reason"],
        best_epoch=summary["best_epoch"] or None,
        best_val_accuracy=summary["val_accuracy"] if trained else None,
        test_accuracy=summary["test_accuracy"],
        test_loss=summary["test_loss"],
        train_seconds=summary["seconds"],
    )


def train_run(
    store: RunStore,
    run: Run,
    dataset: Dataset | None = None,
    callbacks: Sequence[Callback] = (),
    should_stop: Callable[[], bool] | None = None,
    threads: int = 1,
) -> TrainResult:
    """Train a stored run, recording it as it goes; a crash or Ctrl-C is recorded too.

    It can be steered while it trains (core/control.py): paused, stepped, its knobs changed,
    stopped (the dashboard's Stop), and it stops too when `should_stop` says so. A run
    continued from another starts from that one's best checkpoint (core/lineage.py).
    """
    try:
        dataset = dataset if dataset is not None else load_dataset(run.config.data_dir or None)
        start = start_of(store, run)
        knobs = Knobs(run.config)
        recorder = Recorder(store, run, dataset, knobs=knobs)
        live = LiveView(run.live_view, dataset)

        def on_hold(paused: bool) -> None:
            recorder.flush(paused)
            live.write()

        controller = Controller(store, run, knobs, on_hold)
        return fit(
            run.config,
            dataset,
            [recorder, live, controller, *callbacks],
            should_stop=lambda: controller.should_stop() or bool(should_stop and should_stop()),
            threads=threads,
            knobs=knobs,
            start=start,
        )
    except KeyboardInterrupt:
        _record_end(store, run, "stopped", "Interrupted.")
        raise
    except BaseException as exc:
        _record_end(store, run, "failed", f"{type(exc).__name__}: {exc}")
        raise


def _record_end(store: RunStore, run: Run, status: str, message: str) -> None:
    # The exception being handled is what the caller needs to see, even when the store is
    # what failed and cannot take the record either.
    with suppress(StoreError):
        store.finish(run.id, status, message)
