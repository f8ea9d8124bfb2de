"""A sweep spec: what to try, checked before anything runs, and expanded into trials.

A spec (YAML or JSON) names a base config, a grid and/or random ranges, the number of
random trials and the metric to rank by:

    name: lr-momentum
    base: {preset: default, epochs: 5, train_size: 10000}
    grid: {momentum: [0.0, 0.9]}
    random: {lr: {log_uniform: [0.01, 2.0]}}
    trials: 4              # random draws per grid point
    seeds: 3               # train each trial with 3 seeds, to compare groups (default 1)
    metric: val_accuracy   # or test_accuracy, or val_loss (lower is better)

The CLI's flags (`--set`, `--grid`, `--random`, ...) are laid over a spec file, or make
one on their own (`spec_from_flags`). Running a sweep is core/sweep.py.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .config import ConfigError, TrainConfig, problems
from .presets import PRESETS, preset
from .run import slug

METRICS = {"val_accuracy": True, "test_accuracy": True, "val_loss": False}  # higher is better?
DISTRIBUTIONS = ("log_uniform", "uniform", "int_uniform", "choice")
MAX_TRIALS = 1000
MAX_SEEDS = 100
MAX_RUNS = 10_000  # trials × seeds: a bound on what one spec may queue
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
    seeds: int = 1  # each trial trained with the base's seed, seed + 1, ... seed + seeds - 1


def parse_spec(raw: dict[str, Any]) -> SweepSpec:
    """A SweepSpec from a parsed YAML / JSON mapping, with every field checked."""
    _check_sections(raw)
    known = {"name", "base", "grid", "random", "trials", "metric", "seed", "seeds"}
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
    seeds = _whole("seeds", raw.get("seeds", 1), 1, MAX_SEEDS)
    if seeds > 1 and ("seed" in grid or "seed" in random):
        raise SweepError("seeds repeats every trial with its own seeds: no grid or random seed")
    name = raw.get("name") or "sweep"
    if not isinstance(name, (str, int)) or isinstance(name, bool):
        raise SweepError(f"name must be text, got {_brief(name)}")
    return SweepSpec(slug(str(name)), base, grid, random, trials, metric, seed, seeds)


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
    """Every trial's config: the grid's product, each with `trials` seeded random draws, each
    of those with `seeds` seeds."""
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
            for seed in range(cfg.seed, cfg.seed + spec.seeds):
                repeat = cfg.replace(seed=seed)
                bad = problems(repeat)
                if bad:
                    raise SweepError(f"trial {len(configs) + 1} ({values}): {bad[0]}")
                configs.append(repeat)
    if len(configs) > MAX_RUNS:
        raise SweepError(f"the sweep has {len(configs)} runs; at most {MAX_RUNS} are allowed")
    return configs


def varied_keys(configs: list[TrainConfig]) -> list[str]:
    """The settings that differ between the trials."""
    dicts = [c.to_dict() for c in configs]
    return [k for k in dicts[0] if len({json.dumps(d[k]) for d in dicts}) > 1] if dicts else []


def trial_name(spec: SweepSpec, cfg: TrainConfig, keys: list[str]) -> str:
    """A trial's run name: the sweep's name and its values of the varied settings."""
    parts = [f"{k}={_short(getattr(cfg, k))}" for k in keys]
    return f"{spec.name} " + " ".join(parts) if parts else spec.name


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def _pairs(items: Sequence[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SweepError(f"{flag} takes KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def add_spec_flags(parser: argparse.ArgumentParser) -> None:
    """The `sweep` command's arguments that make its spec: a spec file, and flags over it."""
    parser.add_argument("spec", nargs="?", type=Path, help="sweep spec file (YAML or JSON)")
    parser.add_argument("--name", help="the sweep's name (its trials are tagged with it)")
    parser.add_argument("--preset", help="base preset (default: default)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a base setting, e.g. --set epochs=5",
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="try every value, e.g. --grid momentum=0,0.9",
    )
    parser.add_argument(
        "--random",
        action="append",
        default=[],
        metavar="KEY=DIST:A:B",
        help="draw values: log_uniform:0.01:1, uniform:0:0.5, int_uniform:1:4, choice:relu;tanh",
    )
    parser.add_argument("--trials", type=int, help="random draws per grid point (default 1)")
    parser.add_argument(
        "--metric", help="rank by val_accuracy (default), test_accuracy or val_loss"
    )
    parser.add_argument("--seed", type=int, help="seed of the random draws (default 0)")
    parser.add_argument(
        "--seeds", type=int, help="train every trial with this many seeds (default 1)"
    )


def spec_from_flags(args: argparse.Namespace) -> SweepSpec:
    """The spec file (if any) with the flags of `add_spec_flags` laid over it, checked."""
    raw: dict[str, Any] = read_spec(args.spec) if args.spec else {}
    base = dict(raw.get("base") or {})
    base.update(_pairs(args.set, "--set"))
    if args.preset:
        base["preset"] = args.preset
    grid = dict(raw.get("grid") or {})
    for key, values in _pairs(args.grid, "--grid").items():
        grid[key] = (
            [yaml.safe_load(v) for v in values.split(",")]
            if key not in ("hidden", "conv")
            else values.split(";")
        )
    random = dict(raw.get("random") or {})
    for key, text in _pairs(args.random, "--random").items():
        kind, _, rest = text.partition(":")
        if kind == "choice":
            random[key] = {kind: rest.split(";")}
        else:
            random[key] = {kind: [yaml.safe_load(v) for v in rest.split(":")]}
    raw.update(base=base, grid=grid, random=random)
    for key in ("name", "trials", "metric", "seed", "seeds"):
        if getattr(args, key) is not None:
            raw[key] = getattr(args, key)
    if not raw.get("grid") and not raw.get("random"):
        raise SweepError("a sweep needs a spec file, or --grid / --random flags")
    return parse_spec(raw)
