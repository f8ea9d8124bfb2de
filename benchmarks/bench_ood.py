"""Benchmark: how well the "does it look like a digit" check (core/novelty.py) tells digits
from non-digits.

Run it from the repository root:

    python benchmarks/bench_ood.py                  # 500 non-digits of each kind, ~1 minute
    python benchmarks/bench_ood.py --per-kind 200 --json

Reports, for the shipped detector (data/models/novelty.npz):

- false alarms: the share of the 10,000 MNIST test digits said not to be digits (never
  used to fit or calibrate it); goal at most 1 %;
- detection: the share of core/nondigits.py's "measure" split (letters in the Liberation
  fonts, which the detector never saw, and scribbles, shapes and faces from other seeds than
  its training ones) said not to be digits, per kind and overall; goal at least 90 %;
- digits drawn on the canvas: hand-made stroke digits (the Draw page's tests' and the
  browser tests') drawn with random pens, sizes and wobble, and digits rendered from the
  Liberation fonts: the share answered (not flagged), and answered with the right digit
  by the shipped CNN (default.npz) and MLP;
- the time to check one drawing (median of 200), within the Draw page's 50 ms budget.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `core` when run as a script

from core import nondigits, novelty
from core.data import load_dataset
from core.model_load import load_model

MODELS = Path(__file__).resolve().parent.parent / "data" / "models"
SEED = 1  # the tests measure seed 2; the detector trained on the "train" split's seed 0


def measure(per_kind: int, drawn: int) -> dict:
    """Every figure the docstring lists, as a dict."""
    detector = novelty.shipped()
    test = load_dataset().test_images / 255.0
    out: dict = {"false_alarms": float(1 - detector.passes(test).mean()), "test_digits": len(test)}
    detected = {}
    for kind, images in nondigits.nondigit_set(per_kind, SEED, "measure").items():
        detected[kind] = float(1 - detector.passes(images).mean())
    out["detected"] = detected
    out["detected_overall"] = float(np.mean(list(detected.values())))
    out["per_kind"] = per_kind
    models = {name: load_model(MODELS / f"{name}.npz")[0] for name in ("default", "mlp")}
    out["drawn"] = {}
    for source in ("strokes", "measure-fonts"):
        images, labels = nondigits.drawn_digits(drawn, SEED, source)
        answered = detector.passes(images)
        row = {"n": drawn, "answered": float(answered.mean())}
        for name, model in models.items():
            said = model.predict_proba(images[..., None]).argmax(1)
            row[f"correct_{name}"] = float((answered & (said == labels)).mean())
        out["drawn"][source] = row
    times = []
    for image in nondigits.nondigits("faces", 200, SEED, "measure"):
        started = time.perf_counter()
        detector.check(image)
        times.append(time.perf_counter() - started)
    out["check_ms"] = statistics.median(times) * 1000
    out["threshold"] = detector.threshold
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=500, help="non-digits of each kind")
    parser.add_argument("--drawn", type=int, default=500, help="drawn digits of each source")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.per_kind, args.drawn)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"false alarms on the {result['test_digits']:,} MNIST test digits: "
          f"{result['false_alarms']:.2%} (goal at most 1 %)")  # fmt: skip
    print(f"non-digits detected ({result['per_kind']} of each kind, 'measure' split):")
    for kind, share in result["detected"].items():
        print(f"  {kind:<10} {share:.1%}")
    print(f"  {'overall':<10} {result['detected_overall']:.1%} (goal at least 90 %)")
    print("digits drawn on the canvas: answered; answered and right (CNN, MLP)")
    for source, row in result["drawn"].items():
        print(
            f"  {source:<14} {row['answered']:.1%}; "
            f"{row['correct_default']:.1%}, {row['correct_mlp']:.1%} (n={row['n']})"
        )
    print(f"one check: {result['check_ms']:.2f} ms (median of 200); "
          f"threshold {result['threshold']:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
