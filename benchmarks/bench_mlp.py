"""Benchmark: one training epoch of the 784-128-64-10 MLP on the 60,000 MNIST training images.

Run it from the repository root:

    python benchmarks/bench_mlp.py                  # batch sizes 64 and 128, 5 repeats
    python benchmarks/bench_mlp.py --batch-sizes 128 --repeats 9 --json

Each batch size is timed three ways, with time.perf_counter around the whole epoch loop:

- ours: exactly the per-batch work of `core.train.fit` for the `default` preset's model —
  shuffled batches from `core.data.batches` (uint8 -> float32 conversion included),
  `model.loss_and_grads`, `optimizer.step` with `SGD(momentum=0.9)`. Fit's bookkeeping
  (accuracy counting, callbacks) and the validation evaluation are not timed.
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
at batch 128 are met: ours <= 0.5 x pytorch and ours <= 1.3 x floor. `--json` adds one JSON
object with every median and ratio as the last line of the output.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `core` when run as a script

from core.data import Dataset, batches, load_dataset
from core.model import Model, spec_from_config
from core.optimizers import SGD, learning_rate
from core.presets import preset
from core.train import compute_settings

try:
    import torch
except Exception as exc:  # not installed, or installed but broken: the benchmark goes on
    torch = None
    TORCH_MISSING = f"{type(exc).__name__}: {exc}"
else:
    TORCH_MISSING = ""

F32 = np.float32
N_IMAGES = 60_000
LAYER_SIZES = (784, 128, 64, 10)
TARGET_BATCH = 128
TARGET_VS_TORCH = 0.5  # ours / pytorch at batch 128
TARGET_VS_FLOOR = 1.3  # ours / floor at batch 128
METHODS = ("ours", "pytorch", "floor")

Runner = Callable[[int], float]  # batch size -> seconds for one timed epoch
Times = dict[int, dict[str, list[float]]]  # batch size -> method -> seconds of each repeat
NOISY_SPREAD = 2.0  # slowest / fastest repeat above which the report warns of noise


# --- ours ---------------------------------------------------------------------------------


def epoch_ours(data: Dataset, batch_size: int) -> float:
    """One epoch of what `core.train.fit` does per batch, on all training images."""
    cfg = preset("default").replace(batch_size=batch_size)
    model = Model(spec_from_config(cfg), seed=cfg.seed)
    optimizer = SGD(momentum=0.9)
    rng = np.random.default_rng([cfg.seed, 1])  # as in fit
    images, labels = data.train_images, data.train_labels
    indices = np.arange(len(labels))
    n_batches = math.ceil(len(indices) / batch_size)

    with compute_settings():  # fit's BLAS threads and denormal flushing
        start = time.perf_counter()
        for b, (x, y) in enumerate(batches(images, labels, indices, batch_size, rng)):
            lr = learning_rate(
                cfg.lr,
                (b + 0.5) / n_batches,
                cfg.epochs,
                cfg.schedule,
                cfg.warmup_epochs,
                cfg.step_every,
                cfg.step_gamma,
            )
            model.loss_and_grads(x, y)
            optimizer.step(model.params, lr)
        return time.perf_counter() - start


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


# --- environment, timing and report -------------------------------------------------------


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


def run_all(runners: dict[str, Runner], batch_sizes: list[int], repeats: int) -> Times:
    """Time every method at every batch size `repeats` times, interleaving the methods."""
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


def summarize(times: Times, repeats: int) -> dict[str, Any]:
    results = {}
    for bs, by_method in times.items():
        medians = {m: statistics.median(by_method[m]) if m in by_method else None for m in METHODS}
        results[str(bs)] = {
            "median_s": medians,
            "samples_s": by_method,
            "ours_over_pytorch": ratio(medians["ours"], medians["pytorch"]),
            "ours_over_floor": ratio(medians["ours"], medians["floor"]),
        }
    at_target = results.get(str(TARGET_BATCH))
    targets: dict[str, Any] = {
        "batch_size": TARGET_BATCH,
        "ours_over_pytorch_max": TARGET_VS_TORCH,
        "ours_over_floor_max": TARGET_VS_FLOOR,
        "pytorch_met": None,  # None: not measured in this run
        "floor_met": None,
    }
    if at_target is not None:
        vs_torch, vs_floor = at_target["ours_over_pytorch"], at_target["ours_over_floor"]
        targets["pytorch_met"] = None if vs_torch is None else vs_torch <= TARGET_VS_TORCH
        targets["floor_met"] = vs_floor <= TARGET_VS_FLOOR
    return {"repeats": repeats, "images": N_IMAGES, "results": results, "targets": targets}


def fmt(value: float | None, width: int, decimals: int) -> str:
    text = "n/a" if value is None else f"{value:.{decimals}f}"
    return text.rjust(width)


def print_report(summary: dict[str, Any]) -> None:
    print(f"\nmedian seconds per epoch of {N_IMAGES:,} images over {summary['repeats']} repeats")
    header = ("batch", "ours", "pytorch", "floor", "ours/pytorch", "ours/floor")
    print("{:>6} {:>9} {:>9} {:>9} {:>13} {:>11}".format(*header))
    for bs, res in summary["results"].items():
        med = res["median_s"]
        print(
            f"{bs:>6} {fmt(med['ours'], 9, 3)} {fmt(med['pytorch'], 9, 3)} "
            f"{fmt(med['floor'], 9, 3)} {fmt(res['ours_over_pytorch'], 13, 2)} "
            f"{fmt(res['ours_over_floor'], 11, 2)}"
        )
    noisy = [
        f"{method} at batch {bs}"
        for bs, res in summary["results"].items()
        for method, samples in res["samples_s"].items()
        if max(samples) > NOISY_SPREAD * min(samples)
    ]
    if noisy:
        print(
            f"note: the slowest repeat took over {NOISY_SPREAD:g}x the fastest for "
            f"{', '.join(noisy)}; the machine was busy. Medians resist a few such outliers; "
            "if there are many, rerun with more --repeats."
        )
    t = summary["targets"]
    if str(TARGET_BATCH) not in summary["results"]:
        print(f"\ntargets not checked: batch {TARGET_BATCH} was not measured")
        return
    res = summary["results"][str(TARGET_BATCH)]

    def verdict(met: bool | None) -> str:
        return "not measured" if met is None else ("MET" if met else "NOT MET")

    print(f"\ntargets at batch {TARGET_BATCH}:")
    print(
        f"  ours <= {TARGET_VS_TORCH} x pytorch: {verdict(t['pytorch_met'])} "
        f"(ours/pytorch = {fmt(res['ours_over_pytorch'], 0, 2)})"
    )
    print(
        f"  ours <= {TARGET_VS_FLOOR} x floor:   {verdict(t['floor_met'])} "
        f"(ours/floor = {fmt(res['ours_over_floor'], 0, 2)})"
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


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
    parser.add_argument(
        "--repeats", type=positive_int, default=5, help="timed epochs per method (default: 5)"
    )
    parser.add_argument(
        "--json", action="store_true", help="end with one JSON object of all medians and ratios"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    env = environment()
    print_environment(env)
    data = load_dataset()
    if len(data.train_labels) != N_IMAGES:
        sys.exit(f"expected {N_IMAGES} training images, found {len(data.train_labels)}")

    runners: dict[str, Runner] = {"ours": lambda bs: epoch_ours(data, bs)}
    if torch is not None:
        tdata = torch_data(data)
        runners["pytorch"] = lambda bs: epoch_torch(tdata, bs)
    runners["floor"] = epoch_floor

    print(f"\ntiming {', '.join(runners)} (after one warm-up epoch each)", flush=True)
    times = run_all(runners, args.batch_sizes, args.repeats)
    summary = summarize(times, args.repeats)
    print_report(summary)
    if args.json:
        print(json.dumps({"environment": env, **summary}))


if __name__ == "__main__":
    main()
