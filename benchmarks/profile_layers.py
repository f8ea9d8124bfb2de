"""Where a training step's time goes: each layer's forward and backward, the loss, the update.

Run it from the repository root:

    python benchmarks/profile_layers.py                          # the cnn preset, batch 128
    python benchmarks/profile_layers.py --preset default --repeats 400

It builds the preset's network, takes one batch of real MNIST training images, and times
every piece of `Model.loss_and_grads` plus `optimizer.step` separately, inside
`compute_settings()` as training runs, for `--repeats` steps after a few untimed ones. It
prints the median and the fastest time of each piece: on a shared, noisy machine the
fastest is the steadier guide to what a piece costs, the median to what it costs in
practice. The pieces add up to a little less than a whole step, which is timed too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `core`, `benchmarks` as a script

from benchmarks.timing import positive_int
from core.data import load_dataset, to_float
from core.losses import softmax_cross_entropy
from core.presets import preset, preset_names
from core.train import compute_settings, setup

WARM_UP = 5


def profile(preset_name: str, batch_size: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of every piece of `repeats` training steps, keyed by a readable name."""
    cfg = preset(preset_name).replace(batch_size=batch_size)
    model, optimizer, _, _ = setup(cfg)
    data = load_dataset()
    x = to_float(data.train_images[:batch_size])
    labels = data.train_labels[:batch_size]
    layers = model.layers
    first = model._first_trainable  # layers before it need no backward pass
    names = [f"{i:2d} {type(lyr).__name__} {model.shapes[i + 1]}" for i, lyr in enumerate(layers)]
    times: dict[str, list[float]] = {}

    def timed(name: str, start: float) -> float:
        now = time.perf_counter()
        times.setdefault(name, []).append(now - start)
        return now

    with compute_settings():
        for step in range(WARM_UP + repeats):
            if step == WARM_UP:
                times.clear()
            begin = t = time.perf_counter()
            h = x
            for name, layer in zip(names, layers, strict=True):
                h = layer.forward(h, training=True)
                t = timed(f"{name} forward", t)
            _, grad = softmax_cross_entropy(h, labels)
            t = timed("loss", t)
            for i in range(len(layers) - 1, first - 1, -1):
                grad = layers[i].backward(grad, need_dx=i > first)
                t = timed(f"{names[i]} backward", t)
            optimizer.step(model.params, cfg.lr)
            t = timed("optimizer step", t)
            timed("whole step", begin)
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
