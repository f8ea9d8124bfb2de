"""The Sweep page's pure logic: its widgets' values -> a sweep spec in the CLI's format, the
estimated time from past runs, and the trials and leaderboard as tables. No Streamlit here.

A spec built here is a plain mapping that `core.sweep_spec.parse_spec` accepts, written as
YAML that `python -m core sweep FILE` runs unchanged; an imported spec comes back as a
`Form` with nothing dropped (settings the page has no widget for ride along in `extra`).
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from core.config import HELP, MNIST_TRAIN_POOL, ConfigError, TrainConfig
from core.presets import PRESETS, preset
from core.run import Run, progress_fraction, slug
from core.sweep_spec import SweepError, SweepSpec, expand, parse_spec, read_spec

# The settings worth varying, in the order offered (a sweep over data_dir or seed is odd).
VARY_FIELDS = [
    "lr", "momentum", "weight_decay", "dropout", "batch_size", "hidden", "optimizer",
    "activation", "epochs", "schedule", "warmup_epochs", "batchnorm", "nesterov", "init",
    "conv", "kernel_size", "arch", "aug_rotate", "aug_shift", "aug_scale", "patience",
]  # fmt: skip
HOWS = {
    "grid": "every value in a list",
    "log_uniform": "random, log scale",
    "uniform": "random, even scale",
    "int_uniform": "random whole number",
    "choice": "random pick from a list",
}
RANGES = ("log_uniform", "uniform", "int_uniform")
METRIC_NAMES = {
    "val_accuracy": "validation accuracy (higher is better)",
    "test_accuracy": "test accuracy (higher is better)",
    "val_loss": "validation loss (lower is better)",
}
DEFAULTS = TrainConfig()
# Seconds per training image per epoch when the store has no finished run of that kind: the
# README's benchmarks on the project's 2-core machine (0.34 s and 11.8 s per 60,000 images).
DEFAULT_RATES = {"mlp": 0.4 / 60_000, "cnn": 12.0 / 60_000}
STARTUP_SECONDS = 3.0  # a worker process importing NumPy and loading MNIST before it trains


class BuildError(ValueError):
    """The page's values cannot make a sweep; the message says why, in plain words."""


def label(name: str) -> str:
    """A setting's name as the page shows it."""
    from dashboard.settings import LABELS  # lazily: that module draws widgets too

    return LABELS.get(name, name)


def is_list_setting(name: str) -> bool:
    return isinstance(getattr(DEFAULTS, name), list)


def is_number_setting(name: str) -> bool:
    value = getattr(DEFAULTS, name)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Axis:
    """One setting to vary: how (a key of HOWS), and its values or its range, as typed."""

    field: str
    how: str = "grid"
    values: str = ""  # for grid and choice: comma-separated (semicolons for layer lists)
    low: str = ""
    high: str = ""


@dataclass
class Form:
    """Everything the page asks for; `extra` keeps what an imported spec has beyond it."""

    name: str = "my-sweep"
    preset: str = "default"
    epochs: int = 5
    train_size: int = 10_000
    axes: list[Axis] = field(default_factory=list)
    trials: int = 4
    seeds: int = 1
    metric: str = "val_accuracy"
    extra_base: dict[str, Any] = field(default_factory=dict)
    draw_seed: int | None = None  # the spec's `seed` (of the random draws), if it had one


# Values as typed -> values of the spec


def separator(name: str) -> str:
    return ";" if is_list_setting(name) else ","


def show_value(value: Any) -> str:
    """A spec value as it is typed on the page (floats exactly, so nothing is lost)."""
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def joined(name: str, values: list[Any]) -> str:
    """Values as typed on the page: the inverse of `parse_values`."""
    return f"{separator(name)} ".join(show_value(v) for v in values)


def parse_values(name: str, text: str) -> list[Any]:
    """The comma- (for layer lists semicolon-) separated values of setting `name`, typed."""
    sep = separator(name)
    parts = [p.strip() for p in str(text).split(sep) if p.strip()]
    if not parts:
        raise BuildError(
            f"{label(name)}: type at least one value"
            + (" (several separated by semicolons, e.g. 128,64; 256)" if sep == ";" else "")
            + (" (several separated by commas, e.g. 0.01, 0.1)" if sep == "," else "")
        )
    values = []
    for part in parts:
        try:
            values.append(getattr(TrainConfig.from_dict({name: part}), name))
        except ConfigError as exc:
            raise BuildError(f"{label(name)}: {exc.message}") from None
    if len({repr(v) for v in values}) < len(values):
        raise BuildError(f"{label(name)}: each value only once, please")
    return values


def parse_number(name: str, text: str, end: str, whole: bool) -> int | float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise BuildError(
            f"{label(name)}: the {end} of the range, {text!r}, is not a number"
        ) from None
    if whole:
        if not value.is_integer():
            raise BuildError(f"{label(name)}: the {end} of the range must be a whole number")
        return int(value)
    return value


def axis_entry(axis: Axis) -> tuple[str, Any]:
    """("grid", values) or ("random", {distribution: arguments}) for one axis."""
    name, how = axis.field, axis.how
    if name not in TrainConfig.__dataclass_fields__:
        raise BuildError(f"{name!r} is not a setting")
    if how == "grid":
        return "grid", parse_values(name, axis.values)
    if how == "choice":
        return "random", {"choice": parse_values(name, axis.values)}
    if how not in RANGES:
        raise BuildError(f"{label(name)}: choose how to vary it")
    if not is_number_setting(name):
        raise BuildError(
            f"{label(name)} is not a number, so it has no range: list its values instead"
        )
    whole = how == "int_uniform"
    low = parse_number(name, axis.low, "start", whole)
    high = parse_number(name, axis.high, "end", whole)
    if not low < high:
        raise BuildError(
            f"{label(name)}: a range goes from a lower to a higher number; "
            f"{show_value(low)} to {show_value(high)} is not one"
        )
    if how == "log_uniform" and low <= 0:
        raise BuildError(f"{label(name)}: a log scale needs a range above 0, not from {low:g}")
    return "random", {how: [low, high]}


def check_name(name: str) -> str:
    """The sweep's name if it is a safe slug (letters, digits, '-' and '_'), else BuildError."""
    name = str(name).strip()
    if not name:
        raise BuildError("Give the sweep a name, e.g. lr-momentum.")
    if slug(name) != name:
        raise BuildError(
            f"The name {name!r} may hold only letters, digits, '-' and '_' (at most 60), "
            f"e.g. {slug(name)!r}."
        )
    return name


def build_raw(form: Form) -> dict[str, Any]:
    """The spec mapping in the CLI's format; BuildError (plain words) when it cannot run."""
    name = check_name(form.name)
    if form.preset not in PRESETS:
        raise BuildError(f"The base preset {form.preset!r} is not one of {', '.join(PRESETS)}.")
    if not form.axes:
        raise BuildError("Choose at least one setting to vary.")
    grid: dict[str, Any] = {}
    random: dict[str, Any] = {}
    for axis in form.axes:
        section, entry = axis_entry(axis)
        (grid if section == "grid" else random)[axis.field] = entry
    base = {"preset": form.preset, **form.extra_base}
    base.update(epochs=int(form.epochs), train_size=int(form.train_size))
    raw: dict[str, Any] = {"name": name, "base": base}
    if grid:
        raw["grid"] = grid
    if random:
        raw["random"] = random
        raw["trials"] = int(form.trials)
    raw["seeds"] = int(form.seeds)
    raw["metric"] = form.metric
    if form.draw_seed is not None:
        raw["seed"] = form.draw_seed
    check_raw(raw)
    return raw


def check_raw(raw: dict[str, Any]) -> tuple[SweepSpec, list[TrainConfig]]:
    """The spec and its runs, exactly as the CLI would make them; BuildError if it refuses."""
    try:
        spec = parse_spec(raw)
        return spec, expand(spec)
    except SweepError as exc:
        raise BuildError(f"The sweep cannot run: {exc}") from None


def spec_yaml(raw: dict[str, Any]) -> str:
    """The spec as YAML text, keys in the page's order."""
    return yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, allow_unicode=True)


def form_from_raw(raw: dict[str, Any]) -> Form:
    """The page's values for a checked spec mapping (an imported file); nothing is dropped."""
    spec = parse_spec(raw)  # raises SweepError in the CLI's words
    grid, random = raw.get("grid") or {}, raw.get("random") or {}
    both = sorted(set(grid) & set(random))
    if both:
        raise BuildError(
            f"This spec both lists and draws {', '.join(both)}; the page cannot show that. "
            "Run it with `python -m core sweep FILE`."
        )
    base = dict(raw.get("base") or {})
    preset_name = base.pop("preset", "default")
    start = preset(preset_name)
    epochs = base.pop("epochs", start.epochs)
    train_size = base.pop("train_size", start.train_size)
    axes = [Axis(k, "grid", joined(k, vs)) for k, vs in grid.items()]
    for key, dist in random.items():
        kind, args = next(iter(dist.items()))
        if kind == "choice":
            axes.append(Axis(key, "choice", joined(key, args)))
        else:
            axes.append(Axis(key, kind, "", show_value(args[0]), show_value(args[1])))
    return Form(
        name=spec.name,
        preset=preset_name,
        epochs=int(TrainConfig.from_dict({"epochs": epochs}).epochs),
        train_size=int(TrainConfig.from_dict({"train_size": train_size}).train_size),
        axes=axes,
        trials=spec.trials,
        seeds=spec.seeds,
        metric=spec.metric,
        extra_base=base,
        draw_seed=raw.get("seed"),
    )


def read_upload(filename: str, data: bytes) -> dict[str, Any]:
    """An uploaded YAML / JSON spec, read and checked exactly as the CLI reads a file."""
    with tempfile.TemporaryDirectory() as tmp:
        # Under its own name, so the CLI's messages name the file the teacher chose.
        path = Path(tmp) / (Path(filename).name or "spec.yaml")
        path.write_bytes(data)
        try:
            raw = read_spec(path)
        except SweepError as exc:
            raise BuildError(str(exc).replace(str(path), path.name)) from None
    try:
        parse_spec(raw)
    except SweepError as exc:
        raise BuildError(f"{Path(filename).name}: {exc}") from None
    return raw


# The estimate


def training_images(cfg: TrainConfig) -> int:
    """Images one epoch of `cfg` trains on (MNIST's pool less the validation images if all)."""
    return cfg.train_size or max(MNIST_TRAIN_POOL - cfg.val_size, 1)


def past_rates(runs: list[Run], epochs: dict[int, int]) -> dict[str, list[float]]:
    """Seconds per training image per epoch of the finished MNIST runs, by architecture.

    `epochs` gives each run's number of trained epochs (early stopping may cut a run short).
    """
    rates: dict[str, list[float]] = {}
    for run in runs:
        n = epochs.get(run.id, 0)
        if run.status != "finished" or not run.train_seconds or not n or run.config.data_dir:
            continue
        rate = run.train_seconds / (training_images(run.config) * n)
        rates.setdefault(run.config.arch, []).append(rate)
    return rates


@dataclass
class Estimate:
    """How long a sweep should take, and what that is based on."""

    seconds: float
    runs: int
    workers: int
    rates: dict[str, float]  # seconds per image per epoch used, by architecture
    past: dict[str, int]  # how many past runs each rate is the median of (0: the default)

    @property
    def basis(self) -> str:
        """How the estimate was made, in words."""
        parts = []
        for arch, rate in self.rates.items():
            name = arch.upper()
            if self.past[arch]:
                n = self.past[arch]
                parts.append(
                    f"{name}: {rate * 1e6:.3g} µs per training image per epoch, the median of "
                    f"{n} finished {name} run{'s' if n > 1 else ''} in the store"
                )
            else:
                parts.append(
                    f"{name}: no finished {name} run in the store yet, so "
                    f"{rate * 1e6:.3g} µs per training image per epoch is assumed "
                    "(the project's benchmark on a 2-core machine)"
                )
        return (
            "; ".join(parts)
            + f". The training time is shared by {self.workers} worker"
            + ("s" if self.workers > 1 else "")
            + f", plus {STARTUP_SECONDS:.0f} s for the workers to start."
        )


def estimate(configs: list[TrainConfig], rates: dict[str, list[float]], workers: int) -> Estimate:
    """The time for `configs` on `workers` parallel workers, from past runs' median speed."""
    used = {
        arch: statistics.median(rates[arch]) if rates.get(arch) else DEFAULT_RATES[arch]
        for arch in sorted({c.arch for c in configs})
    }
    past = {arch: len(rates.get(arch) or []) for arch in used}
    total = sum(used[c.arch] * training_images(c) * c.epochs for c in configs)
    workers = max(1, min(int(workers), len(configs) or 1))
    return Estimate(total / workers + STARTUP_SECONDS, len(configs), workers, used, past)


def duration(seconds: float) -> str:
    """A time as people say it: 40 s, 3 min, 1 h 20 min."""
    if seconds < 60:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


# The tables


def trials_table(runs: list[Run]) -> pd.DataFrame:
    """One row per trial: its status, how far it is, and the time it still needs."""
    rows = []
    for run in runs:
        p = run.progress if run.status == "running" else {}
        done = 1.0 if run.status == "finished" else progress_fraction(p) if p else 0.0
        rows.append(
            {
                "run": run.id,
                "trial": run.name,
                "status": "paused" if run.paused else run.status.replace("_", " "),
                "progress": min(done, 1.0),
                "epoch": f"{p['epoch']} of {p['epochs']}" if p.get("epochs") else "",
                "best validation accuracy": run.best_val_accuracy,
                "time left (s)": None if run.paused else p.get("eta"),
            }
        )
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS)


TRIAL_COLUMNS = [
    "run", "trial", "status", "progress", "epoch", "best validation accuracy", "time left (s)",
]  # fmt: skip


def leaderboard(rows: list[dict[str, Any]], metric: str) -> pd.DataFrame:
    """`core.sweep.summary`'s rows as a table, rank first, settings as shown on the page."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, list)).any():
            frame[column] = frame[column].map(show_value)
    first = ["rank", "run_id", "status", metric, "seconds"]
    rest = [c for c in frame.columns if c not in first and c != "name"]
    return frame[first + rest].rename(columns={"run_id": "run"})


def help_for(name: str) -> str:
    """The setting's one line of help from core/config.py."""
    return HELP.get(name, "")
