"""Training in a terminal: a progress bar per epoch, a line of metrics per finished epoch,
and Ctrl-C that asks the run to stop cleanly."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from .config import TrainConfig
from .train import BatchStats, Callback, EpochStats, TrainResult


class ProgressBar(Callback):
    """A tqdm bar per epoch on stderr, and one line of metrics per finished epoch."""

    def __init__(self, stream: Any, show_bar: bool = True) -> None:
        self.stream, self.show_bar = stream, show_bar
        self.bar: tqdm | None = None

    def on_train_begin(self, model: Any, config: TrainConfig, n_train: int) -> None:
        self.epochs = config.epochs
        print(
            f"Training {config.arch} ({model.n_params:,} parameters) on {n_train:,} images "
            f"for {config.epochs} epochs",
            file=self.stream,
            flush=True,
        )

    def on_batch_end(self, stats: BatchStats) -> None:
        if not self.show_bar:
            return
        if self.bar is None:
            self.bar = tqdm(
                total=stats.batches,
                desc=f"epoch {stats.epoch}/{self.epochs}",
                unit="batch",
                leave=False,
                file=sys.stderr,
            )
        self.bar.update(1)
        if stats.batch % 20 == 0 or stats.batch == stats.batches:
            self.bar.set_postfix(loss=f"{stats.loss:.3f}", refresh=False)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_epoch_end(self, stats: EpochStats, model: Any) -> None:
        self._close()
        print(
            f"epoch {stats.epoch:3d}  loss {stats.train_loss:.4f}  acc {stats.train_accuracy:.4f}"
            f"  val_loss {stats.val_loss:.4f}  val_acc {stats.val_accuracy:.4f}"
            f"  lr {stats.lr:.3g}  {stats.seconds:.1f}s",
            file=self.stream,
            flush=True,
        )

    def on_train_end(self, result: TrainResult) -> None:
        self._close()


def interrupt_flag() -> Callable[[], bool]:
    """First Ctrl-C asks training to stop cleanly (keeping the best weights); a second aborts."""
    requested = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        print("\nstopping after this batch (Ctrl-C again to abort)", file=sys.stderr)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
    return requested.is_set
