"""Where a training step's time goes: each layer's forward and backward, the loss, the update.

Run it from the repository root:

    python benchmarks/profile_layers.py                          # the cnn preset, batch 128
    python benchmarks/profile_layers.py --one-core               # the same on one thread
    python benchmarks/profile_layers.py --preset default --repeats 400

It builds the preset's network, takes one batch of real MNIST training images, and times
every layer's forward and backward pass in `Model.loss_and_grads`, and `optimizer.step`,
inside `compute_settings()` as training runs, for `--repeats` steps after a few untimed
ones. It prints the median and the fastest time of each piece: on a shared, noisy machine
the fastest is the steadier guide to what a piece costs, the median to what it costs in
practice.

A convolutional network's step splits its batch into two halves that run through the
network at once, one per thread (core/model.py); there each piece is timed per half, on
its own thread, so the pieces add up to about twice the whole step, and "loss" (what the
whole step leaves over: the loss and the model's own bookkeeping) is not shown.
`--one-core` keeps the batch whole on one thread, where the pieces and "loss" add up to
the step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `core`, `benchmarks` as a script

from benchmarks.timing import positive_int
from core.data import load_dataset, to_float
from core.layers import conv
from core.presets import preset, preset_names
from core.train import compute_settings, setup

WARM_UP = 5


def profile(preset_name: str, batch_size: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of every piece of `repeats` training steps, keyed by a readable name.

    Each layer's class is swapped for a subclass whose `forward` and `backward` carry a
    clock, so the layer copies a split step makes (core/model.py) are timed too, and the
    step is exactly `Model.loss_and_grads` and `optimizer.step`, as in training.
    """
    cfg = preset(preset_name).replace(batch_size=batch_size)
    model, optimizer, _, _ = setup(cfg)
    data = load_dataset()
    x = to_float(data.train_images[:batch_size])
    labels = data.train_labels[:batch_size]
    times: dict[str, list[float]] = {}
    clocked_total = [0.0]  # seconds inside clocked methods so far (both threads)

    def clocked(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = method(*args, **kwargs)
            seconds = time.perf_counter() - start
            times.setdefault(name, []).append(seconds)  # one list.append: thread-safe
            clocked_total[0] += seconds
            return result

        return run

    for i, layer in enumerate(model.layers):
        name = f"{i:2d} {type(layer).__name__} {model.shapes[i + 1]}"
        kind = type(layer)
        methods = {
            "forward": clocked(f"{name} forward", kind.forward),
            "backward": clocked(f"{name} backward", kind.backward),
        }
        layer.__class__ = type(kind.__name__, (kind,), methods)
    step = clocked("optimizer step", optimizer.step)

    with compute_settings():
        for k in range(WARM_UP + repeats):
            if k == WARM_UP:
                times.clear()
            before = clocked_total[0]
            begin = time.perf_counter()
            model.loss_and_grads(x, labels)
            step(model.params, cfg.lr)
            whole = time.perf_counter() - begin
            if len(conv.halves(batch_size)) == 1 or not model._on_copies:
                times.setdefault("loss", []).append(whole - (clocked_total[0] - before))
            times.setdefault("whole step", []).append(whole)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=preset_names(), default="cnn")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--repeats", type=positive_int, default=100)
    parser.add_argument(
        "--one-core", action="store_true", help="keep every batch whole, on one thread"
    )
    args = parser.parse_args()
    conv.set_two_cores(not args.one_core)
    times = profile(args.preset, args.batch_size, args.repeats)
    width = max(len(name) for name in times)
    split = len(times[next(iter(times))]) > args.repeats  # two halves per step
    where = "each piece per half, the halves on two threads" if split else "one thread"
    print(f"{args.preset} preset, batch {args.batch_size}, {args.repeats} steps, {where} (ms)")
    print(f"{'piece':<{width}}  {'median':>8}  {'fastest':>8}")
    for name, seconds in times.items():
        median, fastest = statistics.median(seconds) * 1e3, min(seconds) * 1e3
        print(f"{name:<{width}}  {median:8.2f}  {fastest:8.2f}")


if __name__ == "__main__":
    main()
