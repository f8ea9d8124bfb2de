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
import itertools
import json
import multiprocessing as mp
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .config import ConfigError, TrainConfig, problems
from .presets import PRESETS, preset
from .runs import Run, RunStore, slug, train_run
from .train import fit

METRICS = {"val_accuracy": True, "test_accuracy": True, "val_loss": False}  # higher is better?
DISTRIBUTIONS = ("log_uniform", "uniform", "int_uniform", "choice")


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
    if not isinstance(raw, dict):
        raise SweepError("a sweep spec is a mapping with keys name, base, grid, random, ...")
    known = {"name", "base", "grid", "random", "trials", "metric", "seed"}
    unknown = set(raw) - known
    if unknown:
        raise SweepError(f"unknown key(s) {sorted(unknown)}; known keys are {sorted(known)}")
    base_values = dict(raw.get("base") or {})
    preset_name = base_values.pop("preset", "default")
    if preset_name not in PRESETS:
        raise SweepError(f"base.preset {preset_name!r} is not one of {', '.join(PRESETS)}")
    try:
        base = preset(preset_name).replace(**base_values)
    except ConfigError as exc:
        raise SweepError(f"base.{exc.field}: {exc.message}") from None
    grid = raw.get("grid") or {}
    random = raw.get("random") or {}
    for section, values in (("grid", grid), ("random", random)):
        if not isinstance(values, dict):
            raise SweepError(f"{section} must map setting names to values")
        for key in values:
            if key not in TrainConfig.__dataclass_fields__:
                raise SweepError(f"{section}.{key} is not a setting")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"grid.{key} must be a non-empty list of values")
    for key, dist in random.items():
        if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
            raise SweepError(
                f"random.{key} must be one of {DISTRIBUTIONS}, e.g. {{log_uniform: [0.001, 1.0]}}"
            )
        kind, args = next(iter(dist.items()))
        if kind != "choice" and (len(args) != 2 or not args[0] < args[1]):
            raise SweepError(f"random.{key}.{kind} needs [low, high] with low < high")
        if kind == "log_uniform" and args[0] <= 0:
            raise SweepError(f"random.{key}.log_uniform needs a positive low end")
        if kind == "choice" and (not isinstance(args, list) or not args):
            raise SweepError(f"random.{key}.choice needs a non-empty list")
    metric = raw.get("metric", "val_accuracy")
    if metric not in METRICS:
        raise SweepError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    trials = int(raw.get("trials", 1))
    if not 1 <= trials <= 1000:
        raise SweepError(f"trials must be between 1 and 1000, got {trials}")
    name = str(raw.get("name") or "sweep")
    return SweepSpec(slug(name), base, grid, random, trials, metric, int(raw.get("seed", 0)))


def read_spec(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML or JSON sweep spec file, before it is checked."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise SweepError(f"{path} cannot be read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SweepError(f"{path} is not valid YAML or JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise SweepError(f"{path} must hold a mapping (name, base, grid, ...)")
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
    finished = {
        json.dumps(r.config.to_dict(), sort_keys=True) for r in existing if r.status == "finished"
    }
    keys = varied_keys(configs)
    todo = [c for c in configs if json.dumps(c.to_dict(), sort_keys=True) not in finished]
    runs = [
        store.create(c, trial_name(spec, c, keys), sweep=spec.name, pid=os.getpid()) for c in todo
    ]
    return runs, len(configs) - len(todo)


# Running the trials


def _train_local(root: str, run_id: int) -> str:
    """In a worker process: train one queued trial, recording it in the store."""
    store = RunStore(root)
    run = store.claim(run_id, os.getpid())
    if run is None:
        return "skipped"
    try:
        return train_run(store, run).status
    except Exception:  # recorded in the store as failed; the other trials go on
        return "failed"


Report = Callable[[Run], None]


def run_local(store: RunStore, runs: list[Run], workers: int, report: Report | None = None) -> None:
    """Train the trials in `workers` processes; Ctrl-C stops them and marks the rest stopped."""
    context = mp.get_context("spawn")  # a clean interpreter per worker, no inherited threads
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_train_local, str(store.root), r.id): r for r in runs}
        try:
            for future in cf.as_completed(futures):
                future.result()
                if report:
                    report(store.get(futures[future].id))
        except KeyboardInterrupt:
            for f in futures:
                f.cancel()
            raise
        finally:
            store.stop_queued([r.id for r in runs], "The sweep was stopped before this trial ran.")


def train_remote(config_json: str) -> dict[str, Any]:
    """On a Dask worker: train one config and return its metrics and checkpoint bytes."""
    cfg = TrainConfig.from_dict(json.loads(config_json))
    result = fit(cfg)
    checkpoint = None
    if result.history and result.status != "diverged":
        with tempfile.TemporaryDirectory() as tmp:
            path = result.model.save(Path(tmp) / "model.npz", {"config": cfg.to_dict()})
            checkpoint = path.read_bytes()
    return {
        "status": result.status,
        "reason": result.reason,
        "history": [h.to_dict() for h in result.history],
        "best_epoch": result.best_epoch or None,
        "best_val_accuracy": result.best_val_accuracy if result.history else None,
        "test_accuracy": result.test_accuracy,
        "test_loss": result.test_loss,
        "train_seconds": result.seconds,
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
    store.finish(
        run.id,
        outcome["status"],
        outcome["reason"],
        **{
            k: outcome[k]
            for k in (
                "best_epoch",
                "best_val_accuracy",
                "test_accuracy",
                "test_loss",
                "train_seconds",
            )
        },
    )


def run_dask(store: RunStore, runs: list[Run], address: str, report: Report | None = None) -> None:
    """Send the trials to the Dask scheduler at `address`; results come back into the store."""
    from distributed import Client, as_completed  # only a cluster sweep needs Dask

    with Client(address, timeout="20s") as client:
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
