"""Benchmark: one training epoch of the 784-128-64-10 MLP on the 60,000 MNIST training images.

Run it from the repository root:

    python benchmarks/bench_mlp.py                  # batch sizes 64 and 128, 5 repeats
    python benchmarks/bench_mlp.py --batch-sizes 128 --repeats 9 --json

Each batch size is timed four ways, with time.perf_counter around the whole epoch loop:

- ours: exactly `core.train.fit`'s training steps for the `default` preset (its
  `train_steps`: shuffled, prefetched batches converted from uint8, forward, backward, the
  SGD update). Fit's bookkeeping and the validation evaluation are not timed.
- ours_augmented: the same with the `mlp` preset's augmentation (random rotation, shift and
  scale of every batch), to show what augmentation costs an epoch (target: at most 25 %).
- pytorch: the same network in PyTorch on the CPU in float32, CrossEntropyLoss and
  torch.optim.SGD with momentum 0.9, the same batch size and the same uint8 images converted
  per batch; skipped with a note when torch cannot be imported (`pip install -r
  requirements-bench.txt`).
- floor: only the eight matrix products the MLP needs per batch (three forward, five
  backward — no input gradient), on preallocated float32 arrays of the right shapes, with no
  elementwise work at all: the time NumPy's BLAS cannot beat.

Every model, optimizer and array is built before its clock starts. After one untimed warm-up
of each method at each batch size, the methods are interleaved within every repeat (ours,
pytorch, floor, ours, ...) because the machine may be shared and noisy, and the report gives
the median seconds per epoch, the ratios ours/pytorch and ours/floor, and whether the targets
at batch 128 are met: ours <= 0.8 x pytorch (issue 17, which withdrew the earlier 0.5 x
pytorch and 1.3 x floor: the network stays plain NumPy). `--json` adds one JSON
object with every median and ratio as the last line of the output.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `core`, `benchmarks` as a script

from benchmarks.timing import (
    Runner,
    Times,
    add_timing_arguments,
    environment,
    fmt,
    medians_and_ratios,
    positive_int,
    print_environment,
    print_json,
    print_table,
    run_all,
    time_our_epoch,
    torch,
    verdict,
)
from core.data import Dataset, load_dataset
from core.presets import preset

F32 = np.float32
N_IMAGES = 60_000
LAYER_SIZES = (784, 128, 64, 10)
TARGET_BATCH = 128
TARGET_VS_TORCH = 0.8  # ours / pytorch at batch 128
TARGET_AUGMENT = 0.25  # extra time of the mlp preset's augmentation, as a share of an epoch
METHODS = ("ours", "ours_augmented", "pytorch", "floor")

RATIOS = (("ours", "pytorch"), ("ours", "floor"), ("ours_augmented", "ours"))


# --- ours ---------------------------------------------------------------------------------


def epoch_ours(data: Dataset, batch_size: int) -> float:
    """One epoch of what `core.train.fit` does per batch for the default preset."""
    return time_our_epoch(data, preset("default").replace(batch_size=batch_size))


def epoch_ours_augmented(data: Dataset, batch_size: int) -> float:
    """The same epoch with the mlp preset's augmentation (rotate, shift, scale every batch)."""
    mlp = preset("mlp")
    cfg = preset("default").replace(batch_size=batch_size, aug_rotate=mlp.aug_rotate,
                                    aug_shift=mlp.aug_shift, aug_scale=mlp.aug_scale)  # fmt: skip
    return time_our_epoch(data, cfg)


# --- PyTorch ------------------------------------------------------------------------------


@dataclass
class TorchData:
    images: Any  # (N, 784) uint8 tensor
    labels: Any  # (N,) int64 tensor


def torch_data(data: Dataset) -> TorchData:
    images = data.train_images.reshape(len(data.train_images), -1).copy()  # a writable copy
    return TorchData(torch.from_numpy(images), torch.from_numpy(data.train_labels.astype(np.int64)))


def epoch_torch(data: TorchData, batch_size: int) -> float:
    """One epoch of the same network in PyTorch, converting each uint8 batch to float32 / 255."""
    torch.manual_seed(0)
    n_in, h1, h2, n_out = LAYER_SIZES
    net = torch.nn.Sequential(
        torch.nn.Linear(n_in, h1),
        torch.nn.ReLU(),
        torch.nn.Linear(h1, h2),
        torch.nn.ReLU(),
        torch.nn.Linear(h2, n_out),
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    # Our SGD keeps v = βv + (1-β)g, torch keeps v = βv + g: the same work per step, and
    # torch's lr 0.1 takes the same steps as our default lr 1.0.
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    generator = torch.Generator().manual_seed(1)
    n = len(data.labels)

    start = time.perf_counter()
    order = torch.randperm(n, generator=generator)
    for i in range(0, n, batch_size):
        chunk = order[i : i + batch_size]
        x = data.images[chunk].to(torch.float32).mul_(1 / 255)
        optimizer.zero_grad()
        loss = loss_fn(net(x), data.labels[chunk])
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


# --- the floor: the epoch's matrix products and nothing else ------------------------------


@dataclass
class FloorBatch:
    """Inputs and preallocated outputs of one batch's eight matrix products."""

    x: np.ndarray  # (m, 784)
    h1: np.ndarray  # (m, 128)
    h2: np.ndarray  # (m, 64)
    dz1: np.ndarray  # (m, 128)
    dz2: np.ndarray  # (m, 64)
    dz3: np.ndarray  # (m, 10)
    z1: np.ndarray  # forward outputs
    z2: np.ndarray
    z3: np.ndarray
    dh1: np.ndarray  # backward outputs
    dh2: np.ndarray


@dataclass
class FloorWeights:
    w1: np.ndarray  # (784, 128): core.layers.Dense's layout, (inputs, units)
    w2: np.ndarray  # (128, 64)
    w3: np.ndarray  # (64, 10)
    dw1: np.ndarray
    dw2: np.ndarray
    dw3: np.ndarray


def floor_weights(rng: np.random.Generator) -> FloorWeights:
    n_in, h1, h2, n_out = LAYER_SIZES
    w1, w2, w3 = (rng.standard_normal(s, F32) for s in ((n_in, h1), (h1, h2), (h2, n_out)))
    return FloorWeights(w1, w2, w3, np.empty_like(w1), np.empty_like(w2), np.empty_like(w3))


def floor_batch(m: int, rng: np.random.Generator) -> FloorBatch:
    n_in, h1, h2, n_out = LAYER_SIZES

    def rand(cols: int) -> np.ndarray:
        return rng.standard_normal((m, cols), F32)

    def empty(cols: int) -> np.ndarray:
        return np.empty((m, cols), F32)

    return FloorBatch(
        rand(n_in), rand(h1), rand(h2), rand(h1), rand(h2), rand(n_out),
        empty(h1), empty(h2), empty(n_out), empty(h1), empty(h2),
    )  # fmt: skip


def matmuls(b: FloorBatch, w: FloorWeights) -> None:
    """The products of one training step: forward, then backward without dX."""
    np.matmul(b.x, w.w1, out=b.z1)  # Z1 = X W1
    np.matmul(b.h1, w.w2, out=b.z2)  # Z2 = H1 W2
    np.matmul(b.h2, w.w3, out=b.z3)  # Z3 = H2 W3
    np.matmul(b.h2.T, b.dz3, out=w.dw3)  # dW3 = H2ᵀ dZ3
    np.matmul(b.dz3, w.w3.T, out=b.dh2)  # dH2 = dZ3 W3ᵀ
    np.matmul(b.h1.T, b.dz2, out=w.dw2)  # dW2 = H1ᵀ dZ2
    np.matmul(b.dz2, w.w2.T, out=b.dh1)  # dH1 = dZ2 W2ᵀ
    np.matmul(b.x.T, b.dz1, out=w.dw1)  # dW1 = Xᵀ dZ1


def epoch_floor(batch_size: int, n: int = N_IMAGES) -> float:
    """The matrix products of one epoch: full batches, then the smaller last one if any.

    Timed with one BLAS thread and with BLAS's default; the faster counts, so the floor is
    the best NumPy can do here whatever the thread setting.
    """
    rng = np.random.default_rng(0)
    weights = floor_weights(rng)
    full, rest = divmod(n, batch_size)
    plan = [floor_batch(batch_size, rng)] * full + ([floor_batch(rest, rng)] if rest else [])
    seconds = []
    for threads in (1, None):
        with threadpool_limits(limits=threads, user_api="blas"):
            start = time.perf_counter()
            for b in plan:
                matmuls(b, weights)
            seconds.append(time.perf_counter() - start)
    return min(seconds)


# --- summary and report ------------------------------------------------------------------


def summarize(times: Times, repeats: int) -> dict[str, Any]:
    """Medians and ratios per batch size, and whether the targets at batch 128 are met."""
    results = medians_and_ratios(times, METHODS, RATIOS)
    at_target = results.get(str(TARGET_BATCH))
    targets: dict[str, Any] = {
        "batch_size": TARGET_BATCH,
        "ours_over_pytorch_max": TARGET_VS_TORCH,
        "augment_cost_max": TARGET_AUGMENT,
        "pytorch_met": None,  # None: not measured in this run
        "augment_met": None,
    }
    if at_target is not None:
        vs_torch = at_target["ours_over_pytorch"]
        targets["pytorch_met"] = None if vs_torch is None else vs_torch <= TARGET_VS_TORCH
        targets["augment_met"] = at_target["ours_augmented_over_ours"] - 1 <= TARGET_AUGMENT
    return {"repeats": repeats, "images": N_IMAGES, "results": results, "targets": targets}


def print_report(summary: dict[str, Any]) -> None:
    print_table(summary["results"], METHODS, RATIOS, N_IMAGES, summary["repeats"])
    t = summary["targets"]
    if str(TARGET_BATCH) not in summary["results"]:
        print(f"\ntargets not checked: batch {TARGET_BATCH} was not measured")
        return
    res = summary["results"][str(TARGET_BATCH)]
    print(f"\ntargets at batch {TARGET_BATCH}:")
    print(
        f"  ours <= {TARGET_VS_TORCH} x pytorch: {verdict(t['pytorch_met'])} "
        f"(ours/pytorch = {fmt(res['ours_over_pytorch'], 0, 2)})"
    )
    cost = res["ours_augmented_over_ours"] - 1
    print(
        f"  augmentation <= {TARGET_AUGMENT:.0%} of an epoch: {verdict(t['augment_met'])} "
        f"(it adds {cost:.0%})"
    )


def positive_ints(text: str) -> list[int]:
    values = [positive_int(v.strip()) for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated numbers like 64,128")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batch-sizes",
        type=positive_ints,
        default=[64, 128],
        help="comma-separated batch sizes (default: 64,128)",
    )
    add_timing_arguments(parser, repeats=5)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    env = environment()
    print_environment(env)
    data = load_dataset()
    if len(data.train_labels) != N_IMAGES:
        sys.exit(f"expected {N_IMAGES} training images, found {len(data.train_labels)}")

    runners: dict[str, Runner] = {
        "ours": lambda bs: epoch_ours(data, bs),
        "ours_augmented": lambda bs: epoch_ours_augmented(data, bs),
    }
    if torch is not None:
        tdata = torch_data(data)
        runners["pytorch"] = lambda bs: epoch_torch(tdata, bs)
    runners["floor"] = epoch_floor

    times = run_all(runners, args.batch_sizes, args.repeats)
    summary = summarize(times, args.repeats)
    print_report(summary)
    if args.json:
        print_json(env, summary)


if __name__ == "__main__":
    main()
