"""Running a sweep: its trials queued in the run store, trained on this machine's cores or
on a Dask cluster, and ranked.

Every trial is an ordinary run in the run store, tagged with the sweep's name, so the
dashboard shows it like any other. Locally, trials run in worker processes, one per
core, each with a single BLAS thread; with a scheduler address they run on Dask workers
and their metrics and checkpoints come back into the local store. What a sweep tries is
its spec (core/sweep_spec.py).
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import json
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from multiprocessing import connection as mp_connection
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .layers.conv import set_two_cores
from .recorder import record_result, train_run
from .runs import Run, RunStore
from .sweep_spec import METRICS, SweepError, SweepSpec, expand, trial_name, varied_keys
from .train import fit


def plan(store: RunStore, spec: SweepSpec, resume: bool = False) -> tuple[list[Run], int]:
    """Queue the sweep's trials in the store; returns (runs to train, trials already done).

    Without `resume`, a sweep name that already has runs is refused, so nothing is mixed up.
    """
    configs = expand(spec)
    existing = store.sweep_runs(spec.name)
    if existing and not resume:
        raise SweepError(
            f"sweep {spec.name!r} already has {len(existing)} runs in {store.root}; add "
            "--resume to continue it, or give it another name"
        )
    finished = {  # trials that ran to the end: training is seeded, a rerun would repeat them
        json.dumps(r.config.to_dict(), sort_keys=True)
        for r in existing
        if r.status in ("finished", "learned_nothing")
    }
    keys = varied_keys(configs)
    todo = [c for c in configs if json.dumps(c.to_dict(), sort_keys=True) not in finished]
    runs = [
        store.create(c, trial_name(spec, c, keys), sweep=spec.name, pid=os.getpid()) for c in todo
    ]
    return runs, len(configs) - len(todo)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
GRACE = 10.0  # seconds a worker gets to finish its batch and record its trial before a kill
STOPPED_TRIAL = (
    "Stopped after {epochs} epoch(s) because the sweep was stopped; the best epoch's "
    "checkpoint is kept. Run the sweep again with --resume to finish it."
)
ABANDONED_TRIAL = (
    "The sweep was stopped and this trial's worker did not stop in time; the checkpoint of its "
    "best recorded epoch, if any, is kept."
)
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

# A worker process's state, read by its signal handler (so plain values, no locks).
_worker = {"parent": 0, "training": False, "stop": False}


class SweepStopped(KeyboardInterrupt):
    """The sweep was told to stop by a signal (SIGTERM or SIGHUP); `signum` says which.

    A KeyboardInterrupt, so whoever handles Ctrl-C handles this the same way.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """While inside: SIGTERM and SIGHUP raise SweepStopped in the main thread, once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can have signal handlers
        return
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if not received:  # a second signal must not break off the clean-up of the first
            received.append(signum)
            raise SweepStopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def _worker_init(parent: int, workers: int = 1) -> None:
    """In each worker process: stop when the sweep stops, and when it dies without a word;
    keep to one core when it shares the machine with other workers."""
    _worker["parent"] = parent
    if workers > 1:
        set_two_cores(False)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _worker_signal)
    if sys.platform.startswith("linux"):
        # The kernel sends SIGTERM to this worker when its parent dies, even by SIGKILL.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:  # it died before that was set up, so no signal will come
        os._exit(1)


def _worker_signal(signum: int, frame: Any) -> None:
    if _worker["training"]:
        _worker["stop"] = True  # the trial stops after this batch and records itself
    else:
        os._exit(128 + signum)  # idle: nothing to save


def _train_local(root: str, run_id: int) -> str:
    """In a worker process: train one queued trial, recording it in the store."""
    _worker["training"] = True
    try:
        if _worker["stop"]:
            return "skipped"  # the sweep is stopping; it marks this trial stopped
        store = RunStore(root)
        run = store.claim(run_id, os.getpid())
        if run is None:
            return "skipped"
        try:
            result = train_run(store, run, should_stop=lambda: _worker["stop"])
        except Exception:  # recorded in the store as failed; the other trials go on
            return "failed"
        if result.status == "stopped" and _worker["stop"]:
            store.finish(run.id, "stopped", STOPPED_TRIAL.format(epochs=len(result.history)))
        return result.status
    finally:
        _worker["training"] = False
        if _worker["stop"] and _worker["parent"] and os.getppid() != _worker["parent"]:
            os._exit(0)  # the sweep is dead: no next trial and no word to stop will come


def _stop_workers(pool: cf.ProcessPoolExecutor, grace: float = GRACE) -> None:
    """Stop every worker: a training one after its batch, an idle one at once; kill stragglers."""
    # ProcessPoolExecutor offers no way to signal its workers before Python 3.14.
    processes = list((pool._processes or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)  # the others get their end-of-work message
    for process in processes:
        with suppress(ProcessLookupError, ValueError):  # already gone
            process.terminate()
    pending = {p.sentinel: p for p in processes if p.exitcode is None}
    deadline = time.monotonic() + grace
    while pending and time.monotonic() < deadline:
        for ready in mp_connection.wait(list(pending), deadline - time.monotonic()):
            pending.pop(ready)
    for process in pending.values():
        with suppress(ProcessLookupError, ValueError):
            process.kill()


Report = Callable[[Run], None]


def run_local(store: RunStore, runs: list[Run], workers: int, report: Report | None = None) -> None:
    """Train the trials in `workers` processes.

    Ctrl-C, SIGTERM or SIGHUP stop the workers (a training one after its current batch,
    keeping the trial's best epoch) and mark the unfinished trials stopped, then raise
    KeyboardInterrupt (SweepStopped for a signal); so does any error that ends the sweep. If
    this process dies, so do its workers.
    """
    ids = [r.id for r in runs]
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=mp.get_context("spawn"),  # a clean interpreter per worker, no inherited threads
        initializer=_worker_init,
        initargs=(os.getpid(), workers),
    )
    with _stop_on_signals(), pool:
        try:
            futures = {}
            for run in runs:
                futures[pool.submit(_train_local, str(store.root), run.id)] = run
            for future in cf.as_completed(futures):
                future.result()
                if report:
                    report(store.get(futures[future].id))
        except BaseException:  # Ctrl-C, a signal, or an error: either way the sweep is over
            _stop_workers(pool)
            store.stop_abandoned(ids, ABANDONED_TRIAL)
            raise
        finally:
            store.stop_queued(ids, "The sweep was stopped before this trial ran.")


def train_remote(config_json: str) -> dict[str, Any]:
    """On a Dask worker: train one config; returns its summary, epochs and checkpoint bytes."""
    cfg = TrainConfig.from_dict(json.loads(config_json))
    result = fit(cfg)
    checkpoint = None
    if result.history:  # a diverged run's model holds its best epoch too
        with tempfile.TemporaryDirectory() as tmp:
            path = result.model.save(Path(tmp) / "model.npz", {"config": cfg.to_dict()})
            checkpoint = path.read_bytes()
    return {
        **result.summary(),
        "history": [h.to_dict() for h in result.history],
        "checkpoint": checkpoint,
        "n_params": result.model.n_params,
    }


def record_remote(store: RunStore, run: Run, outcome: dict[str, Any]) -> None:
    """Write a Dask trial's outcome into the local store, as a local run would have."""
    for metrics in outcome["history"]:
        store.add_epoch(run.id, metrics, [])
    if outcome["checkpoint"] is not None:
        run.dir.mkdir(parents=True, exist_ok=True)
        tmp = run.checkpoint.with_suffix(".tmp")
        tmp.write_bytes(outcome["checkpoint"])
        tmp.replace(run.checkpoint)
    record_result(store, run.id, outcome)


def run_dask(store: RunStore, runs: list[Run], address: str, report: Report | None = None) -> None:
    """Send the trials to the Dask scheduler at `address`; results come back into the store."""
    from distributed import Client, as_completed  # only a cluster sweep needs Dask

    with _stop_on_signals(), Client(address, timeout="20s") as client:
        futures = {}
        for run in runs:
            store.start(run.id, os.getpid())
            future = client.submit(
                train_remote,
                run.config.to_json(),
                pure=False,
                key=f"{run.config.to_json()}-{run.id}",
            )
            futures[future] = run
        try:
            for future in as_completed(futures):
                run = futures[future]
                try:
                    record_remote(store, run, future.result())
                except Exception as exc:  # a worker crashed or the trial raised
                    store.finish(run.id, "failed", f"{type(exc).__name__}: {exc}")
                if report:
                    report(store.get(run.id))
        except KeyboardInterrupt:
            client.cancel(list(futures))
            for run in futures.values():
                if store.get(run.id).active:
                    store.finish(run.id, "stopped", "The sweep was stopped.")
            raise


def summary(store: RunStore, spec: SweepSpec) -> list[dict[str, Any]]:
    """The sweep's latest run per config, best first by the spec's metric."""
    latest: dict[str, Run] = {}
    for run in sorted(store.sweep_runs(spec.name), key=lambda r: r.id):
        latest[json.dumps(run.config.to_dict(), sort_keys=True)] = run
    runs = list(latest.values())
    keys = varied_keys([r.config for r in runs])
    higher = METRICS[spec.metric]
    rows = []
    for run in runs:
        value = _metric(store, run, spec.metric)
        rows.append(
            {
                "run_id": run.id,
                "name": run.name,
                "status": run.status,
                spec.metric: value,
                "seconds": run.train_seconds,
                **{k: getattr(run.config, k) for k in keys},
            }
        )

    def order(row: dict[str, Any]) -> tuple[bool, float]:
        value = row[spec.metric]
        return value is None, -(value or 0.0) if higher else (value or 0.0)

    rows.sort(key=order)
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def _metric(store: RunStore, run: Run, metric: str) -> float | None:
    if metric == "val_accuracy":
        return run.best_val_accuracy
    if metric == "test_accuracy":
        return run.test_accuracy
    epochs = store.epochs(run.id)
    return min((e["val_loss"] for e in epochs), default=None)


def summary_table(rows: list[dict[str, Any]], metric: str) -> str:
    """The ranked rows of `summary` as a text table, with the settings that vary."""
    fixed = ("rank", "run_id", "name", "status", metric, "seconds")
    keys = [k for k in rows[0] if k not in fixed] if rows else []
    header = f"{'rank':>4} {'run':>5} {'status':>9} {metric:>13} {'seconds':>8}  "
    lines = [header + "  ".join(keys)]
    for row in rows:
        value = row[metric]
        shown = "-" if value is None else f"{value:.4f}" if metric == "val_loss" else f"{value:.2%}"
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.1f}"
        lines.append(
            f"{row['rank']:>4} {row['run_id']:>5} {row['status']:>9} {shown:>13} {seconds:>8}  "
            + "  ".join(str(row[k]) for k in keys)
        )
    return "\n".join(lines)
