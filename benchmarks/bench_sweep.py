"""Benchmark: a sweep of 8 short MLP trials, one worker process against one per core.

Run it from the repository root:

    python benchmarks/bench_sweep.py              # 3 repeats of each, interleaved
    python benchmarks/bench_sweep.py --repeats 5 --epochs 3

Each repeat runs the same 8 trials (the default preset, 4 learning rates x 2 momenta, a few
epochs on a 20,000-image subset) into a fresh run store, once with `--workers 1` and once
with one worker per core, timing the whole `run_local` call (worker start-up included).
The report gives the medians and the ratio parallel / sequential; the target on a 2-core
machine is <= 0.6.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `core` when run as a script

from core.runs import RunStore
from core.sweep import plan, run_local
from core.sweep_spec import parse_spec

TARGET = 0.6


def one_sweep(workers: int, epochs: int) -> float:
    """Seconds to run the 8-trial sweep with `workers` processes, into a fresh store."""
    spec = parse_spec({
        "name": "bench",
        "base": {"preset": "default", "epochs": epochs, "train_size": 20_000},
        "grid": {"lr": [0.1, 0.3, 0.6, 1.0], "momentum": [0.5, 0.9]},
    })  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp)
        runs, _ = plan(store, spec)
        start = time.perf_counter()
        run_local(store, runs, workers)
        seconds = time.perf_counter() - start
        assert all(r.status == "finished" for r in store.runs()), "a trial did not finish"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"8 trials, {args.epochs} epochs each on 20,000 images; {cores} cores")
    times: dict[int, list[float]] = {1: [], cores: []}
    for r in range(args.repeats):
        for workers in times:  # interleaved: the machine may be shared and noisy
            times[workers].append(one_sweep(workers, args.epochs))
        print(f"  repeat {r + 1}: " + ", ".join(f"{w} worker(s) {t[-1]:.1f} s"
                                              for w, t in times.items()))  # fmt: skip
    sequential, parallel = (statistics.median(t) for t in times.values())
    ratio = parallel / sequential
    print(
        f"median: 1 worker {sequential:.1f} s, {cores} workers {parallel:.1f} s, "
        f"ratio {ratio:.2f} (target <= {TARGET}: {'MET' if ratio <= TARGET else 'NOT MET'})"
    )


if __name__ == "__main__":
    main()
