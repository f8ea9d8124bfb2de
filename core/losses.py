"""Softmax and cross-entropy, fused so the gradient is the stable `p - y`."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so exp cannot overflow."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    e /= e.sum(axis=1, keepdims=True)
    return e


def softmax_cross_entropy(
    logits: np.ndarray, labels: np.ndarray, count: int | None = None
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of integer `labels` under softmax(`logits`), and dLoss/dlogits.

    The gradient is (softmax - one_hot) / m, the original's dZ3 = A3 - Y with the
    1/m of the mean folded in here once. `count` is the m the mean divides by (default
    len(labels)): a part of a batch split across threads passes the whole batch's size, so
    that the parts' losses and gradients add up to the whole batch's.
    """
    m = len(labels)
    total = m if count is None else count
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    sums = e.sum(axis=1, keepdims=True)
    rows = np.arange(m)
    loss = float(np.sum(np.log(sums[:, 0]) - z[rows, labels]) / total)
    grad = e / sums
    grad[rows, labels] -= 1
    grad /= total
    return loss, grad
