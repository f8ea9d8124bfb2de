"""Building from a spec, determinism, and the .npz model file."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from core.architecture import spec_from_config
from core.config import TrainConfig
from core.data import to_float
from core.model import Model, ModelFileError
from core.model_load import load_model
from core.presets import preset
from core.train import fit

CNN_SPEC = spec_from_config(
    TrainConfig(arch="cnn", conv=[4, 6], hidden=[16], batchnorm=True, dropout=0.3)
)


def test_seed_preset_spec_is_the_original_network():
    model = Model(spec_from_config(preset("seed")), seed=0)
    dense = [layer for layer in model.layers if layer.kind == "dense"]
    assert [d.params["W"].shape for d in dense] == [(784, 128), (128, 64), (64, 10)]
    assert [layer.kind for layer in model.layers] == [
        "flatten",
        "dense",
        "relu",
        "dense",
        "relu",
        "dense",
    ]
    # randn(n_out, n_in) * sqrt(1/n_in): the first layer's weights have std 1/28.
    assert dense[0].params["W"].std() == pytest.approx(1 / 28, rel=0.02)
    assert all(np.all(d.params["b"] == 0) for d in dense)


def test_repr_is_a_summary_of_the_layers_with_shapes_and_parameters():
    model = Model(spec_from_config(preset("seed")))
    # 784 * 128 + 128, 128 * 64 + 64 and 64 * 10 + 10 weights and biases.
    assert repr(model).splitlines() == [
        "Model(input (28, 28, 1), 109,386 parameters)",
        "  layer                       output shape  parameters",
        "  flatten                     (784,)                 0",
        "  dense units=128 init=lecun  (128,)           100,480",
        "  relu                        (128,)                 0",
        "  dense units=64 init=lecun   (64,)              8,256",
        "  relu                        (64,)                  0",
        "  dense units=10 init=lecun   (10,)                650",
    ]
    cnn = Model(CNN_SPEC)
    rows = repr(cnn).splitlines()[2:]
    assert [row.split()[0] for row in rows] == [layer.kind for layer in cnn.layers]
    assert [row[row.index("(") : row.index(")") + 1] for row in rows] == [
        str(shape) for shape in cnn.shapes[1:]
    ]
    assert sum(int(row.split()[-1].replace(",", "")) for row in rows) == cnn.n_params


def test_same_seed_same_weights_different_seed_different_weights():
    spec = spec_from_config(TrainConfig())
    a, b, c = Model(spec, seed=5), Model(spec, seed=5), Model(spec, seed=6)
    for pa, pb, pc in zip(a.params, b.params, c.params, strict=True):
        np.testing.assert_array_equal(pa.value, pb.value)
        if pa.value.any():
            assert not np.array_equal(pa.value, pc.value)


@pytest.mark.parametrize(
    "arch",
    [{}, {"arch": "cnn", "conv": [4, 6], "hidden": [16], "batchnorm": True}],
    ids=["mlp", "cnn, batches split across two cores"],
)
def test_training_is_reproducible_under_a_seed(arch, mnist):
    cfg = TrainConfig(train_size=2000, epochs=2, dropout=0.2, aug_rotate=10, aug_shift=2, **arch)
    first, second = fit(cfg, mnist), fit(cfg, mnist)
    assert [h.val_accuracy for h in first.history] == [h.val_accuracy for h in second.history]
    assert [h.train_loss for h in first.history] == [h.train_loss for h in second.history]
    assert first.test_accuracy == second.test_accuracy
    for pa, pb in zip(first.model.params, second.model.params, strict=True):
        np.testing.assert_array_equal(pa.value, pb.value)


@pytest.mark.parametrize("spec", [spec_from_config(TrainConfig()), CNN_SPEC], ids=["mlp", "cnn"])
def test_save_load_gives_identical_predictions(spec, mnist, tmp_path):
    model = Model(spec, seed=1)
    x = to_float(mnist.test_images[:64])
    model.forward(x, training=True)  # moves batch-norm running statistics off their defaults
    path = model.save(tmp_path / "m.npz", meta={"note": "hello"})
    loaded, meta = load_model(path)
    assert meta == {"note": "hello"}
    assert loaded.spec == model.spec
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert not list(tmp_path.glob(".*tmp")), "the temporary file was left behind"


def test_refuses_a_pickled_object(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, spec=np.array(json.dumps(CNN_SPEC)), payload=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ModelFileError, match="pickled"):
        load_model(path)


def test_refuses_a_truncated_file(tmp_path):
    path = Model(CNN_SPEC).save(tmp_path / "m.npz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_model(path)


def test_refuses_weights_of_another_architecture(tmp_path):
    path = Model(spec_from_config(TrainConfig(hidden=[32]))).save(tmp_path / "m.npz")
    with zipfile.ZipFile(path) as z:
        arrays = {name[:-4]: np.load(z.open(name)) for name in z.namelist()}
    arrays["spec"] = np.array(json.dumps(spec_from_config(TrainConfig(hidden=[64]))))
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match=r"shape \(784, 32\) but the architecture needs"):
        load_model(path)


def test_refuses_a_spec_that_does_not_build(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(
        path, spec=np.array(json.dumps({"input_shape": [28, 28, 1], "layers": [{"type": "x"}]}))
    )
    with pytest.raises(ModelFileError, match="invalid architecture"):
        load_model(path)


def test_refuses_a_file_without_spec_and_a_missing_file(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, W=np.zeros(3))
    with pytest.raises(ModelFileError, match="no architecture"):
        load_model(path)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.npz")


@pytest.mark.parametrize("spec", [spec_from_config(TrainConfig()), CNN_SPEC], ids=["mlp", "cnn"])
def test_one_model_predicts_for_many_threads_at_once(spec, mnist):
    """The dashboard shares a loaded model between browser sessions (threads)."""
    from concurrent.futures import ThreadPoolExecutor

    model = Model(spec, seed=2)
    inputs = [to_float(mnist.test_images[i * 20 : (i + 1) * 20]) for i in range(8)]
    expected = [model.predict_proba(x) for x in inputs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(10):
            got = list(pool.map(model.predict_proba, inputs))
            for g, e in zip(got, expected, strict=True):
                np.testing.assert_array_equal(g, e)
