"""Does a 28x28 picture look like a handwritten digit at all? Letters, faces and scribbles do not.

A classifier's softmax names a digit with confidence for anything (a letter A is "4, 100 %
sure"), so this asks the training digits instead, with three tests, each calibrated on
5,000 held-out MNIST digits so that 99.5 % of them pass it:

- pixels: the distance from the nearest digit class's 20-dimensional PCA subspace (a shape
  that none of the ten classes' main ways of varying can rebuild);
- strokes: the Mahalanobis distance, to the nearest class, of a histogram of stroke
  directions in 4x4 regions of the image (HOG-like; catches strokes in unusual places);
- ink: the share of the picture that is solid ink (a filled blob is not a pen stroke).

A picture fails when any one test fails. The fitted statistics ship in
data/models/novelty.npz; `python scripts/fit_novelty.py` regenerates them from data/mnist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

PARAMS = Path(__file__).resolve().parent.parent / "data" / "models" / "novelty.npz"
COMPONENTS = 20  # per-class PCA dimensions: more start to rebuild letters too
BINS, CELL = 8, 7  # stroke directions over 0-180 degrees, in 4x4 regions of 7x7 pixels
SHRINK = 0.05  # covariance shrinkage towards its mean variance, so every class's inverts
PASS_RATE = 0.995  # share of held-out digits each test lets through
HELD_OUT = 5000  # the last training digits, kept out of the fit to calibrate the thresholds
SOLID = 0.5  # a pixel this bright counts as ink for the ink test

REASONS = {
    "pixels": "it is unlike all 60,000 digits the network learned from",
    "strokes": "its strokes run in directions and places no digit's do",
    "ink": "it is a filled shape, with far more solid ink than a digit's pen stroke",
}


@dataclass(frozen=True)
class Verdict:
    """Whether a picture looks like a digit; `score` over `threshold` means it does not.

    `score` is the worst test's score as a multiple of that test's threshold (so `threshold` is 1).
    """

    looks_like_digit: bool
    score: float
    threshold: float
    reason: str


# What a picture that is not checked (a model of something other than MNIST's digits) gets.
LOOKS_LIKE_A_DIGIT = Verdict(True, 0.0, 1.0, "")


def applies_to(class_names: Sequence[str]) -> bool:
    """Whether the check fits a model with these classes: it knows MNIST's ten digits only."""
    return list(class_names) == [str(d) for d in range(10)]


def stroke_features(images: np.ndarray) -> np.ndarray:
    """(N, 128) square-rooted histograms of gradient direction, weighted by strength, per region."""
    x = np.asarray(images, np.float32).reshape(-1, 28, 28)
    gy, gx = np.gradient(x, axis=(1, 2))
    strength = np.hypot(gx, gy)
    # Direction modulo 180 degrees: a stroke's two edges count as the same direction.
    angle = np.mod(np.arctan2(gy, gx), np.pi)
    which = np.minimum((angle / np.pi * BINS).astype(int), BINS - 1)
    n, side = len(x), 28 // CELL
    hist = np.empty((n, side, side, BINS), np.float32)
    for b in range(BINS):
        hist[..., b] = (strength * (which == b)).reshape(n, side, CELL, side, CELL).sum((2, 4))
    return np.sqrt(hist.reshape(n, -1))  # the square root evens out the spread of the counts


def ink_share(images: np.ndarray) -> np.ndarray:
    """(N,) share of each picture's pixels that are solid ink."""
    x = np.asarray(images, np.float32).reshape(len(images), -1)
    return (x > SOLID).mean(axis=1)


@dataclass(frozen=True)
class Detector:
    """Per-class PCA subspaces and stroke statistics of the training digits, and thresholds."""

    mean: np.ndarray  # (10, 784) each class's mean digit
    basis: np.ndarray  # (10, COMPONENTS, 784) each class's principal directions
    stroke_mean: np.ndarray  # (10, 128)
    stroke_precision: np.ndarray  # (10, 128, 128) inverse covariance of the stroke features
    thresholds: np.ndarray  # (3,) for pixels, strokes, ink

    def scores(self, images: np.ndarray) -> np.ndarray:
        """(N, 3) each picture's score on the pixels, strokes and ink tests."""
        x = np.asarray(images, np.float64).reshape(-1, 784)
        pixels = np.full(len(x), np.inf)
        strokes = np.full(len(x), np.inf)
        feats = stroke_features(x).astype(np.float64)
        for c in range(len(self.mean)):
            d = x - self.mean[c]
            z = d @ self.basis[c].T
            pixels = np.minimum(pixels, (d**2).sum(1) - (z**2).sum(1))
            f = feats - self.stroke_mean[c]
            strokes = np.minimum(strokes, ((f @ self.stroke_precision[c]) * f).sum(1))
        return np.stack([pixels, strokes, ink_share(x)], axis=1)

    def check(self, image: np.ndarray) -> Verdict:
        """The verdict on one prepared 28x28 picture in [0, 1]."""
        ratios = self.scores(image[None])[0] / self.thresholds
        worst = int(np.argmax(ratios))
        score = float(ratios[worst])
        if score <= 1.0:
            return Verdict(True, score, 1.0, "It looks like a handwritten digit.")
        reason = REASONS[list(REASONS)[worst]]
        return Verdict(False, score, 1.0, f"That doesn't look like a digit: {reason}.")

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            mean=self.mean.astype(np.float32),
            basis=self.basis.astype(np.float32),
            stroke_mean=self.stroke_mean.astype(np.float32),
            stroke_precision=self.stroke_precision.astype(np.float32),
            thresholds=self.thresholds.astype(np.float64),
        )


def fit(images: np.ndarray, labels: np.ndarray) -> Detector:
    """Fit on MNIST-form digits in [0, 1]; the last HELD_OUT of them only set the thresholds."""
    x = np.asarray(images, np.float64).reshape(len(images), -1)
    labels = np.asarray(labels)
    train, y, held = x[:-HELD_OUT], labels[:-HELD_OUT], x[-HELD_OUT:]
    feats = stroke_features(train).astype(np.float64)
    means, bases, stroke_means, precisions = [], [], [], []
    for c in range(10):
        own = train[y == c]
        mean = own.mean(0)
        # The covariance's top eigenvectors: the same subspace as an SVD, in a fraction of the time.
        _, vectors = np.linalg.eigh(np.cov(own.T))
        means.append(mean)
        bases.append(vectors[:, ::-1][:, :COMPONENTS].T)
        f = feats[y == c]
        cov = np.cov(f.T)
        cov = (1 - SHRINK) * cov + SHRINK * np.trace(cov) / len(cov) * np.eye(len(cov))
        stroke_means.append(f.mean(0))
        precisions.append(np.linalg.inv(cov))
    detector = Detector(
        np.array(means), np.array(bases), np.array(stroke_means), np.array(precisions), np.ones(3)
    )
    thresholds = np.quantile(detector.scores(held), PASS_RATE, axis=0)
    return Detector(
        detector.mean, detector.basis, detector.stroke_mean, detector.stroke_precision, thresholds
    )


def load(path: Path = PARAMS) -> Detector:
    """The detector saved at `path` (by default the shipped one)."""
    with np.load(path) as z:
        return Detector(
            z["mean"].astype(np.float64),
            z["basis"].astype(np.float64),
            z["stroke_mean"].astype(np.float64),
            z["stroke_precision"].astype(np.float64),
            z["thresholds"],
        )


@lru_cache(maxsize=1)
def shipped() -> Detector:
    """The shipped detector, loaded once per process."""
    return load(PARAMS)


def check(image: np.ndarray) -> Verdict:
    """Does a prepared 28x28 picture (see core.preprocess.prepare) look like a digit?"""
    return shipped().check(np.asarray(image))
