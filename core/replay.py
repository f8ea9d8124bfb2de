"""Replay frames of a run's first layer: its weights untrained, after the first 1, 2, 4, ...
batches and after a selection of epochs, which the Weights page plays.

A stored run's frames are read from its snapshots; a shipped model has no run, so its
frames ship beside it in a small file (`default.npz` -> `default.replay.npz`) made from the
run that trained it:

    python -m core.replay RUN_ID data/models/NAME.replay.npz   # a run of $MNIST_RUNS_DIR
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import first_layer_pictures
from .model import Model, ModelFileError
from .model_load import load_model
from .run import Run

MAX_UNITS = 64  # tiles per frame: enough to watch features form, light enough to load fast
EPOCH_FRAMES = 14  # epochs shown at most, spaced evenly in log time, so early ones count
KINDS = ("dense", "conv2d")
Loader = Callable[[Path], tuple[Model, dict[str, Any]]]


class ReplayError(ValueError):
    """A replay file that is not one, or whose arrays do not fit together."""


@dataclass(frozen=True, order=True)
class Moment:
    """A point of training with a weight snapshot: `epoch` epochs done, then `batches`
    batches of the next (only the first epoch has batch snapshots)."""

    epoch: int
    batches: int = 0


def moment_label(moment: Moment, val_accuracy: float | None = None, offset: int = 0) -> str:
    """A moment in plain words: "untrained", "after 64 batches", "epoch 3 · 97.8 % val".

    A run continued from another (Train more) starts at its parent's epoch `offset`, and
    counts its epochs on from there.
    """
    if moment.batches:
        text = f"after {moment.batches} batch{'es' if moment.batches > 1 else ''}"
        if offset:
            text += " more"
    elif moment.epoch == 0:
        text = f"start (epoch {offset}, trained before)" if offset else "untrained"
    else:
        text = f"epoch {moment.epoch + offset}"
    if val_accuracy is not None and math.isfinite(val_accuracy):
        text += f" · {100 * val_accuracy:.1f} % val"
    return text


def moments(run: Run) -> list[Moment]:
    """Every moment of a run with a weight snapshot, in training order."""
    found = [Moment(e) for e in run.snapshots()]
    found += [Moment(0, k) for k in run.batch_snapshots()]
    return sorted(found)


def snapshot_path(run: Run, moment: Moment) -> Path:
    """The weight snapshot of a run at `moment`."""
    if moment.batches:
        return run.batch_snapshot(moment.batches)
    return run.snapshot(moment.epoch)


def replay_moments(
    found: Sequence[Moment], best_epoch: int | None = None, epoch_frames: int = EPOCH_FRAMES
) -> list[Moment]:
    """The moments a replay shows: the start and every batch snapshot, then at most
    `epoch_frames` epochs, denser early where features change most, always with the last
    and the best."""
    early = [m for m in found if m.epoch == 0]
    epochs = [m.epoch for m in found if m.epoch > 0 and not m.batches]
    if len(epochs) > epoch_frames:
        spots = np.rint(np.geomspace(1, len(epochs), epoch_frames)).astype(int)
        picked = {epochs[s - 1] for s in spots}
        if best_epoch in epochs:
            picked.add(best_epoch)
        epochs = sorted(picked)
    return early + [Moment(e) for e in epochs]


@dataclass(frozen=True)
class Replay:
    """The first layer's weights at each frame of a replay, one small picture per unit."""

    layer: str  # "dense": a neuron's weights over the pixels; "conv2d": a filter
    weights: np.ndarray  # (frames, units, H, W) float16
    units: np.ndarray  # (units,) which neurons or filters of the layer those are
    layer_units: int  # how many the layer has
    labels: tuple[str, ...]  # what each frame is, in words
    val_accuracy: np.ndarray  # (frames,) validation accuracy then; NaN where not measured
    unreadable: tuple[str, ...] = field(default=(), compare=False)  # snapshots skipped


def build_replay(
    snapshots: Sequence[tuple[Moment, Model, dict[str, Any]]],
    max_units: int = MAX_UNITS,
    offset: int = 0,
) -> Replay | None:
    """The replay of snapshots (moment, model, its metadata) in order; None when their
    first layer is not a picture per unit (see analysis.first_layer_pictures)."""
    pictures = [first_layer_pictures(model) for _, model, _ in snapshots]
    if not pictures or any(p is None for p in pictures):
        return None
    kinds = {kind for kind, _ in pictures}
    shapes = {w.shape for _, w in pictures}
    if len(kinds) != 1 or len(shapes) != 1:
        return None  # the snapshots are of different networks: no replay between them
    units = np.arange(min(max_units, len(pictures[0][1])))
    val = [meta.get("val_accuracy") for _, _, meta in snapshots]
    val_accuracy = np.array([np.nan if v is None else float(v) for v in val], dtype=np.float32)
    return Replay(
        layer=kinds.pop(),
        weights=np.stack([w[units] for _, w in pictures]).astype(np.float16),
        units=units,
        layer_units=len(pictures[0][1]),
        labels=tuple(
            moment_label(m, v, offset) for (m, _, _), v in zip(snapshots, val_accuracy, strict=True)
        ),
        val_accuracy=val_accuracy,
    )


def replay_of_run(run: Run, load: Loader = load_model) -> Replay | None:
    """A run's replay from its snapshots, each read by `load` (the dashboard passes its
    cached loader); unreadable snapshots are left out and named. None without snapshots."""
    picked = replay_moments(moments(run), run.best_epoch)
    snapshots, unreadable = [], []
    for moment in picked:
        try:
            snapshots.append((moment, *load(snapshot_path(run, moment))))
        except (ModelFileError, OSError):
            unreadable.append(moment_label(moment, offset=run.epoch_offset))
    if len(snapshots) < 2:
        return None  # nothing moves
    replay = build_replay(snapshots, offset=run.epoch_offset)
    return replace(replay, unreadable=tuple(unreadable)) if replay is not None else None


def replay_beside(model_path: Path) -> Path:
    """Where a model file's replay ships: `default.npz` -> `default.replay.npz`."""
    return model_path.with_name(model_path.stem + ".replay.npz")


def save_replay(replay: Replay, path: str | Path) -> Path:
    """Write a replay to one compressed `.npz` (no pickle), replacing `path` at once."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            layer=np.array(replay.layer),
            weights=replay.weights.astype(np.float16),
            units=replay.units.astype(np.int32),
            layer_units=np.array(replay.layer_units),
            labels=np.array(replay.labels),
            val_accuracy=replay.val_accuracy.astype(np.float32),
        )
    os.replace(tmp, path)
    return path


def load_replay(path: str | Path) -> Replay:
    """A replay saved by `save_replay`; ReplayError when the file is not one."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ReplayError(f"{path} is not a replay file ({exc})") from None
    missing = {"layer", "weights", "units", "layer_units", "labels", "val_accuracy"}
    missing -= arrays.keys()
    if missing:
        raise ReplayError(f"{path} has no {', '.join(sorted(missing))}")
    weights, units = arrays["weights"], arrays["units"]
    labels, val = arrays["labels"], arrays["val_accuracy"]
    layer, layer_units = str(arrays["layer"]), arrays["layer_units"]
    problems = [
        layer not in KINDS and f"its layer is {layer!r}",
        (weights.ndim != 4 or weights.dtype.kind != "f")
        and "its weights are not (frames, units, H, W) numbers",
        units.shape != weights.shape[1:2] and "its units do not match its weights",
        (layer_units.shape or layer_units.dtype.kind != "i" or layer_units < len(units))
        and "its layer_units is not the number of units of its layer",
        labels.shape != weights.shape[:1] and "it has not one label per frame",
        val.shape != weights.shape[:1] and "it has not one accuracy per frame",
    ]
    problems = [p for p in problems if p]
    if problems:
        raise ReplayError(f"{path} is not a replay file: {'; '.join(problems)}")
    labels = tuple(str(t) for t in labels)
    return Replay(layer, weights, units, int(layer_units), labels, val.astype(np.float32))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m core.replay RUN_ID OUT`: write the replay of a stored run to OUT."""
    from .runs import RunStore, StoreError

    parser = argparse.ArgumentParser(prog="python -m core.replay", description=main.__doc__)
    parser.add_argument("run_id", type=int, help="a run of the run store ($MNIST_RUNS_DIR)")
    parser.add_argument("out", help="the file to write, e.g. data/models/mlp.replay.npz")
    args = parser.parse_args(argv)
    try:
        run = RunStore().get(args.run_id)
    except (KeyError, StoreError) as exc:
        print(f"{parser.prog}: no run {args.run_id} ({exc})", file=sys.stderr)
        return 2
    replay = replay_of_run(run)
    if replay is None:
        print(f"{parser.prog}: run {args.run_id} has no replay to write", file=sys.stderr)
        return 2
    if replay.unreadable:
        print(f"{parser.prog}: skipped unreadable snapshots: {', '.join(replay.unreadable)}")
    out = save_replay(replay, args.out)
    print(f"wrote {out}: {len(replay.labels)} frames ({', '.join(replay.labels)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
