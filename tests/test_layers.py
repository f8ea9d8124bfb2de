"""Every layer's backward pass against finite differences, a few exact forward values, the
in-place gradient contract (every layer writes into the model's flat gradient buffers) and `vjp`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from core import layers
from core.layers import conv
from core.losses import softmax, softmax_cross_entropy
from core.model import Model
from tests.gradcheck import TOLERANCE, check_layer, numeric_grad, relative_error, sample_indices


def built(layer: layers.Layer, input_shape: tuple[int, ...], seed: int = 0) -> layers.Layer:
    """Build `layer` and move its arrays to float64 for a tight gradient check."""
    layer.build(input_shape, np.random.default_rng(seed))
    for arrays in (layer.params, layer.grads, layer.state):
        for name, value in arrays.items():
            arrays[name] = value.astype(np.float64)
    return layer


def assert_gradients_match(errors: dict[str, float]) -> None:
    assert errors, "nothing was checked"
    for name, err in errors.items():
        assert err < TOLERANCE, f"gradient of {name} is off: relative error {err:.2e}"


# Inputs avoid the kinks of ReLU and max-pool (|x| > 1e-3) so central differences are valid.
def smooth_input(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 1e-3, 0.5, x)


DENSE_INPUT = (6, 7)
CASES = [
    ("dense he", lambda: layers.Dense(5), DENSE_INPUT),
    ("dense lecun", lambda: layers.Dense(3, init="lecun"), DENSE_INPUT),
    ("relu", layers.ReLU, DENSE_INPUT),
    ("leaky_relu", lambda: layers.LeakyReLU(0.1), DENSE_INPUT),
    ("tanh", layers.Tanh, DENSE_INPUT),
    ("sigmoid", layers.Sigmoid, DENSE_INPUT),
    ("flatten", layers.Flatten, (3, 4, 5, 2)),
    ("dropout", lambda: layers.Dropout(0.4), DENSE_INPUT),
    ("batchnorm dense", layers.BatchNorm, DENSE_INPUT),
    ("batchnorm conv", layers.BatchNorm, (3, 4, 5, 2)),
    ("maxpool 2", lambda: layers.MaxPool2D(2), (2, 6, 6, 3)),
    ("maxpool 3 odd size", lambda: layers.MaxPool2D(3), (2, 7, 8, 2)),
]
CONV_CASES = [
    (1, "same", 1, 2),
    (2, "same", 2, 3),
    (3, "same", 1, 4),
    (3, "valid", 3, 2),
    (5, "same", 2, 3),
    (4, "valid", 1, 2),
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(("name", "make", "shape"), CASES, ids=[c[0] for c in CASES])
def test_layer_gradients(name, make, shape, training, rng):
    layer = built(make(), shape[1:])
    x = smooth_input(shape, rng)
    if isinstance(layer, layers.BatchNorm) and not training:
        # Give evaluation mode non-trivial running statistics first.
        for _ in range(3):
            layer.forward(smooth_input(shape, rng) * 2 + 1, training=True)
    assert_gradients_match(check_layer(layer, x, training))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(("kernel", "padding", "channels", "filters"), CONV_CASES)
def test_conv2d_gradients(kernel, padding, channels, filters, training, rng):
    layer = built(layers.Conv2D(filters, kernel, padding), (7, 6, channels))
    layer.params["b"][:] = rng.standard_normal(filters)
    x = rng.standard_normal((2, 7, 6, channels))
    assert_gradients_match(check_layer(layer, x, training))


@pytest.fixture
def split_small_batches(monkeypatch):
    """Make Conv2D and MaxPool2D split even a batch of 2 across the two cores."""
    monkeypatch.setattr(conv, "SPLIT_MIN", 2)


SPLIT_CASES = [
    ("conv 3 valid, 1 channel", lambda: layers.Conv2D(4, 3, "valid"), (3, 7, 6, 1)),
    ("conv 3 same, 3 channels", lambda: layers.Conv2D(2, 3, "same"), (3, 7, 6, 3)),
    ("maxpool 2", lambda: layers.MaxPool2D(2), (3, 6, 6, 3)),
    ("maxpool 3 odd size", lambda: layers.MaxPool2D(3), (3, 7, 8, 2)),
]


@pytest.mark.parametrize(("name", "make", "shape"), SPLIT_CASES, ids=[c[0] for c in SPLIT_CASES])
def test_gradients_of_a_batch_split_across_two_cores(name, make, shape, split_small_batches, rng):
    layer = built(make(), shape[1:])
    if layer.params:
        layer.params["b"][:] = rng.standard_normal(layer.params["b"].shape)
    x = smooth_input(shape, rng)
    assert_gradients_match(check_layer(layer, x, training=True))
    assert len(layer.parts) == 2  # the halves of 1 and 2 images were really computed apart


@pytest.mark.parametrize(
    "make", [lambda: layers.Conv2D(8, 3, "valid"), lambda: layers.MaxPool2D(2)]
)
def test_a_split_batch_matches_the_same_batch_in_one_piece(make, monkeypatch, rng):
    x = rng.standard_normal((64, 12, 12, 3), dtype=np.float32)
    dy = None
    results = []
    for split_min in (10**9, 32):  # one piece, then two halves of 32
        monkeypatch.setattr(conv, "SPLIT_MIN", split_min)
        layer = make()
        layer.build(x.shape[1:], np.random.default_rng(0))
        y = layer.forward(x, training=True)
        dy = rng.standard_normal(y.shape, dtype=np.float32) if dy is None else dy
        dx = layer.backward(dy)
        results.append((y, dx, {k: g.copy() for k, g in layer.grads.items()}))
    (y1, dx1, g1), (y2, dx2, g2) = results
    np.testing.assert_allclose(y2, y1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx2, dx1, rtol=1e-5, atol=1e-5)
    for name in g1:  # sums of 64·100 float32 terms, added in another order
        scale = np.abs(g1[name]).max()
        np.testing.assert_allclose(g2[name], g1[name], rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize(("kernel", "padding"), [(3, "same"), (2, "same"), (3, "valid")])
def test_conv2d_forward_matches_direct_sum(kernel, padding, rng):
    layer = built(layers.Conv2D(2, kernel, padding), (5, 6, 3))
    x = rng.standard_normal((2, 5, 6, 3))
    y = layer.forward(x)
    before = (kernel - 1) // 2 if padding == "same" else 0
    after = kernel - 1 - before if padding == "same" else 0
    xp = np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))
    W, b = layer.params["W"], layer.params["b"]
    expected = np.zeros_like(y)
    for n in range(y.shape[0]):
        for i in range(y.shape[1]):
            for j in range(y.shape[2]):
                patch = xp[n, i : i + kernel, j : j + kernel, :]  # (k, k, C)
                for f in range(W.shape[-1]):
                    expected[n, i, j, f] = np.sum(patch * W[:, :, :, f]) + b[f]
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    assert y.shape == ((2, 5, 6, 2) if padding == "same" else (2, 3, 4, 2))


def test_maxpool_ties_route_gradient_to_first_maximum():
    """The documented rule exactly: the leftmost column holding the maximum, its topmost row."""
    layer = built(layers.MaxPool2D(2), (4, 4, 1))
    x = np.zeros((1, 4, 4, 1))
    x[0, 0, 1, 0] = 3.0  # top-left window: a single maximum
    x[0, 0, 3, 0] = x[0, 1, 2, 0] = 5.0  # top-right: first in column-major, not row-major
    x[0, 2:, 2:, 0] = 7.0  # bottom-right: four tied maxima; bottom-left: four zeros
    y = layer.forward(x, training=True)
    assert y[0, :, :, 0].tolist() == [[3.0, 5.0], [0.0, 7.0]]
    dy = np.arange(1.0, 5.0).reshape(1, 2, 2, 1)
    dx = layer.backward(dy)[0, :, :, 0]
    expected = [
        [0, 1, 0, 0],
        [0, 0, 2, 0],  # row-major order would have picked (0, 3)
        [3, 0, 4, 0],
        [0, 0, 0, 0],
    ]
    np.testing.assert_array_equal(dx, expected)


def test_maxpool_ties_match_one_sided_differences():
    """With ties the subgradient we pick is the right-hand derivative of the first maximum."""
    layer = built(layers.MaxPool2D(2), (2, 2, 1))
    x = np.array([[[[1.0], [1.0]], [[0.5], [1.0]]]])
    layer.forward(x, training=True)
    dx = layer.backward(np.ones((1, 1, 1, 1)))
    eps = 1e-6
    bumped = x.copy()
    bumped[0, 0, 0, 0] += eps
    assert (layer.forward(bumped)[0, 0, 0, 0] - 1.0) / eps == pytest.approx(dx[0, 0, 0, 0])


def test_dropout_is_identity_at_evaluation_and_scales_in_training(rng):
    layer = built(layers.Dropout(0.25), (1000,))
    x = np.ones((4, 1000))
    assert layer.forward(x, training=False) is x
    y = layer.forward(x, training=True)
    kept = y != 0
    assert np.allclose(y[kept], 1 / 0.75)
    assert 0.70 < kept.mean() < 0.80


def test_batchnorm_running_statistics_converge_to_data_statistics(rng):
    layer = built(layers.BatchNorm(momentum=0.5), (3,))
    for _ in range(40):
        layer.forward(rng.normal([1.0, -2.0, 0.0], [1.0, 3.0, 0.5], size=(500, 3)), True)
    np.testing.assert_allclose(layer.state["mean"], [1.0, -2.0, 0.0], atol=0.3)
    np.testing.assert_allclose(layer.state["var"], [1.0, 9.0, 0.25], rtol=0.25)
    y = layer.forward(np.array([[1.0, -2.0, 0.0]]), training=False)
    np.testing.assert_allclose(y, 0.0, atol=0.3)


def test_layers_keep_float32(rng):
    spec = {
        "input_shape": [8, 8, 1],
        "layers": [
            {"type": "conv2d", "filters": 3, "kernel_size": 3},
            {"type": "batchnorm"},
            {"type": "leaky_relu"},
            {"type": "maxpool2d"},
            {"type": "flatten"},
            {"type": "dense", "units": 6},
            {"type": "tanh"},
            {"type": "dropout", "rate": 0.3},
            {"type": "sigmoid"},
            {"type": "dense", "units": 4},
        ],
    }
    model = Model(spec, seed=0)
    x = rng.random((5, 8, 8, 1), dtype=np.float32)
    logits = model.forward(x, training=True)
    assert logits.dtype == np.float32
    _, dlogits = softmax_cross_entropy(logits, np.array([0, 1, 2, 3, 0]))
    assert dlogits.dtype == np.float32
    model.backward(dlogits)
    for p in model.params:
        assert p.value.dtype == np.float32 and p.grad.dtype == np.float32


def test_softmax_cross_entropy_is_stable_and_matches_definition(rng):
    logits = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    loss, grad = softmax_cross_entropy(logits, np.array([0, 2]))
    p = softmax(logits)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(axis=1), 1)
    expected = -(np.log(p[0, 0]) + np.log(p[1, 2])) / 2
    assert loss == pytest.approx(expected)
    onehot = np.array([[1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(grad, (p - onehot) / 2)


def same_dropout_masks(model: Model) -> Callable[[], None]:
    """A function that resets every dropout layer's generator, so each pass draws the same masks."""
    dropouts = [layer for layer in model.layers if isinstance(layer, layers.Dropout)]

    def reset() -> None:
        for layer in dropouts:
            layer.rng = np.random.default_rng(7)

    return reset


def training_loss(model: Model, x: np.ndarray, labels: np.ndarray) -> Callable[[], float]:
    """The model's training loss on (x, labels) as a function of its current weights."""
    reset = same_dropout_masks(model)

    def loss() -> float:
        reset()
        return softmax_cross_entropy(model.forward(x, training=True), labels)[0]

    return loss


def _model_check(spec: dict, x: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    model = Model(spec, seed=3).astype(np.float64)
    loss = training_loss(model, x, labels)
    loss()
    same_dropout_masks(model)()
    model.loss_and_grads(x, labels)
    analytic = [p.grad.copy() for p in model.params]
    rng = np.random.default_rng(0)
    errors = {}
    for k, p in enumerate(model.params):
        idx = sample_indices(p.value.shape, rng, n=15)
        numeric = numeric_grad(loss, p.value, idx)
        errors[f"param {k}"] = relative_error(np.array([analytic[k][i] for i in idx]), numeric)
    return errors


def test_whole_mlp_gradient(rng):
    spec = {
        "input_shape": [4, 4, 1],
        "layers": [
            {"type": "flatten"},
            {"type": "dense", "units": 12},
            {"type": "batchnorm"},
            {"type": "relu"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 8},
            {"type": "tanh"},
            {"type": "dense", "units": 5, "init": "lecun"},
        ],
    }
    x = smooth_input((6, 4, 4, 1), rng)
    assert_gradients_match(_model_check(spec, x, rng.integers(0, 5, 6)))


def test_whole_cnn_gradient(rng):
    spec = {
        "input_shape": [8, 8, 1],
        "layers": [
            {"type": "conv2d", "filters": 3, "kernel_size": 3},
            {"type": "sigmoid"},
            {"type": "maxpool2d"},
            {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "valid"},
            {"type": "leaky_relu"},
            {"type": "flatten"},
            {"type": "dense", "units": 3},
        ],
    }
    x = rng.standard_normal((3, 8, 8, 1))
    assert_gradients_match(_model_check(spec, x, np.array([0, 1, 2])))


# The in-place contract: every layer's gradients are views of the model's flat buffers.

EVERY_LAYER = {
    "input_shape": [8, 8, 2],
    "layers": [
        {"type": "conv2d", "filters": 3, "kernel_size": 3},
        {"type": "batchnorm"},
        {"type": "relu"},
        {"type": "maxpool2d"},
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "valid"},
        {"type": "leaky_relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 6},
        {"type": "batchnorm"},
        {"type": "tanh"},
        {"type": "dropout", "rate": 0.3},
        {"type": "dense", "units": 5},
        {"type": "sigmoid"},
        {"type": "dense", "units": 4, "init": "lecun"},
    ],
}


def buffer_slice(model: Model, value: np.ndarray) -> np.ndarray:
    """The part of the model's flat gradient buffers that belongs to parameter `value`.

    Found from where `value` sits in the flat parameter buffer, not from `layer.grads`, so it
    is what the optimizer reads whatever a layer did to its `grads`.
    """
    for p in model.params:
        if np.shares_memory(value, p.value):
            start = (value.ctypes.data - p.value.ctypes.data) // value.itemsize
            return p.grad[start : start + value.size].reshape(value.shape)
    raise AssertionError("a parameter is not in the model's flat buffers")


def assert_gradients_in_place(model: Model, x: np.ndarray, labels: np.ndarray) -> None:
    """One loss_and_grads writes every gradient into the flat buffers, whole and right."""
    for p in model.params:
        p.grad[...] = np.nan  # so an entry nobody wrote shows
    loss = training_loss(model, x, labels)
    same_dropout_masks(model)()
    model.loss_and_grads(x, labels)
    rng = np.random.default_rng(0)
    for i, layer in enumerate(model.layers):
        for name, value in layer.params.items():
            where = f"layer {i} ({layer.kind}) grads[{name!r}]"
            seen = buffer_slice(model, value)
            assert np.shares_memory(layer.grads[name], seen), f"{where} was rebound"
            assert np.isfinite(seen).all(), f"{where} was not written in full"
            np.testing.assert_array_equal(layer.grads[name], seen)
            idx = sample_indices(value.shape, rng, n=4)
            numeric = numeric_grad(loss, value, idx)
            error = relative_error(np.array([seen[k] for k in idx]), numeric)
            assert error < TOLERANCE, f"{where} is off: relative error {error:.2e}"


def contract_model() -> tuple[Model, np.ndarray, np.ndarray]:
    model = Model(EVERY_LAYER, seed=1).astype(np.float64)
    assert {layer.kind for layer in model.layers} == set(layers.Layer.registry)  # every type
    x = np.random.default_rng(2).standard_normal((3, 8, 8, 2))
    return model, x, np.array([0, 3, 1])


def test_every_layer_writes_its_gradients_into_the_models_buffers():
    model, x, labels = contract_model()
    assert_gradients_in_place(model, x, labels)
    assert_gradients_in_place(model, x * 0.5, labels)  # a second step overwrites the first


@pytest.mark.parametrize(
    ("cls", "name"),
    [(layers.Dense, "W"), (layers.Conv2D, "b"), (layers.BatchNorm, "gamma")],
    ids=["dense W", "conv b", "batchnorm gamma"],
)
def test_the_in_place_check_catches_a_rebound_gradient(cls, name, monkeypatch):
    original = cls.backward

    def rebinding_backward(self, dy, need_dx=True):
        self.grads[name] = np.zeros_like(self.grads[name])  # the bug: a fresh array
        return original(self, dy, need_dx)

    model, x, labels = contract_model()
    assert_gradients_in_place(model, x, labels)
    monkeypatch.setattr(cls, "backward", rebinding_backward)
    with pytest.raises(AssertionError, match=f"grads\\['{name}'\\] was rebound"):
        assert_gradients_in_place(model, x, labels)


def test_a_dense_layer_that_assigns_its_weight_gradient_is_caught(monkeypatch):
    def assigning_backward(self, dy, need_dx=True):
        self.grads["W"] = self.x.T @ dy  # right values, in an array the optimizer never sees
        self.grads["b"][...] = dy.sum(axis=0)
        return dy @ self.params["W"].T if need_dx else None

    model, x, labels = contract_model()
    monkeypatch.setattr(layers.Dense, "backward", assigning_backward)
    with pytest.raises(AssertionError, match="dense\\) grads\\['W'\\] was rebound"):
        assert_gradients_in_place(model, x, labels)


# vjp: a layer's input gradient for given inputs, leaving the layer as it was.

VJP_CASES = [
    *CASES,
    ("conv same", lambda: layers.Conv2D(3, 3, "same"), (2, 6, 5, 2)),
    ("conv valid", lambda: layers.Conv2D(2, 3, "valid"), (1, 6, 5, 1)),
]


@pytest.mark.parametrize(("name", "make", "shape"), VJP_CASES, ids=[c[0] for c in VJP_CASES])
def test_vjp_is_the_evaluation_backward_and_leaves_the_layer_untouched(name, make, shape, rng):
    layer = built(make(), shape[1:])
    for value in layer.params.values():
        value[...] = rng.standard_normal(value.shape)
    for value in layer.state.values():
        value[...] = rng.uniform(0.5, 2, value.shape)
    x = smooth_input(shape, rng)
    dy = rng.standard_normal(layer.forward(x).shape)
    # What a training step left on the layer, which vjp must not disturb.
    layer.forward(x * 2, training=True)
    layer.backward(np.ones_like(dy))
    grads = {k: g.copy() for k, g in layer.grads.items()}
    grad_arrays = dict(layer.grads)
    kept = dict(vars(layer))
    state = {k: s.copy() for k, s in layer.state.items()}

    dx = layer.vjp(x, dy)

    assert vars(layer).keys() == kept.keys()
    assert all(vars(layer)[k] is v for k, v in kept.items())
    assert all(layer.grads[k] is grad_arrays[k] for k in grads)
    for k, g in grads.items():
        np.testing.assert_array_equal(layer.grads[k], g)
    for k, s in state.items():
        np.testing.assert_array_equal(layer.state[k], s)
    # The same numbers as the evaluation-mode backward that test_layer_gradients checks.
    twin = built(make(), shape[1:])
    for arrays, source in ((twin.params, layer.params), (twin.state, layer.state)):
        for k, value in source.items():
            arrays[k][...] = value
    twin.forward(x, training=False)
    np.testing.assert_array_equal(dx, twin.backward(dy))
    assert dx.shape == x.shape
