"""The run store's SQLite file: its connections, its faults and its schema.

One database file (`runs.sqlite`, WAL mode) under the runs folder, shared by trainer
processes that write and any number of dashboard sessions that read. Each thread and
process keeps one connection open. Every fault of the store itself (a folder that cannot
be created, a file that is not a database, a read-only folder, a lock held too long) is
raised as one `StoreError` whose message says what to do. A read-only store can still be
read. A database from an older version gains the columns added since when it is opened.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from .run import RUN_COLUMNS

RUNS_DIR_ENV = "MNIST_RUNS_DIR"
DB_NAME = "runs.sqlite"
TIMEOUT = 30.0  # seconds a write waits for another process's transaction before giving up

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
    pid_start INTEGER,
    parent INTEGER,
    epoch_offset INTEGER NOT NULL DEFAULT 0
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
    lr REAL,
    PRIMARY KEY (run_id, step)
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    created REAL NOT NULL,
    command TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_run ON commands(run_id);
CREATE TABLE IF NOT EXISTS events (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    step INTEGER NOT NULL,
    epoch REAL NOT NULL,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
# The tables every complete store has (older stores gain the newer ones on open).
TABLES = {"runs", "epochs", "batches", "commands", "events", "settings"}
SQLITE_HEADER = b"SQLite format 3\x00"  # the first bytes of every SQLite database file
# Columns added since the first version, with their types: older databases gain them on open.
MIGRATIONS = {
    ("runs", "pid_start"): "INTEGER",
    ("runs", "parent"): "INTEGER",
    ("runs", "epoch_offset"): "INTEGER NOT NULL DEFAULT 0",
    ("batches", "lr"): "REAL",
}


class StoreError(Exception):
    """The run store cannot be used (missing, corrupt, read-only, locked, or from a newer
    version); the message says what is wrong and what to do about it."""


# One descriptor per database file, opened once and never closed. Closing any descriptor of a
# file drops every POSIX lock this process holds on it, SQLite's included (sqlite.org/
# howtocorrupt.html, 2.2): another process then believes it is the database's last user,
# deletes the -wal on close, and this process goes on reading a stale or corrupt copy.
_HEADER_FDS: dict[tuple[int, int], int] = {}
_HEADER_LOCK = threading.Lock()


def _read_header(path: Path) -> bytes:
    """The first bytes of the file at `path`, read without ever closing a descriptor of it."""
    st = os.stat(path)  # FileNotFoundError when there is no database yet
    if not stat.S_ISREG(st.st_mode):  # a folder, a FIFO or a device is left for SQLite to refuse
        raise IsADirectoryError(path)
    with _HEADER_LOCK:
        fd = _HEADER_FDS.get((st.st_dev, st.st_ino))
        if fd is None:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            opened = os.fstat(fd)  # the file may have been replaced since the stat: key by this
            # A second descriptor of a file already held stays open too (closing it is the bug).
            fd = _HEADER_FDS.setdefault((opened.st_dev, opened.st_ino), fd)
    return os.pread(fd, len(SQLITE_HEADER), 0)


def _writable(root: Path, path: Path) -> bool:
    # os.access honours read-only mounts and immutable files even for root, and mode bits
    # for everyone else: exactly what decides whether SQLite can write here.
    return os.access(root, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


class StoreDB:
    """The database of a run store in folder `root`: created, upgraded or checked on open.

    `connect()` gives this thread's connection for reading, `write()` one transaction;
    both raise StoreError for any fault. `read_only` says whether it can only be read.
    """

    def __init__(self, root: Path, timeout: float = TIMEOUT) -> None:
        self.root = root
        self.path = self.root / DB_NAME
        self.timeout = timeout
        self.read_only = False
        self._local = threading.local()
        with self.connect():
            pass  # opens, creates or upgrades the database now, so a fault shows up here

    def close(self) -> None:
        """Close this thread's connection (the next call opens a new one)."""
        db = getattr(self._local, "db", None)
        if db is not None and self._local.pid == os.getpid():
            db.close()
        self._local.db = None

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, for reading; any fault inside is raised as StoreError."""
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
            head = _read_header(self.path)
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

    def _columns(self, db: sqlite3.Connection) -> tuple[set[str], set[tuple[str, str]]]:
        """The tables of the database, and its (table, column) pairs."""
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = {
            (table, r[1])
            for table in tables & TABLES
            for r in db.execute(f"PRAGMA table_info({table})")
        }
        return tables, columns

    def has(self, table: str, column: str | None = None) -> bool:
        """Whether the database has this table (and column): a read-only store from an
        older version may lack what has been added since."""
        with self.connect() as db:
            # Looked up once per connection: the schema only changes when a store is opened.
            if getattr(self._local, "schema_of", None) is not db:
                self._local.schema = self._columns(db)
                self._local.schema_of = db
            tables, columns = self._local.schema
        return table in tables and (column is None or (table, column) in columns)

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
            added = {column for table, column in MIGRATIONS if table == "runs"}
            missing = set(RUN_COLUMNS) - {c for t, c in columns if t == "runs"} - added
            if missing:
                raise StoreError(
                    f"{self.path} is not a run store database (its runs table has no "
                    f"{', '.join(sorted(missing))}): move it aside and it will be recreated"
                )
        return tables >= TABLES and set(MIGRATIONS) <= columns

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
            for (table, column), kind in MIGRATIONS.items():
                if (table, column) not in columns:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
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
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed at the end of the block and rolled back on error."""
        with self.connect() as db:
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
