"""Honest outcomes: a run no better than guessing is not "finished", and a run that diverged
or was killed keeps its best epoch's checkpoint and says so."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from core.config import TrainConfig
from core.metrics import evaluate
from core.model_load import load_model
from core.recorder import train_run
from core.runs import RunStore
from core.sweep import record_remote, train_remote
from core.train import Callback, fit, split_for

SIGMOID_LR_100 = TrainConfig(train_size=2000, epochs=2, activation="sigmoid", lr=100.0)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


# Learned nothing


def test_a_run_at_chance_accuracy_has_learned_nothing_and_says_what_to_try(mnist):
    result = fit(SIGMOID_LR_100, mnist)
    assert result.best_val_accuracy < 0.15  # ten classes: guessing gives 10 %
    assert result.status == "learned_nothing"
    assert result.reason.startswith(
        f"Learned nothing: validation accuracy {result.best_val_accuracy * 100:.2f} % is what "
        "guessing gives (10 % for 10 classes)."
    )
    assert "Try a lower learning rate (e.g. 10)" in result.reason
    assert "sigmoid units saturate" in result.reason
    assert result.test_accuracy is not None and len(result.history) == 2


def test_a_learning_rate_far_too_small_is_told_to_go_higher(mnist):
    result = fit(TrainConfig(train_size=2000, epochs=2, lr=1e-4), mnist)
    assert result.status == "learned_nothing"
    assert "Try a higher learning rate (e.g. 1, which usually suits sgd)" in result.reason
    # Learning a little is not nothing: the line is drawn near guessing, not at "good".
    little = fit(TrainConfig(train_size=600, epochs=1, batch_size=100, lr=0.2), mnist)
    assert 0.15 < little.best_val_accuracy < 0.5 and little.status == "finished"


def test_a_run_that_learned_nothing_is_stored_as_such_with_its_checkpoint(store, mnist):
    run = store.create(SIGMOID_LR_100, "sigmoid", status="running", pid=os.getpid())
    result = train_run(store, run, mnist)
    got = store.get(run.id)
    assert got.status == "learned_nothing" and got.message == result.reason
    assert got.best_epoch == result.best_epoch and got.test_accuracy == result.test_accuracy
    assert load_model(got.checkpoint)[1]["status"] == "learned_nothing"
    assert [r.id for r in store.runs("learned_nothing")] == [run.id]


# Diverged after good epochs


class BlowUpAfter(Callback):
    """Scales every weight by 1e4 after epoch `epoch`, so the next batch's loss explodes."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, stats, model) -> None:
        if stats.epoch == self.epoch:
            for param in model.params:
                param.value *= 1e4


DIVERGING = TrainConfig(train_size=2000, epochs=5)


def test_a_run_that_diverges_after_good_epochs_keeps_the_best_and_its_test_accuracy(mnist):
    result = fit(DIVERGING, mnist, [BlowUpAfter(2)])
    assert result.status == "diverged" and "diverged at epoch 3" in result.reason
    assert len(result.history) == 2 and result.best_epoch in (1, 2)
    split = split_for(DIVERGING, mnist)
    val = evaluate(result.model, mnist.train_images[split.val], mnist.train_labels[split.val])
    assert val.accuracy == result.best_val_accuracy > 0.8  # the model is the best epoch's
    assert result.test_accuracy is not None and result.test_accuracy > 0.8


def test_a_diverged_run_in_the_store_keeps_a_checkpoint_that_says_it_diverged(store, mnist):
    run = store.create(DIVERGING, "wild", status="running", pid=os.getpid())
    result = train_run(store, run, mnist, callbacks=[BlowUpAfter(2)])
    got = store.get(run.id)
    assert got.status == "diverged" and got.best_epoch == result.best_epoch
    model, meta = load_model(got.checkpoint)
    assert meta["status"] == "diverged" and meta["best_epoch"] == result.best_epoch
    assert meta["test_accuracy"] == got.test_accuracy == result.test_accuracy
    for saved, best in zip(model.params, result.model.params, strict=True):
        np.testing.assert_array_equal(saved.value, best.value)


def test_a_dask_trial_that_diverged_brings_its_best_checkpoint_back(store, mnist, monkeypatch):
    monkeypatch.setattr("core.sweep.fit", lambda cfg: fit(cfg, mnist, [BlowUpAfter(2)]))
    run = store.create(DIVERGING, "remote", sweep="s", status="running", pid=os.getpid())
    outcome = train_remote(DIVERGING.to_json())
    assert outcome["status"] == "diverged" and outcome["checkpoint"] is not None
    record_remote(store, run, outcome)
    got = store.get(run.id)
    assert got.status == "diverged" and got.checkpoint.exists()
    assert got.test_accuracy == outcome["test_accuracy"] is not None


# Killed


def test_a_killed_run_gets_its_best_recorded_epoch_and_keeps_its_checkpoint(store):
    gone = subprocess.Popen(["true"])
    gone.wait()
    run = store.create(DIVERGING, "killed", status="running", pid=gone.pid)
    for epoch, accuracy in enumerate((0.5, 0.8, 0.7), start=1):
        metrics = {
            "epoch": epoch,
            "train_loss": 1.0,
            "train_accuracy": accuracy,
            "val_loss": 1.0,
            "val_accuracy": accuracy,
            "lr": 0.1,
            "seconds": 2.0,
            "elapsed": 2.0 * epoch,
        }
        store.add_epoch(run.id, metrics, [])
    run.checkpoint.write_bytes(b"the checkpoint of epoch 2")
    assert store.reap() == [run.id]
    got = store.get(run.id)
    assert got.status == "failed" and "ended unexpectedly" in got.message
    assert (got.best_epoch, got.best_val_accuracy, got.train_seconds) == (2, 0.8, 6.0)
    assert got.checkpoint.read_bytes() == b"the checkpoint of epoch 2"
