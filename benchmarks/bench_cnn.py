"""Benchmark: one training epoch of the `cnn` preset's network, ours against PyTorch on the CPU.

Run it from the repository root:

    python benchmarks/bench_cnn.py                                # 60,000 images, 3 repeats
    python benchmarks/bench_cnn.py --images 10000 --repeats 3     # a quick look
    python benchmarks/bench_cnn.py --json                         # and a JSON line at the end

Three methods, at the preset's batch size, each timed with time.perf_counter around the whole
epoch loop over the first `--images` training images (default all 60,000):

- ours: exactly the per-batch work of `core.train.fit` for `preset("cnn")` — the model from
  `spec_from_config`, the optimizer from `make_optimizer`, batches from
  `prefetch(batch_jobs(...))` with the preset's augmentation (`core.augment.batch_transform`)
  running in the prefetch thread as in fit, `model.loss_and_grads`, `optimizer.step` at the
  scheduled learning rate, all inside `compute_settings()` (one BLAS thread, denormals
  flushed; each batch's two halves run through the whole network at once, one on the
  layers' helper thread (core/model.py), so ours uses both cores, as PyTorch does). This
  is what an epoch costs a user. Fit's bookkeeping (accuracy counting, callbacks) and the
  validation and test evaluations are not timed.
- ours_no_aug: the same without the augmentation, to show what it adds to a CNN epoch.
- pytorch: the same network in PyTorch on the CPU in float32, translated layer by layer from
  the same spec to NCHW (Conv2d with the preset's padding, BatchNorm2d / BatchNorm1d,
  MaxPool2d, ReLU, Flatten, Linear, Dropout if any; the parameter counts are checked to
  match), CrossEntropyLoss, torch.optim.SGD with the same momentum, weight decay on the same
  weights and the same schedule, the same batch size, the uint8 images preloaded as one
  tensor and converted to float32 / 255 per batch, with torch's default thread count unless
  `--torch-threads` says otherwise. It does not augment: PyTorch itself has no equivalent of
  `core.augment` built in, so it gets the same data pipeline minus augmentation (shuffled
  batches, converted one at a time; no prefetch thread, since the conversion is all there is
  to prepare) and the target compares it with ours_no_aug. Skipped with a note when torch
  cannot be imported (`pip install -r requirements-bench.txt`). On a busy machine torch's
  OpenMP threads wait for one another and its epoch can slow down tenfold; `--torch-threads
  1` puts it on ours' footing (one compute thread), and the README's figures need an idle one.

Every model, optimizer and tensor is built before its clock starts. After one untimed
warm-up epoch of each method, the methods are interleaved within every repeat because the
machine may be shared and noisy (see `benchmarks/timing.py`); the report gives the median
seconds per epoch, the ratios, what augmentation adds, and whether the target is met:
ours_no_aug <= 1.0 x pytorch (issue 17). `--json` adds one JSON object with every median
and ratio as the last line of the output.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
from core.architecture import spec_from_config
from core.config import TrainConfig
from core.data import Dataset, load_dataset
from core.model import Model
from core.presets import preset
from core.train import lr_at

PRESET = "cnn"
DEFAULT_IMAGES = 60_000
TARGET_VS_TORCH = 1.0  # ours_no_aug / pytorch: at most PyTorch's time (issue 17)
METHODS = ("ours", "ours_no_aug", "pytorch")
# The first ratio is the target's; the last is what augmentation costs ours.
RATIOS = (("ours_no_aug", "pytorch"), ("ours", "pytorch"), ("ours", "ours_no_aug"))
LAYER_LABELS = {  # how `describe` shows a layer's config
    "conv2d": "conv {filters} {kernel_size}x{kernel_size} {padding}",
    "maxpool2d": "maxpool {pool_size}",
    "dense": "dense {units}",
    "dropout": "dropout {rate:g}",
}


# --- ours ---------------------------------------------------------------------------------


def epoch_ours(
    data: Dataset, cfg: TrainConfig, n_images: int, batch_size: int, augmented: bool
) -> float:
    """One epoch of what `core.train.fit` does per batch, with or without its augmentation."""
    return time_our_epoch(data, cfg.replace(batch_size=batch_size), n_images, augmented)


# --- PyTorch ------------------------------------------------------------------------------


def torch_net(spec: dict[str, Any]) -> Any:
    """The spec's layers as a torch.nn.Sequential on NCHW images: the same network as ours.

    Each layer is translated from our built layer's full config (defaults included), with
    the input shape our model computed for it.
    """
    nn = torch.nn
    model = Model(spec)
    activations = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    modules = []
    for layer, shape in zip(model.layers, model.shapes, strict=False):  # shapes: NHWC / (n,)
        c = layer.get_config()
        kind = c["type"]
        if kind == "conv2d":
            padding = 0 if c["padding"] == "valid" else "same"
            modules.append(nn.Conv2d(shape[-1], c["filters"], c["kernel_size"], padding=padding))
        elif kind == "batchnorm":
            # Ours keeps `momentum` of the running statistics; torch's momentum is the new share.
            norm = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            modules.append(norm(shape[-1], eps=c["eps"], momentum=1 - c["momentum"]))
        elif kind == "maxpool2d":
            modules.append(nn.MaxPool2d(c["pool_size"]))
        elif kind == "flatten":
            modules.append(nn.Flatten())
        elif kind == "dense":
            modules.append(nn.Linear(shape[0], c["units"]))
        elif kind == "dropout":
            modules.append(nn.Dropout(c["rate"]))
        elif kind == "leaky_relu":
            modules.append(nn.LeakyReLU(c["alpha"]))
        elif kind in activations:
            modules.append(activations[kind]())
        else:
            raise ValueError(f"no PyTorch translation for layer type {kind!r}")
    net = nn.Sequential(*modules)
    n_torch = sum(p.numel() for p in net.parameters())
    if n_torch != model.n_params:
        raise RuntimeError(f"PyTorch network has {n_torch} parameters, ours {model.n_params}")
    return net


@dataclass
class TorchData:
    images: Any  # (N, 1, 28, 28) uint8 tensor
    labels: Any  # (N,) int64 tensor


def torch_data(data: Dataset, n_images: int) -> TorchData:
    # NCHW with one channel is the same bytes as NHWC: only the shape changes.
    images = data.train_images[:n_images, None].copy()  # a writable copy, as torch wants
    labels = data.train_labels[:n_images].astype(np.int64)
    return TorchData(torch.from_numpy(images), torch.from_numpy(labels))


def epoch_torch(data: TorchData, cfg: TrainConfig, spec: dict[str, Any], batch_size: int) -> float:
    """One epoch of the network `spec` in PyTorch, converting each uint8 batch to float32 / 255."""
    torch.manual_seed(cfg.seed)
    net = torch_net(spec)
    net.train()
    if cfg.optimizer != "sgd":
        raise ValueError(f"the PyTorch reference knows only sgd, not {cfg.optimizer!r}")
    # Weight decay on conv and dense weights only, as ours (never biases or batch norm).
    decayed = [p for p in net.parameters() if p.ndim > 1]
    other = [p for p in net.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [{"params": decayed, "weight_decay": cfg.weight_decay}, {"params": other}],
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(1)
    n = len(data.labels)
    n_batches = math.ceil(n / batch_size)

    start = time.perf_counter()
    order = torch.randperm(n, generator=generator)
    for b, i in enumerate(range(0, n, batch_size)):
        # Our SGD keeps v = βv + (1-β)g, torch keeps v = βv + g: the same steps when torch's
        # learning rate is ours times (1-β).
        for group in optimizer.param_groups:
            group["lr"] = lr_at(cfg, (b + 0.5) / n_batches) * (1 - cfg.momentum)
        chunk = order[i : i + batch_size]
        x = data.images[chunk].to(torch.float32).mul_(1 / 255)
        optimizer.zero_grad()
        loss = loss_fn(net(x), data.labels[chunk])
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


# --- summary and report -------------------------------------------------------------------


def summarize(
    times: Times, repeats: int, n_images: int, torch_threads: int | None
) -> dict[str, Any]:
    """Medians and ratios, what augmentation adds, and whether the target is met."""
    results = medians_and_ratios(times, METHODS, RATIOS)
    ((bs, res),) = results.items()  # one batch size: the preset's
    med = res["median_s"]
    vs_torch = res["ours_no_aug_over_pytorch"]
    return {
        "preset": PRESET,
        "batch_size": int(bs),
        "repeats": repeats,
        "images": n_images,
        "torch_threads": torch_threads,
        "results": results,
        "augmentation_s": med["ours"] - med["ours_no_aug"],
        "target": {
            "ours_no_aug_over_pytorch_max": TARGET_VS_TORCH,
            "met": None if vs_torch is None else vs_torch <= TARGET_VS_TORCH,  # None: no torch
        },
    }


def print_report(summary: dict[str, Any]) -> None:
    print_table(summary["results"], METHODS, RATIOS, summary["images"], summary["repeats"])
    bs = summary["batch_size"]
    res = summary["results"][str(bs)]
    print(
        f"\naugmentation: ours - ours_no_aug = {summary['augmentation_s']:.3f} s per epoch "
        f"(ours/ours_no_aug = {fmt(res['ours_over_ours_no_aug'], 0, 2)})"
    )
    if res["median_s"]["pytorch"] is not None:
        print(
            "pytorch trains without augmentation (PyTorch has no equivalent built in),\n"
            "so the target compares it with ours_no_aug"
        )
    print(f"\ntarget at batch {bs}:")
    print(
        f"  ours_no_aug <= {TARGET_VS_TORCH} x pytorch: {verdict(summary['target']['met'])} "
        f"(ours_no_aug/pytorch = {fmt(res['ours_no_aug_over_pytorch'], 0, 2)})"
    )


def describe(
    cfg: TrainConfig, spec: dict[str, Any], n_images: int, torch_threads: int | None
) -> None:
    """What is being timed, so that the output stands on its own."""
    model = Model(spec)
    layers = ", ".join(
        LAYER_LABELS.get(c["type"], c["type"]).format(**c)
        for c in (layer.get_config() for layer in model.layers)
    )
    augments = {
        "rotate ±{:g}°": cfg.aug_rotate,
        "shift ±{:g} px": cfg.aug_shift,
        "scale ±{:g}": cfg.aug_scale,
        "elastic alpha {:g}": cfg.aug_elastic,
    }
    print()
    print(textwrap.fill(f"preset {PRESET!r}: {layers}; {model.n_params:,} parameters", 96))
    print(f"batch {cfg.batch_size}, {n_images:,} images per epoch")
    print("  ours         fit's per-batch work, with the preset's augmentation in the prefetch")
    print(f"               thread: {', '.join(k.format(v) for k, v in augments.items() if v)}")
    print("  ours_no_aug  the same without augmentation")
    if torch is not None:
        print(
            f"  pytorch      the same network in PyTorch, float32, {torch_threads} thread(s), "
            "no augmentation"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images",
        type=positive_int,
        default=DEFAULT_IMAGES,
        help=f"training images per epoch, the first N (default: {DEFAULT_IMAGES})",
    )
    add_timing_arguments(parser, repeats=3)
    parser.add_argument(
        "--torch-threads",
        type=positive_int,
        default=None,
        help="PyTorch's intra-op threads (default: its own default, printed)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    env = environment()
    print_environment(env)
    data = load_dataset()
    if args.images > len(data.train_labels):
        sys.exit(f"--images {args.images}: only {len(data.train_labels)} training images")
    cfg = preset(PRESET)
    spec = spec_from_config(cfg, len(data.class_names))  # what fit builds
    torch_threads = None
    if torch is not None:
        if args.torch_threads is not None:
            torch.set_num_threads(args.torch_threads)
            print(f"torch threads set to {args.torch_threads} by --torch-threads")
        torch_threads = torch.get_num_threads()
    describe(cfg, spec, args.images, torch_threads)

    runners: dict[str, Runner] = {
        "ours": lambda bs: epoch_ours(data, cfg, args.images, bs, augmented=True),
        "ours_no_aug": lambda bs: epoch_ours(data, cfg, args.images, bs, augmented=False),
    }
    if torch is not None:
        tdata = torch_data(data, args.images)
        runners["pytorch"] = lambda bs: epoch_torch(tdata, cfg, spec, bs)

    times = run_all(runners, [cfg.batch_size], args.repeats)
    summary = summarize(times, args.repeats, args.images, torch_threads)
    print_report(summary)
    if args.json:
        print_json(env, summary)


if __name__ == "__main__":
    main()
