"""Bad input and faults across the product: nothing a user or a fault does loses data or shows
a traceback. Property-based tests (Hypothesis) stand in for the inputs nobody thought of."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp
from streamlit.testing.v1 import AppTest

import core.data
from core.architecture import spec_from_config
from core.config import ConfigError, TrainConfig, problems
from core.data import MNIST_DIR, batch_jobs
from core.model import Model
from core.optimizers import make_optimizer
from core.preprocess import ImageError, load_image, prepare
from core.runs import RunStore

REPO = Path(__file__).resolve().parent.parent


# Hyperparameters: every config either trains one batch or is refused with a message.

field_values = {
    "arch": hs.sampled_from(["mlp", "cnn", "rnn", ""]),
    "hidden": hs.lists(hs.integers(-2, 300), max_size=4),
    "conv": hs.lists(hs.integers(-1, 12), max_size=4),
    "kernel_size": hs.integers(-1, 30),
    "padding": hs.sampled_from(["same", "valid", "full"]),
    "activation": hs.sampled_from(["relu", "leaky_relu", "tanh", "sigmoid", "gelu"]),
    "dropout": hs.one_of(hs.floats(-0.5, 1.5), hs.just(float("nan"))),
    "batchnorm": hs.booleans(),
    "optimizer": hs.sampled_from(["sgd", "adam", "rmsprop", "adagrad", "lbfgs"]),
    "lr": hs.one_of(hs.floats(-1, 200), hs.sampled_from([0.0, 1e-6, 50.0, np.nan, np.inf])),
    "momentum": hs.floats(-0.5, 1.5),
    "weight_decay": hs.floats(-0.1, 2),
    "batch_size": hs.integers(-5, 3000),
    "epochs": hs.integers(-2, 3),
    "train_size": hs.integers(-10, 2000),
    "aug_rotate": hs.floats(-10, 100),
    "aug_elastic": hs.floats(-1, 120),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.fixed_dictionaries({}, optional=field_values))
def test_any_config_trains_one_batch_or_is_refused_with_a_message(values):
    try:
        cfg = TrainConfig.from_dict({"train_size": 500, **values})
    except ConfigError as exc:
        assert exc.field in values and exc.message
        return
    found = problems(cfg)
    if found:
        assert all(p.field in TrainConfig.__dataclass_fields__ and p.message for p in found)
        return
    # Valid: one real training step must run and give a finite loss or a clean divergence.
    model = Model(spec_from_config(cfg), seed=cfg.seed)
    optimizer = make_optimizer(cfg.optimizer, cfg.momentum, cfg.nesterov, cfg.weight_decay)
    data = _data()
    x, y = batch_jobs(
        data.train_images, data.train_labels, np.arange(cfg.batch_size), cfg.batch_size
    )[0]()
    loss, logits = model.loss_and_grads(x, y)
    optimizer.step(model.params, cfg.lr)
    assert logits.shape == (cfg.batch_size, 10) and np.isfinite(loss)


_DATA: list = []


def _data():
    if not _DATA:
        _DATA.append(core.data.load_dataset())
    return _DATA[0]


# Images: any array or file a user can produce gets a prediction or a clear message.


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=64),
        elements=hs.one_of(hs.floats(-2, 3, width=32), hs.sampled_from([np.nan, np.inf])),
    )
)
def test_any_array_is_prepared_or_explained(array):
    prepared = prepare(array)
    if prepared.ok:
        img = prepared.image
        assert img.shape == (28, 28) and img.dtype == np.float32
        assert np.all(np.isfinite(img)) and img.min() >= 0 and img.max() <= 1 and img.max() > 0
    else:
        assert prepared.reason


@settings(max_examples=80, deadline=None)
@given(hs.binary(max_size=2000))
def test_any_bytes_load_as_an_image_or_raise_a_clear_error(data):
    try:
        gray = load_image(data)
    except ImageError as exc:
        assert "could not be read" in str(exc) or "over the limit" in str(exc)
    else:
        assert gray.ndim == 2 and gray.dtype == np.float32


@pytest.mark.parametrize(
    "picture",
    [np.zeros((0, 0)), np.zeros((1, 1)), np.ones((1, 1)), np.ones((280, 280)),
     np.pad(np.ones((1, 1)), 50), np.zeros((3, 5, 4))],
    ids=["empty", "one black pixel", "one white pixel", "full ink", "one pixel of ink", "rgba"],
)  # fmt: skip
def test_degenerate_pictures_are_refused_not_guessed(picture):
    prepared = prepare(picture)
    assert not prepared.ok and prepared.reason


# Data faults reach the dashboard as a message, and the rest of the app keeps working.


@pytest.fixture
def broken_mnist(tmp_path, monkeypatch):
    broken = tmp_path / "mnist"
    shutil.copytree(MNIST_DIR, broken)
    (broken / "t10k-images-idx3-ubyte.gz").chmod(0o644)
    (broken / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    monkeypatch.setattr(core.data, "MNIST_DIR", broken)
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    st.cache_resource.clear()  # another test in this process may have cached the good data
    yield broken
    st.cache_resource.clear()


def test_a_corrupt_data_file_is_an_error_message_in_the_app(broken_mnist):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception  # the home page does not need the data
    for page in ("views/evaluate.py", "views/data.py", "views/train.py"):
        at.switch_page(page).run()
        assert not at.exception, page
        assert any("t10k-images-idx3-ubyte.gz" in e.value and "checksum" in e.value
                   for e in at.error), page  # fmt: skip
    at.switch_page("views/home.py").run()
    assert not at.exception and at.title[0].value.startswith("See a neural network")


def test_a_corrupt_data_file_is_a_clean_cli_error(broken_mnist, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "core", "train", "--data-dir", str(broken_mnist), "--no-store"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "t10k-images-idx3-ubyte.gz does not match its checksum" in result.stderr


# The run store survives a process killed in the middle of writing.


def _hammer(root: str) -> None:
    store = RunStore(root)
    run = store.create(TrainConfig(), "hammer", status="running", pid=os.getpid())
    epoch = 0
    while True:
        epoch += 1
        metrics = dict.fromkeys(["train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                 "lr", "seconds", "elapsed"], 0.5)  # fmt: skip
        store.add_epoch(run.id, {"epoch": epoch, **metrics},
                        [(epoch * 100 + k, epoch, 0.1) for k in range(50)])  # fmt: skip


def test_the_store_survives_sigkill_during_writes(tmp_path):
    root = tmp_path / "runs"
    RunStore(root).create(TrainConfig(), "bystander")
    code = f"from tests.test_hardening import _hammer; _hammer({str(root)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    store = RunStore(root)
    deadline = time.monotonic() + 60
    while len(store.runs()) < 2 or len(store.epochs(store.runs()[0].id)) < 20:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with sqlite3.connect(root / "runs.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    hammer = store.runs()[0]
    epochs = store.epochs(hammer.id)
    assert len(store.batch_losses(hammer.id)) == 50 * len(epochs)  # no half-written epoch
    assert store.reap() == [hammer.id] and store.get(hammer.id).status == "failed"
    assert store.runs()[1].name == "bystander" and store.runs()[1].status == "queued"


# Exposure: the server is private unless shared on purpose.


def test_server_config_is_private_and_capped():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    assert config["server"]["enableXsrfProtection"] is True
    assert 1 <= config["server"]["maxUploadSize"] <= 20
    assert config["client"]["showErrorDetails"] in ("type", "none")


# A diverging run stops early with advice, and nothing else in the store changes.


def test_divergence_is_recorded_and_leaves_other_runs_alone(tmp_path, mnist):
    from core.recorder import train_run

    store = RunStore(tmp_path / "runs")
    calm = store.create(TrainConfig(train_size=500, epochs=1), "calm", status="running",
                        pid=os.getpid())  # fmt: skip
    train_run(store, calm, mnist)
    before = (store.get(calm.id), store.epochs(calm.id), calm.checkpoint.read_bytes())
    wild = store.create(TrainConfig(train_size=5000, epochs=5, lr=50.0), "wild",
                        status="running", pid=os.getpid())  # fmt: skip
    result = train_run(store, wild, mnist)
    got = store.get(wild.id)
    assert result.status == got.status == "diverged"
    assert "learning rate 50 is probably too high; try 5 or lower" in got.message
    assert len(store.epochs(wild.id)) < 5 and got.test_accuracy is None
    assert (store.get(calm.id), store.epochs(calm.id), calm.checkpoint.read_bytes()) == before
