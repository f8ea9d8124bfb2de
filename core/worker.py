"""The background trainer behind the dashboard: it trains up to K queued runs at once.

The dashboard queues a run in the store and calls `ensure_worker`, which starts a worker
process, `python -m core worker`, for each queued run that no worker will get to, up to the
free slots. A worker holds one slot's lock file (`worker-0.lock` ... `worker-15.lock`),
takes the oldest queued run, trains it with the same code as the CLI, and repeats until
the queue is empty. K, the number of slots (`trainer_slots`), is the store's setting
"trainer_slots", else $MNIST_TRAINER_SLOTS, else the number of cores; each run gets one
core (one BLAS thread, and no second thread in the convolution layers when K > 1).
Lowering K takes effect as runs finish: a worker whose slot is no longer below K leaves,
and no worker starts a run while one of those is still training. A page reload or a second
browser tab simply sees the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable
from pathlib import Path

from .layers.conv import set_two_cores
from .recorder import train_run
from .run import Run
from .runs import RunStore, StoreError

MAX_SLOTS = 16
SLOTS_ENV = "MNIST_TRAINER_SLOTS"  # the default number of slots, where the store sets none
SLOTS_SETTING = "trainer_slots"  # the store setting the dashboard's sidebar writes
LOG_NAME = "worker.log"
# How ensure_worker hands a worker the slot it locked for it: "slot:fd" (private).
HANDOVER_ENV = "_MNIST_TRAINER_SLOT"
WAIT = 0.5  # seconds between looks while workers in slots beyond K finish their runs
REPO_ROOT = Path(__file__).resolve().parent.parent


def trainer_slots(store: RunStore | None = None) -> int:
    """Runs trained at once: the store's setting, else $MNIST_TRAINER_SLOTS, else the cores.

    A value that is not a whole number is passed over; a number is clamped to 1..MAX_SLOTS."""
    setting = None
    if store is not None:
        with contextlib.suppress(StoreError, OSError, sqlite3.Error):  # a broken store has no say
            setting = store.setting(SLOTS_SETTING)
    for text in (setting, os.environ.get(SLOTS_ENV)):
        try:
            return min(max(int(str(text).strip()), 1), MAX_SLOTS)
        except ValueError:
            continue
    return min(os.cpu_count() or 1, MAX_SLOTS)


# Slot locks


def _lock_path(store: RunStore, slot: int) -> Path:
    return store.root / f"worker-{slot}.lock"


def _try_lock(store: RunStore, slot: int) -> int | None:
    """The locked file descriptor of `slot`, or None when a worker holds it."""
    fd = os.open(_lock_path(store, slot), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _write_holder(fd: int, pid: int) -> None:
    # Always the same width at offset 0: a reader never sees a half-written or stale tail.
    os.pwrite(fd, f"{pid:>10}\n".encode(), 0)


def _holders(store: RunStore, slots: Iterable[int] = range(MAX_SLOTS)) -> dict[int, int | None]:
    """The held slots among `slots`, each with the process id its holder wrote (None if none).

    A probe opens the lock file read-only and never creates it (a missing file is a free
    slot), so it works on a read-only store; it holds a free lock for a moment only.
    """
    held: dict[int, int | None] = {}
    for slot in slots:
        try:
            fd = os.open(_lock_path(store, slot), os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            held[slot] = int(text) if text.isdigit() else None
        finally:
            os.close(fd)  # closing releases a probe's lock
    return held


def busy_slots(store: RunStore) -> int:
    """How many slots a worker holds now (it may exceed K for a while after K is lowered)."""
    return len(_holders(store))


def worker_running(store: RunStore) -> bool:
    """Whether some worker is alive for this store."""
    return bool(_holders(store))


def _take_slot(store: RunStore) -> tuple[int, int] | None:
    """(slot, locked fd) of the first free slot below K, or None when all are held."""
    for attempt in range(2):
        # A probe (`_holders`) holds a free lock for a moment: look twice before giving up.
        if attempt:
            time.sleep(0.02)
        for slot in range(trainer_slots(store)):
            if (fd := _try_lock(store, slot)) is not None:
                _write_holder(fd, os.getpid())
                return slot, fd
    return None


def _handed_slot(store: RunStore) -> tuple[int, int] | None:
    """The slot ensure_worker locked for this process, if it was started with one."""
    handed = os.environ.pop(HANDOVER_ENV, "")
    try:
        slot, fd = (int(part) for part in handed.split(":"))
        if os.fstat(fd).st_ino != _lock_path(store, slot).stat().st_ino:
            return None  # not that lock file: find a slot the ordinary way
    except (ValueError, OSError):
        return None
    os.set_inheritable(fd, False)
    _write_holder(fd, os.getpid())
    return slot, fd


# The worker


def _next_run(store: RunStore, slot: int) -> Run | None:
    """The next queued run for the worker in `slot`, marked running; None when there is none
    or `slot` is no longer below K."""
    while True:
        k = trainer_slots(store)
        if slot >= k:
            return None
        if not _holders(store, range(k, MAX_SLOTS)):
            # Several runs at once each get one core: no helper thread in the conv layers.
            set_two_cores(k == 1)
            return store.claim_next(os.getpid())
        # K was lowered: wait for the workers beyond it to finish their runs and leave.
        if not store.queued():
            return None
        time.sleep(WAIT)


def run_queue(store: RunStore) -> int:
    """Train queued runs in one free slot until none are left; returns how many (0 if every
    slot below K is taken)."""
    trained = 0
    reaped = False
    taken = _handed_slot(store)
    two_cores = set_two_cores(True)  # put back on return: an in-process caller keeps its own
    try:
        while True:
            taken = taken or _take_slot(store)
            if taken is None:
                return trained
            slot, fd = taken
            try:
                if not reaped:
                    store.reap()
                    reaped = True
                while (run := _next_run(store, slot)) is not None:
                    try:
                        train_run(store, run)
                    except Exception:  # recorded in the store as failed; the queue goes on
                        traceback.print_exc()
                    trained += 1
            finally:
                os.close(fd)
                taken = None
            # A run queued after the last claim found this worker still holding its slot, so
            # nobody may have started another for it: look once more now that it is free.
            # (A worker that then finds every slot held leaves it to their holders, who all
            # look again after letting go.)
            if not store.queued():
                return trained
    finally:
        set_two_cores(two_cores)


def ensure_worker(store: RunStore) -> int:
    """Start a worker for each queued run no worker will get to, in the free slots below K;
    returns how many it started.

    A worker that is between runs, or about to exit, counts as one that will get to a run:
    it looks at the queue again after letting go of its slot, so a run queued meanwhile is
    never stranded.
    """
    queued = 0 if store.read_only else len(store.queued())  # nothing trains into a read-only one
    if not queued:
        return 0
    slots, held = trainer_slots(store), _holders(store)
    training = {run.pid for run in store.runs(status="running")}
    idle = sum(pid not in training for pid in held.values())
    wanted = min(queued - idle, slots - len(held))
    started = 0
    for slot in range(slots):
        if started >= wanted:
            break
        if (fd := _try_lock(store, slot)) is None:
            continue
        try:
            # The worker inherits the locked file: the slot is busy from this moment, so the
            # next call (the sidebar's, a moment later) does not start another worker for it.
            proc = _start(store, slot, fd)
            _write_holder(fd, proc.pid)
        finally:
            os.close(fd)
        started += 1
    return started


def _start(store: RunStore, slot: int, fd: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), HANDOVER_ENV: f"{slot}:{fd}"}
    with open(store.root / LOG_NAME, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "core", "worker", "--runs-dir", str(store.root.resolve())],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(fd,),
            start_new_session=True,  # outlives the Streamlit session that started it
        )
