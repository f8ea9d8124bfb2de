"""Settings: parsing, validation messages, presets."""

from __future__ import annotations

import json

import pytest

from core.config import ConfigError, TrainConfig, problems, validate
from core.presets import PRESETS, preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_valid_and_round_trips_through_json(name):
    cfg = validate(preset(name))
    again = TrainConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg


def test_strings_from_a_form_or_url_are_coerced():
    cfg = TrainConfig.from_dict(
        {"hidden": "256, 32", "lr": "0.05", "epochs": "7", "nesterov": "true", "seed": 3.0}
    )
    assert cfg.hidden == [256, 32] and cfg.lr == 0.05 and cfg.epochs == 7
    assert cfg.nesterov is True and cfg.seed == 3
    assert TrainConfig.from_dict({"hidden": ""}).hidden == []


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"colour": "red"}, "colour", "unknown setting"),
        ({"epochs": 2.5}, "epochs", "is not a whole number"),
        ({"lr": "fast"}, "lr", "is not a number"),
        ({"nesterov": "maybe"}, "nesterov", "is not true or false"),
        ({"hidden": "64,,32"}, "hidden", "is not a list of whole numbers"),
    ],
)
def test_malformed_values_name_the_field(values, field, message):
    with pytest.raises(ConfigError, match=message) as info:
        TrainConfig.from_dict(values)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": 1000.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"hidden": [128, 0]}, "hidden"),
        ({"conv": [], "arch": "cnn"}, "conv"),
        ({"dropout": -0.1}, "dropout"),
        ({"dropout": 1.0}, "dropout"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"train_size": 100, "batch_size": 101}, "batch_size"),
        ({"train_size": 60_000}, "train_size"),
        ({"momentum": 1.0}, "momentum"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"activation": "gelu"}, "activation"),
        ({"schedule": "cyclic"}, "schedule"),
        ({"arch": "cnn", "kernel_size": 29}, "kernel_size"),
        ({"arch": "cnn", "conv": [8, 8, 8, 8, 8], "kernel_size": 3}, "kernel_size"),
        ({"arch": "cnn", "conv": [8, 8], "kernel_size": 11, "padding": "valid"}, "kernel_size"),
        ({"warmup_epochs": 30, "epochs": 20}, "warmup_epochs"),
        ({"aug_rotate": 180}, "aug_rotate"),
        ({"val_size": 0}, "val_size"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_values_are_explained(changes, field):
    found = problems(TrainConfig().replace(**changes))
    assert [p.field for p in found] == [field], found
    assert found[0].message


def test_a_cnn_that_fits_is_accepted():
    assert problems(TrainConfig(arch="cnn", conv=[8, 8, 8, 8], kernel_size=3)) == []
    assert problems(TrainConfig(arch="cnn", conv=[8, 8], kernel_size=5, padding="valid")) == []


def test_several_problems_are_all_reported():
    found = problems(TrainConfig(lr=-1, epochs=0, dropout=2))
    assert {p.field for p in found} == {"lr", "epochs", "dropout"}


def test_unknown_preset():
    with pytest.raises(KeyError, match="unknown preset 'fast'"):
        preset("fast")


def test_the_presets_build_on_each_other_as_the_readme_says():
    cnn = preset("cnn")
    assert (cnn.arch, cnn.conv, cnn.hidden, cnn.epochs) == ("cnn", [16, 32], [256], 8)
    assert (cnn.lr, cnn.weight_decay) == (1.0, 5e-4)
    assert preset("cnn-best") == cnn.replace(
        conv=[32, 64], hidden=[128], lr=0.5, weight_decay=1e-4, epochs=30, aug_elastic=34.0
    )
    augment = {"aug_rotate": 10.0, "aug_shift": 2.0, "aug_scale": 0.1}
    assert preset("mlp") == preset("default").replace(epochs=60, **augment)
    assert {k: getattr(cnn, k) for k in augment} == augment
