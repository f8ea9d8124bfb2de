"""Does a 28x28 picture look like a handwritten digit at all? Letters, faces and scribbles do not.

A classifier's softmax names a digit with confidence for anything (a letter A is "4, 100 %
sure"), so a second, small network answers this question alone: digit or not a digit. It
is this project's own NumPy network (core/model.py: 784-256-64-2, ReLU), trained with Adam
on

- digits: the first 55,000 MNIST training digits; 4,000 of them re-inked as a canvas
  drawing looks (thresholded to a hard edge and thickened by a random pen); and digits
  rendered from the DejaVu fonts;
- not digits: core/nondigits.py's "train" split, letters from the DejaVu fonts and random
  scribbles, shapes and faces, all drawn with a pen on a canvas as a person draws;

with random turns, shifts and rescaling of both. Its score is the "not a digit" logit
minus the "digit" logit; the threshold is set on the last 5,000 training digits, which the
network never saw, so that 99.5 % of them pass. A picture whose score is over it does not
look like a digit. Measured with benchmarks/bench_ood.py on core/nondigits.py's "measure"
split (Liberation fonts, other seeds): see the README.

Why its own file, data/models/novelty.npz, and not a threshold in each model file: the
check judges the picture, not a model's features, so one calibration serves the shipped CNN
and MLP and every run trained from the dashboard, which would otherwise each need
recalibrating on synthetic non-digits before they could be trusted. It knows MNIST's ten
digits only (`applies_to`). `python scripts/fit_novelty.py` regenerates it (about 3
minutes); its settings and measured pass rate are stored beside the weights.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from . import nondigits
from .model import Model
from .model_save import save_arrays
from .preprocess import prepare

PARAMS = Path(__file__).resolve().parent.parent / "data" / "models" / "novelty.npz"
LAYERS = [
    {"type": "flatten"},
    {"type": "dense", "units": 256},
    {"type": "relu"},
    {"type": "dense", "units": 64},
    {"type": "relu"},
    {"type": "dense", "units": 2},  # 0: a digit, 1: not a digit
]
SPEC = {"input_shape": [28, 28, 1], "layers": LAYERS}
PASS_RATE = 0.995  # share of held-out digits that pass: ~0.5 % false alarms, under the 1 % goal
HELD_OUT = 5000  # the last training digits, kept out of the fit to calibrate the threshold
NEGATIVES = 1500  # "train" non-digits of each kind
REINKED = 4000  # training digits re-inked like canvas drawings
FONT_DIGITS = 1500  # digits rendered from the "train" fonts
STEPS, BATCH, LR = 6000, 64, 1e-3  # Adam steps of BATCH digits and BATCH non-digits
# Random turns (degrees), shifts (pixels) and rescaling of every batch: drawings vary so.
ROTATE, SHIFT, SCALE = 12.0, 2.0, 0.15

REASON = "it looks more like a letter, a shape or a scribble than like any handwritten digit"


@dataclass(frozen=True)
class Verdict:
    """Whether a picture looks like a digit: it does not when `score` is over `threshold`."""

    looks_like_digit: bool
    score: float
    threshold: float
    reason: str


# What a picture that is not checked (a model of something other than MNIST's digits) gets.
LOOKS_LIKE_A_DIGIT = Verdict(True, 0.0, 1.0, "")


def applies_to(class_names: Sequence[str]) -> bool:
    """Whether the check fits a model with these classes: it knows MNIST's ten digits only."""
    return list(class_names) == [str(d) for d in range(10)]


@dataclass
class Detector:
    """The digit-or-not network and the score over which a picture is not a digit."""

    model: Model
    threshold: float
    info: dict[str, Any] = field(default_factory=dict)  # how it was fitted and what it measured

    def scores(self, images: np.ndarray) -> np.ndarray:
        """(N,) each picture's score: how much more "not a digit" than "digit" it looks."""
        x = np.asarray(images, np.float32).reshape(-1, 28, 28, 1)
        out = [self.model.forward(x[i : i + 2000]) for i in range(0, len(x), 2000)]
        logits = np.concatenate(out) if out else np.zeros((0, 2), np.float32)
        return (logits[:, 1] - logits[:, 0]).astype(np.float64)

    def passes(self, images: np.ndarray) -> np.ndarray:
        """(N,) whether each picture looks like a digit."""
        return self.scores(images) <= self.threshold

    def check(self, image: np.ndarray) -> Verdict:
        """The verdict on one prepared 28x28 picture in [0, 1]."""
        score = float(self.scores(np.asarray(image)[None])[0])
        if score <= self.threshold:
            return Verdict(True, score, self.threshold, "It looks like a handwritten digit.")
        return Verdict(False, score, self.threshold, f"That doesn't look like a digit: {REASON}.")

    def save(self, path: Path) -> Path:
        """Write the network's spec and weights, the threshold and the fit's record, as
        model files are written (core/model_save.py: atomically, only over a regular file)."""
        return save_arrays(
            path,
            {
                "spec": np.array(json.dumps(self.model.spec)),
                "threshold": np.array(self.threshold, np.float64),
                "info": np.array(json.dumps(self.info)),
                **{f"w.{k}": v for k, v in self.model.get_weights().items()},
            },
        )


def reinked(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MNIST digits redrawn as a canvas drawing looks: a hard edge, a random pen width.

    Each digit is enlarged 4 times, cut at a random grey level (thin to bold) and
    thickened by up to 7 pixels, then prepared as a drawing is.
    """
    out = np.empty((len(images), 28, 28), np.float32)
    for i, image in enumerate(np.asarray(images, np.float32).reshape(-1, 28, 28)):
        ink = (ndimage.zoom(image, 4, order=1) > rng.uniform(0.2, 0.7)).astype(np.float32)
        grow = int(rng.integers(0, 8))
        if grow > 1:
            ink = ndimage.grey_dilation(ink, size=(grow, grow))
        got = prepare(ink, nondigits.MIN_EXTENT)
        out[i] = got.image if got.ok else image
    return out


def fit(
    images: np.ndarray,
    labels: np.ndarray,
    seed: int = 0,
    negatives: int = NEGATIVES,
    steps: int = STEPS,
    log: Callable[[str], None] = lambda _: None,
) -> Detector:
    """Train on MNIST-form digits in [0, 1] and "train" non-digits; the last HELD_OUT of the
    digits only set the threshold. The same arguments give the same detector."""
    del labels  # digit or not is all it learns; the digits' own classes do not matter here
    # Only fitting needs these: checking a picture (the Draw page, `predict`) stays light.
    from .augment import augment_batch
    from .optimizers import Adam
    from .train import compute_settings

    started = time.perf_counter()
    x = np.asarray(images, np.float32).reshape(-1, 28, 28)
    train, held = x[:-HELD_OUT], x[-HELD_OUT:]
    rng = np.random.default_rng(seed)
    font_digits, _ = nondigits.drawn_digits(FONT_DIGITS, seed, "train-fonts")
    digits = np.concatenate([train, reinked(train[:REINKED], rng), font_digits])
    others = np.concatenate(list(nondigits.nondigit_set(negatives, seed, "train").values()))
    log(f"{len(digits)} digits, {len(others)} non-digits in {time.perf_counter() - started:.0f} s")
    model = Model(SPEC, seed=seed)
    optimizer = Adam()
    target = np.r_[np.zeros(BATCH, int), np.ones(BATCH, int)]
    # One BLAS thread and denormals flushed, as training does: on a busy machine a second
    # thread's waiting and Adam's tiny moments otherwise slow each step many times over.
    with compute_settings():
        for step in range(steps):
            # Every batch half digits, half not: there are 10 times more digits than non-digits.
            batch = np.concatenate(
                [
                    digits[rng.integers(len(digits), size=BATCH)],
                    others[rng.integers(len(others), size=BATCH)],
                ]
            )
            if rng.random() < 0.5:  # a mirrored letter, shape or scribble is still not a digit
                batch[BATCH:] = batch[BATCH:, :, ::-1]
            batch = augment_batch(batch, rng, rotate=ROTATE, shift=SHIFT, scale=SCALE)
            model.loss_and_grads(batch[..., None], target)
            optimizer.step(model.params, LR * 0.5 * (1 + np.cos(np.pi * step / steps)))
            if step % 1000 == 999:
                log(f"step {step + 1} of {steps}, {time.perf_counter() - started:.0f} s")
    detector = Detector(model, 0.0)
    threshold = float(np.quantile(detector.scores(held), PASS_RATE))
    info = {
        "seed": seed,
        "steps": steps,
        "digits": len(digits),
        "non_digits": len(others),
        "held_out": HELD_OUT,
        "pass_rate": PASS_RATE,
        "seconds": round(time.perf_counter() - started, 1),
    }
    log(f"trained in {info['seconds']:.0f} s; threshold {threshold:.3f}")
    return Detector(model, threshold, info)


def load(path: Path = PARAMS) -> Detector:
    """The detector saved at `path` (by default the shipped one)."""
    with np.load(path) as z:
        model = Model(json.loads(str(z["spec"])))
        model.set_weights({k[2:]: z[k] for k in z.files if k.startswith("w.")})
        return Detector(model, float(z["threshold"]), json.loads(str(z["info"])))


@lru_cache(maxsize=1)
def shipped() -> Detector:
    """The shipped detector, loaded once per process."""
    return load(PARAMS)


def check(image: np.ndarray) -> Verdict:
    """Does a prepared 28x28 picture (see core.preprocess.prepare) look like a digit?"""
    return shipped().check(np.asarray(image))
