"""The run store: every training run, its config, live metrics and files, in SQLite.

One database file (`runs.sqlite`, WAL mode) under the runs folder, `runs/` by
default or `$MNIST_RUNS_DIR`. Each run also gets a folder holding its best
checkpoint (`model.npz`) and one weight snapshot per epoch (`snapshots/`).
Trainer processes write while any number of dashboard sessions read; every
write is one short transaction, so readers always see a consistent state.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .data import Dataset, load_dataset
from .model import Model
from .train import BatchStats, Callback, EpochStats, TrainResult, fit, result_meta

RUNS_DIR_ENV = "MNIST_RUNS_DIR"
DB_NAME = "runs.sqlite"
STATUSES = ("queued", "running", "finished", "stopped", "diverged", "failed")
ACTIVE = ("queued", "running")
BATCH_LOSS_POINTS = 400  # per-batch losses kept per run: plenty for a curve

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    message TEXT NOT NULL DEFAULT '',
    best_epoch INTEGER,
    best_val_accuracy REAL,
    test_accuracy REAL,
    test_loss REAL,
    train_seconds REAL,
    n_params INTEGER,
    dir TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL DEFAULT '[]',
    sweep TEXT NOT NULL DEFAULT '',
    progress TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    train_loss REAL, train_accuracy REAL, val_loss REAL, val_accuracy REAL,
    lr REAL, seconds REAL, elapsed REAL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS batches (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    epoch REAL NOT NULL,
    loss REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
"""


class StoreError(Exception):
    """The run store cannot be used (missing, corrupt, read-only, locked, or from a newer
    version); the message says what is wrong and what to do about it."""


def runs_dir() -> Path:
    """The folder of the run store: $MNIST_RUNS_DIR, else ./runs."""
    return Path(os.environ.get(RUNS_DIR_ENV) or "runs")


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

    @property
    def checkpoint(self) -> Path:
        return self.dir / "model.npz"

    @property
    def snapshot_dir(self) -> Path:
        return self.dir / "snapshots"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def snapshot(self, epoch: int) -> Path:
        return self.snapshot_dir / f"epoch-{epoch:04d}.npz"

    def snapshots(self) -> list[int]:
        """Epochs with a stored weight snapshot, in order."""
        if not self.snapshot_dir.is_dir():
            return []
        return sorted(int(p.stem.split("-")[1]) for p in self.snapshot_dir.glob("epoch-*.npz"))


def _run(row: sqlite3.Row, root: Path) -> Run:
    values = dict(row)
    values["config"] = TrainConfig.from_dict(json.loads(values["config"]))
    values["dir"] = root / values["dir"]
    values["stop_requested"] = bool(values["stop_requested"])
    values["tags"] = json.loads(values["tags"])
    values["progress"] = json.loads(values["progress"])
    return Run(**values)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    """Reads and writes runs; safe to use from many processes at once."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else runs_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / DB_NAME
        self._local = threading.local()
        with self._connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per thread and process, kept open: closing the last connection to a
        # WAL database checkpoints it to disk, which made every write cost 10-30 ms.
        db = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():  # a forked child opens its own
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db, self._local.pid = db, os.getpid()
        yield db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # Creating and changing runs

    def create(
        self,
        config: TrainConfig,
        name: str = "",
        status: str = "queued",
        sweep: str = "",
        tags: list[str] | None = None,
        pid: int | None = None,
    ) -> Run:
        """Add a run (queued, or running under `pid`) with its own folder; returns it."""
        if status not in ACTIVE:
            raise ValueError(f"a new run is queued or running, not {status!r}")
        name = name.strip() or f"{config.arch}-{time.strftime('%m%d-%H%M%S')}"
        started = time.time() if status == "running" else None
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO runs (name, status, config, created, started, pid, sweep, tags) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    status,
                    config.to_json(),
                    time.time(),
                    started,
                    pid,
                    sweep,
                    json.dumps(tags or []),
                ),
            )
            run_id = cur.lastrowid
            folder = f"{run_id:05d}-{slug(name)}"
            db.execute("UPDATE runs SET dir = ? WHERE id = ?", (folder, run_id))
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        return self.get(run_id)

    def claim_next(self, pid: int) -> Run | None:
        """Atomically take the oldest queued dashboard run and mark it running under `pid`.

        Sweep trials are left alone: their sweep process claims them (`claim`).
        """
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM runs WHERE status = 'queued' AND sweep = '' ORDER BY id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE runs SET status = 'running', started = ?, pid = ? WHERE id = ?",
                (time.time(), pid, row["id"]),
            )
        return self.get(row["id"])

    def claim(self, run_id: int, pid: int) -> Run | None:
        """Mark one queued run running under `pid`; None if it is no longer queued."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE runs SET status = 'running', started = ?, pid = ? "
                "WHERE id = ? AND status = 'queued'",
                (time.time(), pid, run_id),
            )
        return self.get(run_id) if cur.rowcount else None

    def stop_queued(self, run_ids: list[int], message: str) -> None:
        """Mark those of `run_ids` that never started as stopped."""
        with self._write() as db:
            db.executemany(
                "UPDATE runs SET status = 'stopped', ended = ?, pid = NULL, message = ? "
                "WHERE id = ? AND status = 'queued'",
                [(time.time(), message, run_id) for run_id in run_ids],
            )

    def start(self, run_id: int, pid: int, n_params: int | None = None) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE runs SET status = 'running', started = COALESCE(started, ?), pid = ?, "
                "n_params = ? WHERE id = ?",
                (time.time(), pid, n_params, run_id),
            )

    def set_progress(self, run_id: int, progress: dict[str, Any]) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET progress = ? WHERE id = ?", (json.dumps(progress), run_id))

    def add_epoch(
        self, run_id: int, metrics: dict[str, float], batch_losses: list[tuple[int, float, float]]
    ) -> None:
        """Record one finished epoch and the batch losses sampled since the last one."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    metrics["epoch"],
                    metrics["train_loss"],
                    metrics["train_accuracy"],
                    metrics["val_loss"],
                    metrics["val_accuracy"],
                    metrics["lr"],
                    metrics["seconds"],
                    metrics["elapsed"],
                ),
            )
            db.executemany(
                "INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?)",
                [(run_id, step, epoch, loss) for step, epoch, loss in batch_losses],
            )

    def finish(self, run_id: int, status: str, message: str = "", **results: Any) -> None:
        """Close a run with its final status and any of: best_epoch, best_val_accuracy,
        test_accuracy, test_loss, train_seconds."""
        if status not in STATUSES or status in ACTIVE:
            raise ValueError(f"cannot finish a run as {status!r}")
        allowed = {"best_epoch", "best_val_accuracy", "test_accuracy", "test_loss", "train_seconds"}
        unknown = set(results) - allowed
        if unknown:
            raise ValueError(f"unknown result fields {sorted(unknown)}")
        sets = ", ".join(f"{k} = ?" for k in results)
        with self._write() as db:
            db.execute(
                f"UPDATE runs SET status = ?, message = ?, ended = ?, pid = NULL"
                f"{', ' + sets if sets else ''} WHERE id = ?",
                (status, message, time.time(), *results.values(), run_id),
            )

    def request_stop(self, run_id: int) -> None:
        """Ask a running run to stop after its current batch; a queued run is cancelled."""
        with self._write() as db:
            db.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))
            db.execute(
                "UPDATE runs SET status = 'stopped', ended = ?, message = 'Cancelled before it "
                "started.' WHERE id = ? AND status = 'queued'",
                (time.time(), run_id),
            )

    def stop_requested(self, run_id: int) -> bool:
        with self._connect() as db:
            row = db.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def rename(self, run_id: int, name: str) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET name = ? WHERE id = ?", (name.strip() or "run", run_id))

    def set_tags(self, run_id: int, tags: list[str]) -> None:
        clean = sorted({t.strip() for t in tags if t.strip()})
        with self._write() as db:
            db.execute("UPDATE runs SET tags = ? WHERE id = ?", (json.dumps(clean), run_id))

    def delete(self, run_id: int) -> None:
        """Remove a run, its metrics and its folder. A running run must be stopped first."""
        run = self.get(run_id)
        if run.status == "running" and pid_alive(run.pid):
            raise ValueError(f"run {run_id} is still running; stop it first")
        with self._write() as db:
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        if run.dir.is_dir() and run.dir.resolve().parent == self.root.resolve():
            shutil.rmtree(run.dir, ignore_errors=True)

    def reap(self) -> list[int]:
        """Mark runs whose process is gone (killed, crashed) as failed; returns them.

        That is every running run, and every queued sweep trial (queued under its sweep's
        process), whose process no longer exists. Dashboard runs queued with no process wait.
        """
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, pid FROM runs WHERE status = 'running' "
                "OR (status = 'queued' AND pid IS NOT NULL)"
            ).fetchall()
        dead = [row["id"] for row in rows if not pid_alive(row["pid"])]
        with self._write() as db:
            db.executemany(
                "UPDATE runs SET status = 'failed', ended = ?, pid = NULL, message = "
                "'The training process ended unexpectedly (killed or crashed); the last "
                "checkpoint, if any, is kept.' WHERE id = ? AND status IN ('running', 'queued')",
                [(time.time(), run_id) for run_id in dead],
            )
        return dead

    # Reading

    def get(self, run_id: int) -> Run:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run with id {run_id}")
        return _run(row, self.root)

    def list(self, status: str | tuple[str, ...] | None = None) -> list[Run]:
        """All runs, newest first, optionally only those with the given status(es)."""
        query, args = "SELECT * FROM runs", ()
        if status is not None:
            statuses = (status,) if isinstance(status, str) else tuple(status)
            query += f" WHERE status IN ({', '.join('?' * len(statuses))})"
            args = statuses
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY id DESC", args).fetchall()
        return [_run(row, self.root) for row in rows]

    def list_sweep(self, sweep: str) -> list[Run]:
        """The runs of one sweep, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE sweep = ? ORDER BY id", (sweep,)).fetchall()
        return [_run(row, self.root) for row in rows]

    def epochs(self, run_id: int) -> list[dict[str, float]]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
            ).fetchall()
        return [{k: v for k, v in dict(row).items() if k != "run_id"} for row in rows]

    def epochs_of(self, run_ids: Iterable[int]) -> dict[int, list[dict[str, float]]]:
        """The per-epoch metrics of many runs in one query; a run without epochs gets []."""
        out: dict[int, list[dict[str, float]]] = {i: [] for i in run_ids}
        if not out:
            return out
        with self._connect() as db:
            rows = db.execute(
                f"SELECT * FROM epochs WHERE run_id IN ({', '.join('?' * len(out))}) "
                "ORDER BY run_id, epoch",
                list(out),
            ).fetchall()
        for row in rows:
            values = dict(row)
            out[values.pop("run_id")].append(values)
        return out

    def epoch_summaries(self) -> dict[int, dict[str, float]]:
        """For every run with epochs: how many, the best validation accuracy, seconds elapsed."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT run_id, COUNT(*), MAX(val_accuracy), MAX(elapsed) FROM epochs "
                "GROUP BY run_id"
            ).fetchall()
        return {r[0]: {"epochs": r[1], "best_val_accuracy": r[2], "elapsed": r[3]} for r in rows}

    def batch_losses(self, run_id: int) -> list[tuple[int, float, float]]:
        """(step, fractional epoch, loss) of the sampled batches, in order."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT step, epoch, loss FROM batches WHERE run_id = ? ORDER BY step", (run_id,)
            ).fetchall()
        return [tuple(row) for row in rows]


class Recorder(Callback):
    """Writes a training run into the store as it goes: progress, epochs, snapshots, checkpoint.

    Progress and stop requests touch the database at most every `interval` seconds, so the
    store costs the training loop nothing measurable.
    """

    def __init__(
        self,
        store: RunStore,
        run: Run,
        dataset: Dataset,
        interval: float = 0.5,
    ) -> None:
        self.store, self.run, self.dataset, self.interval = store, run, dataset, interval
        self.meta = {
            "run_id": run.id,
            "run_name": run.name,
            "dataset": dataset.name,
            "class_names": list(dataset.class_names),
        }
        self.pending: list[tuple[int, float, float]] = []
        self.step = 0
        self.last_poll = 0.0
        self.stop = False
        self.best_val = -1.0

    def on_train_begin(self, model: Model, config: TrainConfig, n_train: int) -> None:
        self.config, self.n_train = config, n_train
        self.store.start(self.run.id, os.getpid(), model.n_params)
        self.every = max(
            1, math.ceil(config.epochs * math.ceil(n_train / config.batch_size) / BATCH_LOSS_POINTS)
        )
        self.run.snapshot_dir.mkdir(parents=True, exist_ok=True)
        model.save(self.run.snapshot(0), self._meta(epoch=0))  # the untrained weights

    def on_batch_end(self, stats: BatchStats) -> None:
        self.step += 1
        if self.step % self.every == 0:
            epoch = stats.epoch - 1 + stats.batch / stats.batches
            self.pending.append((self.step, epoch, stats.loss))
        now = time.monotonic()
        if now - self.last_poll >= self.interval:
            self.last_poll = now
            self._progress(stats.epoch, stats.batch, stats.batches, stats.loss, stats.elapsed)
            self.stop = self.store.stop_requested(self.run.id)

    def _progress(self, epoch: int, batch: int, batches: int, loss: float, elapsed: float) -> None:
        done = (epoch - 1 + batch / batches) / self.config.epochs
        self.store.set_progress(
            self.run.id,
            {
                "epoch": epoch,
                "epochs": self.config.epochs,
                "batch": batch,
                "batches": batches,
                "loss": loss,
                "elapsed": elapsed,
                "eta": elapsed * (1 - done) / done if done > 0 else None,
            },
        )

    def should_stop(self) -> bool:
        return self.stop

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

    def on_train_end(self, result: TrainResult) -> None:
        if result.history and result.status != "diverged":
            meta = {**self.meta, **result_meta(result, self.dataset)}
            result.model.save(self.run.checkpoint, meta)
        self.store.finish(
            self.run.id,
            result.status,
            result.reason,
            best_epoch=result.best_epoch or None,
            best_val_accuracy=result.best_val_accuracy if result.history else None,
            test_accuracy=result.test_accuracy,
            test_loss=result.test_loss,
            train_seconds=result.seconds,
        )

    def _meta(self, **extra: Any) -> dict[str, Any]:
        return {**self.meta, "config": self.config.to_dict(), **extra}


def train_run(
    store: RunStore,
    run: Run,
    dataset: Dataset | None = None,
    callbacks: Sequence[Callback] = (),
    should_stop: Callable[[], bool] | None = None,
    threads: int = 1,
) -> TrainResult:
    """Train a stored run, recording it as it goes; a crash or Ctrl-C is recorded too.

    It stops early when the store asks (the dashboard's Stop) or when `should_stop` does.
    """
    try:
        dataset = dataset if dataset is not None else load_dataset(run.config.data_dir or None)
        recorder = Recorder(store, run, dataset)
        return fit(
            run.config,
            dataset,
            [recorder, *callbacks],
            should_stop=lambda: recorder.should_stop() or bool(should_stop and should_stop()),
            threads=threads,
        )
    except KeyboardInterrupt:
        store.finish(run.id, "stopped", "Interrupted.")
        raise
    except BaseException as exc:
        store.finish(run.id, "failed", f"{type(exc).__name__}: {exc}")
        raise
