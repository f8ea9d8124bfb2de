"""Benchmark: how fast a paused run stops, and what the live view costs the training.

Run it from the repository root:

    python benchmarks/bench_control.py              # 5 repeats of each, interleaved
    python benchmarks/bench_control.py --repeats 9

Control latency: the default preset's MLP trains as a stored run (train_run, exactly what
the background trainer does); after a second a pause is sent through the store, and the
latency is the time from the send to the moment the trainer held (its pause event). The
target is one batch plus 0.3 s.

Live view: the same run for 3 epochs, once as the trainer runs it (the
live view rewritten twice a second, and a watcher process reading the store and the view
once a second as the Train page does; it is started, and has imported what it needs, before
the run starts) and once with neither; the target is at most 5 % more training time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `core` when run as a script

from core import control, live, recorder
from core.data import load_dataset
from core.presets import preset
from core.runs import RunStore

LATENCY_SLACK = 0.3  # seconds beyond one batch
LIVE_COST = 0.05

WATCHER = """
import sys, time
from core.live import read
from core.runs import RunStore
store = RunStore(sys.argv[1]); run_id = int(sys.argv[2])
print("ready", flush=True)  # imported: what follows is only the watching
while not store.get(run_id).active:
    time.sleep(0.05)
while True:
    run = store.get(run_id)
    if not run.active:
        break
    store.events(run_id); store.epochs(run_id); store.batch_losses(run_id); read(run.live_view)
    time.sleep(1.0)
"""


def latency(data, root: Path) -> tuple[float, float]:
    """(seconds from sending a pause to the trainer holding, seconds per batch)."""
    store = RunStore(root)
    run = store.create(preset("default"), "latency", status="running", pid=os.getpid())
    thread = threading.Thread(target=recorder.train_run, args=(store, run, data))
    thread.start()
    time.sleep(1.5)
    sent = time.time()
    control.send(store, run.id, control.command("pause"))
    while not store.get(run.id).paused:
        time.sleep(0.01)
    held = next(e for e in store.events(run.id) if e["kind"] == "pause")["time"]
    progress = store.get(run.id).progress
    per_batch = progress["elapsed"] / progress["step"]
    control.send(store, run.id, control.command("stop"))
    thread.join()
    return held - sent, per_batch


def training_time(data, root: Path, watched: bool) -> float:
    """Seconds of training of a 3-epoch run, with the live view and a watcher or without."""
    store = RunStore(root)
    cfg = preset("default").replace(epochs=3)
    run = store.create(cfg, "live", status="running", pid=os.getpid())
    if watched:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        watcher = subprocess.Popen(
            [sys.executable, "-c", WATCHER, str(root), str(run.id)], env=env, stdout=subprocess.PIPE
        )
        watcher.stdout.readline()  # its start-up is not part of the watching
        seconds = recorder.train_run(store, run, data).seconds
        watcher.wait()
        return seconds
    interval = live.INTERVAL
    live.INTERVAL = float("inf")  # the view is written at the start and each epoch's end only
    try:
        return recorder.train_run(store, run, data).seconds
    finally:
        live.INTERVAL = interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = load_dataset()
    lat, batch, with_view, without = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            seconds, per_batch = latency(data, Path(tmp) / f"lat{i}")
            lat.append(seconds)
            batch.append(per_batch)
            without.append(training_time(data, Path(tmp) / f"off{i}", watched=False))
            with_view.append(training_time(data, Path(tmp) / f"on{i}", watched=True))
    med = statistics.median
    print(
        f"control latency: median {med(lat):.3f} s (range {min(lat):.3f}-{max(lat):.3f}), "
        f"one batch {med(batch) * 1000:.1f} ms; target <= one batch + {LATENCY_SLACK} s: "
        f"{'met' if med(lat) <= med(batch) + LATENCY_SLACK else 'NOT met'}"
    )
    ratio = med(with_view) / med(without)
    print(
        f"live view and a watcher: {med(with_view):.2f} s against {med(without):.2f} s "
        f"without (medians of {args.repeats}), {100 * (ratio - 1):+.1f} %; target <= "
        f"{100 * LIVE_COST:.0f} %: {'met' if ratio <= 1 + LIVE_COST else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
