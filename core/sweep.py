"""Sweeps: many configurations at once, on this machine's cores or on a Dask cluster.

A sweep spec (YAML or JSON) names a base config, a grid and/or random ranges, the
number of random trials and the metric to rank by:

    name: lr-momentum
    base: {preset: default, epochs: 5, train_size: 10000}
    grid: {momentum: [0.0, 0.9]}
    random: {lr: {log_uniform: [0.01, 2.0]}}
    trials: 4              # random draws per grid point
    metric: val_accuracy   # or test_accuracy, or val_loss (lower is better)

Every trial is an ordinary run in the run store, tagged with the sweep's name, so
the dashboard shows it like any other. Locally, trials run in worker processes,
one per core, each with a single BLAS thread; with a scheduler address they run
on Dask workers and their metrics and checkpoints come back into the local store.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import itertools
import json
import math
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing import connection as mp_connection
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .config import ConfigError, TrainConfig, problems
from .presets import PRESETS, preset
from .recorder import train_run
from .runs import Run, RunStore, slug
from .train import fit

METRICS = {"val_accuracy": True, "test_accuracy": True, "val_loss": False}  # higher is better?
DISTRIBUTIONS = ("log_uniform", "uniform", "int_uniform", "choice")
MAX_TRIALS = 1000
MAX_SPEC_BYTES = 1_000_000  # a spec is a few lines; anything this big is the wrong file


class SweepError(ValueError):
    """The sweep spec is malformed; the message says where and how."""


@dataclass
class SweepSpec:
    name: str
    base: TrainConfig
    grid: dict[str, list[Any]] = field(default_factory=dict)
    random: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    trials: int = 1
    metric: str = "val_accuracy"
    seed: int = 0


def parse_spec(raw: dict[str, Any]) -> SweepSpec:
    """A SweepSpec from a parsed YAML / JSON mapping, with every field checked."""
    _check_sections(raw)
    known = {"name", "base", "grid", "random", "trials", "metric", "seed"}
    unknown = {str(k) for k in raw} - known
    if unknown:
        raise SweepError(f"unknown key(s) {sorted(unknown)}; known keys are {sorted(known)}")
    base = _base(raw.get("base") or {})
    grid = raw.get("grid") or {}
    random = raw.get("random") or {}
    for section, values in (("grid", grid), ("random", random)):
        for key in values:
            if key not in TrainConfig.__dataclass_fields__:
                raise SweepError(f"{section}.{key} is not a setting")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"grid.{key} must be a non-empty list of values, got {_brief(values)}")
        for i, value in enumerate(values):
            _setting(base, f"grid.{key}[{i}]", key, value)
    for key, dist in random.items():
        _distribution(base, key, dist)
    metric = raw.get("metric", "val_accuracy")
    if not isinstance(metric, str) or metric not in METRICS:
        raise SweepError(f"metric {_brief(metric)} is not one of {', '.join(METRICS)}")
    trials = _whole("trials", raw.get("trials", 1), 1, MAX_TRIALS)
    seed = _whole("seed", raw.get("seed", 0), 0, 2**63 - 1)
    name = raw.get("name") or "sweep"
    if not isinstance(name, (str, int)) or isinstance(name, bool):
        raise SweepError(f"name must be text, got {_brief(name)}")
    return SweepSpec(slug(str(name)), base, grid, random, trials, metric, seed)


def _check_sections(raw: Any) -> None:
    """The spec is a mapping, and its base, grid and random are mappings (or absent)."""
    if not isinstance(raw, dict):
        raise SweepError("a sweep spec is a mapping with keys name, base, grid, random, ...")
    examples = {
        "base": "{preset: default, epochs: 5}",
        "grid": "{lr: [0.1, 0.5]}",
        "random": "{lr: {log_uniform: [0.01, 1.0]}}",
    }
    for section, example in examples.items():
        value = raw.get(section)
        if value is not None and not isinstance(value, dict):
            raise SweepError(
                f"{section} must map setting names to values, e.g. {example}; got {_brief(value)}"
            )
        for key in value or {}:
            if not isinstance(key, str):
                raise SweepError(f"{section}.{_brief(key)} is not a setting name")


def _base(values: dict[str, Any]) -> TrainConfig:
    values = dict(values)
    preset_name = values.pop("preset", "default")
    if not isinstance(preset_name, str) or preset_name not in PRESETS:
        raise SweepError(f"base.preset {_brief(preset_name)} is not one of {', '.join(PRESETS)}")
    try:
        return preset(preset_name).replace(**values)
    except ConfigError as exc:
        raise SweepError(f"base.{exc.field}: {exc.message}") from None


def _setting(base: TrainConfig, where: str, key: str, value: Any) -> None:
    """Refuse a value that cannot be the setting `key` at all, naming where it is."""
    if isinstance(value, (dict, list)) and not isinstance(getattr(base, key), list):
        raise SweepError(f"{where}: {_brief(value)} is not a single value for {key}")
    try:
        base.replace(**{key: value})
    except ConfigError as exc:
        raise SweepError(f"{where}: {exc.message}") from None


def _brief(value: Any) -> str:
    """A value as it would be written, cut short if long (a message stays one line)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _distribution(base: TrainConfig, key: str, dist: Any) -> None:
    where = f"random.{key}"
    if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
        raise SweepError(
            f"{where} must be one of {DISTRIBUTIONS}, e.g. {{log_uniform: [0.001, 1.0]}}"
        )
    kind, args = next(iter(dist.items()))
    where = f"{where}.{kind}"
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise SweepError(f"{where} needs a non-empty list of values, got {_brief(args)}")
        for i, value in enumerate(args):
            _setting(base, f"{where}[{i}]", key, value)
        return
    current = getattr(base, key)
    if not _number(current):
        raise SweepError(
            f"{where}: {key} is not a numeric setting; draw its values with choice: [...]"
        )
    whole = kind == "int_uniform"
    if (
        not isinstance(args, list)
        or len(args) != 2
        or not all(_number(a) and math.isfinite(a) for a in args)
        or (whole and not all(isinstance(a, int) for a in args))
    ):
        numbers = "whole numbers" if whole else "finite numbers"
        raise SweepError(f"{where} needs two {numbers} [low, high], got {_brief(args)}")
    if not args[0] < args[1]:
        raise SweepError(f"{where} needs [low, high] with low < high, got {_brief(args)}")
    if kind == "log_uniform" and args[0] <= 0:
        raise SweepError(f"{where} needs a positive low end, got {_brief(args)}")
    for value in args:
        _setting(base, where, key, value if whole else float(value))


def _whole(field_name: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SweepError(
            f"{field_name} must be a whole number from {low} to {high}, got {_brief(value)}"
        )
    return value


def read_spec(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML or JSON sweep spec file, its sections' shapes checked."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SweepError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    if len(data) > MAX_SPEC_BYTES:
        raise SweepError(f"{path} is over {MAX_SPEC_BYTES // 1000} kB: not a sweep spec")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SweepError(
            f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8 YAML or JSON"
        ) from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SweepError(f"{path} is not valid YAML or JSON: {exc}") from exc
    except RecursionError:
        raise SweepError(f"{path} is nested too deeply to be a sweep spec") from None
    if not isinstance(raw, dict):
        raise SweepError(f"{path} must hold a mapping (name, base, grid, ...)")
    try:
        _check_sections(raw)
    except SweepError as exc:
        raise SweepError(f"{path}: {exc}") from None
    return raw


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a YAML or JSON sweep spec file."""
    return parse_spec(read_spec(path))


def _sample(kind: str, args: list[Any], rng: np.random.Generator) -> Any:
    if kind == "log_uniform":
        return float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]))))
    if kind == "uniform":
        return float(rng.uniform(args[0], args[1]))
    if kind == "int_uniform":
        return int(rng.integers(args[0], args[1] + 1))
    return args[int(rng.integers(len(args)))]


def expand(spec: SweepSpec) -> list[TrainConfig]:
    """Every trial's config: the grid's product, each with `trials` seeded random draws."""
    keys = sorted(spec.grid)
    points = [
        dict(zip(keys, combo, strict=True))
        for combo in itertools.product(*(spec.grid[k] for k in keys))
    ]
    rng = np.random.default_rng(spec.seed)
    draws = spec.trials if spec.random else 1
    configs = []
    for point in points:
        for _ in range(draws):
            values = {**point}
            for key in sorted(spec.random):
                kind, args = next(iter(spec.random[key].items()))
                values[key] = _sample(kind, args, rng)
            try:
                cfg = spec.base.replace(**values)
            except ConfigError as exc:
                raise SweepError(f"trial {len(configs) + 1}: {exc}") from None
            bad = problems(cfg)
            if bad:
                raise SweepError(f"trial {len(configs) + 1} ({values}): {bad[0]}")
            configs.append(cfg)
    return configs


def varied_keys(configs: list[TrainConfig]) -> list[str]:
    """The settings that differ between the trials."""
    dicts = [c.to_dict() for c in configs]
    return [k for k in dicts[0] if len({json.dumps(d[k]) for d in dicts}) > 1] if dicts else []


def trial_name(spec: SweepSpec, cfg: TrainConfig, keys: list[str]) -> str:
    parts = [f"{k}={_short(getattr(cfg, k))}" for k in keys]
    return f"{spec.name} " + " ".join(parts) if parts else spec.name


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def plan(store: RunStore, spec: SweepSpec, resume: bool = False) -> tuple[list[Run], int]:
    """Queue the sweep's trials in the store; returns (runs to train, trials already done).

    Without `resume`, a sweep name that already has runs is refused, so nothing is mixed up.
    """
    configs = expand(spec)
    existing = store.list_sweep(spec.name)
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


# Running the trials

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


def _worker_init(parent: int) -> None:
    """In each worker process: stop when the sweep stops, and when it dies without a word."""
    _worker["parent"] = parent
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
        initargs=(os.getpid(),),
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
    store.record_result(run.id, outcome)


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
    for run in sorted(store.list_sweep(spec.name), key=lambda r: r.id):
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
