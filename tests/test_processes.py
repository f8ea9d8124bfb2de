"""Processes: a sweep's workers stop with it (SIGTERM, SIGHUP, even SIGKILL), a run's owner is
its process id and start time (a reused id wedges nothing), the queue never strands a run,
and writes cut short leave no temporary files behind."""

from __future__ import annotations

import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import TrainConfig
from core.runs import RUNS_DIR_ENV, RunStore, process_start
from core.sweep import plan
from core.sweep_spec import parse_spec
from core.worker import ensure_worker, run_queue

REPO = Path(__file__).resolve().parent.parent
TINY = TrainConfig(train_size=1000, epochs=2)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# Owners: process id and start time


def _set_owner_start(store: RunStore, run_id: int, start: int) -> None:
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET pid_start = ? WHERE id = ?", (start, run_id))


def test_a_run_whose_process_id_was_reused_is_reaped(store):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live = store.create(TINY, "live", status="running", pid=sleeper.pid)
        wedged = store.create(TINY, "wedged", status="running", pid=sleeper.pid)
        # Its owner had this id before the sleeper: a process that started at another time.
        _set_owner_start(store, wedged.id, live.pid_start - 1)
        assert live.pid_start == process_start(sleeper.pid) is not None
        assert store.reap() == [wedged.id]
        assert store.get(wedged.id).status == "failed"
        assert store.get(live.id).status == "running"
        with pytest.raises(ValueError, match="still running"):
            store.delete(live.id)
        store.delete(wedged.id)  # no longer refused
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stop_on_a_run_owned_by_an_unrelated_process_ends_it(store):
    run = store.create(TINY, "init's", status="running", pid=1)
    _set_owner_start(store, run.id, process_start(1) + 12345)
    store.request_stop(run.id)  # nobody would ever read the request
    got = store.get(run.id)
    assert got.status == "failed" and "ended unexpectedly" in got.message


def test_a_zombie_owner_is_dead(store):
    zombie = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{zombie.pid}/stat").read_text().split(") ")[1][0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        run = store.create(TINY, "z", status="running", pid=zombie.pid)
        assert store.reap() == [run.id]
    finally:
        zombie.wait()


def test_queued_sweep_trials_whose_sweep_died_are_stopped_and_resumed_later(store):
    orphan = store.create(TINY, "orphan", sweep="gone", pid=_dead_pid())
    waiting = store.create(TINY, "waiting", sweep="live", pid=os.getpid())
    queued = store.create(TINY, "dashboard")  # no process: the background trainer takes it
    assert store.reap() == [orphan.id]
    got = store.get(orphan.id)
    assert got.status == "stopped" and got.pid is None and got.ended is not None
    assert "sweep's process ended before this trial ran" in got.message
    assert "run the sweep again with --resume" in got.message
    assert store.get(waiting.id).status == store.get(queued.id).status == "queued"
    assert store.reap() == []
    spec = parse_spec({"name": "gone", "base": {"train_size": 1000, "epochs": 2}})
    todo, done = plan(store, spec, resume=True)  # what --resume does: the trial runs again
    assert done == 0 and [run.config for run in todo] == [TINY]


# Temporary files


def test_leftover_temporary_files_are_removed_where_no_trainer_can_be_writing(store):
    done = store.create(TINY, "done", status="running", pid=os.getpid())
    store.finish(done.id, "finished")
    killed = store.create(TINY, "killed", status="running", pid=_dead_pid())
    live = store.create(TINY, "live", status="running", pid=os.getpid())
    queued = store.create(TINY, "queued")
    leftovers = [".model.npz.k2j3h4.tmp", "model.tmp", "snapshots/.epoch-0003.npz.x8y.tmp"]
    for run in (done, killed, live, queued):
        run.snapshot_dir.mkdir()
        for name in [*leftovers, "model.npz", "snapshots/epoch-0001.npz"]:
            (run.dir / name).write_bytes(b"bytes")
    (store.root / "notes.tmp").write_bytes(b"not a run's")
    store.reap()
    for run in (done, killed):
        assert not [n for n in leftovers if (run.dir / n).exists()], run.name
    for run in (done, killed, live, queued):
        assert run.checkpoint.exists() and run.snapshot(1).exists(), run.name
    for run in (live, queued):  # a trainer may be writing these (or about to)
        assert all((run.dir / n).exists() for n in leftovers), run.name
    assert (store.root / "notes.tmp").exists()
    # A trainer killed later, while the app runs: reaped, and its leftovers with it.
    later = store.create(TINY, "later", status="running", pid=_dead_pid())
    (later.dir / "model.tmp").write_bytes(b"half")
    assert store.reap() == [later.id] and not (later.dir / "model.tmp").exists()


# The background trainer's queue


def test_a_run_queued_as_the_worker_finds_the_queue_empty_is_still_trained(store, monkeypatch):
    first = store.create(TINY, "first")
    late = []
    claim_next = store.claim_next

    def claim_then_queue(pid: int):
        run = claim_next(pid)
        if run is None and not late:
            # A dashboard session queues a run right now. The worker still holds its lock, so
            # the session's ensure_worker rightly starts no second worker.
            late.append(store.create(TINY.replace(seed=1), "late"))
            assert not ensure_worker(store)
        return run

    def train(store: RunStore, run) -> None:
        store.finish(run.id, "finished", "trained")

    monkeypatch.setattr(store, "claim_next", claim_then_queue)
    monkeypatch.setattr("core.worker.train_run", train)
    assert run_queue(store) == 2
    assert store.get(first.id).status == store.get(late[0].id).status == "finished"


def test_sweep_trials_do_not_start_the_background_trainer(store):
    store.create(TINY, "trial", sweep="s", pid=os.getpid())
    assert store.queued() == []
    assert not ensure_worker(store)


# Sweeps and their workers


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait a while for its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def _start_sweep(tmp_path: Path) -> tuple[subprocess.Popen, RunStore, list[int]]:
    """A two-trial sweep in two workers, once both trials have recorded an epoch."""
    runs_dir = tmp_path / "runs"
    sweep = "--grid lr=0.3,0.5 --set epochs=200 --set train_size=2000 --name long --workers 2"
    proc = subprocess.Popen(
        [sys.executable, *shlex.split(f"-m core sweep {sweep}")],
        cwd=REPO,
        env={**os.environ, RUNS_DIR_ENV: str(runs_dir), "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the trials did not start"
        if runs_dir.joinpath("runs.sqlite").exists():
            store = RunStore(runs_dir)
            trials = store.sweep_runs("long")
            if len(trials) == 2 and all(
                t.status == "running" and store.epochs(t.id) for t in trials
            ):
                break
        time.sleep(0.2)
    workers = [t.pid for t in trials]
    assert set(workers) <= set(_children(proc.pid))
    return proc, store, _children(proc.pid)


def _assert_all_gone(pids: list[int], within: float) -> None:
    deadline = time.monotonic() + within
    try:
        while any(_running(p) for p in pids):
            assert time.monotonic() < deadline, f"still running: {[p for p in pids if _running(p)]}"
            time.sleep(0.1)
    finally:
        for pid in pids:  # never leave this test's own orphans behind, even when it fails
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def _assert_trials_stopped_cleanly(store: RunStore) -> None:
    for trial in store.sweep_runs("long"):
        assert trial.status == "stopped", (trial.status, trial.message)
        assert "because the sweep was stopped" in trial.message
        assert trial.best_epoch and trial.test_accuracy is not None
        assert trial.checkpoint.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_to_a_sweep_stops_its_workers_and_marks_its_trials(tmp_path, sig):
    proc, store, children = _start_sweep(tmp_path)
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        _assert_all_gone(children, within=15)
    assert "Traceback" not in err and "--resume" in err
    assert proc.returncode != 0
    _assert_trials_stopped_cleanly(store)


def test_workers_stop_when_their_sweep_is_killed(tmp_path):
    proc, store, children = _start_sweep(tmp_path)
    proc.kill()  # SIGKILL: the sweep itself can do nothing about it
    try:
        proc.wait(timeout=30)  # not its output: the workers share its pipes
    finally:
        _assert_all_gone(children, within=15)
    proc.communicate(timeout=30)
    _assert_trials_stopped_cleanly(store)
    assert store.reap() == []  # nothing was left running
