"""Where a training step's time goes: each layer's forward and backward, the loss, the update.

Run it from the repository root:

    python benchmarks/profile_layers.py                          # the cnn preset, batch 128
    python benchmarks/profile_layers.py --preset default --repeats 400

It builds the preset's network, takes one batch of real MNIST training images, and times
every layer's forward and backward pass in `Model.loss_and_grads`, and `optimizer.step`,
inside `compute_settings()` as training runs, for `--repeats` steps after a few untimed
ones. "loss" is what the whole step, timed too, leaves over: the loss and the model's
own bookkeeping. It prints the median and the fastest time of each piece: on a shared,
noisy machine the fastest is the steadier guide to what a piece costs, the median to
what it costs in practice.
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
from core.presets import preset, preset_names
from core.train import compute_settings, setup

WARM_UP = 5


def profile(preset_name: str, batch_size: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of every piece of `repeats` training steps, keyed by a readable name.

    Each layer's `forward` and `backward` are wrapped with a clock on the layer itself, so
    the step is exactly `Model.loss_and_grads` and `optimizer.step`, as in training.
    """
    cfg = preset(preset_name).replace(batch_size=batch_size)
    model, optimizer, _, _ = setup(cfg)
    data = load_dataset()
    x = to_float(data.train_images[:batch_size])
    labels = data.train_labels[:batch_size]
    times: dict[str, list[float]] = {}
    clocked_total = [0.0]  # seconds inside clocked methods so far

    def clocked(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = method(*args, **kwargs)
            seconds = time.perf_counter() - start
            times.setdefault(name, []).append(seconds)
            clocked_total[0] += seconds
            return result

        return run

    for i, layer in enumerate(model.layers):
        name = f"{i:2d} {type(layer).__name__} {model.shapes[i + 1]}"
        layer.forward = clocked(f"{name} forward", layer.forward)
        layer.backward = clocked(f"{name} backward", layer.backward)
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
            times.setdefault("loss", []).append(whole - (clocked_total[0] - before))
            times.setdefault("whole step", []).append(whole)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=preset_names(), default="cnn")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--repeats", type=positive_int, default=100)
    args = parser.parse_args()
    times = profile(args.preset, args.batch_size, args.repeats)
    width = max(len(name) for name in times)
    print(f"{args.preset} preset, batch {args.batch_size}, {args.repeats} steps (ms)")
    print(f"{'piece':<{width}}  {'median':>8}  {'fastest':>8}")
    for name, seconds in times.items():
        median, fastest = statistics.median(seconds) * 1e3, min(seconds) * 1e3
        print(f"{name:<{width}}  {median:8.2f}  {fastest:8.2f}")


if __name__ == "__main__":
    main()
