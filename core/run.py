"""One run of the run store: its record, its folder, and its row read back.

A run's folder holds its best checkpoint (`model.npz`, with the optimizer's state beside
it in `optimizer.npz`), one weight snapshot per epoch and a few from the first epoch's
first batches (`snapshots/`), and while it trains the live view of its first layer
(`live.npz`, core/live.py). While it trains, its `progress` says where it is; the share
of the run done is `progress_fraction(run.progress)`. A run continued from another
("Train more") names it as `parent` and numbers its epochs on from `epoch_offset`.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .config import ConfigError, TrainConfig

STATUSES = ("queued", "running", "finished", "stopped", "diverged", "learned_nothing", "failed")
ACTIVE = ("queued", "running")


def slug(name: str) -> str:
    """A run name made safe as one path component: letters, digits, '-' and '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
    return cleaned[:60] or "run"


@dataclass
class Run:
    id: int
    name: str
    status: str
    config: TrainConfig
    created: float
    started: float | None
    ended: float | None
    message: str
    best_epoch: int | None
    best_val_accuracy: float | None
    test_accuracy: float | None
    test_loss: float | None
    train_seconds: float | None
    n_params: int | None
    dir: Path
    pid: int | None
    stop_requested: bool
    tags: list[str]
    sweep: str
    progress: dict[str, Any]
    pid_start: int | None = None  # the owner's start time (clock ticks since boot)
    parent: int | None = None  # the run this one continues from ("Train more")
    epoch_offset: int = 0  # the parent's epochs before this run's first

    @property
    def paused(self) -> bool:
        """Whether its trainer is holding it paused now (it still counts as running)."""
        return self.status == "running" and bool(self.progress.get("paused"))

    @property
    def checkpoint(self) -> Path:
        """The weights of the run's best epoch so far."""
        return self.dir / "model.npz"

    @property
    def optimizer_state(self) -> Path:
        """The optimizer's state (momentum, Adam's moments) at the best epoch so far."""
        return self.dir / "optimizer.npz"

    @property
    def live_view(self) -> Path:
        """The first layer and ten fixed digits' guesses, rewritten while it trains."""
        return self.dir / "live.npz"

    @property
    def snapshot_dir(self) -> Path:
        """The folder of its per-epoch weight snapshots."""
        return self.dir / "snapshots"

    @property
    def active(self) -> bool:
        """Whether it is queued or running."""
        return self.status in ACTIVE

    def snapshot(self, epoch: int) -> Path:
        """The weights at the end of `epoch` (0: before training)."""
        return self.snapshot_dir / f"epoch-{epoch:04d}.npz"

    def snapshots(self) -> list[int]:
        """Epochs with a stored weight snapshot, in order."""
        return _numbered(self.snapshot_dir, "epoch")

    def batch_snapshot(self, batches: int) -> Path:
        """The weights after the first `batches` batches of the first epoch (1, 2, 4, ...)."""
        return self.snapshot_dir / f"batch-{batches:06d}.npz"

    def batch_snapshots(self) -> list[int]:
        """The first epoch's batch counts with a stored weight snapshot, in order."""
        return _numbered(self.snapshot_dir, "batch")


def _numbered(folder: Path, prefix: str) -> list[int]:
    """The numbers of the files `<prefix>-<number>.npz` in `folder`, in order."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(f"{prefix}-*.npz"):
        number = path.stem.split("-")[1]
        if number.isdigit():  # a stray file of another shape is not a snapshot
            found.append(int(number))
    return sorted(found)


RUN_COLUMNS = tuple(f.name for f in fields(Run))


def progress_fraction(progress: dict[str, Any]) -> float:
    """How much of a run is done, from 0 to 1, by the progress its trainer records."""
    return (progress["epoch"] - 1 + progress["batch"] / progress["batches"]) / progress["epochs"]


class UnreadableRun(Exception):
    """One run row this version cannot read; the message is the reason."""


def run_from_row(row: sqlite3.Row, root: Path) -> Run:
    """The Run a row of the runs table holds (its folder under `root`), or UnreadableRun."""
    # Only the columns this version knows: a newer version may have added others. (A Row's
    # `in` looks at its values, hence the set of its keys.)
    present = set(row.keys())
    values = {k: row[k] for k in RUN_COLUMNS if k in present}
    try:
        config = json.loads(values["config"])
        tags = json.loads(values["tags"])
        progress = json.loads(values["progress"])
    except (TypeError, ValueError) as exc:
        raise UnreadableRun(f"a field is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise UnreadableRun("its config is not a mapping of settings")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise UnreadableRun("its tags are not a list of text")
    if not isinstance(progress, dict):
        raise UnreadableRun("its progress is not a mapping")
    if values["status"] not in STATUSES:
        raise UnreadableRun(f"its status {values['status']!r} is unknown to this version")
    try:
        values["config"] = TrainConfig.from_dict(config)
    except ConfigError as exc:
        raise UnreadableRun(f"its config has {exc.field}: {exc.message}") from None
    values["dir"] = root / str(values["dir"])
    values["stop_requested"] = bool(values["stop_requested"])
    values["epoch_offset"] = int(values.get("epoch_offset") or 0)
    values["tags"], values["progress"] = tags, progress
    return Run(**values)
