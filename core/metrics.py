"""Evaluation: loss, accuracy, the confusion matrix, per-class precision / recall / F1, and
the mistakes a confusion matrix shows most often."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import to_float
from .model import Model


@dataclass
class Evaluation:
    probs: np.ndarray  # (N, classes) float32
    labels: np.ndarray  # (N,) true classes
    loss: float
    accuracy: float

    @property
    def predictions(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(axis=1)


def evaluate(
    model: Model, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000
) -> Evaluation:
    """Run `model` over uint8 `images` in evaluation mode and score it against `labels`."""
    probs = np.concatenate(
        [
            model.predict_proba(to_float(images[i : i + batch_size]), batch_size)
            for i in range(0, len(images), batch_size)
        ]
    )
    picked = probs[np.arange(len(labels)), labels]
    loss = float(-np.mean(np.log(np.maximum(picked, 1e-12))))
    accuracy = float(np.mean(probs.argmax(axis=1) == labels))
    return Evaluation(probs, np.asarray(labels), loss, accuracy)


def confusion_matrix(
    labels: np.ndarray, predictions: np.ndarray, n_classes: int = 10
) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns."""
    return np.bincount(
        labels.astype(np.int64) * n_classes + predictions, minlength=n_classes * n_classes
    ).reshape(n_classes, n_classes)


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support for each class of a confusion matrix."""
    tp = np.diag(cm).astype(float)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual}


@dataclass(frozen=True)
class Confusion:
    """One cell of a confusion matrix off its diagonal: `count` images of `true` read as
    `predicted`."""

    true: int
    predicted: int
    count: int


def most_common_mistake(cm: np.ndarray) -> Confusion | None:
    """The mistake made most often (the first in reading order on a tie); None if none."""
    off = _off_diagonal(cm)
    if off.max(initial=0) <= 0:
        return None
    true, predicted = np.unravel_index(int(off.argmax()), off.shape)
    return Confusion(int(true), int(predicted), int(off[true, predicted]))


def most_often_read_as(cm: np.ndarray) -> list[Confusion | None]:
    """For each true class, the wrong class it is read as most often (the lowest on a tie);
    None for a class never read wrong."""
    off = _off_diagonal(cm)
    return [
        Confusion(t, int(row.argmax()), int(row.max())) if row.max(initial=0) > 0 else None
        for t, row in enumerate(off)
    ]


def _off_diagonal(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm)
    return np.where(np.eye(len(cm), dtype=bool), 0, cm)
