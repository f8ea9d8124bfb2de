"""A convolutional network's training step split across two threads (core/model.py,
`_step_on_copies`): the same loss and gradients as the whole batch in one piece, batch
norm's statistics of the whole batch, dropout's masks of the whole batch, the same weights
in every seeded run, and errors that surface instead of hanging."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core import layers
from core.layers import conv
from core.losses import softmax_cross_entropy
from core.model import Model
from core.optimizers import SGD
from tests.test_layers import EVERY_LAYER, assert_gradients_in_place, same_dropout_masks

# Valid convolutions, so the second one's 3x3 output loses its last row and column to the
# pool after it: a training step computes only the 2x2 the pool uses.
SPEC = {
    "input_shape": [12, 12, 1],
    "layers": [
        {"type": "conv2d", "filters": 3, "kernel_size": 3, "padding": "valid"},
        {"type": "maxpool2d"},
        {"type": "batchnorm"},
        {"type": "relu"},
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "valid"},
        {"type": "maxpool2d"},
        {"type": "batchnorm"},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 6},
        {"type": "batchnorm"},
        {"type": "relu"},
        {"type": "dropout", "rate": 0.3},
        {"type": "dense", "units": 5, "init": "lecun"},
    ],
}


@pytest.fixture
def split_small_batches(monkeypatch):
    """Split even a batch of 2 into halves, one per thread."""
    monkeypatch.setattr(conv, "SPLIT_MIN", 2)
    before = conv.set_two_cores(True)
    yield
    conv.set_two_cores(before)


def one_piece(model: Model, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """The plain step on the model's own layers: forward, loss, backward, no split, no copies."""
    logits = model.forward(x, training=True)
    loss, dlogits = softmax_cross_entropy(logits, labels)
    model.backward(dlogits)
    return loss, logits


def batch(n: int, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 12, 12, 1)), rng.integers(0, 5, n)


@pytest.mark.parametrize(
    ("n", "split_min"),
    [(7, 2), (8, 2), (8, 10**9)],
    ids=["odd batch in halves", "even batch in halves", "one piece, pooled outputs only"],
)
def test_a_step_on_copies_gives_the_whole_batchs_loss_gradients_and_statistics(
    n, split_min, split_small_batches, monkeypatch
):
    monkeypatch.setattr(conv, "SPLIT_MIN", split_min)
    x, labels = batch(n)
    split, whole = (Model(SPEC, seed=1).astype(np.float64) for _ in range(2))
    assert split._pooled == {4: (2, 2)}  # the step's second convolution skips its last row
    same_dropout_masks(split)()
    loss, logits = split.loss_and_grads(x, labels)
    assert len(split._parts) == (2 if split_min == 2 else 1)
    assert split._parts[0][4].needed == (2, 2)
    same_dropout_masks(whole)()
    want_loss, want_logits = one_piece(whole, x, labels)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-12, atol=1e-12)
    for got, want in zip(split.params, whole.params, strict=True):
        np.testing.assert_allclose(got.grad, want.grad, rtol=1e-10, atol=1e-12)
    # Running statistics moved once, by the whole batch's mean and variance.
    for key, value in whole.arrays().items():
        if key.startswith("state."):
            np.testing.assert_allclose(split.arrays()[key], value, rtol=1e-12, atol=1e-12)


def test_a_split_step_keeps_the_in_place_contract_and_matches_finite_differences(
    split_small_batches,
):
    model = Model(EVERY_LAYER, seed=1).astype(np.float64)
    x = np.random.default_rng(2).standard_normal((4, 8, 8, 2))
    assert_gradients_in_place(model, x, np.array([0, 3, 1, 2]))
    assert len(model._parts) == 2


def test_the_two_halves_draw_the_dropout_mask_of_the_whole_batch(split_small_batches):
    x, labels = batch(8)
    split, whole = Model(SPEC, seed=1), Model(SPEC, seed=1)
    split.loss_and_grads(x.astype(np.float32), labels)
    whole.forward(x.astype(np.float32), training=True)
    masks = [np.concatenate([part[12].mask for part in split._parts]), whole.layers[12].mask]
    np.testing.assert_array_equal(*masks)


def train(steps: int, seed: int) -> list[np.ndarray]:
    model, optimizer = Model(SPEC, seed=seed), SGD(momentum=0.9)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = rng.standard_normal((16, 12, 12, 1), dtype=np.float32)
        model.loss_and_grads(x, rng.integers(0, 5, 16))
        optimizer.step(model.params, 0.1)
    return [a.copy() for a in model.arrays().values()]


def test_a_seeded_run_of_split_steps_gives_the_same_weights_every_time(split_small_batches):
    first, second = train(5, seed=4), train(5, seed=4)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_error_in_one_half_is_raised_and_nothing_hangs(split_small_batches, monkeypatch):
    original = layers.BatchNorm.forward

    def failing(self, x, training=False):
        if self.share is not None and self.share.part == 0:
            raise FloatingPointError("half 0 failed")
        return original(self, x, training)

    monkeypatch.setattr(layers.BatchNorm, "forward", failing)
    model = Model(SPEC, seed=1)
    x, labels = batch(8)
    with pytest.raises(FloatingPointError, match="half 0 failed"):
        model.loss_and_grads(x.astype(np.float32), labels)
    monkeypatch.setattr(layers.BatchNorm, "forward", original)
    model.loss_and_grads(x.astype(np.float32), labels)  # the helper thread is free again
    assert threading.active_count() < 50


def test_the_exchange_adds_the_parts_in_order_on_every_thread():
    exchange = layers.Exchange(2)
    seen: list[list[np.ndarray]] = [[], []]

    def part(k: int) -> None:
        for step in range(50):
            seen[k].append(exchange.total(k, np.array([k + 1.0, step * (k + 1.0)])))

    helper = threading.Thread(target=part, args=(0,))
    helper.start()
    part(1)
    helper.join()
    for step, (a, b) in enumerate(zip(*seen, strict=True)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, [3.0, 3.0 * step])
