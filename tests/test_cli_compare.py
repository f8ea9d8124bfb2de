"""`python -m core train --repeats K` and `python -m core compare`, run as a user would."""

from __future__ import annotations

import json

import pytest
from scipy import stats

from core.runs import RunStore
from tests.test_cli_control import SMALL, assert_user_error, cli


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """Three seeds of the default settings (runs 1-3) trained by `--repeats 3`, and three
    stored runs with lr 5 instead, with made-up accuracies (4-6)."""
    root = tmp_path_factory.mktemp("cli-compare")
    result = cli(root, "train", *SMALL, "--seed", "7", "--repeats", "3", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [r["run_id"] for r in out["runs"]] == [1, 2, 3]
    assert [r["config"]["seed"] for r in out["runs"]] == [7, 8, 9]
    assert out["n"] == 3
    assert out["mean"] == pytest.approx(sum(r["test_accuracy"] for r in out["runs"]) / 3)
    store = RunStore(root)
    for seed, accuracy in enumerate((0.10, 0.12, 0.11)):
        run = store.create(store.get(1).config.replace(lr=5.0, seed=seed), f"lr5 {seed}")
        store.finish(run.id, "finished", "done", test_accuracy=accuracy)
    return root


def test_repeats_are_stored_as_a_group_with_their_seeds(store_dir):
    runs = sorted(RunStore(store_dir).runs(), key=lambda r: r.id)[:3]
    assert [r.config.seed for r in runs] == [7, 8, 9]
    assert all(r.status == "finished" and r.name.endswith(f"seed {r.config.seed}") for r in runs)
    # The seeds differ, so the runs do: not three copies of one run.
    assert len({r.test_accuracy for r in runs}) > 1


def test_compare_two_groups_gives_the_welch_verdict(store_dir):
    result = cli(store_dir, "compare", "g1", "g4", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["a"]["runs"] == [1, 2, 3] and out["b"]["runs"] == [4, 5, 6]
    expected = stats.ttest_ind(out["a"]["values"], out["b"]["values"], equal_var=False)
    assert out["p_value"] == pytest.approx(expected.pvalue)
    assert out["clear"] == bool(expected.pvalue < 0.05)
    text = cli(store_dir, "compare", "g1", "4,5,6")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("g1: ") and lines[0].endswith("(n = 3) · runs #1, #2, #3")
    assert lines[1] == "4,5,6: 11.00 % ± 1.00 (n = 3) · runs #4, #5, #6"
    assert lines[2] == out["verdict"]
    lr = RunStore(store_dir).get(1).config.lr
    assert f"lr {lr:g} beats lr 5 by" in lines[2] and "(3 seeds each; Welch's t-test, p" in lines[2]


def test_compare_two_single_runs_warns(store_dir):
    result = cli(store_dir, "compare", "1", "4")
    assert result.returncode == 0, result.stderr
    assert "no test can tell this from luck: run more seeds." in result.stdout
    assert result.stderr.startswith("warning: Single runs")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["compare", "1", "99"], "there is no run 99"),
        (["compare", "gx", "1"], "run id must be a number, got 'x'"),
        (["compare", "g1", "2"], "share runs"),
        (["compare", "1,", "4"], "run id must be a number, got ''"),
    ],
)
def test_compare_refuses_bad_sides_in_one_line(store_dir, args, fragment):
    assert_user_error(cli(store_dir, *args), "compare", fragment)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--repeats", "0"], "--repeats must be between 1 and 100, got 0"),
        (["--repeats", "2", "--no-store"], "no --out, no --no-store"),
        (["--repeats", "2", "--out", "x.npz"], "no --out, no --no-store"),
    ],
)
def test_train_refuses_bad_repeats_in_one_line(tmp_path, args, fragment):
    assert_user_error(cli(tmp_path, "train", *SMALL, *args), "train", fragment)
    assert not (tmp_path / "runs.sqlite").exists() or not RunStore(tmp_path).runs()
