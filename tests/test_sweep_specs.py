"""Sweep spec files of every wrong shape are refused with the field named, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.presets import preset
from core.sweep_spec import SweepError, expand, load_spec, parse_spec, read_spec, spec_from_flags

REPO = Path(__file__).resolve().parent.parent
GRID = "grid: {lr: [0.1]}\n"

# (spec file text, what the message must say)
BAD_FILES = {
    # The cases in issue 13
    "trials: abc": (
        GRID + "trials: abc",
        r"trials must be a whole number from 1 to 1000, got 'abc'",
    ),
    "seed: abc": (GRID + "seed: abc", r"seed must be a whole number from 0 .*, got 'abc'"),
    "base: [1,2]": (GRID + "base: [1, 2]", r"base must map setting names to values.*got \[1, 2\]"),
    "metric: [1]": (GRID + "metric: [1]", r"metric \[1\] is not one of val_accuracy"),
    "uniform: [0.1, .inf]": (
        "random: {dropout: {uniform: [0.1, .inf]}}",
        r"random.dropout.uniform needs two finite numbers \[low, high\], got \[0.1, inf\]",
    ),
    'uniform: "ab"': (
        'random: {dropout: {uniform: "ab"}}',
        r"random.dropout.uniform needs two finite numbers \[low, high\], got 'ab'",
    ),
    # More of the same kind
    "a grid value of the wrong type": ("grid: {lr: [0.1, fast]}", r"grid.lr\[1\]: 'fast'"),
    "a list where one value goes": (
        "grid: {lr: [[0.1]]}",
        r"grid.lr\[0\]: \[0.1\] is not a single value",
    ),
    "choice: 3": (
        "random: {activation: {choice: 3}}",
        r"random.activation.choice needs a non-empty list of values, got 3",
    ),
    "a choice of the wrong type": (
        "random: {epochs: {choice: [2, many]}}",
        r"random.epochs.choice\[1\]: 'many'",
    ),
    "negative trials": (
        GRID + "trials: -2",
        r"trials must be a whole number from 1 to 1000, got -2",
    ),
    "trials: true": (GRID + "trials: true", r"trials must be a whole number .*, got True"),
    "a negative seed": (GRID + "seed: -1", r"seed must be a whole number from 0"),
    "name: [1]": (GRID + "name: [1]", r"name must be text, got \[1\]"),
    "grid: 5": ("grid: 5", r"grid must map setting names to values.*got 5"),
    "random: [lr]": ("random: [lr]", r"random must map setting names to values.*got \['lr'\]"),
    "a number as a setting name": ("grid: {1: [2]}", r"grid.1 is not a setting name"),
    "base.preset: [1]": (GRID + "base: {preset: [1]}", r"base.preset \[1\] is not one of"),
    "base.preset: nested garbage": (GRID + "base: {preset: {a: 1}}", r"base.preset \{'a': 1\}"),
    "uniform of three numbers": (
        "random: {dropout: {uniform: [0, 0.1, 0.2]}}",
        r"random.dropout.uniform needs two",
    ),
    "uniform of nested lists": (
        "random: {dropout: {uniform: [[0], [1]]}}",
        r"random.dropout.uniform needs two finite",
    ),
    "uniform with NaN": ("random: {dropout: {uniform: [.nan, 0.5]}}", r"needs two finite numbers"),
    "int_uniform of fractions": (
        "random: {epochs: {int_uniform: [1, 2.5]}}",
        r"int_uniform needs two whole numbers",
    ),
    "uniform for a word setting": (
        "random: {activation: {uniform: [0, 1]}}",
        r"random.activation.uniform: activation is not a numeric setting; draw its values with",
    ),
    "nested too deeply": ("grid: {lr: " + "[" * 2000 + "]" * 2000 + "}", r"nested too deeply"),
}


@pytest.mark.parametrize(("text", "message"), BAD_FILES.values(), ids=list(BAD_FILES))
def test_a_spec_file_of_the_wrong_shape_is_refused_naming_the_field(tmp_path, text, message):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SweepError, match=message):
        load_spec(path)


def test_a_spec_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes("name: café\ngrid: {lr: [0.1]}\n".encode("latin-1"))
    with pytest.raises(SweepError, match=r"spec.yaml is not UTF-8 text \(byte 9\)"):
        read_spec(path)


def test_a_folder_or_a_huge_file_is_not_read_as_a_spec(tmp_path):
    with pytest.raises(SweepError, match="cannot be read"):
        read_spec(tmp_path)
    (tmp_path / "big.yaml").write_text("# " + "x" * 2_000_000)
    with pytest.raises(SweepError, match="is over 1000 kB"):
        read_spec(tmp_path / "big.yaml")


def test_specs_built_in_code_are_checked_the_same_way():
    with pytest.raises(SweepError, match="base must map setting names"):
        parse_spec({"base": [1, 2], "grid": {"lr": [0.1]}})
    with pytest.raises(SweepError, match="trials must be a whole number"):
        parse_spec({"grid": {"lr": [0.1]}, "trials": 2.5})
    with pytest.raises(SweepError, match="a sweep spec is a mapping"):
        parse_spec([("grid", {"lr": [0.1]})])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", [GRID + "trials: abc", GRID + "base: [1, 2]", GRID + "metric: [1]"]
)
def test_the_cli_says_what_is_wrong_in_one_message(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "core", "sweep", str(path)],
        cwd=REPO,
        env={**os.environ, "MNIST_RUNS_DIR": str(tmp_path / "runs"), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error:" in result.stderr and (
        "trials" in result.stderr or "base" in result.stderr or "metric" in result.stderr
    )


# The command line's flags, laid over a spec file or on their own


def _flags(*argv: str):
    from core.cli import build_parser

    return build_parser().parse_args(["sweep", *argv])


def test_flags_are_laid_over_a_spec_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: file\nbase: {epochs: 3}\ngrid: {lr: [0.1, 0.2]}\n")
    spec = spec_from_flags(
        _flags(
            *(str(path), "--set", "train-size=1000", "--grid", "hidden=128,64;32"),
            *("--random", "dropout=uniform:0:0.5", "--random", "activation=choice:relu;tanh"),
            *("--trials", "2", "--name", "flags", "--preset", "mlp"),
        )
    )
    assert (spec.name, spec.trials, spec.metric) == ("flags", 2, "val_accuracy")
    assert spec.base == preset("mlp").replace(epochs=3, train_size=1000)
    assert spec.grid == {"lr": [0.1, 0.2], "hidden": ["128,64", "32"]}
    choice = {"choice": ["relu", "tanh"]}
    assert spec.random == {"dropout": {"uniform": [0, 0.5]}, "activation": choice}
    configs = expand(spec)
    assert len(configs) == 8 and {tuple(c.hidden) for c in configs} == {(128, 64), (32,)}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--grid", "lr=0.1", "--set", "epochs"], "--set takes KEY=VALUE, got 'epochs'"),
        (["--grid", "=0.1"], "--grid takes KEY=VALUE, got '=0.1'"),
        (["--set", "epochs=2"], "a sweep needs a spec file, or --grid / --random flags"),
        (["--grid", "lr=0.1", "--metric", "f1"], "metric 'f1' is not one of"),
        (["--random", "lr=log_uniform:0:1"], "random.lr.log_uniform needs a positive low end"),
    ],
)
def test_malformed_flags_are_explained(argv, message):
    with pytest.raises(SweepError, match=message):
        spec_from_flags(_flags(*argv))


def test_seeds_repeat_every_trial_with_its_own_seed(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("base: {seed: 5}\ngrid: {lr: [0.1, 1.0]}\nseeds: 3\n")
    configs = expand(load_spec(path))
    assert [(c.lr, c.seed) for c in configs] == [
        (0.1, 5), (0.1, 6), (0.1, 7), (1.0, 5), (1.0, 6), (1.0, 7),
    ]  # fmt: skip
    assert [
        c.seed for c in expand(spec_from_flags(_flags("--grid", "lr=0.1", "--seeds", "2")))
    ] == [
        0,
        1,
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grid: {lr: [0.1]}\nseeds: 0\n", "seeds must be a whole number from 1 to 100, got 0"),
        ("grid: {seed: [1, 2]}\nseeds: 2\n", "no grid or random seed"),
        ("grid: {lr: [0.1]}\nseeds: x\n", "seeds must be a whole number"),
    ],
)
def test_bad_seeds_are_refused(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SweepError, match=message):
        load_spec(path)
