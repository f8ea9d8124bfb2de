"""A run store that is garbage, foreign, read-only, locked, deleted while open, or holds rows
this version cannot read: every fault is one StoreError saying what to do, reads go on where
they can, and nothing already stored is lost."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.config import TrainConfig
from core.runs import SCHEMA, RunStore, StoreError

TINY = TrainConfig(train_size=1000, epochs=2)
GARBAGE = b"this is not a database, just some bytes a user put here\n" * 40
EPOCH = {
    "epoch": 1,
    "train_loss": 1.0,
    "train_accuracy": 0.5,
    "val_loss": 1.0,
    "val_accuracy": 0.5,
    "lr": 0.1,
    "seconds": 1.0,
    "elapsed": 1.0,
}


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "runs"


@contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """Make files and folders truly read-only for this process, and writable again after.

    Root ignores permission bits, so as root the files are made immutable (`chattr +i`), which
    binds root too; anyone else gets the permission bits.
    """
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", *map(str, paths)], check=True, capture_output=True)

        def undo() -> None:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True, capture_output=True)
    else:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)

        def undo() -> None:
            for p, mode in modes.items():
                p.chmod(mode)

    try:
        for p in paths:  # the premise of the test, checked: writing really fails
            with pytest.raises(PermissionError):
                if p.is_dir():
                    (p / "probe").write_bytes(b"")
                else:
                    p.open("ab").close()
        yield
    finally:
        undo()


# Garbage and foreign files


def test_a_garbage_database_is_refused_with_a_message_and_left_untouched(root):
    root.mkdir()
    (root / "runs.sqlite").write_bytes(GARBAGE)
    with pytest.raises(StoreError) as caught:
        RunStore(root)
    message = str(caught.value)
    assert f"{root / 'runs.sqlite'} is not a run store database" in message
    assert "move it aside and it will be recreated" in message
    assert (root / "runs.sqlite").read_bytes() == GARBAGE  # nothing of the user's is lost
    (root / "runs.sqlite").rename(root / "garbage.bin")
    assert RunStore(root).runs() == []


def test_a_database_replaced_by_garbage_while_open_is_a_store_error(root):
    store = RunStore(root)
    store.create(TINY, "before")
    (root / "new").write_bytes(GARBAGE)
    os.replace(root / "new", root / "runs.sqlite")
    with pytest.raises(StoreError, match="is not a run store database"):
        store.runs()


@pytest.mark.parametrize(
    ("table", "message"),
    [("runs", "its runs table has no"), ("marathons", "it holds other tables: marathons")],
)
def test_another_programs_sqlite_file_is_not_taken_for_a_run_store(root, table, message):
    root.mkdir()
    with sqlite3.connect(root / "runs.sqlite") as db:
        db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, distance REAL)")
        db.execute(f"INSERT INTO {table} VALUES (1, 42.195)")
    with pytest.raises(StoreError, match="is not a run store database") as caught:
        RunStore(root)
    assert message in str(caught.value) and "move it aside" in str(caught.value)
    with sqlite3.connect(root / "runs.sqlite") as db:  # left as it was: no tables added
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {table}
        assert db.execute(f"SELECT * FROM {table}").fetchall() == [(1, 42.195)]


def test_a_folder_in_place_of_the_database_or_of_the_store(tmp_path):
    (tmp_path / "a" / "runs.sqlite").mkdir(parents=True)
    with pytest.raises(StoreError, match=r"cannot be opened as a database.*move it aside"):
        RunStore(tmp_path / "a")
    (tmp_path / "b").write_text("a file where the runs folder should be")
    with pytest.raises(StoreError, match=r"folder .* cannot be created.*MNIST_RUNS_DIR"):
        RunStore(tmp_path / "b")


STORE_CALLS: dict[str, Callable[[RunStore, int], object]] = {
    "list": lambda s, i: s.runs(),
    "sweep_runs": lambda s, i: s.sweep_runs("x"),
    "get": lambda s, i: s.get(i),
    "create": lambda s, i: s.create(TINY),
    "queued": lambda s, i: s.queued(),
    "claim_next": lambda s, i: s.claim_next(os.getpid()),
    "claim": lambda s, i: s.claim(i, os.getpid()),
    "start": lambda s, i: s.start(i, os.getpid()),
    "set_progress": lambda s, i: s.set_progress(i, {}),
    "add_epoch": lambda s, i: s.add_epoch(i, EPOCH, []),
    "finish": lambda s, i: s.finish(i, "stopped"),
    "request_stop": lambda s, i: s.request_stop(i),
    "stop_requested": lambda s, i: s.stop_requested(i),
    "stop_queued": lambda s, i: s.stop_queued([i], "x"),
    "rename": lambda s, i: s.rename(i, "x"),
    "set_tags": lambda s, i: s.set_tags(i, ["x"]),
    "delete": lambda s, i: s.delete(i),
    "reap": lambda s, i: s.reap(),
    "epochs": lambda s, i: s.epochs(i),
    "epochs_of": lambda s, i: s.epochs_of([i]),
    "epoch_summaries": lambda s, i: s.epoch_summaries(),
    "batch_losses": lambda s, i: s.batch_losses(i),
}


@pytest.mark.parametrize("call", list(STORE_CALLS))
def test_every_store_method_reports_a_broken_database_as_a_store_error(root, call):
    store = RunStore(root)
    run = store.create(TINY, "x")
    (root / "new").write_bytes(GARBAGE)
    os.replace(root / "new", root / "runs.sqlite")
    with pytest.raises(StoreError, match="is not a run store database"):
        STORE_CALLS[call](store, run.id)


# Read-only


def _stored_run(root: Path) -> int:
    """A store holding one run, with every connection closed (so no -wal file is left)."""
    store = RunStore(root)
    run = store.create(TINY, "kept", tags=["old"])
    store.add_epoch(run.id, EPOCH, [(1, 0.5, 2.0)])
    store.close()
    assert not Path(f"{root / 'runs.sqlite'}-wal").exists()
    return run.id


WRITES: dict[str, Callable[[RunStore, int], object]] = {
    "create": lambda s, i: s.create(TINY, "new"),
    "rename": lambda s, i: s.rename(i, "renamed"),
    "set_tags": lambda s, i: s.set_tags(i, ["new"]),
    "request_stop": lambda s, i: s.request_stop(i),
    "delete": lambda s, i: s.delete(i),
    "add_epoch": lambda s, i: s.add_epoch(i, {**EPOCH, "epoch": 2}, []),
}


def _check_read_only(store: RunStore, run_id: int) -> None:
    assert store.read_only
    assert [(r.id, r.name) for r in store.runs()] == [(run_id, "kept")]
    assert store.get(run_id).tags == ["old"] and len(store.epochs(run_id)) == 1
    assert store.batch_losses(run_id) == [(1, 0.5, 2.0)]
    assert store.reap() == []  # nothing to mark, and no error for a store that is only read
    for name, write in WRITES.items():
        with pytest.raises(StoreError, match=r"is read-only.*set MNIST_RUNS_DIR") as caught:
            write(store, run_id)
        assert str(store.root) in str(caught.value), name


@pytest.mark.parametrize("what", ["folder", "folder and database"])
def test_a_read_only_folder_is_read_and_refuses_writes_with_a_message(root, what):
    run_id = _stored_run(root)
    paths = [root] if what == "folder" else [root, root / "runs.sqlite"]
    with read_only(*paths):
        _check_read_only(RunStore(root), run_id)
    after = RunStore(root)  # writable again: nothing was lost or changed
    assert after.get(run_id).name == "kept" and [r.id for r in after.runs()] == [run_id]


def test_a_read_only_database_file_in_a_writable_folder(root):
    run_id = _stored_run(root)
    with read_only(root / "runs.sqlite"):
        _check_read_only(RunStore(root), run_id)
    assert RunStore(root).get(run_id).name == "kept"


def test_a_read_only_folder_sees_what_a_writer_with_access_adds(root):
    """While another process has the store open (its -wal exists), reads stay current."""
    writer = RunStore(root)
    first = writer.create(TINY, "first")
    with read_only(root):
        reader = RunStore(root)
        assert reader.read_only and [r.name for r in reader.runs()] == ["first"]
        writer.rename(first.id, "renamed")  # the writer's own connection still works
        assert reader.get(first.id).name == "renamed"


def test_an_empty_read_only_folder_is_an_empty_store(root):
    root.mkdir()
    with read_only(root):
        store = RunStore(root)
        assert store.read_only and store.runs() == [] and store.epoch_summaries() == {}
        with pytest.raises(StoreError, match="is read-only"):
            store.create(TINY)
    assert not (root / "runs.sqlite").exists()


# Locked


def test_a_lock_held_beyond_the_timeout_is_a_store_error_and_reads_go_on(root):
    store = RunStore(root, timeout=0.2)
    run = store.create(TINY, "a")
    holder = sqlite3.connect(root / "runs.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        began = time.monotonic()
        with pytest.raises(StoreError, match="is locked: another process has held it") as caught:
            store.create(TINY, "b")
        assert "for over 0.2 s" in str(caught.value)
        assert time.monotonic() - began < 5
        assert store.get(run.id).name == "a"  # readers are not blocked
        assert RunStore(root, timeout=0.2).runs()[0].id == run.id  # nor is opening it
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.create(TINY, "b").name == "b"


# Deleted while open


def test_a_database_deleted_while_open_is_recreated(root):
    store = RunStore(root)
    store.create(TINY, "old")
    other = RunStore(root)  # as another process would, it keeps its own connection open
    assert [r.name for r in other.runs()] == ["old"]
    (root / "runs.sqlite").unlink()  # its -wal stays: the other connection holds it
    assert store.runs() == []
    new = store.create(TINY, "new")
    assert [r.name for r in other.runs()] == ["new"]
    fresh = RunStore(root)
    assert [r.name for r in fresh.runs()] == ["new"] and fresh.get(new.id).dir.is_dir()
    with sqlite3.connect(root / "runs.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_runs_folder_deleted_while_open_is_recreated(root):
    store = RunStore(root)
    store.create(TINY, "old")
    shutil.rmtree(root)
    assert store.runs() == []
    assert store.create(TINY, "new").dir.is_dir()
    assert [r.name for r in RunStore(root).runs()] == ["new"]


# Rows this version cannot read


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("config", json.dumps({**TINY.to_dict(), "wings": 2}), "wings"),
        ("config", '{"lr": 0.1, "epochs": ', "not valid JSON"),
        ("config", json.dumps({**TINY.to_dict(), "lr": "fast"}), "lr"),
        ("config", "[1, 2]", "config is not a mapping"),
        ("status", "paused", "status 'paused' is unknown"),
        ("tags", '[1, {"a": 2}]', "tags are not a list of text"),
    ],
    ids=["newer setting", "garbage JSON", "wrong type", "not a mapping", "newer status", "tags"],
)
def test_a_row_this_version_cannot_read_is_skipped_and_named(root, column, value, reason):
    store = RunStore(root)
    a, b, c = (store.create(TINY, name, sweep="s") for name in ("a", "b", "c"))
    with sqlite3.connect(store.path) as db:
        db.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, b.id))
    assert [r.id for r in store.runs()] == [c.id, a.id]
    assert [i for i, _ in store.skipped] == [b.id] and reason in store.skipped[0][1]
    assert [r.id for r in store.sweep_runs("s")] == [a.id, c.id]
    assert [i for i, _ in store.skipped] == [b.id]
    with pytest.raises(StoreError, match=f"run {b.id} cannot be read by this version") as caught:
        store.get(b.id)
    assert reason in str(caught.value)
    store.runs(status="finished")
    assert store.skipped == []  # each list call says what it skipped
    store.delete(b.id)  # an unreadable run can still be removed
    assert [r.id for r in store.runs()] == [c.id, a.id] and store.skipped == []


def test_an_unreadable_queued_run_is_left_queued_for_a_version_that_can_train_it(root):
    store = RunStore(root)
    bad, good = store.create(TINY, "newer"), store.create(TINY, "ours")
    with sqlite3.connect(store.path) as db:
        db.execute(
            "UPDATE runs SET config = ? WHERE id = ?",
            (json.dumps({**TINY.to_dict(), "wings": 2}), bad.id),
        )
    assert store.queued() == [good.id]
    assert store.claim_next(os.getpid()).id == good.id
    assert store.claim_next(os.getpid()) is None
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT status FROM runs WHERE id = ?", (bad.id,)).fetchone() == (
            "queued",
        )


def test_columns_added_by_a_newer_version_are_ignored(root):
    store = RunStore(root)
    run = store.create(TINY, "a")
    with sqlite3.connect(store.path) as db:
        db.execute("ALTER TABLE runs ADD COLUMN colour TEXT DEFAULT 'blue'")
    assert [r.id for r in store.runs()] == [run.id] and store.get(run.id).name == "a"


def test_a_store_from_before_owner_start_times_is_upgraded_in_place(root):
    old_schema = SCHEMA.replace(",\n    pid_start INTEGER", "")
    assert old_schema != SCHEMA
    root.mkdir()
    with sqlite3.connect(root / "runs.sqlite") as db:
        db.executescript(old_schema)
        for name, pid in (("mine", os.getpid()), ("gone", 2**22 + 1)):  # above any real pid
            db.execute(
                "INSERT INTO runs (name, status, config, created, pid, dir) "
                "VALUES (?, 'running', ?, 0, ?, ?)",
                (name, TINY.to_json(), pid, name),
            )
    store = RunStore(root)
    with sqlite3.connect(root / "runs.sqlite") as db:
        assert "pid_start" in {r[1] for r in db.execute("PRAGMA table_info(runs)")}
    mine, gone = sorted(store.runs(), key=lambda r: r.id)
    assert mine.pid_start is None and mine.status == "running"
    assert store.reap() == [gone.id]  # without a start time, the process id alone decides
    assert store.get(mine.id).status == "running"
