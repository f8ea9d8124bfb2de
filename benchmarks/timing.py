"""What the benchmarks share: the environment report, interleaved timing, medians, the table.

A benchmark script defines its methods, each a function of the batch size that builds its
model and data, then returns the seconds of one timed epoch, and its own targets. This
module times the methods interleaved after a warm-up, takes medians and ratios, prints the
table and handles `--repeats` and `--json`, so every benchmark measures and reports alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.train import compute_settings, setup, train_steps

try:
    import torch
except Exception as exc:  # not installed, or installed but broken: the benchmarks go on
    torch = None
    TORCH_MISSING = f"{type(exc).__name__}: {exc}"
else:
    TORCH_MISSING = ""

Runner = Callable[[int], float]  # batch size -> seconds for one timed epoch
Times = dict[int, dict[str, list[float]]]  # batch size -> method -> seconds of each repeat
Results = dict[str, dict[str, Any]]  # str(batch size) -> medians, samples and ratios
Pair = tuple[str, str]  # (a, b): the ratio of method a's median to method b's
NOISY_SPREAD = 2.0  # slowest / fastest repeat above which the report warns of noise


# --- environment --------------------------------------------------------------------------


def time_our_epoch(
    data: Any, cfg: Any, n_images: int | None = None, augmented: bool = True
) -> float:
    """Seconds for one epoch of exactly `core.train.fit`'s training steps (no evaluation)."""
    model, optimizer, rng, transform = setup(cfg, len(data.class_names))
    indices = np.arange(n_images or len(data.train_labels))
    with compute_settings():  # fit's BLAS threads and denormal flushing
        start = time.perf_counter()
        for _ in train_steps(model, optimizer, cfg, data.train_images, data.train_labels,
                             indices, rng, transform if augmented else None, epoch=0):  # fmt: skip
            pass
        return time.perf_counter() - start


def blas_summary() -> str:
    """A one-line description of NumPy's BLAS, e.g. 'scipy-openblas 0.3.31 (Haswell ...)'."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # an old NumPy or an unusual build: fall back to nothing
        return "unknown"
    text = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    config = blas.get("openblas configuration")
    return f"{text} ({config})" if config else text


def cpu_model() -> str:
    """The processor's name from /proc/cpuinfo on Linux, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Versions, CPUs and thread settings: what a reader needs to compare two runs."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_summary(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu": cpu_model(),
        "thread_env": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
            if k in os.environ
        },
        "torch": None,
        "torch_threads": None,
        "torch_mkl": None,
    }
    if torch is not None:
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
        env["torch_mkl"] = torch.backends.mkl.is_available()
    return env


def print_environment(env: dict[str, Any]) -> None:
    print(f"python {env['python']}, CPU: {env['cpu']}")
    print(f"numpy {env['numpy']}, BLAS: {env['blas']}")
    print(f"CPUs: {env['cpu_count']} ({env['cpus_usable']} usable by this process)")
    print(f"thread variables: {env['thread_env'] or 'none set'}")
    if torch is not None:
        blas = "MKL" if env["torch_mkl"] else "no MKL"
        print(f"torch {env['torch']}, {env['torch_threads']} threads (its default), {blas}")
    else:
        print(f"torch: not importable ({TORCH_MISSING}); the PyTorch reference is skipped")


# --- timing and summary -------------------------------------------------------------------


def run_all(runners: dict[str, Runner], batch_sizes: Sequence[int], repeats: int) -> Times:
    """Time every method at every batch size `repeats` times, interleaving the methods.

    Interleaving spreads a busy spell of a shared machine over all methods instead of
    landing on whichever happened to run then.
    """
    print(f"\ntiming {', '.join(runners)} (after one warm-up epoch each)", flush=True)
    for bs in batch_sizes:
        for runner in runners.values():
            runner(bs)  # untimed warm-up: imports, thread pools, allocator, caches
    times: Times = {bs: {name: [] for name in runners} for bs in batch_sizes}
    for r in range(repeats):
        for bs in batch_sizes:
            for name, runner in runners.items():
                times[bs][name].append(runner(bs))
            line = ", ".join(f"{name} {times[bs][name][-1]:.3f} s" for name in runners)
            print(f"  repeat {r + 1}/{repeats}, batch {bs}: {line}", flush=True)
    return times


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratio_key(pair: Pair) -> str:
    return f"{pair[0]}_over_{pair[1]}"


def medians_and_ratios(
    times: Times, methods: Sequence[str], ratios: Sequence[tuple[str, str]]
) -> Results:
    """Per batch size: the median of every method (None if it did not run) and the ratios.

    `methods` lists every method the benchmark knows, so a skipped one (PyTorch missing)
    still appears, as None, and the JSON keeps one shape.
    """
    results: Results = {}
    for bs, by_method in times.items():
        medians = {m: statistics.median(by_method[m]) if m in by_method else None for m in methods}
        results[str(bs)] = {
            "median_s": medians,
            "samples_s": by_method,
            **{ratio_key(pair): ratio(medians[pair[0]], medians[pair[1]]) for pair in ratios},
        }
    return results


# --- report -------------------------------------------------------------------------------


def fmt(value: float | None, width: int, decimals: int) -> str:
    text = "n/a" if value is None else f"{value:.{decimals}f}"
    return text.rjust(width)


def verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("MET" if met else "NOT MET")


def print_table(
    results: Results, methods: Sequence[str], ratios: Sequence[Pair], images: int, repeats: int
) -> None:
    """One row per batch size: each method's median seconds, then each ratio; then noise."""
    print(f"\nmedian seconds per epoch of {images:,} images over {repeats} repeats")
    labels = [*methods, *(f"{a}/{b}" for a, b in ratios)]
    widths = [max(9, len(label) + 1) for label in labels]
    print("batch".rjust(6), *(label.rjust(w) for label, w in zip(labels, widths, strict=True)))
    for bs, res in results.items():
        # Seconds to the millisecond, ratios to two decimals.
        values = [(res["median_s"][m], 3) for m in methods]
        values += [(res[ratio_key(pair)], 2) for pair in ratios]
        print(bs.rjust(6), *(fmt(v, w, d) for (v, d), w in zip(values, widths, strict=True)))
    noisy = [
        f"{method} at batch {bs}"
        for bs, res in results.items()
        for method, samples in res["samples_s"].items()
        if max(samples) > NOISY_SPREAD * min(samples)
    ]
    if noisy:
        print(
            f"note: the slowest repeat took over {NOISY_SPREAD:g}x the fastest for "
            f"{', '.join(noisy)}; the machine was busy. Medians resist a few such outliers; "
            "if there are many, rerun with more --repeats."
        )


def print_json(env: dict[str, Any], summary: dict[str, Any]) -> None:
    """The whole run as one JSON object on the last line, for scripts and the README."""
    print(json.dumps({"environment": env, **summary}))


# --- command line -------------------------------------------------------------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def add_timing_arguments(parser: argparse.ArgumentParser, repeats: int) -> None:
    """--repeats (default `repeats`) and --json, the options every benchmark has."""
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=repeats,
        help=f"timed epochs per method (default: {repeats})",
    )
    parser.add_argument(
        "--json", action="store_true", help="end with one JSON object of all medians and ratios"
    )
