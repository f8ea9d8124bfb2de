"""core.analysis: the computations behind the Evaluate, Weights and Data pages."""

from __future__ import annotations

import numpy as np
import pytest

from core import analysis
from core.data import to_float
from core.metrics import (
    Confusion,
    confusion_matrix,
    evaluate,
    most_common_mistake,
    most_often_read_as,
)
from core.model import Model
from core.model_load import load_model

F32 = np.float32


def mlp(hidden: tuple[int, ...] = (6,), activation: str = "relu", seed: int = 0) -> Model:
    layers: list[dict] = [{"type": "flatten"}]
    for units in hidden:
        layers += [{"type": "dense", "units": units}, {"type": activation}]
    layers.append({"type": "dense", "units": 10})
    return Model({"input_shape": [28, 28, 1], "layers": layers}, seed=seed)


# Abstaining below a confidence threshold


def test_threshold_curve_matches_counting_by_hand(rng):
    confidence = np.round(rng.random(500), 2)  # rounded, so thresholds hit ties exactly
    correct = rng.random(500) < confidence
    thresholds = np.array([0.0, 0.1, 0.37, 0.5, 0.5000001, 0.99, 1.0, 1.5])
    coverage, accuracy = analysis.threshold_curve(confidence, correct, thresholds)
    for t, cov, acc in zip(thresholds, coverage, accuracy, strict=True):
        answered = confidence >= t
        assert cov == pytest.approx(answered.mean())
        if answered.any():
            assert acc == pytest.approx(correct[answered].mean())
        else:
            assert np.isnan(acc)


def test_threshold_curve_extremes_and_monotone_coverage(rng):
    confidence = rng.random(300)
    correct = rng.random(300) < 0.8
    grid = np.linspace(0, 1, 101)
    coverage, accuracy = analysis.threshold_curve(confidence, correct, grid)
    assert coverage[0] == 1.0 and accuracy[0] == pytest.approx(correct.mean())
    assert np.all(np.diff(coverage) <= 0)
    empty_cov, empty_acc = analysis.threshold_curve(np.array([]), np.array([], bool), grid[:3])
    assert np.isnan(empty_cov).all() and np.isnan(empty_acc).all()


def test_abstaining_counts_agree_with_counting_by_hand_and_with_the_curve(rng):
    confidence = np.round(rng.random(700), 2).astype(np.float32)  # ties at the thresholds
    correct = rng.random(700) < confidence
    for threshold in (0.0, 0.1, 0.37, 0.9, 0.99, 1.0, 1.5):
        answers = analysis.abstain(confidence, correct, threshold)
        answered = [c >= threshold for c in confidence.astype(float)]
        right = sum(a and r for a, r in zip(answered, correct, strict=True))
        assert (answers.total, answers.answered, answers.right) == (700, sum(answered), right)
        assert answers.abstained == 700 - sum(answered)
        assert answers.mistakes_left == sum(answered) - right
        coverage, accuracy = analysis.threshold_curve(confidence, correct, [threshold])
        assert answers.coverage == pytest.approx(coverage[0])
        if answers.answered:
            assert answers.accuracy == pytest.approx(accuracy[0])
        else:
            assert np.isnan(answers.accuracy) and np.isnan(accuracy[0])


# Mistakes


def test_the_most_common_mistake_and_what_each_class_is_read_as():
    cm = np.array([[50, 3, 3], [0, 40, 0], [7, 1, 30]])
    assert most_common_mistake(cm) == Confusion(true=2, predicted=0, count=7)
    assert most_often_read_as(cm) == [Confusion(0, 1, 3), None, Confusion(2, 0, 7)]
    # The diagonal never counts, however large: a class read right is not a mistake.
    assert most_common_mistake(np.diag([9, 9, 9])) is None
    assert most_often_read_as(np.diag([9, 9])) == [None, None]


def test_mistakes_read_from_a_real_confusion_matrix(predictions):
    labels, preds, _ = predictions
    cm = confusion_matrix(labels, preds)
    worst = most_common_mistake(cm)
    wrong = [(t, p) for t, p in zip(labels, preds, strict=True) if t != p]
    counts = {pair: wrong.count(pair) for pair in set(wrong)}
    assert worst.count == max(counts.values()) == counts[(worst.true, worst.predicted)]
    for true, read in enumerate(most_often_read_as(cm)):
        mine = {p: n for (t, p), n in counts.items() if t == true}
        assert read.true == true and read.count == max(mine.values()) == mine[read.predicted]


# The examples behind a confusion-matrix cell


@pytest.fixture
def predictions(rng):
    labels = rng.integers(0, 10, 2000)
    preds = np.where(rng.random(2000) < 0.8, labels, rng.integers(0, 10, 2000))
    confidence = rng.random(2000)
    return labels, preds, confidence


def test_all_mistakes_are_the_off_diagonal_most_confident_first(predictions):
    labels, preds, confidence = predictions
    picked = analysis.select_examples(labels, preds, confidence)
    cm = confusion_matrix(labels, preds)
    assert len(picked) == cm.sum() - np.trace(cm)
    assert np.all(labels[picked] != preds[picked])
    assert np.all(np.diff(confidence[picked]) <= 0)


def test_a_cell_gives_exactly_its_images(predictions):
    labels, preds, confidence = predictions
    cm = confusion_matrix(labels, preds)
    for true, pred in [(3, 5), (0, 9), (7, 7)]:
        picked = analysis.select_examples(labels, preds, confidence, true, pred)
        assert len(picked) == cm[true, pred]
        assert np.all(labels[picked] == true) and np.all(preds[picked] == pred)
    diagonal = analysis.select_examples(labels, preds, confidence, 7, 7)
    assert np.all(np.diff(confidence[diagonal]) >= 0)  # right answers: least sure first


def test_one_sided_filters(predictions):
    labels, preds, confidence = predictions
    on_fours = analysis.select_examples(labels, preds, confidence, true=4)
    assert set(labels[on_fours]) == {4} and np.all(preds[on_fours] != 4)
    assert len(on_fours) == np.count_nonzero((labels == 4) & (preds != 4))
    as_twos = analysis.select_examples(labels, preds, confidence, predicted=2)
    assert set(preds[as_twos]) == {2} and np.all(labels[as_twos] != 2)


# Robustness


@pytest.fixture(scope="module")
def digits(mnist):
    return to_float(mnist.test_images[:64])[..., 0]


@pytest.mark.parametrize("kind", ["rotate", "shift", "noise"])
def test_no_damage_is_no_change(digits, kind):
    np.testing.assert_allclose(analysis.perturb(digits, kind, 0.0), digits, atol=1e-6)


def test_rotation_by_a_quarter_turn_is_rot90_either_way(digits):
    turned = analysis.perturb(digits, "rotate", 90.0, seed=3)
    for original, out in zip(digits, turned, strict=True):
        assert (
            min(
                np.abs(out - np.rot90(original, 1)).max(),
                np.abs(out - np.rot90(original, -1)).max(),
            )
            < 1e-4
        )
    directions = [
        np.allclose(o, np.rot90(d, 1), atol=1e-4) for d, o in zip(digits, turned, strict=True)
    ]
    assert 0 < sum(directions) < len(digits)  # both ways occur


def test_shift_moves_the_ink_by_the_amount():
    ys, xs = np.mgrid[0:28, 0:28]
    blob = np.exp(-((ys - 13.5) ** 2 + (xs - 13.5) ** 2) / 8).astype(F32)
    blobs = np.repeat(blob[None], 50, axis=0)  # well inside the frame: no ink is cut off

    def centre(x):
        mass = x.sum(axis=(1, 2))
        return np.stack([(x * ys).sum(axis=(1, 2)) / mass, (x * xs).sum(axis=(1, 2)) / mass], 1)

    moved = centre(analysis.perturb(blobs, "shift", 3.0, seed=1)) - centre(blobs)
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), 3.0, atol=0.02)
    angles = np.arctan2(moved[:, 0], moved[:, 1])
    assert np.ptp(angles) > 3  # in many directions, not one


def test_noise_has_the_chosen_spread_and_stays_in_range():
    grey = np.full((20, 28, 28), 0.5, F32)
    noisy = analysis.perturb(grey, "noise", 0.1, seed=0)
    assert (noisy - grey).std() == pytest.approx(0.1, rel=0.05)
    loud = analysis.perturb(grey, "noise", 5.0, seed=0)
    assert loud.min() >= 0 and loud.max() <= 1


def test_perturb_is_reproducible_and_checks_its_kind(digits):
    np.testing.assert_array_equal(
        analysis.perturb(digits, "rotate", 20, seed=5), analysis.perturb(digits, "rotate", 20, 5)
    )
    assert not np.array_equal(
        analysis.perturb(digits, "noise", 0.3, seed=5), analysis.perturb(digits, "noise", 0.3, 6)
    )
    with pytest.raises(ValueError, match="unknown perturbation"):
        analysis.perturb(digits, "blur", 1.0)


@pytest.mark.parametrize("kind", ["rotate", "shift", "noise"])
def test_damaging_some_rows_damages_them_as_damaging_all_does(digits, kind):
    rows = np.array([40, 3, 17, 63, 0])
    whole = analysis.perturb(digits, kind, {"rotate": 35, "shift": 2.5, "noise": 0.3}[kind], 7)
    some = analysis.perturb(
        digits, kind, {"rotate": 35, "shift": 2.5, "noise": 0.3}[kind], 7, rows=rows
    )
    assert some.shape == (5, 28, 28)
    np.testing.assert_array_equal(some, whole[rows])


def test_the_damaged_examples_are_the_curves_own_images(small_model_path, mnist):
    model, _ = load_model(small_model_path)
    images, labels = mnist.test_images[:300], mnist.test_labels[:300]
    curve = analysis.robustness_curve(model, images, labels, "shift", [0, 4], seed=3)
    damaged, read_as = analysis.damaged_examples(images, labels, curve, 1, 10)
    first = [int(np.flatnonzero(labels == c)[0]) for c in range(10)]
    np.testing.assert_array_equal(analysis.first_of_each_class(labels, 10), first)
    whole = analysis.perturb(to_float(images)[..., 0], "shift", 4.0, seed=3)
    np.testing.assert_array_equal(damaged, whole[first])  # seed and amount of the curve
    np.testing.assert_array_equal(read_as, curve.predictions[1, first])
    assert np.array_equal(read_as, model.predict_proba(damaged[..., None]).argmax(axis=1))


def test_robustness_starts_at_the_plain_accuracy_and_falls(small_model_path, mnist):
    model, _ = load_model(small_model_path)
    images, labels = mnist.test_images[:600], mnist.test_labels[:600]
    curve = analysis.robustness_curve(model, images, labels, "rotate", [0, 30, 75])
    assert curve.predictions.shape == (3, 600)
    assert curve.accuracy[0] == pytest.approx(evaluate(model, images, labels).accuracy)
    assert curve.accuracy[2] < curve.accuracy[1] < curve.accuracy[0]
    np.testing.assert_allclose(curve.accuracy, (curve.predictions == labels).mean(axis=1))


# Inside the network


def test_first_layer_images_are_the_columns_of_w():
    model = mlp((5,))
    weights, biases = analysis.first_layer_images(model)
    W = model.layers[1].params["W"]
    assert weights.shape == (5, 28, 28)
    np.testing.assert_array_equal(weights[3], W[:, 3].reshape(28, 28))
    np.testing.assert_array_equal(biases, model.layers[1].params["b"])
    cnn = Model(
        {
            "input_shape": [28, 28, 1],
            "layers": [
                {"type": "conv2d", "filters": 2},
                {"type": "flatten"},
                {"type": "dense", "units": 10},
            ],
        }
    )
    assert analysis.first_layer_images(cnn) is None


def test_layer_titles_and_activation_layers():
    model = mlp((8, 4))
    titles = [info.title for info in analysis.describe_layers(model)]
    assert titles == [
        "Flatten 1 (784)", "Dense 1 (784 → 8)", "ReLU 1 (8)", "Dense 2 (8 → 4)", "ReLU 2 (4)",
        "Dense 3 (4 → 10)",
    ]  # fmt: skip
    assert analysis.activation_layers(model) == [2, 4, 5]


def by_hand(model: Model, images: np.ndarray) -> list[np.ndarray]:
    """The hidden ReLU outputs of an MLP built by `mlp`, computed from its weights with
    NumPy alone: the oracle for the wrappers around `model.activations`."""
    x = images.reshape(len(images), -1).astype(np.float64) / 255
    outputs = []
    for layer in model.layers:
        if layer.kind == "dense":
            x = x @ layer.params["W"].astype(np.float64) + layer.params["b"]
        elif layer.kind == "relu":
            x = np.maximum(x, 0)
            outputs.append(x)
        elif layer.kind == "tanh":
            x = np.tanh(x)
    return outputs


def test_dead_units_are_the_ones_that_never_fire(mnist):
    model = mlp((6, 3))
    first = model.layers[1]
    first.params["b"][[1, 4]] = -1e6  # no image can outweigh that
    first.params["b"][[0, 2, 3, 5]] = 1e3  # and these are always on
    (dead_1, dead_2) = analysis.dead_units(model, mnist.test_images[:300], batch_size=128)
    assert (dead_1.index, dead_1.units, dead_1.dead.tolist()) == (2, 6, [1, 4])
    assert (dead_2.index, dead_2.units) == (4, 3)
    hidden_2 = by_hand(model, mnist.test_images[:300])[1]
    assert dead_2.dead.tolist() == np.flatnonzero(~(hidden_2 > 1e-6).any(axis=0)).tolist()
    assert analysis.dead_units(mlp((4,), activation="tanh"), mnist.test_images[:10]) == []


def test_dead_units_of_a_layer_are_found_by_position_not_by_width(mnist):
    """Two hidden layers of the same width: each layer's dead units are its own ReLU's."""
    model = mlp((6, 6))
    model.layers[1].params["b"][:] = 1e3  # the first layer: every unit always on
    model.layers[3].params["b"][[0, 5]] = -1e6  # the second: units 0 and 5 dead
    model.layers[3].params["b"][1:5] = 1e3
    dead = analysis.dead_units(model, mnist.test_images[:200])
    assert analysis.dead_after(model, dead, 1).tolist() == []
    assert analysis.dead_after(model, dead, 3).tolist() == [0, 5]
    # A tanh after the first layer: its neurons have no ReLU; the second layer's ReLU
    # is not theirs, though it is just as wide.
    layers = [
        {"type": "flatten"},
        {"type": "dense", "units": 6},
        {"type": "tanh"},
        {"type": "dense", "units": 6},
        {"type": "relu"},
        {"type": "dense", "units": 10},
    ]
    mixed = Model({"input_shape": [28, 28, 1], "layers": layers})
    mixed.layers[3].params["b"][[2]] = -1e6
    (relu,) = analysis.dead_units(mixed, mnist.test_images[:200])
    assert relu.dead.tolist() == [2]
    assert analysis.dead_after(mixed, [relu], 1).tolist() == []
    assert analysis.dead_after(mixed, [relu], 3).tolist() == [2]


def test_what_each_layer_holds():
    layers = [
        {"type": "conv2d", "filters": 4},
        {"type": "maxpool2d"},
        {"type": "batchnorm"},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 8},
        {"type": "relu"},
        {"type": "dense", "units": 10},
    ]
    model = Model({"input_shape": [28, 28, 1], "layers": layers})
    assert analysis.weighted_layers(model) == [0, 5, 7]
    assert [analysis.unit_noun(model, i) for i in (0, 3, 5)] == ["channels", "channels", "neurons"]
    model.layers[5].params["b"][:] = 0.25
    model.layers[7].params["b"][:] = np.linspace(-1, 1, 10)
    assert analysis.constant_biases(model) == [0, 5]  # the convolution's are still all zero
    assert analysis.feeds_batch_norm(model, 0)  # through the max-pool
    assert not analysis.feeds_batch_norm(model, 5) and not analysis.feeds_batch_norm(model, 7)


def test_a_dead_convolution_channel(mnist):
    model = Model(
        {
            "input_shape": [28, 28, 1],
            "layers": [
                {"type": "conv2d", "filters": 3, "kernel_size": 3},
                {"type": "relu"},
                {"type": "flatten"},
                {"type": "dense", "units": 10},
            ],
        }
    )
    conv = model.layers[0]
    conv.params["W"][..., 1] = 0
    conv.params["b"][:] = [0.5, -0.1, 0.5]
    (dead,) = analysis.dead_units(model, mnist.test_images[:50])
    assert dead.units == 3 and dead.dead.tolist() == [1]


def test_layer_outputs(mnist):
    model = mlp((7, 5))
    images = mnist.test_images[:30]
    pixels = analysis.layer_outputs(model, images, None)
    np.testing.assert_allclose(pixels, images.reshape(30, -1) / 255, atol=1e-6)
    hidden_1, hidden_2 = by_hand(model, images)
    np.testing.assert_allclose(
        analysis.layer_outputs(model, images, 2, batch_size=8), hidden_1, rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        analysis.layer_outputs(model, images, 4, batch_size=7), hidden_2, rtol=1e-4, atol=1e-5
    )


def test_a_layer_map_is_the_pca_of_that_layer_and_the_models_answers(mnist):
    model = mlp((7,))
    images = mnist.test_images[:120]
    coords, explained, predictions = analysis.layer_map(model, images, 2)
    expected, share = analysis.pca_2d(by_hand(model, images)[0])
    np.testing.assert_allclose(coords, expected, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(explained, share, rtol=1e-4)
    logits = by_hand(model, images)[0] @ model.layers[3].params["W"] + model.layers[3].params["b"]
    np.testing.assert_array_equal(predictions, logits.argmax(axis=1))


def test_strongest_inputs_rank_the_weighted_sums(mnist):
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((28, 28)).astype(F32)
    images = mnist.test_images[:400]
    top, drive = analysis.strongest_inputs(weights, 0.25, images, k=5)
    sums = images.reshape(400, -1) / 255 @ weights.ravel() + 0.25
    np.testing.assert_array_equal(top, np.argsort(-sums)[:5])
    np.testing.assert_allclose(drive, sums[top], rtol=1e-4)


# PCA


def test_pca_finds_the_main_direction(rng):
    t = rng.standard_normal(400)
    direction = np.array([3.0, -1.0, 2.0, 0.5]) / np.linalg.norm([3.0, -1.0, 2.0, 0.5])
    x = np.outer(t, direction) * 5 + rng.standard_normal((400, 4)) * 0.1 + 7
    coords, explained = analysis.pca_2d(x)
    assert explained[0] > 0.99 and explained[1] < 0.01
    assert abs(np.corrcoef(coords[:, 0], t)[0, 1]) > 0.999
    np.testing.assert_allclose(coords.mean(axis=0), 0, atol=1e-9)
    # The variances of the coordinates are the covariance's top eigenvalues.
    top = np.linalg.eigvalsh(np.cov(x.T, bias=True))[::-1][:2]
    np.testing.assert_allclose(coords.var(axis=0), top, rtol=1e-9)


def pca_by_full_svd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plain formula pca_2d speeds up: every singular triplet, the top two kept."""
    x = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    signs = np.sign(vt[np.arange(2), np.abs(vt[:2]).argmax(axis=1)])
    return u[:, :2] * s[:2] * signs, s[:2] ** 2 / (s**2).sum()


@pytest.mark.parametrize("shape", [(300, 40), (40, 300)], ids=["tall", "wide"])
def test_pca_matches_the_full_svd(rng, shape):
    # Wide is what a convolution layer's outputs are: more numbers per image than images.
    x = rng.standard_normal(shape) * np.linspace(3, 0.5, shape[1]) + 2
    coords, explained = analysis.pca_2d(x)
    expected, share = pca_by_full_svd(x)
    np.testing.assert_allclose(coords, expected, atol=1e-9)
    np.testing.assert_allclose(explained, share, rtol=1e-9)


def test_pca_is_the_same_every_time(rng):
    x = rng.standard_normal((200, 60))
    a, b = analysis.pca_2d(x), analysis.pca_2d(x)
    np.testing.assert_array_equal(a[0], b[0])


def test_pca_signs_are_fixed(rng):
    x = rng.standard_normal((100, 5)) * [5, 3, 1, 1, 1]
    a, _ = analysis.pca_2d(x)
    b, _ = analysis.pca_2d(x[::-1])  # the same cloud, points in another order
    np.testing.assert_allclose(a[::-1], b, atol=1e-9)


def test_pca_of_a_single_column_and_of_constants():
    coords, explained = analysis.pca_2d(np.arange(10.0)[:, None])
    assert coords.shape == (10, 2) and explained.tolist() == [1.0, 0.0]
    coords, explained = analysis.pca_2d(np.ones((5, 3)))
    assert np.all(coords == 0) and np.all(explained == 0)


# The data set


def test_class_counts_and_mean_images(rng):
    images = rng.integers(0, 256, (300, 4, 4), dtype=np.uint8)
    labels = rng.choice([0, 1, 2, 4], 300)  # class 3 is absent
    counts = analysis.class_counts(labels, 5)
    assert counts.tolist() == [np.count_nonzero(labels == c) for c in range(5)]
    means = analysis.mean_images(images, labels, 5)
    np.testing.assert_allclose(means[2], images[labels == 2].mean(axis=0) / 255, rtol=1e-6)
    assert np.all(means[3] == 0)


def test_sample_per_class(rng):
    labels = np.repeat(np.arange(3), [50, 5, 50])
    picked = analysis.sample_per_class(labels, 8, seed=1, n_classes=3)
    assert picked.shape == (3, 8)
    for cls, row in enumerate(picked):
        real = row[row >= 0]
        assert np.all(labels[real] == cls) and len(set(real)) == len(real)
    assert (picked[1] >= 0).sum() == 5 and np.all(picked[1, 5:] == -1)
    np.testing.assert_array_equal(picked, analysis.sample_per_class(labels, 8, 1, 3))
    assert not np.array_equal(picked, analysis.sample_per_class(labels, 8, 2, 3))
