"""The training loop: learning, callbacks, stopping, divergence, and keeping the test set out."""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys

import numpy as np
import pytest

from core.config import ConfigError, TrainConfig
from core.metrics import evaluate
from core.train import Callback, fit

SMALL = TrainConfig(train_size=2000, epochs=3)


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.batches = []
        self.epochs = []

    def on_train_begin(self, model, config, n_train):
        self.events.append("begin")
        self.n_train = n_train

    def on_batch_end(self, stats):
        self.batches.append(stats)

    def on_epoch_end(self, stats, model):
        self.events.append("epoch")
        self.epochs.append(stats)

    def on_train_end(self, result):
        self.events.append("end")


def test_a_small_run_learns_and_reports_every_batch_and_epoch(mnist):
    rec = Recorder()
    result = fit(SMALL, mnist, [rec])
    assert result.status == "finished" and result.reason == "Finished 3 epochs."
    assert rec.events == ["begin", "epoch", "epoch", "epoch", "end"]
    assert rec.n_train == 2000
    assert len(rec.batches) == 3 * 16  # ceil(2000 / 128) batches per epoch
    assert [b.batch for b in rec.batches[:16]] == list(range(1, 17))
    assert all(b.batches == 16 for b in rec.batches)
    first, last = rec.epochs[0], rec.epochs[-1]
    assert last.train_loss < first.train_loss
    assert last.val_accuracy > 0.85
    assert result.test_accuracy > 0.85
    # The cosine schedule: the reported rate falls epoch by epoch.
    assert [e.lr for e in rec.epochs] == sorted((e.lr for e in rec.epochs), reverse=True)
    assert all(e.seconds > 0 for e in rec.epochs)


def test_the_test_set_never_influences_training(mnist):
    scrambled = dataclasses.replace(
        mnist,
        test_images=np.random.default_rng(0).integers(0, 256, mnist.test_images.shape, np.uint8),
    )
    a = fit(SMALL, mnist)
    b = fit(SMALL, scrambled)
    assert [h.val_accuracy for h in a.history] == [h.val_accuracy for h in b.history]
    for pa, pb in zip(a.model.params, b.model.params, strict=True):
        np.testing.assert_array_equal(pa.value, pb.value)
    assert a.test_accuracy != b.test_accuracy


def test_a_diverging_run_stops_with_a_clear_reason(mnist):
    result = fit(SMALL.replace(lr=50.0), mnist)
    assert result.status == "diverged"
    assert "diverged at epoch 1" in result.reason
    assert "learning rate 50 is probably too high; try 5 or lower" in result.reason
    assert result.test_accuracy is None
    assert "nan" not in result.reason.lower()


class SpoilTheSecondEpoch(Callback):
    """Keeps a copy of the weights at every epoch's end; early in epoch 2 it zeroes them and
    asks to stop, so epoch 2 ends far worse than epoch 1."""

    def __init__(self) -> None:
        self.weights: dict[int, dict[str, np.ndarray]] = {}
        self.spoiled = False

    def on_train_begin(self, model, config, n_train):
        self.model = model

    def on_batch_end(self, stats):
        if stats.epoch == 2 and stats.batch == 4:
            for param in self.model.params:
                param.value[...] = 0.0
            self.spoiled = True

    def on_epoch_end(self, stats, model):
        self.weights[stats.epoch] = model.get_weights()


def test_stop_request_ends_cleanly_and_keeps_the_best_weights(mnist):
    spoiler = SpoilTheSecondEpoch()
    result = fit(SMALL.replace(epochs=10), mnist, [spoiler], should_stop=lambda: spoiler.spoiled)
    assert result.status == "stopped" and result.reason == "Stopped by request in epoch 2."
    first, second = result.history
    assert second.val_accuracy < 0.2 < 0.5 < first.val_accuracy  # zeroed weights only guess
    assert (result.best_epoch, result.best_val_accuracy) == (1, first.val_accuracy)
    # The model returned holds epoch 1's weights, every array of them, not the last ones.
    kept = result.model.get_weights()
    assert kept.keys() == spoiler.weights[1].keys()
    for key, value in spoiler.weights[1].items():
        np.testing.assert_array_equal(kept[key], value)
    assert not all(np.array_equal(kept[k], v) for k, v in spoiler.weights[2].items())
    assert (
        result.test_accuracy
        == evaluate(result.model, mnist.test_images, mnist.test_labels).accuracy
    )


def test_early_stopping_restores_the_best_epoch(mnist):
    cfg = TrainConfig(train_size=300, epochs=40, schedule="constant", lr=1.0, patience=3)
    result = fit(cfg, mnist)
    assert len(result.history) < 40
    assert "Early stopping" in result.reason
    accs = [h.val_accuracy for h in result.history]
    assert result.best_epoch == int(np.argmax(accs)) + 1
    assert len(accs) - result.best_epoch == 3
    # The returned model is the best epoch's, not the last one's.
    split_val = evaluate(result.model, *_val_set(mnist, cfg))
    assert split_val.accuracy == pytest.approx(max(accs))


def _val_set(mnist, cfg):
    from core.train import split_for

    split = split_for(cfg, mnist)
    return mnist.train_images[split.val], mnist.train_labels[split.val]


def test_invalid_config_is_refused_before_training(mnist):
    with pytest.raises(ConfigError, match="batch_size: 5000 is larger than the training set"):
        fit(TrainConfig(train_size=1000, batch_size=5000), mnist)


def test_full_batch_is_the_special_case_batch_size_n(mnist):
    rec = Recorder()
    fit(TrainConfig(train_size=1000, batch_size=1000, epochs=2), mnist, [rec])
    assert [b.batch for b in rec.batches] == [1, 1]


def test_training_the_mlp_peaks_under_400_mib(tmp_path):
    """Images stay uint8 and are converted per batch: one full epoch stays small."""
    # A wrapper process whose only child is the trainer, so ru_maxrss is the trainer's own peak.
    out = str(tmp_path / "m.npz")
    train = [sys.executable, *shlex.split("-m core train --epochs 1 --quiet --out"), out]
    probe = (
        "import resource, subprocess, sys; "
        f"subprocess.run({train!r}, check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    peak_mib = int(out.stdout) / 1024
    assert (tmp_path / "m.npz").exists()
    assert 50 < peak_mib < 400, f"training peaked at {peak_mib:.0f} MiB"


def test_denormals_flush_to_zero_during_training_only():
    from core.fpu import flush_denormals

    tiny = np.array([1e-30], np.float32)
    assert (tiny * np.float32(1e-10))[0] > 0  # a denormal, normally
    with flush_denormals() as active:
        assert active, "flush-to-zero is expected on this platform (glibc, x86-64 or ARM64)"
        assert (tiny * np.float32(1e-10))[0] == 0
    assert (tiny * np.float32(1e-10))[0] > 0  # restored afterwards
