"""Who owns a run, and what becomes of a run whose owner is gone.

A run's owner is its process id together with that process's start time, so a reused
process id never keeps a dead run "running". A running run whose owner is gone (killed,
crashed) is closed with its best recorded epoch filled in and its checkpoint kept; a
sweep trial still queued under a sweep process that is gone is marked stopped. Leftover
temporary files (`*.tmp`, from writes cut short) are removed only from the folders of
runs that no live trainer can still be writing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from .store_db import StoreDB

KILLED = (
    "The training process ended unexpectedly (killed or crashed); the checkpoint of its best "
    "recorded epoch, if any, is kept."
)
ORPHANED = "The sweep's process ended before this trial ran; run the sweep again with --resume."
_HAVE_PROC = Path("/proc/self/stat").exists()


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


def close_ownerless(
    store: StoreDB,
    run_ids: Iterable[int] | None = None,
    running: tuple[str, str] = ("failed", KILLED),
) -> list[int]:
    """Close the active runs (of `run_ids`, or all) whose owner is gone; returns them.

    A running run is closed with the (status, message) `running`; a queued sweep trial
    whose sweep is gone is stopped, with ORPHANED.
    """
    with store.connect() as db:
        rows = db.execute(
            "SELECT id, status, pid, pid_start FROM runs WHERE status = 'running' "
            "OR (status = 'queued' AND pid IS NOT NULL)"
        ).fetchall()
    wanted = None if run_ids is None else set(run_ids)
    dead = [
        row
        for row in rows
        if (wanted is None or row["id"] in wanted) and not owner_alive(row["pid"], row["pid_start"])
    ]
    if not dead or store.read_only:
        return []
    closed = []
    with store.write() as db:
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


def remove_leftovers(store: StoreDB, run_ids: list[int] | None = None) -> None:
    """Delete `*.tmp` files in the folders of runs (of `run_ids`, or all) that are not
    queued or running."""
    if run_ids == []:
        return
    query = "SELECT dir FROM runs WHERE status NOT IN ('queued', 'running')"
    if run_ids is not None:
        query += f" AND id IN ({', '.join('?' * len(run_ids))})"
    with store.connect() as db:
        folders = [str(row["dir"]) for row in db.execute(query, run_ids or ()).fetchall()]
    root = store.root.resolve()
    for name in folders:
        folder = store.root / name
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
