"""Sweeps: expansion, sampling, local and Dask execution, failures, resume and Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core.runs import RunStore
from core.sweep import plan, run_dask, run_local, summary, summary_table
from core.sweep_spec import SweepError, expand, load_spec, parse_spec

REPO = Path(__file__).resolve().parent.parent
TINY = {"preset": "default", "epochs": 1, "train_size": 600, "batch_size": 100}


def test_grid_expansion_is_the_full_product_in_a_fixed_order():
    spec = parse_spec({"base": TINY, "grid": {"momentum": [0.0, 0.9], "lr": [0.1, 0.5, 1.0]}})
    configs = expand(spec)
    assert [(c.lr, c.momentum) for c in configs] == [
        (0.1, 0.0),
        (0.1, 0.9),
        (0.5, 0.0),
        (0.5, 0.9),
        (1.0, 0.0),
        (1.0, 0.9),
    ]
    assert all(c.epochs == 1 and c.train_size == 600 for c in configs)


def test_random_draws_are_seeded_and_in_range():
    random = {
        "lr": {"log_uniform": [0.001, 1.0]},
        "dropout": {"uniform": [0, 0.5]},
        "epochs": {"int_uniform": [1, 3]},
        "activation": {"choice": ["relu", "tanh"]},
    }
    raw = {
        "base": TINY,
        "grid": {"momentum": [0.0, 0.9]},
        "trials": 200,
        "seed": 3,
        "random": random,
    }
    a, b = expand(parse_spec(raw)), expand(parse_spec(raw))
    other = expand(parse_spec({**raw, "seed": 4}))
    assert len(a) == 400
    assert [c.to_dict() for c in a] == [c.to_dict() for c in b]
    assert [c.lr for c in a] != [c.lr for c in other]
    lrs = np.array([c.lr for c in a])
    assert lrs.min() >= 0.001 and lrs.max() <= 1.0
    # Log-uniform: about a third of the draws in each decade.
    decades = np.histogram(np.log10(lrs), bins=[-3, -2, -1, 0])[0] / len(lrs)
    assert np.all(np.abs(decades - 1 / 3) < 0.08)
    assert {c.epochs for c in a} == {1, 2, 3} and {c.activation for c in a} == {"relu", "tanh"}
    assert all(0 <= c.dropout <= 0.5 for c in a)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"grid": {"colour": [1]}}, "grid.colour is not a setting"),
        ({"grid": {"lr": []}}, "grid.lr must be a non-empty list"),
        ({"random": {"lr": {"normal": [0, 1]}}}, "random.lr must be one of"),
        ({"random": {"lr": {"log_uniform": [0, 1]}}}, "needs a positive low end"),
        ({"random": {"lr": {"uniform": [1, 0]}}}, "needs \\[low, high\\] with low < high"),
        ({"grid": {"lr": [0.1]}, "metric": "f1"}, "metric 'f1' is not one of"),
        ({"grid": {"lr": [-1.0]}}, "trial 1 .*lr: learning rate must be above 0"),
        ({"base": {"preset": "huge"}}, "base.preset 'huge' is not one of"),
        ({"base": {"epochs": "many"}}, "base.epochs: 'many' is not a whole number"),
        ({"grid": {"lr": [0.1]}, "shuffle": True}, "unknown key"),
    ],
)
def test_malformed_specs_are_explained(raw, message):
    with pytest.raises(SweepError, match=message):
        expand(parse_spec(raw))


def test_the_example_spec_is_valid():
    spec = load_spec(REPO / "examples" / "lr_momentum.yaml")
    configs = expand(spec)
    assert len(configs) == 9 and spec.name == "lr-momentum"
    assert {c.momentum for c in configs} == {0.0, 0.5, 0.9}


def test_a_local_sweep_fills_the_store_and_a_failing_trial_does_not_stop_the_others(tmp_path):
    store = RunStore(tmp_path / "runs")
    spec = parse_spec(
        {
            "name": "mixed",
            "base": TINY,
            "grid": {"data_dir": ["", str(tmp_path / "no-such-data")], "lr": [0.5, 60.0]},
        }
    )
    runs, done = plan(store, spec)
    assert done == 0 and len(runs) == 4
    run_local(store, runs, workers=2)
    by_config = {(r.config.data_dir, r.config.lr): r for r in store.sweep_runs("mixed")}
    assert by_config[("", 0.5)].status == "finished"
    assert by_config[("", 60.0)].status == "diverged"
    assert all(
        r.status == "failed" and "is not a folder" in r.message
        for (d, _), r in by_config.items()
        if d
    )
    rows = summary(store, spec)
    assert rows[0]["run_id"] == by_config[("", 0.5)].id and rows[0]["rank"] == 1
    assert all(r.sweep == "mixed" for r in store.runs())


def test_the_summary_table_shows_the_metric_seconds_and_the_varied_settings():
    first = {"run_id": 7, "name": "a", "status": "finished", "val_accuracy": 0.95125}
    second = {"run_id": 12, "name": "b", "status": "failed", "val_accuracy": None}
    rows = [
        {**first, "seconds": 3.21, "lr": 0.5, "momentum": 0.9, "rank": 1},
        {**second, "seconds": None, "lr": 60.0, "momentum": 0.0, "rank": 2},
    ]
    assert summary_table(rows, "val_accuracy").splitlines() == [
        "rank   run    status  val_accuracy  seconds  lr  momentum",
        "   1     7  finished        95.12%      3.2  0.5  0.9",
        "   2    12    failed             -        -  60.0  0.0",
    ]
    loss = {"run_id": 3, "name": "a", "status": "finished", "val_loss": 0.0412345}
    table = summary_table([{**loss, "seconds": 10.0, "rank": 1}], "val_loss")
    assert table.splitlines()[1].split() == ["1", "3", "finished", "0.0412", "10.0"]


def test_resume_skips_finished_trials_and_a_rerun_without_it_is_refused(tmp_path):
    store = RunStore(tmp_path / "runs")
    spec = parse_spec({"name": "again", "base": TINY, "grid": {"lr": [0.2, 0.5, 1.0]}})
    runs, _ = plan(store, spec)
    run_local(store, runs[:2], workers=2)  # as if the third never ran
    store.stop_queued([runs[2].id], "interrupted")
    with pytest.raises(SweepError, match=r"already has 3 runs.*--resume"):
        plan(store, spec)
    todo, done = plan(store, spec, resume=True)
    assert done == 2 and [c.config.lr for c in todo] == [1.0]


def test_dask_local_cluster_gives_the_same_metrics_as_local_processes(tmp_path):
    from distributed import LocalCluster

    grid = {"lr": [0.5, 1.0], "momentum": [0.0, 0.9]}
    local_store, dask_store = RunStore(tmp_path / "local"), RunStore(tmp_path / "dask")
    spec = parse_spec({"name": "same", "base": TINY, "grid": grid})
    runs, _ = plan(local_store, spec)
    run_local(local_store, runs, workers=2)
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    with cluster:
        runs, _ = plan(dask_store, spec)
        run_dask(dask_store, runs, cluster.scheduler_address)

    def metrics(store: RunStore) -> dict:
        return {
            (r.config.lr, r.config.momentum): [e["val_accuracy"] for e in store.epochs(r.id)]
            for r in store.sweep_runs("same")
        }

    assert metrics(local_store) == metrics(dask_store)
    local_tests = [r.test_accuracy for r in local_store.sweep_runs("same")]
    for run, local_test in zip(dask_store.sweep_runs("same"), local_tests, strict=True):
        assert run.status == "finished" and run.checkpoint.exists()  # checkpoints come back
        assert run.test_accuracy == local_test


def test_a_dask_trial_that_raises_is_recorded_failed_and_the_others_go_on(tmp_path):
    from distributed import LocalCluster

    store = RunStore(tmp_path / "runs")
    missing = str(tmp_path / "no-such-data")
    spec = parse_spec({"name": "remote", "base": TINY, "grid": {"data_dir": [missing, ""]}})
    runs, _ = plan(store, spec)
    reported = []
    cluster = LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    with cluster:
        run_dask(store, runs, cluster.scheduler_address, reported.append)
    failed, finished = (store.get(run.id) for run in runs)
    assert failed.status == "failed" and failed.message.startswith("DataError: ")
    assert f"{missing} is not a folder" in failed.message and failed.ended is not None
    assert failed.pid is None and store.epochs(failed.id) == []
    assert finished.status == "finished" and finished.checkpoint.exists()
    assert len(store.epochs(finished.id)) == 1 and finished.test_accuracy is not None
    assert sorted(r.id for r in reported) == sorted(r.id for r in runs)  # each reported once


def test_a_dask_sweep_starts_in_a_thread_that_runs_an_event_loop(tmp_path):
    """As under Playwright's sync API (the browser tests) or in a notebook: asyncio.run
    refuses to start there, and the sweep's handshake with the scheduler once used it."""
    from distributed import LocalCluster

    store = RunStore(tmp_path / "runs")
    runs, _ = plan(store, parse_spec({"name": "looped", "base": TINY, "grid": {"lr": [0.5]}}))
    cluster = LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )

    async def inside_a_running_loop() -> None:
        run_dask(store, runs, cluster.scheduler_address)  # blocking, as a sync caller does

    failed: list[BaseException] = []

    def thread_with_a_loop() -> None:  # a thread of its own: this one may run Playwright's
        try:
            asyncio.run(inside_a_running_loop())
        except BaseException as exc:
            failed.append(exc)

    with cluster:
        thread = threading.Thread(target=thread_with_a_loop)
        thread.start()
        thread.join()
    assert not failed, failed
    assert store.get(runs[0].id).status == "finished"


def test_ctrl_c_stops_the_sweep_and_marks_unfinished_trials_stopped(tmp_path):
    runs_dir = tmp_path / "runs"
    grid = "--grid lr=0.1,0.2,0.3,0.4,0.5,0.6 --set epochs=30 --set train_size=20000"
    proc = subprocess.Popen(
        [sys.executable, *shlex.split(f"-m core sweep {grid} --name long --workers 1")],
        cwd=REPO,
        env={**os.environ, "MNIST_RUNS_DIR": str(runs_dir), "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    store = RunStore(runs_dir)
    deadline = time.monotonic() + 120
    while not any(store.epochs(r.id) for r in store.runs()):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "--resume" in err
    statuses = sorted(r.status for r in store.sweep_runs("long"))
    assert statuses == ["stopped"] * 6
    done = [
        json.loads(r.config.to_json())["lr"] for r in store.sweep_runs("long") if store.epochs(r.id)
    ]
    assert done == [0.1]
    # The worker took Ctrl-C as the sweep's stop (after its batch, no next trial), not as a
    # KeyboardInterrupt, after which its pool could have handed it the next trial.
    trained = next(r for r in store.sweep_runs("long") if store.epochs(r.id))
    assert "--resume" in trained.message, trained.message
