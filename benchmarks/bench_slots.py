"""Benchmark: two queued dashboard runs on the background trainer, two slots against one.

Run it from the repository root:

    python benchmarks/bench_slots.py              # 3 repeats of each, interleaved
    python benchmarks/bench_slots.py --repeats 5 --epochs 10

Each repeat queues the same two runs (the default preset's MLP, 20 epochs on all 50,000
training images, about 10 s each, seeds 0 and 1) into a fresh run store, sets the store's
"trainer_slots" to 2 or to 1, calls `ensure_worker` as the dashboard does and waits until
both runs have finished: the time is that of the whole queue, worker start-up and data
loading included. The report gives the medians and the ratio two slots / one slot; the
target on a 2-core machine is <= 0.6.
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

from core.presets import preset
from core.runs import RunStore
from core.worker import SLOTS_SETTING, ensure_worker, worker_running

TARGET = 0.6
RUNS = 2


def one_queue(slots: int, epochs: int, train_size: int) -> float:
    """Seconds for the trainer with `slots` slots to train the two runs, into a fresh store."""
    cfg = preset("default").replace(epochs=epochs, train_size=train_size)
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp)
        store.set_setting(SLOTS_SETTING, str(slots))
        ids = [store.create(cfg.replace(seed=seed), f"bench-{seed}").id for seed in range(RUNS)]
        start = time.perf_counter()
        ensure_worker(store)
        while any(store.get(run_id).active for run_id in ids):
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        runs = [store.get(run_id) for run_id in ids]
        assert all(r.status == "finished" for r in runs), [(r.status, r.message) for r in runs]
        while worker_running(store):  # let the workers exit before their store is removed
            time.sleep(0.05)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--train-size", type=int, default=0, help="0: all training images")
    args = parser.parse_args()
    images = f"{args.train_size:,}" if args.train_size else "all"
    print(f"{RUNS} runs, {args.epochs} epochs each on {images} images; {os.cpu_count()} cores")
    times: dict[int, list[float]] = {1: [], 2: []}
    for r in range(args.repeats):
        for slots in times:  # interleaved: the machine may be shared and noisy
            times[slots].append(one_queue(slots, args.epochs, args.train_size))
        print(f"  repeat {r + 1}: " + ", ".join(f"{s} slot(s) {t[-1]:.1f} s"
                                              for s, t in times.items()))  # fmt: skip
    one, two = (statistics.median(t) for t in times.values())
    ratio = two / one
    print(
        f"median: 1 slot {one:.1f} s, 2 slots {two:.1f} s, "
        f"ratio {ratio:.2f} (target <= {TARGET}: {'MET' if ratio <= TARGET else 'NOT MET'})"
    )


if __name__ == "__main__":
    main()
