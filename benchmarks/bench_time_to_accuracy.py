"""Benchmark: seconds of training until validation accuracy first reaches 97, 98, 99, 99.5 %.

Run it from the repository root:

    python benchmarks/bench_time_to_accuracy.py                   # mlp, mlp-fast, cnn; 3 repeats
    python benchmarks/bench_time_to_accuracy.py --presets mlp-fast --repeats 5 --json
    python benchmarks/bench_time_to_accuracy.py --presets cnn --checks 1 --repeats 1
    python benchmarks/bench_time_to_accuracy.py --presets tour --checks 8 --repeats 5

Every repeat trains a preset from scratch with the real training loop, `core.train.fit`
(one BLAS thread, as the CLI and the Train page run it), on the bundled MNIST; repeat r
uses seed r, so the accuracies and the epochs below are the same on every machine and
every rerun, and only the seconds depend on how busy the machine is. A callback keeps a
training clock and looks at validation accuracy (the 5,000 held-out training images fit
chooses the best epoch on) `--checks` times an epoch (default 2: half way through and at
the end, where fit validates anyway).

How training time is counted: the clock starts when fit calls `on_train_begin` and runs
through every batch (preparing and augmenting it, forward, backward, the update); it is
paused while validation runs, so that a preset is not charged for being watched.
Concretely, the pause at the end of an epoch runs from the last batch's `on_batch_end` to
`on_epoch_end` (fit's own validation, which also covers that batch's weight update, well
under a millisecond for these networks), and a check half way through an epoch is timed
around the callback's own `evaluate` call; a half-way check sees the weights before that
batch's update. The batches prefetched in background threads while validation runs (at
most 4) are a small head start the clock does not see. The final test evaluation is not
counted either. "training s" is the whole run, all its epochs.

For each preset the report gives the medians over repeats of the training seconds and the
epochs (fractional with --checks above 1) at which validation accuracy first reached each
threshold, "never" when fewer than half the repeats reached it; then the test accuracy of
the best validation epoch and the whole run's training seconds. Epochs to accuracy do not
depend on the machine's load, so a quieter rerun can confirm the seconds; so does the last
line, the quickest single epoch of any repeat times the number of epochs: a busy machine
only slows epochs down, so that is what the run approaches on a quiet one (an estimate,
not a measurement of a whole run). Targets, on a
2-core machine: some MLP preset reaches 99.0 % test in <= 20 s of training; `cnn` reaches
99.5 % test in <= 90 s; the tour's live network ("tour", core/tour.py's LIVE, not a preset)
reaches 97 % validation in <= 5 s. `--json` adds one JSON object with every repeat and median as the
last line of the output.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `core`, `benchmarks` as a script

from benchmarks.timing import environment, positive_int, print_environment, print_json, verdict
from core.config import TrainConfig
from core.data import Dataset, load_dataset
from core.metrics import evaluate
from core.model import Model
from core.presets import PRESETS, preset
from core.train import BatchStats, Callback, EpochStats, TrainResult, fit, split_for

THRESHOLDS = (0.97, 0.98, 0.99, 0.995)
DEFAULT_PRESETS = ("mlp", "mlp-fast", "cnn")


def tour_config() -> TrainConfig:
    """The network the tour trains live in front of a class (core/tour.py)."""
    from core.tour import LIVE  # imported on demand: the presets need none of the tour

    return LIVE


# Networks to time beyond the presets, by name, each a function giving its TrainConfig;
# each can be chosen with --presets and given a Target below.
EXTRA_CONFIGS: dict[str, Callable[[], TrainConfig]] = {"tour": tour_config}


@dataclass(frozen=True)
class Target:
    """A goal met when any of `presets` meets it (medians over repeats).

    kind "test": the final test accuracy is at least `accuracy` and the whole run trains in
    at most `seconds`. kind "val": validation accuracy first reaches `accuracy` within
    `seconds` of training.
    """

    label: str
    presets: tuple[str, ...]
    kind: str
    accuracy: float
    seconds: float


TARGETS = (
    Target(
        "some MLP preset reaches 99.0 % test in <= 20 s",
        presets=tuple(n for n, p in PRESETS.items() if p["config"].get("arch", "mlp") == "mlp"),
        kind="test",
        accuracy=0.99,
        seconds=20.0,
    ),
    Target("cnn reaches 99.5 % test in <= 90 s", ("cnn",), "test", 0.995, 90.0),
    # The tour's own measure is `python -m core.tour`, which checks every 0.25 s; here
    # `--presets tour --checks 8` checks every eighth of a pass.
    Target("the tour's network reaches 97 % validation in <= 5 s", ("tour",), "val", 0.97, 5.0),
)


@dataclass
class Reached:
    """When validation accuracy first reached a threshold."""

    seconds: float  # of training, validation excluded
    epochs: float  # fractional when checked within epochs


@dataclass
class Repeat:
    """One training run's outcome."""

    seed: int
    reached: dict[float, Reached | None]
    test_accuracy: float
    train_seconds: float  # the whole run, validation excluded
    wall_seconds: float  # fit's own clock: the whole run with validation, test excluded
    epochs: int
    checks: list[tuple[float, float, float]] = field(default_factory=list)  # epochs, s, acc

    @property
    def fastest_epoch(self) -> float:
        """The training seconds of the quickest whole epoch of this run."""
        ends = [0.0] + [s for epochs, s, _ in self.checks if epochs.is_integer()]
        return min(b - a for a, b in itertools.pairwise(ends))


class TrainingClock(Callback):
    """Seconds of training with validation left out, and validation `checks` times an epoch.

    The checks within an epoch evaluate the same validation images fit does, at evenly
    spaced batches; the last check of each epoch is fit's own validation.
    """

    def __init__(self, dataset: Dataset, cfg: TrainConfig, checks: int) -> None:
        split = split_for(cfg, dataset)  # the very split fit makes from this config
        self.val_images = dataset.train_images[split.val]
        self.val_labels = dataset.train_labels[split.val]
        self.checks_per_epoch = checks
        self.model: Model | None = None
        self.mid_batches: set[int] = set()
        self.start = self.last_batch_end = 0.0
        self.paused = 0.0
        self.checks: list[tuple[float, float, float]] = []  # (epochs, training s, accuracy)

    def on_train_begin(self, model: Model, config: TrainConfig, n_train: int) -> None:
        self.model = model
        n_batches = math.ceil(n_train / config.batch_size)
        # Batches (1-based) after which to check within an epoch; the end is fit's check.
        self.mid_batches = {
            round(n_batches * k / self.checks_per_epoch) for k in range(1, self.checks_per_epoch)
        } - {0, n_batches}
        self.start = time.perf_counter()

    def training_seconds(self, at: float) -> float:
        """Training seconds from the start until the moment `at`, with pauses taken out."""
        return at - self.start - self.paused

    def on_batch_end(self, stats: BatchStats) -> None:
        self.last_batch_end = now = time.perf_counter()
        if stats.batch not in self.mid_batches or self.model is None:
            return
        accuracy = evaluate(self.model, self.val_images, self.val_labels).accuracy
        self.checks.append(
            (stats.epoch - 1 + stats.batch / stats.batches, self.training_seconds(now), accuracy)
        )
        self.paused += time.perf_counter() - now

    def on_epoch_end(self, stats: EpochStats, model: Model) -> None:
        seconds = self.training_seconds(self.last_batch_end)
        self.checks.append((float(stats.epoch), seconds, stats.val_accuracy))
        self.paused += time.perf_counter() - self.last_batch_end

    def first_reached(self, threshold: float) -> Reached | None:
        """The first check at or above `threshold`, or None if none was."""
        for epochs, seconds, accuracy in self.checks:
            if accuracy >= threshold:
                return Reached(seconds, epochs)
        return None


def config_for(name: str) -> TrainConfig:
    """The TrainConfig of a preset or of an extra network named `name`."""
    return EXTRA_CONFIGS[name]() if name in EXTRA_CONFIGS else preset(name)


def one_repeat(dataset: Dataset, name: str, seed: int, checks: int, **changes: Any) -> Repeat:
    """Train `name` with `seed` (and any settings `changes`) once and time it."""
    cfg = config_for(name).replace(seed=seed, **changes)
    clock = TrainingClock(dataset, cfg, checks)
    result: TrainResult = fit(cfg, dataset, [clock])
    if result.test_accuracy is None or not clock.checks:
        raise RuntimeError(f"{name} seed {seed} ended {result.status}: {result.reason}")
    return Repeat(
        seed=seed,
        reached={t: clock.first_reached(t) for t in THRESHOLDS},
        test_accuracy=result.test_accuracy,
        train_seconds=clock.checks[-1][1],
        wall_seconds=result.seconds,
        epochs=len(result.history),
        checks=clock.checks,
    )


def median_reached(repeats: Sequence[Repeat], threshold: float) -> Reached | None:
    """Medians of seconds and epochs to `threshold`; None if fewer than half reached it.

    A repeat that never reached it counts as infinitely slow, so the median is honest.
    """
    found = [r.reached[threshold] for r in repeats]
    seconds = statistics.median(math.inf if f is None else f.seconds for f in found)
    epochs = statistics.median(math.inf if f is None else f.epochs for f in found)
    if math.isinf(seconds) or math.isinf(epochs):
        return None
    return Reached(seconds, epochs)


def summarise(repeats: Sequence[Repeat]) -> dict[str, Any]:
    """The medians of one preset's repeats, JSON-friendly."""
    reached = {t: median_reached(repeats, t) for t in THRESHOLDS}
    return {
        "seconds_to": {f"{t:g}": r.seconds if r else None for t, r in reached.items()},
        "epochs_to": {f"{t:g}": r.epochs if r else None for t, r in reached.items()},
        "test_accuracy": statistics.median(r.test_accuracy for r in repeats),
        "train_seconds": statistics.median(r.train_seconds for r in repeats),
        "wall_seconds": statistics.median(r.wall_seconds for r in repeats),
        "epochs": statistics.median(r.epochs for r in repeats),
        "fastest_epoch_seconds": min(r.fastest_epoch for r in repeats),
    }


def cell(seconds: float | None, epochs: float | None) -> str:
    """'12.3 s (4.5)': seconds and epochs to a threshold, or 'never'."""
    if seconds is None or epochs is None:
        return "never"
    return f"{seconds:.1f} s ({round(epochs, 2):g})"  # checks fall on batches, not round fractions


def print_report(summaries: dict[str, dict[str, Any]], repeats: int) -> None:
    """One row per preset: seconds (epochs) to each threshold, test accuracy, training s."""
    print(
        f"\nmedians over {repeats} repeat(s): training seconds (epochs) until validation "
        "accuracy first reached each threshold"
    )
    heads = [f"{t * 100:g} %" for t in THRESHOLDS]
    width = max(len(n) for n in summaries) + 2
    print("preset".ljust(width), *(h.rjust(14) for h in heads), "test".rjust(8), "training")
    for name, s in summaries.items():
        cells = [cell(s["seconds_to"][f"{t:g}"], s["epochs_to"][f"{t:g}"]) for t in THRESHOLDS]
        print(
            name.ljust(width),
            *(c.rjust(14) for c in cells),
            f"{s['test_accuracy'] * 100:7.2f}%",
            f"{s['train_seconds']:.1f} s ({s['epochs']:g} epochs)",
        )
    # A busy machine only ever slows an epoch down, so the quickest one is the best guide
    # to what the run costs when the machine is quiet.
    paces = [
        f"{name} {s['fastest_epoch_seconds']:.2f} s (x {s['epochs']:g} epochs = "
        f"{s['fastest_epoch_seconds'] * s['epochs']:.1f} s)"
        for name, s in summaries.items()
    ]
    print(f"fastest epoch of any repeat: {'; '.join(paces)}")


def target_met(target: Target, summaries: dict[str, dict[str, Any]]) -> tuple[bool | None, str]:
    """Whether any measured preset of `target` meets it, and which ones did."""
    measured = [n for n in target.presets if n in summaries]
    if not measured:
        return None, ""
    met = []
    for name in measured:
        s = summaries[name]
        if target.kind == "test":
            ok = s["test_accuracy"] >= target.accuracy and s["train_seconds"] <= target.seconds
        else:
            seconds = s["seconds_to"].get(f"{target.accuracy:g}")
            ok = seconds is not None and seconds <= target.seconds
        if ok:
            met.append(name)
    return bool(met), ", ".join(met) if met else ", ".join(measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [*PRESETS, *EXTRA_CONFIGS]
    parser.add_argument(
        "--presets",
        default=",".join(n for n in DEFAULT_PRESETS if n in names),
        help=f"comma-separated, any of {', '.join(names)} (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=3, help="runs per preset, seeds 0, 1, ..."
    )
    parser.add_argument(
        "--checks",
        type=positive_int,
        default=2,
        help="validations per epoch, evenly spaced, the last at its end (default: 2)",
    )
    parser.add_argument(
        "--json", action="store_true", help="end with one JSON object of every repeat"
    )
    args = parser.parse_args()
    chosen = [n.strip() for n in args.presets.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in names]
    if unknown:
        parser.error(f"unknown preset(s) {', '.join(unknown)}; choose from {', '.join(names)}")

    env = environment()
    print_environment(env)
    dataset = load_dataset()
    runs: dict[str, list[Repeat]] = {name: [] for name in chosen}
    for seed in range(args.repeats):
        for name in chosen:  # interleaved: a busy spell of a shared machine lands on all
            r = one_repeat(dataset, name, seed, args.checks)
            runs[name].append(r)
            firsts = ", ".join(
                f"{t * 100:g} % {cell(f.seconds, f.epochs) if f else 'never'}"
                for t, f in r.reached.items()
            )
            print(
                f"  {name} seed {seed}: test {r.test_accuracy * 100:.2f} %, "
                f"{r.train_seconds:.1f} s training ({r.wall_seconds:.1f} s with validation); "
                f"{firsts}",
                flush=True,
            )
    summaries = {name: summarise(rs) for name, rs in runs.items()}
    print_report(summaries, args.repeats)
    verdicts = {}
    for target in TARGETS:
        met, which = target_met(target, summaries)
        verdicts[target.label] = met
        note = f" ({'by' if met else 'measured'}: {which})" if which else ""
        print(f"target: {target.label}: {verdict(met)}{note}")
    if args.json:
        print_json(
            env,
            {
                "repeats": args.repeats,
                "checks_per_epoch": args.checks,
                "thresholds": list(THRESHOLDS),
                "presets": {
                    name: {
                        **summaries[name],
                        "samples": [
                            {
                                "seed": r.seed,
                                "test_accuracy": r.test_accuracy,
                                "train_seconds": r.train_seconds,
                                "wall_seconds": r.wall_seconds,
                                "epochs": r.epochs,
                                "fastest_epoch_seconds": r.fastest_epoch,
                                "seconds_to": {
                                    f"{t:g}": f.seconds if f else None for t, f in r.reached.items()
                                },
                                "epochs_to": {
                                    f"{t:g}": f.epochs if f else None for t, f in r.reached.items()
                                },
                            }
                            for r in runs[name]
                        ],
                    }
                    for name in chosen
                },
                "targets": verdicts,
            },
        )


if __name__ == "__main__":
    main()
