"""The run store: every training run, its config, live metrics and files.

One SQLite database under the runs folder, `runs/` by default or `$MNIST_RUNS_DIR`
(core/store_db.py: connections, faults, schema), and one folder per run (core/run.py).
Trainer processes write while any number of dashboard sessions read; every write is one
short transaction, so readers always see a consistent state. A run row this version
cannot read is skipped by `runs` and named in `skipped`. Runs whose process is gone are
closed by `reap` (core/owners.py). Training a run into the store is core/recorder.py.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .owners import close_ownerless, owner_alive, process_start, remove_leftovers
from .run import ACTIVE, STATUSES, Run, UnreadableRun, progress_fraction, run_from_row, slug
from .store_db import DB_NAME, RUNS_DIR_ENV, SCHEMA, TIMEOUT, StoreDB, StoreError

__all__ = [
    "ACTIVE",
    "DB_NAME",
    "RUNS_DIR_ENV",
    "SCHEMA",
    "STATUSES",
    "Run",
    "RunStore",
    "StoreError",
    "process_start",
    "progress_fraction",
    "runs_dir",
    "slug",
]


def runs_dir() -> Path:
    """The folder of the run store: $MNIST_RUNS_DIR, else ./runs."""
    return Path(os.environ.get(RUNS_DIR_ENV) or "runs")


class RunStore:
    """Reads and writes runs; safe to use from many processes at once.

    `read_only` says whether the store can only be read; `skipped` lists the (run id,
    reason) of rows the last `runs` or `sweep_runs` could not read.
    """

    def __init__(self, root: str | Path | None = None, timeout: float = TIMEOUT) -> None:
        self._db = StoreDB(Path(root) if root is not None else runs_dir(), timeout)
        self.root, self.path = self._db.root, self._db.path
        self.skipped: list[tuple[int, str]] = []
        self._swept = False  # whether reap() has looked through every run's folder yet

    @property
    def read_only(self) -> bool:
        """Whether the store can only be read (its folder or file is not writable)."""
        return self._db.read_only

    def close(self) -> None:
        """Close this thread's connection (the next call opens a new one)."""
        self._db.close()

    # Creating and changing runs

    def create(
        self,
        config: TrainConfig,
        name: str = "",
        status: str = "queued",
        sweep: str = "",
        tags: list[str] | None = None,
        pid: int | None = None,
        parent: int | None = None,
        epoch_offset: int = 0,
    ) -> Run:
        """Add a run (queued, or running under `pid`) with its own folder; returns it.

        A run that continues another (`parent`) numbers its epochs on from `epoch_offset`.
        """
        if status not in ACTIVE:
            raise ValueError(f"a new run is queued or running, not {status!r}")
        name = name.strip() or f"{config.arch}-{time.strftime('%m%d-%H%M%S')}"
        started = time.time() if status == "running" else None
        with self._db.write() as db:
            cur = db.execute(
                "INSERT INTO runs (name, status, config, created, started, pid, pid_start, "
                "sweep, tags, parent, epoch_offset) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    status,
                    config.to_json(),
                    time.time(),
                    started,
                    pid,
                    process_start(pid),
                    sweep,
                    json.dumps(tags or []),
                    parent,
                    epoch_offset,
                ),
            )
            run_id = cur.lastrowid
            folder = f"{run_id:05d}-{slug(name)}"
            db.execute("UPDATE runs SET dir = ? WHERE id = ?", (folder, run_id))
        try:
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"the folder of run {run_id} cannot be created in {self.root} "
                f"({exc.strerror or exc}): make it writable or set {RUNS_DIR_ENV} to another folder"
            ) from exc
        return self.get(run_id)

    def queued(self) -> list[int]:
        """The dashboard runs waiting for the background trainer, oldest first.

        Sweep trials (their sweep claims them) and rows this version cannot read are left out.
        """
        with self._db.connect() as db:
            rows = db.execute(
                "SELECT * FROM runs WHERE status = 'queued' AND sweep = '' ORDER BY id"
            ).fetchall()
        return [row["id"] for row in rows if self._readable(row)]

    def _readable(self, row: sqlite3.Row) -> bool:
        try:
            run_from_row(row, self.root)
        except UnreadableRun:
            return False
        return True

    def claim_next(self, pid: int) -> Run | None:
        """Atomically take the oldest queued dashboard run and mark it running under `pid`.

        Sweep trials are left alone: their sweep process claims them (`claim`). So are rows
        this version cannot read: they stay queued for a version that can.
        """
        with self._db.write() as db:
            rows = db.execute(
                "SELECT * FROM runs WHERE status = 'queued' AND sweep = '' ORDER BY id"
            ).fetchall()
            row = next((r for r in rows if self._readable(r)), None)
            if row is None:
                return None
            db.execute(
                "UPDATE runs SET status = 'running', started = ?, pid = ?, pid_start = ? "
                "WHERE id = ?",
                (time.time(), pid, process_start(pid), row["id"]),
            )
        return self.get(row["id"])

    def claim(self, run_id: int, pid: int) -> Run | None:
        """Mark one queued run running under `pid`; None if it is no longer queued."""
        with self._db.write() as db:
            cur = db.execute(
                "UPDATE runs SET status = 'running', started = ?, pid = ?, pid_start = ? "
                "WHERE id = ? AND status = 'queued'",
                (time.time(), pid, process_start(pid), run_id),
            )
        return self.get(run_id) if cur.rowcount else None

    def stop_queued(self, run_ids: list[int], message: str) -> None:
        """Mark those of `run_ids` that never started as stopped."""
        with self._db.write() as db:
            db.executemany(
                "UPDATE runs SET status = 'stopped', ended = ?, pid = NULL, pid_start = NULL, "
                "message = ? WHERE id = ? AND status = 'queued'",
                [(time.time(), message, run_id) for run_id in run_ids],
            )

    def stop_abandoned(self, run_ids: list[int], message: str) -> list[int]:
        """Mark those of `run_ids` still running under a process that is gone as stopped.

        Their best recorded epoch is filled in, as for a reaped run; returns them.
        """
        return close_ownerless(self._db, run_ids, running=("stopped", message))

    def start(self, run_id: int, pid: int, n_params: int | None = None) -> None:
        """Mark a run running under `pid` (the trainer that has just begun it)."""
        with self._db.write() as db:
            db.execute(
                "UPDATE runs SET status = 'running', started = COALESCE(started, ?), pid = ?, "
                "pid_start = ?, n_params = ? WHERE id = ?",
                (time.time(), pid, process_start(pid), n_params, run_id),
            )

    def set_progress(self, run_id: int, progress: dict[str, Any]) -> None:
        """Replace a running run's progress (see `progress_fraction`)."""
        with self._db.write() as db:
            db.execute("UPDATE runs SET progress = ? WHERE id = ?", (json.dumps(progress), run_id))

    def add_epoch(
        self,
        run_id: int,
        metrics: dict[str, float],
        batches: list[tuple[float, ...]],
    ) -> None:
        """Record one finished epoch and the batches sampled since the last one, each as
        (step, fractional epoch, loss) and, where known, the learning rate."""
        with self._db.write() as db:
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
                "INSERT OR REPLACE INTO batches (run_id, step, epoch, loss, lr) "
                "VALUES (?, ?, ?, ?, ?)",
                [(run_id, *batch[:3], batch[3] if len(batch) > 3 else None) for batch in batches],
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
        with self._db.write() as db:
            db.execute(
                f"UPDATE runs SET status = ?, message = ?, ended = ?, pid = NULL, pid_start = NULL"
                f"{', ' + sets if sets else ''} WHERE id = ?",
                (status, message, time.time(), *results.values(), run_id),
            )

    def request_stop(self, run_id: int) -> None:
        """Ask a running run to stop after its current batch; a queued run is cancelled.

        A run whose trainer is already gone is marked failed at once, since nobody is left to
        read the request.
        """
        with self._db.write() as db:
            db.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))
            db.execute(
                "UPDATE runs SET status = 'stopped', ended = ?, message = 'Cancelled before it "
                "started.' WHERE id = ? AND status = 'queued'",
                (time.time(), run_id),
            )
        close_ownerless(self._db, [run_id])

    def stop_requested(self, run_id: int) -> bool:
        """Whether someone asked this run to stop (`request_stop`)."""
        with self._db.connect() as db:
            row = db.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def rename(self, run_id: int, name: str) -> None:
        """Give a run another name (its folder keeps the first one)."""
        with self._db.write() as db:
            db.execute("UPDATE runs SET name = ? WHERE id = ?", (name.strip() or "run", run_id))

    def set_tags(self, run_id: int, tags: list[str]) -> None:
        """Replace a run's tags: trimmed, without blanks or repeats, sorted."""
        clean = sorted({t.strip() for t in tags if t.strip()})
        with self._db.write() as db:
            db.execute("UPDATE runs SET tags = ? WHERE id = ?", (json.dumps(clean), run_id))

    def delete(self, run_id: int) -> None:
        """Remove a run, its metrics and its folder. A running run must be stopped first.

        Works on rows this version cannot read, too.
        """
        with self._db.connect() as db:
            row = db.execute(
                "SELECT status, pid, pid_start, dir FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
        if row is None:
            raise KeyError(f"no run with id {run_id}")
        if row["status"] == "running" and owner_alive(row["pid"], row["pid_start"]):
            raise ValueError(f"run {run_id} is still running; stop it first")
        with self._db.write() as db:
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        folder = self.root / str(row["dir"])
        if row["dir"] and folder.is_dir() and folder.resolve().parent == self.root.resolve():
            shutil.rmtree(folder, ignore_errors=True)

    def reap(self) -> list[int]:
        """Mark runs whose process is gone (killed, crashed) as failed; returns them.

        That is every running run whose owner (process id and start time) no longer exists;
        its best recorded epoch is filled in and its checkpoint kept. Sweep trials queued
        under a sweep process that is gone are marked stopped. Dashboard runs queued with no
        process wait. Then leftover temporary files (`*.tmp`, from writes cut short) are
        removed from the folders of runs that no live trainer can still be writing: all of
        them on this store's first reap, after that those of the runs just reaped, so calling
        it every few seconds costs one query. A read-only store is left as it is.
        """
        if self.read_only:
            return []
        dead = close_ownerless(self._db)
        remove_leftovers(self._db, dead if self._swept else None)
        self._swept = True
        return dead

    # Reading

    def get(self, run_id: int) -> Run:
        """One run; KeyError if there is none, StoreError if this version cannot read it."""
        with self._db.connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run with id {run_id}")
        try:
            return run_from_row(row, self.root)
        except UnreadableRun as exc:
            raise StoreError(
                f"run {run_id} cannot be read by this version of the app: {exc} (written by a "
                "newer version, or edited by hand); update the app, or delete the run"
            ) from None

    def _readable_runs(self, rows: list[sqlite3.Row]) -> list[Run]:
        runs, skipped = [], []
        for row in rows:
            try:
                runs.append(run_from_row(row, self.root))
            except UnreadableRun as exc:
                skipped.append((row["id"], str(exc)))
        self.skipped = skipped
        return runs

    def runs(self, status: str | tuple[str, ...] | None = None) -> list[Run]:
        """All runs, newest first, optionally only those with the given status(es).

        Rows this version cannot read are left out and listed in `skipped`.
        """
        query, args = "SELECT * FROM runs", ()
        if status is not None:
            statuses = (status,) if isinstance(status, str) else tuple(status)
            query += f" WHERE status IN ({', '.join('?' * len(statuses))})"
            args = statuses
        with self._db.connect() as db:
            rows = db.execute(query + " ORDER BY id DESC", args).fetchall()
        return self._readable_runs(rows)

    def sweep_runs(self, sweep: str) -> list[Run]:
        """The runs of one sweep, oldest first; unreadable rows are listed in `skipped`."""
        with self._db.connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE sweep = ? ORDER BY id", (sweep,)).fetchall()
        return self._readable_runs(rows)

    def epochs(self, run_id: int) -> list[dict[str, float]]:
        """A run's per-epoch metrics, in order."""
        with self._db.connect() as db:
            rows = db.execute(
                "SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
            ).fetchall()
        return [{k: v for k, v in dict(row).items() if k != "run_id"} for row in rows]

    def epochs_of(self, run_ids: Iterable[int]) -> dict[int, list[dict[str, float]]]:
        """The per-epoch metrics of many runs in one query; a run without epochs gets []."""
        return self._rows_of("epochs", "epoch", run_ids)

    def _rows_of(self, table: str, order: str, run_ids: Iterable[int]) -> dict[int, list[dict]]:
        """The rows of `table` for many runs in one query, each in `order` and without its
        run_id; a run without rows (or a store without the table) gets []."""
        out: dict[int, list[dict]] = {i: [] for i in run_ids}
        if not out or not self._db.has(table):
            return out
        with self._db.connect() as db:
            rows = db.execute(
                f"SELECT * FROM {table} WHERE run_id IN ({', '.join('?' * len(out))}) "
                f"ORDER BY run_id, {order}",
                list(out),
            ).fetchall()
        for row in rows:
            values = dict(row)
            out[values.pop("run_id")].append(values)
        return out

    def epoch_summaries(self) -> dict[int, dict[str, float]]:
        """For every run with epochs: how many, the best validation accuracy, seconds elapsed."""
        with self._db.connect() as db:
            rows = db.execute(
                "SELECT run_id, COUNT(*), MAX(val_accuracy), MAX(elapsed) FROM epochs "
                "GROUP BY run_id"
            ).fetchall()
        return {r[0]: {"epochs": r[1], "best_val_accuracy": r[2], "elapsed": r[3]} for r in rows}

    def batch_losses(self, run_id: int) -> list[tuple[int, float, float]]:
        """(step, fractional epoch, loss) of the sampled batches, in order."""
        with self._db.connect() as db:
            rows = db.execute(
                "SELECT step, epoch, loss FROM batches WHERE run_id = ? ORDER BY step", (run_id,)
            ).fetchall()
        return [tuple(row) for row in rows]

    def batch_lrs(self, run_id: int) -> list[tuple[int, float, float | None]]:
        """(step, fractional epoch, learning rate) of the sampled batches, in order."""
        if not self._db.has("batches", "lr"):
            return []
        with self._db.connect() as db:
            rows = db.execute(
                "SELECT step, epoch, lr FROM batches WHERE run_id = ? ORDER BY step", (run_id,)
            ).fetchall()
        return [tuple(row) for row in rows]

    # Steering a run while it trains (core/control.py says what the commands and events are)

    def send(self, run_id: int, command: dict[str, Any]) -> None:
        """Queue a command for a run's trainer, which takes it between two batches."""
        with self._db.write() as db:
            db.execute(
                "INSERT INTO commands (run_id, created, command) VALUES (?, ?, ?)",
                (run_id, time.time(), json.dumps(command)),
            )

    def take_commands(self, run_id: int) -> list[dict[str, Any]]:
        """The commands sent to a run since the last call, oldest first, removed as taken."""
        with self._db.connect() as db:  # the trainer asks often: reading first costs no lock
            waiting = db.execute(
                "SELECT 1 FROM commands WHERE run_id = ? LIMIT 1", (run_id,)
            ).fetchone()
        if waiting is None:
            return []
        with self._db.write() as db:
            rows = db.execute(
                "SELECT id, command FROM commands WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall()
            db.execute(
                f"DELETE FROM commands WHERE id IN ({', '.join('?' * len(rows))})",
                [row["id"] for row in rows],
            )
        taken = []
        for row in rows:
            try:
                command = json.loads(row["command"])
            except ValueError:
                continue  # not written by this app: nothing to do with it
            if isinstance(command, dict):
                taken.append(command)
        return taken

    def add_events(self, run_id: int, events: list[dict[str, Any]]) -> None:
        """Record things that happened to a run (`step`, `epoch`, `time`, `kind`, `detail`)."""
        if not events:
            return
        with self._db.write() as db:
            last = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            db.executemany(
                "INSERT INTO events (run_id, seq, step, epoch, time, kind, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        last + i,
                        e["step"],
                        e["epoch"],
                        e["time"],
                        e["kind"],
                        json.dumps(e.get("detail", {})),
                    )
                    for i, e in enumerate(events, start=1)
                ],
            )

    def events(self, run_id: int) -> list[dict[str, Any]]:
        """A run's events, in the order they happened."""
        return self.events_of([run_id])[run_id]

    def events_of(self, run_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        """The events of many runs in one query; a run without events gets []."""
        out = self._rows_of("events", "seq", run_ids)
        for event in itertools.chain.from_iterable(out.values()):
            try:
                event["detail"] = json.loads(event["detail"])
            except ValueError:
                event["detail"] = {}
        return out

    # Store-wide settings (the number of trainer slots)

    def setting(self, key: str) -> str | None:
        """A store-wide setting, or None if it was never set."""
        if not self._db.has("settings"):
            return None
        with self._db.connect() as db:
            row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        """Set a store-wide setting, seen by every process using the store."""
        with self._db.write() as db:
            db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
