"""The command line, run as a user would: `python -m core ...` in a subprocess."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


RUNS = tempfile.mkdtemp(prefix="cli-runs-")  # the run store these tests write to


def cli(*args: str, cwd: Path = REPO, runs: str = RUNS) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MNIST_RUNS_DIR": runs},
    )


def assert_no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


def test_train_on_a_subset_prints_progress_and_json(tmp_path):
    out = tmp_path / "model.npz"
    result = cli("train", "--train-size", "3000", "--epochs", "2", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "finished" and summary["reason"] == "Finished 2 epochs."
    assert summary["epochs"] == 2 and summary["best_epoch"] in (1, 2)
    assert summary["model_path"] == str(out) and out.exists()
    assert 0.85 < summary["test_accuracy"] <= 1 and 0.85 < summary["val_accuracy"] <= 1
    assert summary["seconds"] > 0
    assert summary["config"]["train_size"] == 3000
    # Per-epoch metrics go to stderr when stdout is reserved for JSON.
    assert "epoch   2" in result.stderr and "val_acc" in result.stderr


def test_train_human_output_and_preset(tmp_path):
    out = tmp_path / "seed.npz"
    args = shlex.split("--preset seed --train-size 2000 --batch-size 2000 --epochs 3 --quiet")
    result = cli("train", *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "epoch   3" in result.stdout
    assert "test accuracy" in result.stdout and f"saved {out}" in result.stdout


def test_runs_are_recorded_in_the_store_unless_told_not_to(tmp_path):
    from core.runs import RunStore

    runs = str(tmp_path / "store")
    small = shlex.split("--train-size 500 --epochs 1")
    result = cli("train", *small, "--name", "cli run", "--json", runs=runs)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    (run,) = RunStore(runs).runs()
    assert run.id == summary["run_id"] and run.name == "cli run" and run.status == "finished"
    assert summary["model_path"] == str(run.checkpoint) and run.checkpoint.exists()
    result = cli("train", *small, "--no-store", "--quiet", cwd=tmp_path, runs=runs)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model.npz").exists() and len(RunStore(runs).runs()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "-1"], "--lr: learning rate must be above 0"),
        (["--lr", "abc"], "--lr: 'abc' is not a number"),
        (["--hidden", "128,,64"], "--hidden: '128,,64' is not a list of whole numbers"),
        (["--hidden", "128,0"], "--hidden: every layer needs between 1 and 8192 units"),
        (["--epochs", "0"], "--epochs: must be between 1 and 1000"),
        (["--batch-size", "600", "--train-size", "500"], "--batch-size: 600 is larger"),
        (["--dropout", "1"], "--dropout: must be in [0, 1)"),
        (["--preset", "nope"], "invalid choice: 'nope'"),
        (["--optimizer", "lbfgs"], "--optimizer: 'lbfgs' is not one of sgd, adam"),
        (
            ["--arch", "cnn", "--kernel-size", "9", "--conv", "8,8,8", "--padding", "valid"],
            "--kernel-size: kernel 9x9 with 3 convolution blocks",
        ),
    ],
)
def test_bad_arguments_get_a_usage_message(args, message):
    result = cli("train", *args)
    assert result.returncode == 2
    assert_no_traceback(result)
    assert "usage: python -m core train" in result.stderr
    assert message in result.stderr


def test_diverging_run_exits_non_zero_with_advice(tmp_path):
    result = cli("train", "--lr", "50", "--train-size", "1000", "--out", str(tmp_path / "m.npz"))
    assert result.returncode == 1
    assert_no_traceback(result)
    assert "diverged" in result.stderr and "try 5 or lower" in result.stderr
    assert not (tmp_path / "m.npz").exists()


def test_evaluate_prints_accuracy_and_per_class_table(small_model_path):
    human = cli("evaluate", small_model_path)
    assert human.returncode == 0, human.stderr
    assert "test accuracy" in human.stdout and "precision" in human.stdout
    assert len([line for line in human.stdout.splitlines() if line.strip()[:1].isdigit()]) == 10
    result = cli("evaluate", small_model_path, "--json")
    report = json.loads(result.stdout)
    assert 0.9 < report["test_accuracy"] < 1
    assert len(report["per_class"]) == 10
    cm = np.array(report["confusion_matrix"])
    assert cm.sum() == 10_000
    assert np.trace(cm) / 10_000 == pytest.approx(report["test_accuracy"])


def test_evaluate_a_corrupt_model_is_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    result = cli("evaluate", str(bad))
    assert result.returncode == 2
    assert_no_traceback(result)
    assert "bad.npz is not a readable model file" in result.stderr


def test_predict_digits_in_image_files(mnist, small_model_path, tmp_path):
    from core.model_load import load_model
    from core.preprocess import prepare

    model = load_model(small_model_path)[0]
    files, labels = [], []
    for i, (digit, label) in enumerate(zip(mnist.test_images, mnist.test_labels, strict=True)):
        probs = model.predict_proba(prepare(digit / 255.0).image[None, :, :, None])
        if probs.argmax() != label or probs.max() < 0.9:
            continue  # only digits the small model is sure of
        big = Image.fromarray(255 - digit).resize((140, 140), Image.Resampling.BICUBIC)
        path = tmp_path / f"digit{i}.{'png' if i % 2 else 'jpg'}"
        big.convert("RGB").save(path)  # dark ink on white paper, like a scan
        files.append(path)
        labels.append(int(label))
        if len(files) == 6:
            break
    blank = tmp_path / "blank.png"
    Image.new("L", (100, 100), 255).save(blank)
    result = cli("predict", small_model_path, *map(str, files), str(blank), "--json")
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert [a["digit"] for a in answers[:-1]] == [str(label) for label in labels]
    assert all(0.5 < a["probability"] <= 1 for a in answers[:-1])
    assert answers[-1]["digit"] is None and "no digit found" in answers[-1]["reason"]
    human = cli("predict", small_model_path, str(files[0]), str(blank))
    assert human.stdout.splitlines()[0].startswith(f"{files[0]}: {labels[0]} (")
    assert "blank.png: no digit found" in human.stdout


def test_predict_a_non_image_and_a_missing_file(small_model_path, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a digit")
    result = cli("predict", small_model_path, str(text), str(tmp_path / "missing.png"))
    assert result.returncode == 1
    assert_no_traceback(result)
    assert "notes.txt could not be read as an image" in result.stderr
    assert "missing.png: no such file" in result.stderr


def test_missing_subcommand_and_missing_model():
    assert cli().returncode == 2
    result = cli("predict", "nowhere.npz", "x.png")
    assert result.returncode == 2 and "nowhere.npz does not exist" in result.stderr
    assert_no_traceback(result)


def test_a_run_that_diverges_after_good_epochs_keeps_its_best_weights(tmp_path):
    """The learning rate ramps up to 20 over the run: fine for three epochs, then too high."""
    out = tmp_path / "m.npz"
    small = shlex.split("--train-size 1000 --val-size 500 --epochs 10")
    ramp = shlex.split("--schedule constant --warmup-epochs 10 --lr 20 --activation leaky_relu")
    result = cli("train", "--no-store", "--out", str(out), "--json", *small, *ramp)
    assert result.returncode == 1
    assert_no_traceback(result)
    summary = json.loads(result.stdout)
    assert summary["status"] == "diverged" and summary["model_path"] == str(out)
    assert summary["best_epoch"] == 3 and summary["epochs"] == 4
    assert "Training diverged at epoch 5" in result.stderr
    assert (
        f"kept the weights of epoch 3, its best before it diverged (validation accuracy "
        f"{summary['val_accuracy']:.2%}); saved {out}" in result.stderr
    )
    from core.model_load import load_model

    model, meta = load_model(out)
    assert meta["status"] == "diverged" and meta["best_epoch"] == 3
    assert model.n_classes == 10


def _main(argv: list[str], monkeypatch) -> int:
    """The CLI in this process, without its Ctrl-C handler (which would outlive the call)."""
    import core.cli

    monkeypatch.setattr(core.cli, "interrupt_flag", lambda: lambda: False)
    return core.cli.main(argv)


def test_a_run_that_learned_nothing_exits_1_with_its_reason(tmp_path, monkeypatch, capsys):
    import core.cli

    real_fit = core.cli.fit

    def fit_that_learns_nothing(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        result.status = "learned_nothing"
        result.reason = "Learned nothing: accuracy stayed at chance; try a lower learning rate."
        return result

    monkeypatch.setattr(core.cli, "fit", fit_that_learns_nothing)
    out = tmp_path / "m.npz"
    args = shlex.split("train --no-store --train-size 500 --epochs 1 --quiet")
    code = _main([*args, "--out", str(out)], monkeypatch)
    captured = capsys.readouterr()
    assert code == 1
    assert "Finished" not in captured.out
    assert "python -m core train: Learned nothing: accuracy stayed at chance" in captured.err
    assert "kept the weights of epoch 1, its best (validation accuracy" in captured.err
    assert out.is_file()


def test_a_broken_run_store_is_one_line_and_no_store_never_opens_it(tmp_path, monkeypatch, capsys):
    import core.cli
    from core.runs import StoreError

    def broken_store(*args, **kwargs):
        raise StoreError(
            "runs/runs.sqlite is not a database.\nMove it away and a new store is made."
        )

    monkeypatch.setattr(core.cli, "RunStore", broken_store)
    args = ["--train-size", "500", "--epochs", "1", "--quiet"]
    assert _main(["train", *args], monkeypatch) == 2
    err = capsys.readouterr().err
    assert err == (
        "python -m core train: error: runs/runs.sqlite is not a database. Move it away and a "
        "new store is made.\n"
    )
    assert _main(["sweep", "--grid", "lr=0.1,0.5", "--set", "epochs=1"], monkeypatch) == 2
    assert capsys.readouterr().err.startswith("python -m core sweep: error: runs/runs.sqlite")
    out = tmp_path / "m.npz"
    assert _main(["train", "--no-store", "--out", str(out), *args], monkeypatch) == 0
    assert out.is_file()
