"""Each optimizer's first steps against the update written out by hand; schedule values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.optimizers import Param, learning_rate, make_optimizer

G1 = np.array([0.5, -1.0, 2.0], np.float32)
G2 = np.array([-0.25, 0.5, 1.0], np.float32)
W0 = np.array([1.0, 2.0, -3.0], np.float32)


def run(name: str, lr: float = 0.1, **kwargs) -> list[np.ndarray]:
    """Apply two steps with gradients G1 then G2; return w after each step."""
    opt = make_optimizer(name, **kwargs)
    p = Param(W0.copy(), np.zeros(3, np.float32), decay=True)
    out = []
    for g in (G1, G2):
        p.grad[...] = g
        opt.step([p], lr)
        out.append(p.value.copy())
    return out


def test_sgd_momentum_is_the_original_rule():
    beta, lr = 0.9, 0.1
    v1 = (1 - beta) * G1
    v2 = beta * v1 + (1 - beta) * G2
    w1, w2 = run("sgd", lr, momentum=beta)
    np.testing.assert_allclose(w1, W0 - lr * v1, rtol=1e-6)
    np.testing.assert_allclose(w2, W0 - lr * v1 - lr * v2, rtol=1e-6)


def test_sgd_without_momentum_is_plain_gradient_descent():
    w1, w2 = run("sgd", 0.1, momentum=0.0)
    np.testing.assert_allclose(w1, W0 - 0.1 * G1, rtol=1e-6)
    np.testing.assert_allclose(w2, W0 - 0.1 * G1 - 0.1 * G2, rtol=1e-6)


def test_nesterov_steps_along_the_lookahead():
    beta, lr = 0.9, 0.1
    v1 = (1 - beta) * G1
    v2 = beta * v1 + (1 - beta) * G2
    w1, w2 = run("sgd", lr, momentum=beta, nesterov=True)
    np.testing.assert_allclose(w1, W0 - lr * (beta * v1 + (1 - beta) * G1), rtol=1e-6)
    np.testing.assert_allclose(w2, w1 - lr * (beta * v2 + (1 - beta) * G2), rtol=1e-6)


def test_adam_with_bias_correction():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    m = v = np.zeros(3)
    w = W0.astype(float)
    expected = []
    for t, g in enumerate((G1, G2), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        expected.append(w)
    got = run("adam", lr)
    # The first Adam step moves every weight by about lr, whatever the gradient's size.
    np.testing.assert_allclose(np.abs(got[0] - W0), lr, rtol=1e-4)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5)


def test_rmsprop():
    lr, rho, eps = 0.01, 0.9, 1e-8
    s1 = (1 - rho) * G1**2
    w1 = W0 - lr * G1 / (np.sqrt(s1) + eps)
    s2 = rho * s1 + (1 - rho) * G2**2
    w2 = w1 - lr * G2 / (np.sqrt(s2) + eps)
    got = run("rmsprop", lr)
    np.testing.assert_allclose(got[0], w1, rtol=1e-5)
    np.testing.assert_allclose(got[1], w2, rtol=1e-5)


def test_adagrad():
    lr, eps = 0.1, 1e-8
    w1 = W0 - lr * G1 / (np.sqrt(G1**2) + eps)
    w2 = w1 - lr * G2 / (np.sqrt(G1**2 + G2**2) + eps)
    got = run("adagrad", lr)
    np.testing.assert_allclose(got[0], w1, rtol=1e-5)
    np.testing.assert_allclose(got[1], w2, rtol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad"])
def test_weight_decay_applies_to_weights_not_biases(name):
    opt = make_optimizer(name, momentum=0.0, weight_decay=0.5)
    weight = Param(W0.copy(), np.zeros(3, np.float32), decay=True)
    bias = Param(W0.copy(), np.zeros(3, np.float32), decay=False)
    opt.step([weight, bias], 0.1)
    np.testing.assert_array_equal(bias.value, W0)  # zero gradient and no decay: unchanged
    assert np.all(np.abs(weight.value) < np.abs(W0))  # pulled towards zero
    if name == "sgd":
        np.testing.assert_allclose(weight.value, W0 - 0.1 * 0.5 * W0, rtol=1e-6)


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        make_optimizer("lbfgs")


def test_schedules():
    assert learning_rate(0.1, 7.3, 20, "constant") == 0.1
    assert learning_rate(0.1, 9.99, 30, "step", step_every=10, step_gamma=0.5) == 0.1
    assert learning_rate(0.1, 10.0, 30, "step", step_every=10, step_gamma=0.5) == 0.05
    assert learning_rate(0.1, 25.0, 30, "step", step_every=10, step_gamma=0.5) == 0.025
    assert learning_rate(0.1, 0.0, 10, "cosine") == pytest.approx(0.1)
    assert learning_rate(0.1, 5.0, 10, "cosine") == pytest.approx(0.05)
    assert learning_rate(0.1, 10.0, 10, "cosine") == pytest.approx(0.0)
    assert learning_rate(0.1, 2.5, 10, "cosine") == pytest.approx(
        0.05 * (1 + math.cos(math.pi / 4))
    )


def test_warmup_ramps_then_hands_over():
    assert learning_rate(0.2, 0.5, 10, "cosine", warmup_epochs=2) == pytest.approx(0.05)
    assert learning_rate(0.2, 1.0, 10, "constant", warmup_epochs=2) == pytest.approx(0.1)
    assert learning_rate(0.2, 2.0, 10, "cosine", warmup_epochs=2) == pytest.approx(0.2)
    # Cosine spans the epochs after the warm-up: halfway through them is half the rate.
    assert learning_rate(0.2, 6.0, 10, "cosine", warmup_epochs=2) == pytest.approx(0.1)
    # Step drops count whole epochs from the start: the first drop is at epoch 3.
    assert learning_rate(0.2, 2.5, 10, "step", warmup_epochs=2, step_every=3) == 0.2
    assert learning_rate(0.2, 3.0, 10, "step", warmup_epochs=2, step_every=3) == pytest.approx(0.02)


# SGD's reparametrised momentum against the rules written out, over steps with a schedule.

RATES = [0.3, 0.2, 0.5, 0.05, 0.1, 0.4]  # a rate that changes every step


def quadratic_gradient(w: np.ndarray) -> np.ndarray:
    """The gradient of a fixed quadratic at w, so each step's gradient depends on the path."""
    A = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 3.0]])
    return A @ w + np.array([0.2, -0.1, 0.4])


def sgd_path(beta: float, nesterov: bool, weight_decay: float, rates: list[float]) -> np.ndarray:
    """Weights after each step of make_optimizer("sgd") on the quadratic, float32."""
    opt = make_optimizer("sgd", momentum=beta, nesterov=nesterov, weight_decay=weight_decay)
    p = Param(W0.copy(), np.zeros(3, np.float32), decay=True)
    path = []
    for lr in rates:
        p.grad[...] = quadratic_gradient(p.value.astype(np.float64))
        opt.step([p], lr)
        path.append(p.value.copy())
    return np.array(path)


def docstring_path(beta: float, nesterov: bool, weight_decay: float, rates: list[float]):
    """The docstring's rule in float64: v = β v + (1-β) g; w -= lr v, or lr (β v + (1-β) g)."""
    w, v, path = W0.astype(np.float64), np.zeros(3), []
    for lr in rates:
        g = quadratic_gradient(w) + weight_decay * w
        v = beta * v + (1 - beta) * g
        w = w - lr * (beta * v + (1 - beta) * g if nesterov else v)
        path.append(w)
    return np.array(path)


def textbook_path(mu: float, nesterov: bool, eta: float, steps: int) -> np.ndarray:
    """The textbook form at a constant rate η: v = μ v - η g, w += v; Nesterov as PyTorch and
    Bengio et al. (2013) write it for the gradient at w: v = μ v - η g, w += μ v - η g."""
    w, v, path = W0.astype(np.float64), np.zeros(3), []
    for _ in range(steps):
        g = quadratic_gradient(w)
        v = mu * v - eta * g
        w = w + (mu * v - eta * g if nesterov else v)
        path.append(w)
    return np.array(path)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_sgd_follows_its_docstring_rule_under_a_changing_rate(beta, nesterov, weight_decay):
    got = sgd_path(beta, nesterov, weight_decay, RATES)
    want = docstring_path(beta, nesterov, weight_decay, RATES)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.abs(got[-1] - W0).max() > 0.1  # the weights really moved


@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_sgd_is_the_textbook_form_at_a_constant_rate_only(nesterov):
    beta, lr, steps = 0.9, 0.2, len(RATES)
    textbook = textbook_path(beta, nesterov, lr * (1 - beta), steps)
    got = sgd_path(beta, nesterov, 0.0, [lr] * steps)
    np.testing.assert_allclose(got, textbook, rtol=1e-5, atol=1e-6)
    # Under a schedule the textbook form, rate η_t = lr_t (1-β) per gradient, is another rule.
    w, v = W0.astype(np.float64), np.zeros(3)
    for lr_t in RATES:
        g = quadratic_gradient(w)
        v = beta * v - lr_t * (1 - beta) * g
        w = w + (beta * v - lr_t * (1 - beta) * g if nesterov else v)
    assert not np.allclose(sgd_path(beta, nesterov, 0.0, RATES)[-1], w, rtol=1e-3)
