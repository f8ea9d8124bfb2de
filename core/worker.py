"""The background trainer behind the dashboard: it trains queued runs one at a time.

The dashboard queues a run in the store and makes sure a worker process is alive
(`ensure_worker`); the worker, `python -m core worker`, takes the oldest queued
run, trains it with the same code as the CLI, and repeats until the queue is
empty. A lock file keeps it to one worker per store, so runs never compete for
the CPU, and a page reload or a second browser tab simply sees the store.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import traceback
from pathlib import Path

from .recorder import train_run
from .runs import RunStore

LOCK_NAME = "worker.lock"
LOG_NAME = "worker.log"
REPO_ROOT = Path(__file__).resolve().parent.parent


def _try_lock(store: RunStore) -> int | None:
    """The locked file descriptor, or None when another worker holds the lock."""
    fd = os.open(store.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def worker_running(store: RunStore) -> bool:
    """Whether a worker holds this store's lock now."""
    fd = _try_lock(store)
    if fd is None:
        return True
    os.close(fd)  # closing releases the lock
    return False


def run_queue(store: RunStore) -> int:
    """Train queued runs until none are left; returns how many (0 if another worker is on it)."""
    trained = 0
    reaped = False
    while True:
        fd = _try_lock(store)
        if fd is None:
            return trained
        try:
            if not reaped:
                store.reap()
                reaped = True
            while (run := store.claim_next(os.getpid())) is not None:
                try:
                    train_run(store, run)
                except Exception:  # recorded in the store as failed; the queue goes on
                    traceback.print_exc()
                trained += 1
        finally:
            os.close(fd)
        # A run queued after the last claim found this worker still holding the lock, so
        # nobody started another: look once more now that the lock is free.
        if not store.queued():
            return trained


def ensure_worker(store: RunStore) -> bool:
    """Start a worker process if runs are queued and none is running; returns whether it did.

    A worker that is about to exit still counts as running: it looks at the queue again
    after letting go of its lock, so a run queued meanwhile is never stranded.
    """
    if not store.queued() or worker_running(store):
        return False
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with open(store.root / LOG_NAME, "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "core", "worker", "--runs-dir", str(store.root.resolve())],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives the Streamlit session that started it
        )
    return True
