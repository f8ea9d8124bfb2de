"""The background trainer's slots: up to K runs at once, each in its own worker process; K from
the store, the environment or the cores; lowering K takes effect as runs finish; a worker
sharing the machine keeps the convolution layers to one thread; the sidebar shows and sets K."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import layers
from core.config import TrainConfig
from core.layers import conv
from core.runs import RUNS_DIR_ENV, Run, RunStore, StoreError
from core.worker import (
    MAX_SLOTS,
    SLOTS_ENV,
    SLOTS_SETTING,
    busy_slots,
    ensure_worker,
    run_queue,
    trainer_slots,
    worker_running,
)
from tests.test_store_faults import read_only

REPO = Path(__file__).resolve().parent.parent
SMALL = TrainConfig(train_size=600, epochs=2)


@pytest.fixture
def store(tmp_path, monkeypatch) -> RunStore:
    monkeypatch.delenv(SLOTS_ENV, raising=False)
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path / "runs"))
    return RunStore(tmp_path / "runs")


def queue(store: RunStore, n: int, cfg: TrainConfig = SMALL) -> list[int]:
    return [store.create(cfg.replace(seed=i), f"r{i}").id for i in range(n)]


def most_at_once(runs: list[Run]) -> int:
    """The most runs whose [started, ended] overlapped at any moment."""
    edges = sorted([(r.started, 1) for r in runs] + [(r.ended, -1) for r in runs])
    now = peak = 0
    for _, step in edges:  # at a tie the end sorts first: back to back is not at once
        now += step
        peak = max(peak, now)
    return peak


def watch(
    store: RunStore, ids: list[int], timeout: float = 60, during=None
) -> tuple[int, dict[int, int]]:
    """Poll the store until the runs are done: the most seen running at once, and each run's
    trainer (process id). `during(n)` is called at every look with the number running."""
    deadline, peak, owners = time.monotonic() + timeout, 0, {}
    while True:
        runs = [store.get(i) for i in ids]
        running = sum(r.status == "running" for r in runs)
        peak = max(peak, running)
        owners |= {r.id: r.pid for r in runs if r.status == "running"}
        if during is not None:
            during(running)
        if not any(r.active for r in runs):
            break
        assert time.monotonic() < deadline, [r.status for r in runs]
        time.sleep(0.02)
    # The workers leave once the queue is empty: none is left behind.
    deadline = time.monotonic() + 10
    while worker_running(store):
        assert time.monotonic() < deadline, "a worker did not exit"
        time.sleep(0.05)
    return peak, owners


def assert_trained(store: RunStore, ids: list[int]) -> None:
    for run_id in ids:
        run = store.get(run_id)
        assert run.status == "finished", (run.status, run.message)
        assert [e["epoch"] for e in store.epochs(run_id)] == [1, 2]
        assert run.test_accuracy is not None and run.checkpoint.exists()
    # Each run has its own metrics (each has its own seed).
    curves = [tuple(e["train_loss"] for e in store.epochs(i)) for i in ids]
    assert len(set(curves)) == len(ids)


# Up to K at once


def test_three_queued_runs_train_two_at_a_time_on_two_slots(store):
    store.set_setting(SLOTS_SETTING, "2")
    ids = queue(store, 3)
    assert ensure_worker(store) == 2  # one worker per slot; the third run waits for one
    assert ensure_worker(store) == 0  # the slots are taken at once: no extra worker
    assert busy_slots(store) == 2
    peak, owners = watch(store, ids)
    assert peak == 2
    assert most_at_once([store.get(i) for i in ids]) == 2
    assert len(set(owners.values())) == 2  # two workers; one of them trained two runs
    assert_trained(store, ids)


def test_one_slot_trains_the_queue_one_run_at_a_time(store, monkeypatch):
    monkeypatch.setenv(SLOTS_ENV, "1")  # how a server is started with one slot
    ids = queue(store, 2)
    assert ensure_worker(store) == 1
    assert watch(store, ids)[0] == 1
    assert most_at_once([store.get(i) for i in ids]) == 1
    assert_trained(store, ids)


def test_lowering_the_slots_to_one_trains_the_rest_one_at_a_time(store):
    store.set_setting(SLOTS_SETTING, "2")
    ids = queue(store, 5, SMALL.replace(train_size=1500))
    assert ensure_worker(store) == 2
    lowered: list[float] = []

    def lower_once_two_run(running: int) -> None:
        if running == 2 and not lowered:
            store.set_setting(SLOTS_SETTING, "1")
            lowered.append(time.time())

    watch(store, ids, during=lower_once_two_run)
    assert lowered
    runs = [store.get(i) for i in ids]
    # A worker that read K a moment before the change may still claim then: look from 0.1 s on.
    later = [r for r in runs if r.started > lowered[0] + 0.1]
    assert len(later) >= 2  # most of the queue was still waiting
    for run in later:  # no run started since overlaps any other
        others = [o for o in runs if o.id != run.id]
        assert all(o.ended <= run.started or o.started >= run.ended for o in others), run.id
    assert_trained(store, ids)


def test_raising_the_slots_starts_more_workers_at_once(store):
    store.set_setting(SLOTS_SETTING, "1")
    ids = queue(store, 3)
    assert ensure_worker(store) == 1
    store.set_setting(SLOTS_SETTING, "3")
    # The first worker is alive and will take a run; one more each for the other two.
    assert ensure_worker(store) == 2
    watch(store, ids)
    assert_trained(store, ids)


# K: the store's setting, else the environment, else the cores


def test_slots_come_from_the_store_then_the_environment_then_the_cores(store, monkeypatch):
    cores = min(os.cpu_count() or 1, MAX_SLOTS)
    assert trainer_slots(store) == trainer_slots() == cores
    monkeypatch.setenv(SLOTS_ENV, "3")
    assert trainer_slots(store) == 3
    store.set_setting(SLOTS_SETTING, "2")
    assert trainer_slots(store) == 2 and trainer_slots() == 3
    for bad in ("two", "", "2.5", " "):  # not a whole number: the next source decides
        store.set_setting(SLOTS_SETTING, bad)
        assert trainer_slots(store) == 3, bad
        monkeypatch.setenv(SLOTS_ENV, bad)
        assert trainer_slots(store) == cores, bad
        monkeypatch.setenv(SLOTS_ENV, "3")
    for value, clamped in (("0", 1), ("-4", 1), ("99", MAX_SLOTS), (" 5 ", 5)):
        store.set_setting(SLOTS_SETTING, value)
        assert trainer_slots(store) == clamped, value


@pytest.mark.parametrize(
    "fault", [StoreError("database is locked"), sqlite3.OperationalError("disk I/O error")]
)
def test_a_store_that_cannot_be_read_leaves_the_slots_to_the_environment(store, monkeypatch, fault):
    store.set_setting(SLOTS_SETTING, "2")
    monkeypatch.setenv(SLOTS_ENV, "3")

    def broken(key: str) -> str:
        raise fault

    monkeypatch.setattr(store, "setting", broken)
    assert trainer_slots(store) == 3


# The convolution layers' second thread


class CountingPool:
    """Stands in for the layers' helper thread, counting what is sent to it."""

    def __init__(self, pool) -> None:
        self.pool, self.sent = pool, 0

    def submit(self, fn, *args):
        self.sent += 1
        return self.pool.submit(fn, *args)


@pytest.mark.parametrize("make", [lambda: layers.Conv2D(8, 3, "valid"), layers.MaxPool2D])
def test_without_the_second_core_a_batch_gives_the_same_results_on_one_thread(
    make, monkeypatch, rng
):
    x = rng.standard_normal((64, 12, 12, 3), dtype=np.float32)
    dy, results = None, []
    for two_cores in (True, False):
        pool = CountingPool(conv._SIDE)
        monkeypatch.setattr(conv, "_SIDE", pool)
        before = conv.set_two_cores(two_cores)
        try:
            layer = make()
            layer.build(x.shape[1:], np.random.default_rng(0))
            y = layer.forward(x, training=True)
            dy = rng.standard_normal(y.shape, dtype=np.float32) if dy is None else dy
            dx = layer.backward(dy)
        finally:
            conv.set_two_cores(before)
        assert pool.sent == (2 if two_cores else 0)  # one half forwards and one backwards
        results.append((y, dx, {k: g.copy() for k, g in layer.grads.items()}))
    (y1, dx1, g1), (y2, dx2, g2) = results
    if g1:  # BLAS may round a product over half the batch apart from one over all of it
        for got, want in [(y2, y1), (dx2, dx1), *((g2[k], g1[k]) for k in g1)]:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:  # max-pooling only compares and copies: exactly the same
        np.testing.assert_array_equal(y2, y1)
        np.testing.assert_array_equal(dx2, dx1)


@pytest.mark.parametrize(("slots", "two_cores"), [("1", True), ("2", False)])
def test_the_worker_gives_up_the_second_core_when_it_shares_the_machine(
    store, monkeypatch, slots, two_cores
):
    store.set_setting(SLOTS_SETTING, slots)
    queue(store, 1)
    seen = []

    def train(store: RunStore, run: Run) -> None:
        seen.append(conv.halves(64))
        store.finish(run.id, "finished", "trained")

    monkeypatch.setattr("core.worker.train_run", train)
    assert run_queue(store) == 1
    assert len(seen[0]) == (2 if two_cores else 1)
    assert len(conv.halves(64)) == 2  # put back for whoever trains in this process next


# The sidebar


def sidebar(at: AppTest) -> tuple[list[str], object]:
    return [c.value for c in at.sidebar.caption], at.sidebar.number_input(key="trainer_slots")


def test_the_sidebar_shows_the_slots_and_sets_them(store, monkeypatch):
    monkeypatch.setenv(SLOTS_ENV, "2")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    captions, slots = sidebar(at)
    assert ":material/memory: Trainer: 0 of 2 slots busy" in captions
    assert slots.value == 2 and not slots.disabled
    slots.set_value(3).run()
    assert not at.exception
    assert store.setting(SLOTS_SETTING) == "3"
    assert ":material/memory: Trainer: 0 of 3 slots busy" in sidebar(at)[0]
    # Another session (or the command line) changes it: the input follows.
    store.set_setting(SLOTS_SETTING, "1")
    at.run()
    captions, slots = sidebar(at)
    assert slots.value == 1 and ":material/memory: Trainer: 0 of 1 slot busy" in captions


def test_the_sidebar_counts_queued_runs_and_raising_the_slots_starts_them(store):
    store.set_setting(SLOTS_SETTING, "1")
    ids = queue(store, 3)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.run()  # the sidebar starts the one worker its one slot allows
    assert not at.exception
    line = next(c for c in sidebar(at)[0] if "Trainer" in c)
    assert line.startswith(":material/memory: Trainer: 1 of 1 slot busy · ")
    assert line.endswith(" queued")
    sidebar(at)[1].set_value(3).run()
    assert not at.exception
    assert busy_slots(store) >= 2  # the change started workers for the waiting runs at once
    watch(store, ids)
    assert_trained(store, ids)


def test_a_read_only_store_shows_the_slots_without_letting_them_change(store):
    store.set_setting(SLOTS_SETTING, "2")
    with read_only(store.root, store.path):
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
        at.run()
        assert not at.exception
        captions, slots = sidebar(at)
        assert slots.value == 2 and slots.disabled
        assert ":material/memory: Trainer: 0 of 2 slots busy" in captions


def test_the_sidebar_says_a_paused_run_holds_its_slot(store):
    cfg = TrainConfig(train_size=500, val_size=100, epochs=3)
    held = store.create(cfg, "held", status="running", pid=os.getpid())
    store.set_progress(held.id, {"epoch": 2, "epochs": 3, "batch": 1, "batches": 4, "paused": True})
    going = store.create(cfg, "going", status="running", pid=os.getpid())
    store.set_progress(going.id, {"epoch": 1, "epochs": 3, "batch": 1, "batches": 4})
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    captions = sidebar(at)[0]
    assert f":material/pause: #{held.id} held: paused at epoch 2/3, holding a slot" in captions
    assert f":material/hourglass_top: Training #{going.id} going: epoch 1/3" in captions


def test_the_background_trainer_yields_the_cpu_to_the_dashboard(store):
    from core.cli import WORKER_NICENESS

    (run_id,) = queue(store, 1, SMALL.replace(epochs=50))
    assert ensure_worker(store) == 1
    deadline = time.monotonic() + 60
    while store.get(run_id).status != "running":
        assert time.monotonic() < deadline, "the worker did not start the run"
        time.sleep(0.1)
    trainer = store.get(run_id).pid
    try:
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, trainer) == min(mine + WORKER_NICENESS, 19)
    finally:
        store.request_stop(run_id)
        watch(store, [run_id])
