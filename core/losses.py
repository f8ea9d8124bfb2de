"""Softmax and cross-entropy, fused so the gradient is the stable `p - y`."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so exp cannot overflow."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    e /= e.sum(axis=1, keepdims=True)
    return e


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of integer `labels` under softmax(`logits`), and dLoss/dlogits.

    The gradient is (softmax - one_hot) / m, the original's dZ3 = A3 - Y with the
    1/m of the mean folded in here once.
    """
    m = len(labels)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    total = e.sum(axis=1, keepdims=True)
    rows = np.arange(m)
    loss = float(np.mean(np.log(total[:, 0]) - z[rows, labels]))
    grad = e / total
    grad[rows, labels] -= 1
    grad /= m
    return loss, grad
