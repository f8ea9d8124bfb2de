"""The fast MLP preset, and the training clock of benchmarks/bench_time_to_accuracy.py.

No assertion here is about seconds: how fast a preset trains is the benchmark's business
on a quiet machine; these tests hold what must be true anywhere.
"""

from __future__ import annotations

import numpy as np

from benchmarks.bench_time_to_accuracy import TrainingClock, median_reached, one_repeat
from core.config import problems
from core.presets import PRESETS, preset
from core.train import fit


def test_the_fast_mlp_preset_is_a_valid_mlp_with_a_plain_description():
    cfg = preset("mlp-fast")
    assert problems(cfg) == []
    assert cfg.arch == "mlp" and cfg.augments
    assert "99" in PRESETS["mlp-fast"]["about"]


def test_the_fast_mlp_preset_trains_a_few_batches(mnist):
    cfg = preset("mlp-fast").replace(train_size=1024, val_size=500, epochs=1)
    result = fit(cfg, mnist)
    assert result.status == "finished"
    assert result.test_accuracy is not None and result.test_accuracy > 0.3


def test_checking_within_epochs_leaves_training_unchanged(mnist):
    """The clock's extra validations are only looks: the same seed trains the same weights."""
    cfg = preset("mlp-fast").replace(train_size=2048, val_size=500, epochs=2)
    weights = []
    clocks = []
    for checks in (1, 3):
        clock = TrainingClock(mnist, cfg, checks)
        weights.append(fit(cfg, mnist, [clock]).model.get_weights())
        clocks.append(clock)
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])
    once, thrice = clocks
    assert [c[0] for c in once.checks] == [1.0, 2.0]
    epochs = [c[0] for c in thrice.checks]
    assert len(epochs) == 6 and epochs == sorted(epochs) and epochs[2] == 1.0
    # Fit's own end-of-epoch validations are the same in both.
    assert [c[2] for c in once.checks] == [c[2] for c in thrice.checks if c[0].is_integer()]
    seconds = [c[1] for c in thrice.checks]
    assert seconds == sorted(seconds) and seconds[0] > 0


def test_a_repeat_reports_when_each_threshold_was_first_reached(mnist):
    repeat = one_repeat(mnist, "default", seed=0, checks=2, epochs=1, train_size=2048)
    assert repeat.epochs == 1 and repeat.reached[0.995] is None
    assert 0 < repeat.fastest_epoch == repeat.train_seconds  # one epoch: it is the run
    reached = [repeat.reached[t] for t in sorted(repeat.reached)]
    # A higher threshold is never reached earlier than a lower one.
    found = [r.epochs for r in reached if r is not None]
    assert found == sorted(found)
    # Fewer than half the repeats reaching a threshold makes its median "never".
    assert median_reached([repeat, repeat], 0.995) is None
