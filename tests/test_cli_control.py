"""`python -m core runs | control | train --from`, run as a user would, on a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.config import TrainConfig
from core.model_load import load_model
from core.runs import RunStore

REPO = Path(__file__).resolve().parent.parent
SMALL = ["--train-size", "600", "--epochs", "1", "--batch-size", "100", "--quiet"]


def cli(runs: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MNIST_RUNS_DIR": str(runs)},
    )


def assert_user_error(result: subprocess.CompletedProcess, command: str, fragment: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"python -m core {command}: error:"), lines[0]
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """A store with a finished run (1), a queued sgd run with dropout (2), a queued adam run
    without dropout (3) and a running, paused run owned by this test process (4)."""
    root = tmp_path_factory.mktemp("cli-control")
    result = cli(root, "train", *SMALL, "--name", "parent", "--json")
    assert result.returncode == 0, result.stderr
    store = RunStore(root)
    store.create(TrainConfig(dropout=0.2), "queued sgd")
    store.create(TrainConfig(optimizer="adam", lr=0.001, dropout=0.0), "queued adam")
    live = store.create(TrainConfig(), "live", status="running", pid=os.getpid())
    store.set_progress(live.id, {"epoch": 1, "batch": 3, "batches": 6, "epochs": 2, "paused": True})
    return root


def test_runs_lists_runs_in_text_and_json(store_dir):
    result = cli(store_dir, "runs")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["4", "3", "2", "1"]
    assert "paused" in lines[0] and "25.0% done" in lines[0]
    assert "finished" in lines[3] and "val " in lines[3] and "test " in lines[3]
    rows = json.loads(cli(store_dir, "runs", "--json").stdout)
    by_id = {r["id"]: r for r in rows}
    assert by_id[4]["status"] == "running" and by_id[4]["paused"] is True
    assert by_id[4]["progress"]["percent"] == 25.0
    assert by_id[1]["status"] == "finished" and by_id[1]["paused"] is False
    assert 0 < by_id[1]["progress"]["best_val_accuracy"] <= 1
    assert 0 < by_id[1]["progress"]["test_accuracy"] <= 1


def test_runs_status_filter(store_dir):
    rows = json.loads(cli(store_dir, "runs", "--status", "queued", "--json").stdout)
    assert [r["id"] for r in rows] == [3, 2]
    rows = json.loads(cli(store_dir, "runs", "--status", "paused", "--json").stdout)
    assert [r["id"] for r in rows] == [4]
    result = cli(store_dir, "runs", "--status", "failed")
    assert result.returncode == 0 and "no runs with status failed" in result.stdout


def test_runs_show_in_text_and_json(store_dir):
    result = cli(store_dir, "runs", "show", "1")
    assert result.returncode == 0, result.stderr
    assert "run 1: parent" in result.stdout and "train_size" in result.stdout
    assert "metrics" in result.stdout and "val_accuracy" in result.stdout
    shown = json.loads(cli(store_dir, "runs", "show", "1", "--json").stdout)
    assert shown["id"] == 1 and shown["status"] == "finished"
    assert shown["config"]["train_size"] == 600 and shown["parent"] is None
    assert shown["epoch_offset"] == 0 and len(shown["metrics"]) == 1
    assert shown["metrics"][0]["epoch"] == 1 and shown["events"] == []


def test_control_queues_commands_the_trainer_takes(store_dir):
    store = RunStore(store_dir)
    result = cli(store_dir, "control", "2", "pause")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "run 2: pause sent; it takes effect when the run starts"
    result = cli(store_dir, "control", "4", "resume")
    assert result.stdout.strip() == "run 4: resume sent; it takes effect after the current batch"
    out = json.loads(cli(store_dir, "control", "2", "step", "--batches", "3", "--json").stdout)
    assert out == {"run": 2, "command": {"action": "step", "batches": 3}}
    out = json.loads(cli(store_dir, "control", "2", "step", "--epoch", "--json").stdout)
    assert out["command"] == {"action": "step", "epoch": True}
    result = cli(store_dir, "control", "2", "set", "lr=0.01", "momentum=0.5", "dropout=0.1")
    assert result.returncode == 0, result.stderr
    assert "set lr=0.01, momentum=0.5, dropout=0.1 sent" in result.stdout
    out = json.loads(cli(store_dir, "control", "3", "set", "lr=0.002", "--json").stdout)
    assert out == {"run": 3, "command": {"action": "set", "changes": {"lr": "0.002"}}}
    assert store.take_commands(2) == [
        {"action": "pause"},
        {"action": "step", "batches": 3},
        {"action": "step", "epoch": True},
        {"action": "set", "changes": {"lr": 0.01, "momentum": 0.5, "dropout": 0.1}},
    ]
    assert store.take_commands(3) == [{"action": "set", "changes": {"lr": 0.002}}]
    assert store.take_commands(4) == [{"action": "resume"}]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["abc", "pause"], "run id must be a number"),
        (["99", "pause"], "there is no run 99"),
        (["2", "jump"], "unknown action 'jump'"),
        (["2", "set", "speed=2"], "'speed' cannot be changed"),
        (["2", "set", "lr"], "not of the form key=value"),
        (["2", "set", "lr=-1"], "lr:"),
        (["2", "set", "lr=abc"], "lr must be a number"),
        (["2", "set"], "set needs at least one knob"),
        (["3", "set", "momentum=0.5"], "momentum is a setting of sgd"),
        (["3", "set", "dropout=0.3"], "built without dropout"),
        (["2", "step", "--batches", "0"], "a step is 1 to"),
        (["2", "step", "--batches", "x"], "--batches must be a whole number"),
        (["2", "step", "--batches", "2", "--epoch"], "not both"),
        (["2", "pause", "lr=0.1"], "takes no KNOB=VALUE"),
        (["1", "pause"], "run 1 has finished"),
    ],
)
def test_control_errors_are_one_line_and_exit_2(store_dir, args, fragment):
    assert_user_error(cli(store_dir, "control", *args), "control", fragment)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["show", "x"], "run id must be a number"),
        (["show", "99"], "there is no run 99"),
        (["list"], "expected `runs` or `runs show RUN`"),
        (["--status", "lost"], "unknown status 'lost'"),
    ],
)
def test_runs_errors_are_one_line_and_exit_2(store_dir, args, fragment):
    assert_user_error(cli(store_dir, "runs", *args), "runs", fragment)


def test_control_stop_cancels_a_queued_run(tmp_path):
    store = RunStore(tmp_path)
    run = store.create(TrainConfig(), "to cancel")
    out = json.loads(cli(tmp_path, "control", str(run.id), "stop", "--json").stdout)
    assert out == {"run": run.id, "command": {"action": "stop"}}
    assert store.get(run.id).status == "stopped"
    result = cli(tmp_path, "control", str(run.id), "pause")
    assert_user_error(result, "control", f"run {run.id} has stopped")


def test_train_from_continues_the_parents_weights_and_config(store_dir):
    store = RunStore(store_dir)
    parent = store.get(1)
    result = cli(
        store_dir, "train", "--from", "1", "--lr", "0.05", "--quiet", "--name", "more", "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    child = store.get(summary["run_id"])
    assert child.parent == 1 and summary["parent"] == 1 and child.name == "more"
    assert child.epoch_offset == parent.best_epoch == summary["epoch_offset"] == 1
    # The parent's config, with the flags on top, not the default preset's.
    assert child.config == parent.config.replace(lr=0.05)
    assert child.status == "finished"
    start, _ = load_model(child.snapshot(0))
    theirs, _ = load_model(parent.checkpoint)
    for a, b in zip(start.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    shown = json.loads(cli(store_dir, "runs", "show", str(child.id), "--json").stdout)
    assert shown["parent"] == 1 and shown["epoch_offset"] == 1
    text = cli(store_dir, "runs", "show", str(child.id)).stdout
    assert "parent    run 1" in text


def test_train_from_text_output(store_dir):
    result = cli(store_dir, "train", "--from", "1", "--name", "again")
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and "saved" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--from", "1", "--no-store"], "cannot go with --no-store"),
        (["--from", "1", "--preset", "default"], "takes no --preset"),
        (["--from", "x"], "run id must be a number"),
        (["--from", "99"], "there is no run 99"),
        (["--from", "2"], "run 2 is still queued"),
    ],
)
def test_train_from_errors_are_one_line_and_exit_2(store_dir, args, fragment):
    assert_user_error(cli(store_dir, "train", *args), "train", fragment)


def test_train_from_a_run_without_a_checkpoint_exits_2(tmp_path):
    store = RunStore(tmp_path)
    run = store.create(TrainConfig(), "empty")
    store.request_stop(run.id)  # cancelled before it started: no weights
    assert_user_error(cli(tmp_path, "train", "--from", str(run.id)), "train", "no checkpoint")
