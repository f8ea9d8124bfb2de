"""The run store: every training run, its config, live metrics and files, in SQLite.

One database file (`runs.sqlite`, WAL mode) under the runs folder, `runs/` by
default or `$MNIST_RUNS_DIR`. Each run also gets a folder holding its best
checkpoint (`model.npz`) and one weight snapshot per epoch (`snapshots/`).
Trainer processes write while any number of dashboard sessions read; every
write is one short transaction, so readers always see a consistent state.

Every fault of the store itself (a folder that cannot be created, a file that is
not a database, a read-only folder, a lock held too long) is raised as one
`StoreError` whose message says what to do. A read-only store can still be read.
A run row this version cannot read is skipped by `list` and named in `skipped`.
A run's owner is its process id together with that process's start time, so a
reused process id never keeps a dead run "running".
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .config import ConfigError, TrainConfig
from .data import Dataset, load_dataset
from .model import Model
from .train import BatchStats, Callback, EpochStats, TrainResult, fit, result_meta

RUNS_DIR_ENV = "MNIST_RUNS_DIR"
DB_NAME = "runs.sqlite"
STATUSES = ("queued", "running", "finished", "stopped", "diverged", "learned_nothing", "failed")
ACTIVE = ("queued", "running")
BATCH_LOSS_POINTS = 400  # per-batch losses kept per run: plenty for a curve
TIMEOUT = 30.0  # seconds a write waits for another process's transaction before giving up
KILLED = (
    "The training process ended unexpectedly (killed or crashed); the checkpoint of its best "
    "recorded epoch, if any, is kept."
)
ORPHANED = "The sweep's process ended before this trial ran; run the sweep again with --resume."

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
    progress TEXT NOT NULL DEFAULT '{}',
    pid_start INTEGER
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
SQLITE_HEADER = b"SQLite format 3\x00"  # the first bytes of every SQLite database file
# Columns added since the first version, with their types: older databases gain them on open.
MIGRATIONS = {"pid_start": "INTEGER"}


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
    pid_start: int | None = None  # the owner's start time (clock ticks since boot)

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


RUN_COLUMNS = tuple(f.name for f in fields(Run))


class _Unreadable(Exception):
    """One run row this version cannot read; the message is the reason."""


def _run(row: sqlite3.Row, root: Path) -> Run:
    # Only the columns this version knows: a newer version may have added others. (A Row's
    # `in` looks at its values, hence the set of its keys.)
    present = set(row.keys())
    values = {k: row[k] for k in RUN_COLUMNS if k in present}
    try:
        config = json.loads(values["config"])
        tags = json.loads(values["tags"])
        progress = json.loads(values["progress"])
    except (TypeError, ValueError) as exc:
        raise _Unreadable(f"a field is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise _Unreadable("its config is not a mapping of settings")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _Unreadable("its tags are not a list of text")
    if not isinstance(progress, dict):
        raise _Unreadable("its progress is not a mapping")
    if values["status"] not in STATUSES:
        raise _Unreadable(f"its status {values['status']!r} is unknown to this version")
    try:
        values["config"] = TrainConfig.from_dict(config)
    except ConfigError as exc:
        raise _Unreadable(f"its config has {exc.field}: {exc.message}") from None
    values["dir"] = root / str(values["dir"])
    values["stop_requested"] = bool(values["stop_requested"])
    values["tags"], values["progress"] = tags, progress
    return Run(**values)


def pid_alive(pid: int | None) -> bool:
    """Whether some process has this id (it may not be the one that had it before)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None if there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return text[text.rfind(")") + 2 :].split()


def process_start(pid: int | None) -> int | None:
    """When process `pid` started, in clock ticks since boot (Linux); None if unknown."""
    if not pid:
        return None
    stat = _proc_stat(pid)
    return int(stat[19]) if stat and len(stat) > 19 else None  # field 22 of the full line


def owner_alive(pid: int | None, start: int | None) -> bool:
    """Whether the process that owned a run is still running: same id AND same start time.

    Without a recorded start time (rows from older versions, systems without /proc) only
    the id can be checked.
    """
    if not pid:
        return False
    if not _HAVE_PROC:
        return pid_alive(pid)
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):  # gone, or a zombie nobody has waited for
        return False
    return start is None or int(stat[19]) == start


_HAVE_PROC = Path("/proc/self/stat").exists()


def _writable(root: Path, path: Path) -> bool:
    # os.access honours read-only mounts and immutable files even for root, and mode bits
    # for everyone else: exactly what decides whether SQLite can write here.
    return os.access(root, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


class RunStore:
    """Reads and writes runs; safe to use from many processes at once.

    `read_only` says whether the store can only be read; `skipped` lists the (run id,
    reason) of rows the last `list` or `list_sweep` could not read.
    """

    def __init__(self, root: str | Path | None = None, timeout: float = TIMEOUT) -> None:
        self.root = Path(root) if root is not None else runs_dir()
        self.path = self.root / DB_NAME
        self.timeout = timeout
        self.read_only = False
        self.skipped: list[tuple[int, str]] = []
        self._swept = False  # whether reap() has looked through every run's folder yet
        self._local = threading.local()
        with self._connect():
            pass  # opens, creates or upgrades the database now, so a fault shows up here

    def close(self) -> None:
        """Close this thread's connection (the next call opens a new one)."""
        db = getattr(self._local, "db", None)
        if db is not None and self._local.pid == os.getpid():
            db.close()
        self._local.db = None

    # Connections and faults

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._connection()
        except sqlite3.Error as exc:
            raise self._fault(exc) from exc
        except OSError as exc:
            raise StoreError(
                f"the run store at {self.root} cannot be used ({exc.strerror or exc}): check "
                f"that the folder is readable, or set {RUNS_DIR_ENV} to another folder"
            ) from exc

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread and process, kept open: closing the last connection to a
        # WAL database checkpoints it to disk, which made every write cost 10-30 ms. One stat
        # per call notices a database deleted or replaced since it was opened.
        local = self._local
        ident = self._identity()
        db = getattr(local, "db", None)
        if db is not None and local.pid == os.getpid():  # a forked child opens its own
            if ident == local.ident and (ident is not None or local.memory):
                return db
            db.close()  # the file it had open was deleted or replaced
        local.db = None
        db, local.memory = self._open()
        local.db, local.pid, local.ident = db, os.getpid(), self._identity()
        return db

    def _identity(self) -> tuple[int, ...] | None:
        try:
            st = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if getattr(self._local, "immutable", False):
            # Opened as immutable: any change at all means someone writes, so reopen.
            wal = os.path.exists(f"{self.path}-wal")
            return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size, wal)
        return (st.st_dev, st.st_ino)

    def _open(self) -> tuple[sqlite3.Connection, bool]:
        """A new connection, the database created or upgraded first; and whether in memory."""
        self._local.immutable = False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"the run store folder {self.root} cannot be created ({exc.strerror or exc}): "
                f"make its parent folder writable, or set {RUNS_DIR_ENV} to another folder"
            ) from exc
        self._check_header()
        self.read_only = not _writable(self.root, self.path)
        if self.read_only:
            return self._open_read_only()
        with self._creating():
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            try:
                db.row_factory = sqlite3.Row
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA foreign_keys=ON")
                self._prepare(db)
            except BaseException:
                db.close()
                raise
        return db, False

    def _check_header(self) -> None:
        """StoreError unless the database file is missing, empty or starts as SQLite's do."""
        # SQLite itself would read a file that replaced the database through the old file's
        # -wal and show the old runs, so the file is looked at first.
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except (FileNotFoundError, IsADirectoryError):
            return  # created below, or SQLite says it cannot open a folder
        if head != SQLITE_HEADER[: len(head)]:
            raise StoreError(
                f"{self.path} is not a run store database (it is not an SQLite file): move it "
                "aside and it will be recreated"
            )

    @contextmanager
    def _creating(self) -> Iterator[None]:
        """While a missing database is created: one process at a time, stale files removed."""
        if self.path.exists():
            yield
            return
        fd = os.open(self.root / f"{DB_NAME}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not self.path.exists():
                # A -wal left by a deleted database would be replayed into the new one.
                for suffix in ("-wal", "-shm", "-journal"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            yield
        finally:
            os.close(fd)

    def _open_read_only(self) -> tuple[sqlite3.Connection, bool]:
        if not self.path.exists():  # nothing to read: an empty store, in memory
            db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.executescript(SCHEMA)
            return db, True
        uri = f"file:{quote(str(self.path.resolve()))}"
        try:
            db = self._read_only_connection(f"{uri}?mode=ro")
        except sqlite3.OperationalError:
            if os.access(self.root, os.W_OK):
                raise
            # SQLite cannot open a WAL database read-only without creating its -shm file; in
            # a folder nobody can create files in, nobody can write it either, so it is safe
            # to read it as immutable (reopened at once if it ever changes).
            db = self._read_only_connection(f"{uri}?immutable=1")
            self._local.immutable = True
        return db, False

    def _read_only_connection(self, uri: str) -> sqlite3.Connection:
        db = sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            self._check_schema(db)
        except BaseException:
            db.close()
            raise
        return db

    def _columns(self, db: sqlite3.Connection) -> tuple[set[str], set[str]]:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "runs" not in tables:
            return tables, set()
        return tables, {r[1] for r in db.execute("PRAGMA table_info(runs)")}

    def _check_schema(self, db: sqlite3.Connection) -> bool:
        """Whether the database is a complete run store; StoreError if it is someone else's."""
        tables, columns = self._columns(db)
        if not tables:
            return False
        if not tables & {"runs", "epochs", "batches"}:
            raise StoreError(
                f"{self.path} is not a run store database (it holds other tables: "
                f"{', '.join(sorted(tables)[:5])}): move it aside and it will be recreated"
            )
        if "runs" in tables:
            missing = set(RUN_COLUMNS) - columns - set(MIGRATIONS)
            if missing:
                raise StoreError(
                    f"{self.path} is not a run store database (its runs table has no "
                    f"{', '.join(sorted(missing))}): move it aside and it will be recreated"
                )
        return {"runs", "epochs", "batches"} <= tables and set(MIGRATIONS) <= columns

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Create the tables, or add the columns newer than the database; a no-op when whole."""
        if self._check_schema(db):
            return  # nothing to write, so opening never waits for another process's lock
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            _, columns = self._columns(db)
            for column, kind in MIGRATIONS.items():
                if column not in columns:
                    db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
            self._check_schema(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _read_only_error(self) -> StoreError:
        return StoreError(
            f"the run store at {self.root} is read-only: its runs can be looked at but not "
            f"started, changed or deleted; make it writable or set {RUNS_DIR_ENV} to another "
            "folder"
        )

    def _fault(self, exc: sqlite3.Error) -> StoreError:
        """The StoreError that explains an SQLite error."""
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            return StoreError(
                f"the run store at {self.path} is locked: another process has held it for "
                f"over {self.timeout:g} s; try again when it has finished, or stop it"
            )
        if "readonly" in text or "read-only" in text:
            return self._read_only_error()
        if "malformed" in text:
            return StoreError(
                f"{self.path} is damaged ({exc}): move it aside and it will be recreated; "
                f"`sqlite3 {self.path} .recover` may save its runs"
            )
        if "not a database" in text or "encrypted" in text:
            return StoreError(
                f"{self.path} is not a run store database ({exc}): move it aside and it will "
                "be recreated"
            )
        if "full" in text:
            return StoreError(
                f"the disk holding the run store at {self.path} is full: free some space"
            )
        if "unable to open" in text:
            return StoreError(
                f"{self.path} cannot be opened as a database ({exc}): check that it is a file "
                "you can read, or move it aside and it will be recreated"
            )
        return StoreError(f"the run store at {self.path} failed: {type(exc).__name__}: {exc}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            if self.read_only:
                raise self._read_only_error()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back already (disk full)
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
                "INSERT INTO runs (name, status, config, created, started, pid, pid_start, "
                "sweep, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM runs WHERE status = 'queued' AND sweep = '' ORDER BY id"
            ).fetchall()
        return [row["id"] for row in rows if self._readable(row)]

    def _readable(self, row: sqlite3.Row) -> bool:
        try:
            _run(row, self.root)
        except _Unreadable:
            return False
        return True

    def claim_next(self, pid: int) -> Run | None:
        """Atomically take the oldest queued dashboard run and mark it running under `pid`.

        Sweep trials are left alone: their sweep process claims them (`claim`). So are rows
        this version cannot read: they stay queued for a version that can.
        """
        with self._write() as db:
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
        with self._write() as db:
            cur = db.execute(
                "UPDATE runs SET status = 'running', started = ?, pid = ?, pid_start = ? "
                "WHERE id = ? AND status = 'queued'",
                (time.time(), pid, process_start(pid), run_id),
            )
        return self.get(run_id) if cur.rowcount else None

    def stop_queued(self, run_ids: list[int], message: str) -> None:
        """Mark those of `run_ids` that never started as stopped."""
        with self._write() as db:
            db.executemany(
                "UPDATE runs SET status = 'stopped', ended = ?, pid = NULL, pid_start = NULL, "
                "message = ? WHERE id = ? AND status = 'queued'",
                [(time.time(), message, run_id) for run_id in run_ids],
            )

    def stop_abandoned(self, run_ids: list[int], message: str) -> list[int]:
        """Mark those of `run_ids` still running under a process that is gone as stopped.

        Their best recorded epoch is filled in, as for a reaped run; returns them.
        """
        return self._reap(run_ids, running=("stopped", message))

    def start(self, run_id: int, pid: int, n_params: int | None = None) -> None:
        """Mark a run running under `pid` (the trainer that has just begun it)."""
        with self._write() as db:
            db.execute(
                "UPDATE runs SET status = 'running', started = COALESCE(started, ?), pid = ?, "
                "pid_start = ?, n_params = ? WHERE id = ?",
                (time.time(), pid, process_start(pid), n_params, run_id),
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
                f"UPDATE runs SET status = ?, message = ?, ended = ?, pid = NULL, pid_start = NULL"
                f"{', ' + sets if sets else ''} WHERE id = ?",
                (status, message, time.time(), *results.values(), run_id),
            )

    def request_stop(self, run_id: int) -> None:
        """Ask a running run to stop after its current batch; a queued run is cancelled.

        A run whose trainer is already gone is marked failed at once, since nobody is left to
        read the request.
        """
        with self._write() as db:
            db.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))
            db.execute(
                "UPDATE runs SET status = 'stopped', ended = ?, message = 'Cancelled before it "
                "started.' WHERE id = ? AND status = 'queued'",
                (time.time(), run_id),
            )
        self._reap([run_id])

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
        """Remove a run, its metrics and its folder. A running run must be stopped first.

        Works on rows this version cannot read, too.
        """
        with self._connect() as db:
            row = db.execute(
                "SELECT status, pid, pid_start, dir FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
        if row is None:
            raise KeyError(f"no run with id {run_id}")
        if row["status"] == "running" and owner_alive(row["pid"], row["pid_start"]):
            raise ValueError(f"run {run_id} is still running; stop it first")
        with self._write() as db:
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
        dead = self._reap()
        self._remove_leftovers(dead if self._swept else None)
        self._swept = True
        return dead

    def _reap(
        self,
        run_ids: Iterable[int] | None = None,
        running: tuple[str, str] = ("failed", KILLED),
    ) -> list[int]:
        """Close the active runs (of `run_ids`, or all) whose owner is gone; returns them."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, status, pid, pid_start FROM runs WHERE status = 'running' "
                "OR (status = 'queued' AND pid IS NOT NULL)"
            ).fetchall()
        wanted = None if run_ids is None else set(run_ids)
        dead = [
            row
            for row in rows
            if (wanted is None or row["id"] in wanted)
            and not owner_alive(row["pid"], row["pid_start"])
        ]
        if not dead or self.read_only:
            return []
        closed = []
        with self._write() as db:
            for row in dead:
                status, message = running if row["status"] == "running" else ("stopped", ORPHANED)
                best = db.execute(
                    "SELECT epoch, val_accuracy FROM epochs WHERE run_id = ? "
                    "ORDER BY val_accuracy DESC, epoch LIMIT 1",
                    (row["id"],),
                ).fetchone()
                elapsed = db.execute(
                    "SELECT MAX(elapsed) FROM epochs WHERE run_id = ?", (row["id"],)
                ).fetchone()[0]
                # Only if nobody changed the row since it was read (a worker may claim it).
                cur = db.execute(
                    "UPDATE runs SET status = ?, message = ?, ended = ?, pid = NULL, "
                    "pid_start = NULL, best_epoch = COALESCE(best_epoch, ?), "
                    "best_val_accuracy = COALESCE(best_val_accuracy, ?), "
                    "train_seconds = COALESCE(train_seconds, ?) "
                    "WHERE id = ? AND status = ? AND pid IS ? AND pid_start IS ?",
                    (
                        status,
                        message,
                        time.time(),
                        best["epoch"] if best else None,
                        best["val_accuracy"] if best else None,
                        elapsed,
                        row["id"],
                        row["status"],
                        row["pid"],
                        row["pid_start"],
                    ),
                )
                if cur.rowcount:
                    closed.append(row["id"])
        return closed

    def _remove_leftovers(self, run_ids: list[int] | None = None) -> None:
        """Delete `*.tmp` files in the folders of runs (of `run_ids`, or all) that are not
        queued or running."""
        if run_ids == []:
            return
        query = "SELECT dir FROM runs WHERE status NOT IN ('queued', 'running')"
        if run_ids is not None:
            query += f" AND id IN ({', '.join('?' * len(run_ids))})"
        with self._connect() as db:
            folders = [str(row["dir"]) for row in db.execute(query, run_ids or ()).fetchall()]
        root = self.root.resolve()
        for name in folders:
            folder = self.root / name
            if not name or folder.resolve().parent != root:
                continue
            for where in (folder, folder / "snapshots"):
                try:
                    entries = list(os.scandir(where))
                except OSError:
                    continue
                for entry in entries:
                    if entry.name.endswith(".tmp") and entry.is_file(follow_symlinks=False):
                        Path(entry.path).unlink(missing_ok=True)

    # Reading

    def get(self, run_id: int) -> Run:
        """One run; KeyError if there is none, StoreError if this version cannot read it."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run with id {run_id}")
        try:
            return _run(row, self.root)
        except _Unreadable as exc:
            raise StoreError(
                f"run {run_id} cannot be read by this version of the app: {exc} (written by a "
                "newer version, or edited by hand); update the app, or delete the run"
            ) from None

    def _readable_runs(self, rows: list[sqlite3.Row]) -> list[Run]:
        runs, skipped = [], []
        for row in rows:
            try:
                runs.append(_run(row, self.root))
            except _Unreadable as exc:
                skipped.append((row["id"], str(exc)))
        self.skipped = skipped
        return runs

    def list(self, status: str | tuple[str, ...] | None = None) -> list[Run]:
        """All runs, newest first, optionally only those with the given status(es).

        Rows this version cannot read are left out and listed in `skipped`.
        """
        query, args = "SELECT * FROM runs", ()
        if status is not None:
            statuses = (status,) if isinstance(status, str) else tuple(status)
            query += f" WHERE status IN ({', '.join('?' * len(statuses))})"
            args = statuses
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY id DESC", args).fetchall()
        return self._readable_runs(rows)

    def list_sweep(self, sweep: str) -> list[Run]:
        """The runs of one sweep, oldest first; unreadable rows are listed in `skipped`."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE sweep = ? ORDER BY id", (sweep,)).fetchall()
        return self._readable_runs(rows)

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
        # Whatever the ending (a diverged run too), the model holds the best epoch's weights:
        # its checkpoint says how the run ended.
        if result.history:
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
