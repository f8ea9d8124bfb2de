"""Validation knows the machine: a network that cannot fit in memory, and settings that
float32 would turn into 0, are refused before training starts."""

from __future__ import annotations

import shlex
import time
import tracemalloc

import pytest

from core.config import (
    FLOAT32_TINY,
    TrainConfig,
    memory_estimate,
    problems,
)
from core.train import fit
from tests.test_cli import assert_no_traceback, cli

GIB = 2**30
# The network: 8,192 filters of 28x28, then 8,192 hidden units.
HUGE = TrainConfig(arch="cnn", conv=[8192], kernel_size=28, hidden=[8192])


@pytest.mark.parametrize(
    "cfg",
    [
        TrainConfig(hidden=[2048, 2048], optimizer="adam"),
        TrainConfig(arch="cnn", conv=[8, 16], hidden=[64], batchnorm=True, dropout=0.2),
        TrainConfig(batch_size=4000, aug_elastic=30),
    ],
    ids=["wide MLP (weights)", "CNN (evaluation batch)", "MLP, batches of 4000 (activations)"],
)
def test_the_estimate_is_close_to_what_training_really_allocates(cfg, mnist):
    cfg = cfg.replace(train_size=4000, val_size=1000, epochs=2)
    tracemalloc.start()
    try:
        fit(cfg, mnist)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    ratio = memory_estimate(cfg) / peak
    assert 0.5 <= ratio <= 3, f"estimate {memory_estimate(cfg):,} bytes, peak {peak:,}"


def test_a_network_too_big_for_the_memory_is_refused_with_its_estimate():
    found = problems(HUGE, free_memory=int(21.3 * GIB))
    assert [p.field for p in found] == ["conv"]
    estimate = memory_estimate(HUGE) / GIB
    assert estimate > 49  # its dense layer's weights alone are 49 GiB
    assert found[0].message == (
        f"this network needs about {estimate:.1f} GiB of memory at batch size 128 but 21.3 GiB "
        "is free: use fewer filters/units or a smaller batch"
    )
    assert problems(HUGE, free_memory=1000 * GIB) == []


def test_the_setting_to_blame_is_named():
    wide = TrainConfig(hidden=[8192, 8192])
    assert [p.field for p in problems(wide, free_memory=memory_estimate(wide) - 1)] == ["hidden"]
    full_batch = TrainConfig(batch_size=55_000)
    small = memory_estimate(full_batch) - 1
    assert [p.field for p in problems(full_batch, free_memory=small)] == ["batch_size"]
    assert memory_estimate(full_batch) > memory_estimate(TrainConfig())


def test_problems_stays_fast_enough_for_every_rerun():
    start = time.perf_counter()
    for _ in range(100):
        problems(TrainConfig(arch="cnn", conv=[32, 64]))
    assert (time.perf_counter() - start) / 100 < 0.005


def test_the_cli_refuses_the_huge_network_before_allocating_it(tmp_path):
    huge = shlex.split("--arch cnn --conv 8192 --kernel-size 28 --hidden 8192 --no-store")
    result = cli("train", *huge, "--out", str(tmp_path / "m.npz"))
    assert result.returncode == 2, result.stderr
    assert_no_traceback(result)
    assert "--conv: this network needs about" in result.stderr and "is free" in result.stderr


FLOAT32_FIELDS = [
    "lr",
    "weight_decay",
    "step_gamma",
    "momentum",
    "dropout",
    "aug_rotate",
    "aug_shift",
    "aug_scale",
    "aug_elastic",
]


@pytest.mark.parametrize("name", FLOAT32_FIELDS)
def test_a_setting_float32_would_flush_to_zero_is_refused(name):
    found = problems(TrainConfig().replace(**{name: 1e-320}))
    assert [p.field for p in found] == [name]
    assert found[0].message.startswith("1e-320 is below float32's smallest normal number")
    # Zero, where allowed, and float32's smallest normal number itself are still fine.
    assert problems(TrainConfig().replace(**{name: FLOAT32_TINY})) == []


def test_the_cli_refuses_a_learning_rate_float32_cannot_hold():
    result = cli("train", "--lr", "1e-320", "--no-store")
    assert result.returncode == 2
    assert_no_traceback(result)
    assert "--lr: 1e-320 is below float32's smallest normal number" in result.stderr
