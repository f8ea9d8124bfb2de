"""Running a sweep: its trials queued in the run store, trained on this machine's cores or
on a Dask cluster, and ranked.

Every trial is an ordinary run in the run store, tagged with the sweep's name, so the
dashboard shows it like any other. Locally, trials run in worker processes, one per
core, each with a single BLAS thread; with a scheduler address they run on Dask workers
and their metrics and checkpoints come back into the local store. What a sweep tries is
its spec (core/sweep_spec.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import ctypes
import json
import math
import multiprocessing as mp
import os
import queue
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from multiprocessing import connection as mp_connection
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .layers.conv import set_two_cores
from .model import Model
from .recorder import BATCH_LOSS_POINTS, record_result, train_run
from .runs import Run, RunStore, progress_fraction
from .sweep_spec import METRICS, SweepError, SweepSpec, expand, trial_name, varied_keys
from .train import BatchStats, Callback, EpochStats, fit


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
    # Ctrl-C in a terminal reaches every process of the group. A worker treats it as the
    # sweep's stop: it ends its trial after this batch and starts no other, whereas a
    # KeyboardInterrupt there would end the trial and let the pool hand it the next one.
    for sig in (*STOP_SIGNALS, signal.SIGINT):
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


CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler before the sweep gives up
PROGRESS_INTERVAL = 1.0  # seconds between a remote trial's progress reports
ATTEMPTS = 2  # a trial whose worker dies mid-trial is tried once more, then marked failed


class SchedulerUnreachable(OSError):
    """The Dask scheduler could not be reached; the sweep's trials are marked stopped."""


def _progress(
    config: TrainConfig, epoch: int, batch: int, batches: int, loss: float, elapsed: float
) -> dict[str, Any]:
    """A run's progress as the store keeps it for a local run (core/recorder.py)."""
    progress: dict[str, Any] = {
        "epoch": epoch,
        "epochs": config.epochs,
        "batch": batch,
        "batches": batches,
        "loss": loss,
        "elapsed": elapsed,
        "paused": False,
    }
    done = progress_fraction(progress)
    progress["eta"] = elapsed * (1 - done) / done if done > 0 else None
    return progress


class _Reporter(Callback):
    """On a Dask worker: sends a trial's progress and epochs to the sweep as they happen (only
    the sweep's machine can write its store), and keeps the sampled batch losses."""

    def __init__(self, send: Callable[[dict[str, Any]], None]) -> None:
        self.send = send
        self.batches: list[list[float]] = []
        self.pending: list[list[float]] = []
        self.step = 0
        self.last_sent = 0.0

    def on_train_begin(self, model: Model, config: TrainConfig, n_train: int) -> None:
        self.config = config
        self.per_epoch = math.ceil(n_train / config.batch_size)
        self.every = max(1, math.ceil(config.epochs * self.per_epoch / BATCH_LOSS_POINTS))
        self.send({"kind": "begin", "n_params": model.n_params})

    def on_batch_end(self, stats: BatchStats) -> None:
        self.step += 1
        if self.step % self.every == 0:
            epoch = stats.epoch - 1 + stats.batch / stats.batches
            self.pending.append([self.step, epoch, stats.loss, stats.lr])
        now = time.monotonic()
        if now - self.last_sent >= PROGRESS_INTERVAL:
            self.last_sent = now
            progress = _progress(
                self.config, stats.epoch, stats.batch, stats.batches, stats.loss, stats.elapsed
            )
            self.send({"kind": "progress", "progress": progress})

    def on_epoch_end(self, stats: EpochStats, model: Model) -> None:
        n = self.per_epoch
        progress = _progress(self.config, stats.epoch, n, n, stats.train_loss, stats.elapsed)
        metrics = stats.to_dict()
        self.send(
            {"kind": "epoch", "metrics": metrics, "batches": self.pending, "progress": progress}
        )
        self.batches += self.pending
        self.pending = []


def train_remote(
    config_json: str, run_id: int | None = None, topic: str | None = None
) -> dict[str, Any]:
    """On a Dask worker: train one config; returns its summary, epochs and checkpoint bytes.

    With a `topic`, its start, progress and epochs go to the sweep as scheduler events.
    """
    worker = None
    if topic is not None:
        from distributed import get_worker  # a Dask worker has it

        worker = get_worker()

    def send(message: dict[str, Any]) -> None:
        if worker is not None:
            worker.log_event(topic, {**message, "run_id": run_id, "worker": worker.address})

    send({"kind": "start"})
    cfg = TrainConfig.from_dict(json.loads(config_json))
    reporter = _Reporter(send)
    # Without a topic nobody listens, so it trains as before (tests stand in a one-argument fit).
    result = fit(cfg, callbacks=[reporter]) if topic is not None else fit(cfg)
    checkpoint = None
    if result.history:  # a diverged run's model holds its best epoch too
        with tempfile.TemporaryDirectory() as tmp:
            path = result.model.save(Path(tmp) / "model.npz", {"config": cfg.to_dict()})
            checkpoint = path.read_bytes()
    return {
        **result.summary(),
        "history": [h.to_dict() for h in result.history],
        "batches": reporter.batches + reporter.pending,
        "checkpoint": checkpoint,
        "n_params": result.model.n_params,
    }


def record_remote(store: RunStore, run: Run, outcome: dict[str, Any], note: str = "") -> None:
    """Write a Dask trial's outcome into the local store, as a local run would have.

    The epochs sent while it trained are written again: the same values, so no harm.
    """
    for i, metrics in enumerate(outcome["history"]):
        store.add_epoch(run.id, metrics, outcome.get("batches", []) if i == 0 else [])
    if outcome["checkpoint"] is not None:
        run.dir.mkdir(parents=True, exist_ok=True)
        tmp = run.checkpoint.with_suffix(".tmp")
        tmp.write_bytes(outcome["checkpoint"])
        tmp.replace(run.checkpoint)
    if note:
        outcome = {**outcome, "reason": f"{outcome['reason']} {note}".strip()}
    record_result(store, run.id, outcome)


async def _handshake(address: str) -> None:
    from distributed.comm import connect

    comm = await connect(address, timeout=CONNECT_TIMEOUT)
    await comm.close()


def _run_apart(coroutine: Any) -> None:
    """Run `coroutine` to its end on a thread of its own: asyncio.run refuses to start in a
    thread that already runs an event loop (a notebook's, or Playwright's in the tests)."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coroutine)
        except BaseException as exc:  # handed to the caller's thread below
            failed.append(exc)

    thread = threading.Thread(target=run, name="dask-handshake", daemon=True)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


def _connect(address: str) -> Any:
    """A Dask client of the scheduler at `address`; SchedulerUnreachable when there is none."""
    from distributed import Client  # only a cluster sweep needs Dask
    from distributed.comm import parse_address, parse_host_port

    hint = "Is `dask scheduler` running there, and is its port open to this machine?"
    try:
        scheme, location = parse_address(address)
        if scheme == "tcp":  # a refused connection is known at once; Dask would retry it
            with socket.create_connection(parse_host_port(location), CONNECT_TIMEOUT):
                pass
        # A handshake first: a Client that fails in its constructor hangs the exit for 20 s.
        _run_apart(_handshake(address))
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SchedulerUnreachable(
            f"cannot reach the Dask scheduler at {address} ({reason}). {hint}"
        ) from exc
    except Exception as exc:  # something answered, but not in Dask's protocol
        raise SchedulerUnreachable(
            f"what answers at {address} is not a Dask scheduler ({type(exc).__name__}). {hint}"
        ) from exc


class _DaskSweep:
    """The client's side of a Dask sweep: submits the trials, writes what their workers send
    into the store as it arrives, and retries a trial once when its worker dies under it."""

    def __init__(self, store: RunStore, runs: list[Run], client: Any, report: Report | None):
        self.store, self.client, self.report = store, client, report
        self.runs = {run.id: run for run in runs}
        self.topic = f"mnist-sweep-{uuid.uuid4().hex}"
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.futures: dict[int, Any] = {}
        self.keys: dict[str, int] = {}
        self.where: dict[int, str] = {}  # the worker each trial last started on
        self.deaths: dict[int, list[str]] = {}
        self.closed: set[int] = set()

    def run(self) -> None:
        # Handlers run on the client's event loop thread; this thread alone writes the store.
        self.client.subscribe_topic(self.topic, lambda event: self.inbox.put(("trial", event[1])))
        self.client.subscribe_topic("all", lambda event: self.inbox.put(("cluster", event[1])))
        for run_id, run in self.runs.items():
            self.store.start(run_id, os.getpid())
            key = f"mnist-trial-{run_id}-{uuid.uuid4().hex[:8]}"
            future = self.client.submit(
                train_remote, run.config.to_json(), run_id, self.topic, key=key, pure=False
            )
            self.futures[run_id], self.keys[key] = future, run_id
            future.add_done_callback(lambda f, run_id=run_id: self.inbox.put(("done", run_id)))
        try:
            while len(self.closed) < len(self.runs):
                try:
                    kind, item = self.inbox.get(timeout=1.0)  # wakes up for Ctrl-C and signals
                except queue.Empty:
                    continue
                if kind == "trial":
                    self._trial_event(item)
                elif kind == "cluster":
                    self._cluster_event(item)
                else:
                    self._done(item)
        except BaseException:  # Ctrl-C, a signal, or an error: either way the sweep is over
            self.client.cancel(list(self.futures.values()))
            for run_id in self.runs:
                if run_id not in self.closed and self.store.get(run_id).active:
                    self.store.finish(run_id, "stopped", "The sweep was stopped.")
            raise
        finally:
            # Else the scheduler sends this client's own leaving to it, after it has gone.
            for topic in (self.topic, "all"):
                with suppress(Exception):  # a lost scheduler must not hide why the sweep ended
                    self.client.unsubscribe_topic(topic)

    def _trial_event(self, message: dict[str, Any]) -> None:
        run_id = message.get("run_id")
        if run_id not in self.runs or run_id in self.closed:
            return  # a late word from an attempt that has been given up
        kind = message.get("kind")
        if kind == "start":
            self.where[run_id] = message["worker"]
        elif kind == "begin":
            self.store.start(run_id, os.getpid(), message["n_params"])
        elif kind == "progress":
            self.store.set_progress(run_id, {**message["progress"], "worker": message["worker"]})
        elif kind == "epoch":
            self.store.add_epoch(run_id, message["metrics"], message["batches"])
            self.store.set_progress(run_id, {**message["progress"], "worker": message["worker"]})

    def _cluster_event(self, message: dict[str, Any]) -> None:
        if not isinstance(message, dict) or message.get("action") != "remove-worker":
            return
        worker = message.get("worker")
        for key in message.get("processing-tasks") or ():
            run_id = self.keys.get(key)
            # Only a trial that had started there lost work; the others were just waiting.
            if run_id is None or run_id in self.closed or self.where.get(run_id) != worker:
                continue
            self.where.pop(run_id)
            deaths = self.deaths.setdefault(run_id, [])
            deaths.append(worker)
            if len(deaths) >= ATTEMPTS:
                self.futures[run_id].cancel()
                self._close(
                    run_id,
                    "failed",
                    f"Its worker died during each of {len(deaths)} tries ({', '.join(deaths)}), "
                    "so it was not tried again. Was the worker killed, or out of memory?",
                )

    def _done(self, run_id: int) -> None:
        if run_id in self.closed:
            return
        from distributed import KilledWorker

        run, future = self.runs[run_id], self.futures[run_id]
        try:
            outcome = future.result()
        except Exception as exc:  # the trial raised, or Dask gave up on it
            if isinstance(exc, KilledWorker):  # the scheduler's own limit, if lower than ours
                message = f"Its worker died while it trained and the scheduler gave up: {exc}"
            else:
                message = f"{type(exc).__name__}: {exc}"
            self._close(run_id, "failed", message)
            return
        deaths = self.deaths.get(run_id)
        note = f"It was tried again after its worker {deaths[0]} died." if deaths else ""
        record_remote(self.store, run, outcome, note)
        self._close(run_id)

    def _close(self, run_id: int, status: str | None = None, message: str = "") -> None:
        if status is not None:
            self.store.finish(run_id, status, message)
        self.closed.add(run_id)
        if self.report:
            self.report(self.store.get(run_id))


def run_dask(store: RunStore, runs: list[Run], address: str, report: Report | None = None) -> None:
    """Send the trials to the Dask scheduler at `address`; their epochs come into the store as
    they train, their results and checkpoints when they finish.

    A scheduler that cannot be reached raises SchedulerUnreachable, with the trials stopped.
    """
    try:
        client = _connect(address)
    except BaseException as exc:  # Ctrl-C too: nothing may be left queued with no sweep to run it
        why = str(exc) if isinstance(exc, SchedulerUnreachable) else "it was stopped"
        store.stop_queued([r.id for r in runs], f"The sweep could not start: {why}")
        raise
    with _stop_on_signals(), client:
        _DaskSweep(store, runs, client, report).run()


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
