"""The run store: records, concurrency, recording a real training run, stopping, reaping."""

from __future__ import annotations

import multiprocessing as mp
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest

from core.config import TrainConfig
from core.model_load import load_model
from core.recorder import train_run
from core.runs import RUNS_DIR_ENV, RunStore, progress_fraction, slug
from core.train import EpochStats
from core.worker import run_queue, worker_running

REPO = Path(__file__).resolve().parent.parent
TINY = TrainConfig(train_size=1000, epochs=2)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def test_create_get_list_and_the_config_round_trip(store):
    a = store.create(TINY, "first")
    b = store.create(TINY.replace(lr=0.1), "second", sweep="s1", tags=["x"])
    assert [r.id for r in store.runs()] == [b.id, a.id]  # newest first
    got = store.get(b.id)
    assert got.config == TINY.replace(lr=0.1) and got.status == "queued"
    assert got.sweep == "s1" and got.tags == ["x"]
    assert got.dir.is_dir() and got.dir.parent == store.root
    assert [r.id for r in store.runs("queued")] == [b.id, a.id]
    assert store.runs("finished") == []
    with pytest.raises(KeyError):
        store.get(999)


@pytest.mark.parametrize("name", ["../../etc", "a/b", "..", "", "ünï cødé", "x" * 200])
def test_run_names_never_escape_the_store(store, name):
    run = store.create(TINY, name)
    assert run.dir.resolve().parent == store.root.resolve()
    assert "/" not in slug(name) and ".." not in slug(name) and len(slug(name)) <= 60


def test_rename_tag_and_delete_with_files(store):
    run = store.create(TINY, "old")
    (run.dir / "model.npz").write_bytes(b"x")
    store.rename(run.id, "new")
    store.set_tags(run.id, ["b", "a", " a ", ""])
    assert store.get(run.id).name == "new" and store.get(run.id).tags == ["a", "b"]
    metrics = {field.name: 1.0 for field in fields(EpochStats)}
    store.add_epoch(run.id, metrics, [(1, 0.5, 2.0)])
    store.delete(run.id)
    assert not run.dir.exists()
    assert store.epochs(run.id) == [] and store.batch_losses(run.id) == []
    with pytest.raises(KeyError):
        store.get(run.id)


def _claim_all(root: str, out: mp.Queue) -> None:
    store = RunStore(root)
    claimed = []
    while (run := store.claim_next(os.getpid())) is not None:
        claimed.append(run.id)
    out.put(claimed)


def test_claiming_is_atomic_across_processes(store):
    ids = {store.create(TINY).id for _ in range(40)}
    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=_claim_all, args=(str(store.root), out)) for _ in range(4)]
    for p in procs:
        p.start()
    claimed = [i for _ in procs for i in out.get(timeout=60)]
    for p in procs:
        p.join()
    assert sorted(claimed) == sorted(ids)  # every run once, none twice
    assert all(r.status == "running" for r in store.runs())


def _write_epochs(root: str, run_id: int, n: int) -> None:
    store = RunStore(root)
    for epoch in range(1, n + 1):
        metrics = {
            "epoch": epoch,
            "train_loss": 1 / epoch,
            "train_accuracy": 0.5,
            "val_loss": 1 / epoch,
            "val_accuracy": epoch / n,
            "lr": 0.1,
            "seconds": 0.01,
            "elapsed": epoch * 0.01,
        }
        store.add_epoch(run_id, metrics, [(epoch * 10 + k, epoch, 1.0) for k in range(5)])
        store.set_progress(run_id, {"epoch": epoch})


def _read_repeatedly(root: str, run_ids: list[int], seconds: float, out: mp.Queue) -> None:
    store = RunStore(root)
    reads, bad = 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for run_id in run_ids:
            epochs = store.epochs(run_id)
            # Each epoch is written in one transaction with its batch losses: never half.
            if len(store.batch_losses(run_id)) < 5 * len(epochs):
                bad += 1
            if [e["epoch"] for e in epochs] != list(range(1, len(epochs) + 1)):
                bad += 1
        store.runs()
        reads += 1
    out.put((reads, bad))


def test_concurrent_writers_and_readers(store):
    runs = [store.create(TINY, f"w{i}", status="running", pid=os.getpid()) for i in range(2)]
    out: mp.Queue = mp.Queue()
    writers = [mp.Process(target=_write_epochs, args=(str(store.root), r.id, 150)) for r in runs]
    readers = [
        mp.Process(target=_read_repeatedly, args=(str(store.root), [r.id for r in runs], 3.0, out))
        for _ in range(3)
    ]
    for p in writers + readers:
        p.start()
    for p in writers + readers:
        p.join(timeout=120)
        assert p.exitcode == 0
    results = [out.get(timeout=10) for _ in readers]
    assert all(reads > 10 for reads, _ in results)
    assert sum(bad for _, bad in results) == 0
    for r in runs:
        assert len(store.epochs(r.id)) == 150
        assert len(store.batch_losses(r.id)) == 750


def test_a_recorded_training_run(store, mnist):
    run = store.create(TINY, "tiny", status="running", pid=os.getpid())
    result = train_run(store, run, mnist)
    got = store.get(run.id)
    assert got.status == "finished" and got.message == "Finished 2 epochs."
    assert got.test_accuracy == result.test_accuracy and got.best_epoch == result.best_epoch
    assert got.n_params == result.model.n_params and got.train_seconds > 0
    epochs = store.epochs(run.id)
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[-1]["val_accuracy"] == result.history[-1].val_accuracy
    assert 10 <= len(store.batch_losses(run.id)) <= 400
    assert got.snapshots() == [0, 1, 2]
    _, meta = load_model(got.checkpoint)
    assert meta["run_id"] == run.id and meta["test_accuracy"] == result.test_accuracy
    summary = result.summary()
    assert {k: meta[k] for k in summary} == summary  # the checkpoint says how the run ended
    assert (got.best_val_accuracy, got.test_loss) == (summary["val_accuracy"], result.test_loss)
    assert meta["class_names"][0] == "0"
    assert got.progress["epoch"] == 2
    assert progress_fraction(got.progress) == 1.0 and got.progress["eta"] == 0.0


def test_progress_fraction_counts_whole_epochs_and_the_batches_of_the_current_one():
    progress = {"epoch": 2, "epochs": 4, "batch": 5, "batches": 10}
    assert progress_fraction(progress) == 0.375  # one epoch and a half, of four
    assert progress_fraction({**progress, "epoch": 1, "batch": 0}) == 0.0


def test_a_failing_run_is_recorded_as_failed(store, mnist, monkeypatch):
    run = store.create(TINY, status="running", pid=os.getpid())

    def explode(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr("core.recorder.fit", explode)
    with pytest.raises(MemoryError):
        train_run(store, run, mnist)
    assert store.get(run.id).status == "failed"
    assert "out of memory" in store.get(run.id).message


def test_the_worker_trains_the_queue_in_order(store, mnist, monkeypatch):
    first, second = store.create(TINY, "a"), store.create(TINY.replace(seed=1), "b")
    assert run_queue(store) == 2
    assert [store.get(r.id).status for r in (first, second)] == ["finished", "finished"]
    assert store.get(first.id).started < store.get(second.id).started
    assert not worker_running(store)


def _env(store: RunStore) -> dict[str, str]:
    return {**os.environ, RUNS_DIR_ENV: str(store.root), "PYTHONPATH": str(REPO)}


def _wait_for(condition, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


def test_stop_request_ends_a_cli_run_and_keeps_its_best_checkpoint(store):
    train = shlex.split("-m core train --epochs 50 --train-size 20000 --quiet --name long")
    proc = subprocess.Popen(
        [sys.executable, *train],
        env=_env(store),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for(lambda: store.runs() and store.epochs(store.runs()[0].id))
    run = store.runs()[0]
    assert run.status == "running" and run.pid == proc.pid
    store.request_stop(run.id)
    assert proc.wait(timeout=60) == 0
    got = store.get(run.id)
    assert got.status == "stopped" and "Stopped by request" in got.message
    assert len(store.epochs(run.id)) < 50
    assert load_model(got.checkpoint)[1]["status"] == "stopped"


def test_a_killed_run_is_reaped_as_failed_and_its_checkpoint_loads(store):
    train = shlex.split("-m core train --epochs 50 --train-size 20000 --quiet")
    proc = subprocess.Popen(
        [sys.executable, *train],
        env=_env(store),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(lambda: store.runs() and len(store.epochs(store.runs()[0].id)) >= 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    run = store.runs()[0]
    assert run.status == "running"  # nobody has noticed yet
    assert store.reap() == [run.id]
    got = store.get(run.id)
    assert got.status == "failed" and "ended unexpectedly" in got.message
    _, meta = load_model(got.checkpoint)  # written atomically: never half a file
    assert meta["epoch"] >= 1
    # The run says which recorded epoch was its best, as a finished run would.
    best = max(store.epochs(run.id), key=lambda e: e["val_accuracy"])
    assert (got.best_epoch, got.best_val_accuracy) == (best["epoch"], best["val_accuracy"])
