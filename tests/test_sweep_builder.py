"""The Sweep page's pure logic: specs built, exported and imported; the estimate; the process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.config import TrainConfig
from core.presets import preset
from core.runs import RunStore
from core.sweep import plan
from core.sweep_spec import SweepError, expand, load_spec, parse_spec
from dashboard import sweep_builder as sb
from dashboard import sweep_process as sp


def tiny_form(**changes) -> sb.Form:
    form = sb.Form(
        name="tiny",
        epochs=1,
        train_size=1000,
        axes=[sb.Axis("lr", "grid", "0.1, 0.5")],
        seeds=2,
    )
    for name, value in changes.items():
        setattr(form, name, value)
    return form


def test_a_grid_exported_as_yaml_loads_as_the_same_trials(tmp_path):
    raw = sb.build_raw(tiny_form())
    path = tmp_path / "tiny.yaml"
    path.write_text(sb.spec_yaml(raw))
    spec = load_spec(path)
    base = preset("default").replace(epochs=1, train_size=1000)
    expected = [base.replace(lr=lr, seed=seed) for lr in (0.1, 0.5) for seed in (0, 1)]
    assert expand(spec) == expected
    assert spec.name == "tiny" and spec.seeds == 2 and spec.metric == "val_accuracy"


def test_grid_and_random_settings_round_trip_through_the_page(tmp_path):
    form = tiny_form(
        preset="cnn",
        axes=[
            sb.Axis("hidden", "grid", "128,64; 32"),
            sb.Axis("lr", "log_uniform", low="0.01", high="1"),
            sb.Axis("momentum", "uniform", low="0", high="0.9"),
            sb.Axis("epochs", "int_uniform", low="1", high="3"),
            sb.Axis("optimizer", "choice", "sgd, adam"),
        ],
        trials=3,
        seeds=1,
        metric="val_loss",
    )
    raw = sb.build_raw(form)
    assert raw["grid"] == {"hidden": [[128, 64], [32]]}
    assert raw["random"]["lr"] == {"log_uniform": [0.01, 1.0]}
    assert raw["random"]["epochs"] == {"int_uniform": [1, 3]}
    path = tmp_path / "spec.yaml"
    path.write_text(sb.spec_yaml(raw))
    configs = expand(load_spec(path))
    assert len(configs) == 6 and {c.arch for c in configs} == {"cnn"}
    assert all(0.01 <= c.lr <= 1 and c.optimizer in ("sgd", "adam") for c in configs)
    # Imported again, the page's values give back the same spec.
    again = sb.form_from_raw(load_spec_raw(path))
    assert sb.build_raw(again) == raw


def load_spec_raw(path: Path) -> dict:
    return sb.read_upload(path.name, path.read_bytes())


def test_an_imported_spec_keeps_settings_the_page_has_no_widget_for(tmp_path):
    text = (
        "name: keep\nbase: {preset: default, lr: 0.3, batch_size: 64}\n"
        "grid: {momentum: [0.0, 0.9]}\nseed: 7\n"
    )
    raw = sb.read_upload("keep.yaml", text.encode())
    form = sb.form_from_raw(raw)
    assert form.extra_base == {"lr": 0.3, "batch_size": 64} and form.draw_seed == 7
    assert expand(parse_spec(sb.build_raw(form))) == expand(parse_spec(raw))


@pytest.mark.parametrize(
    ("axis", "message"),
    [
        (sb.Axis("lr", "grid", " , "), "Learning rate: type at least one value"),
        (sb.Axis("lr", "grid", "0.1, fast"), "Learning rate: 'fast' is not a number"),
        (sb.Axis("lr", "grid", "0.1, 0.1"), "each value only once"),
        (sb.Axis("lr", "uniform", low="0.5", high="0.1"), "from a lower to a higher number"),
        (sb.Axis("lr", "uniform", low="0.5", high="0.5"), "from a lower to a higher number"),
        (sb.Axis("lr", "log_uniform", low="0", high="1"), "a log scale needs a range above 0"),
        (sb.Axis("lr", "uniform", low="a", high="1"), "the start of the range, 'a', is not"),
        (sb.Axis("epochs", "int_uniform", low="1", high="2.5"), "must be a whole number"),
        (sb.Axis("optimizer", "uniform", low="0", high="1"), "is not a number, so it has no"),
        (sb.Axis("lr", "grid", "-1"), "learning rate must be above 0"),
    ],
)
def test_bad_values_are_refused_in_words(axis, message):
    with pytest.raises(sb.BuildError, match=message):
        sb.build_raw(tiny_form(axes=[axis]))


def test_a_name_must_be_a_safe_slug_and_something_must_vary():
    for name in ("", "two words", "../up", "x" * 61):
        with pytest.raises(sb.BuildError, match="name"):
            sb.build_raw(tiny_form(name=name))
    with pytest.raises(sb.BuildError, match="at least one setting to vary"):
        sb.build_raw(tiny_form(axes=[]))


def test_a_bad_upload_is_explained_and_names_the_file():
    with pytest.raises(sb.BuildError, match=r"bad\.yaml is not valid YAML"):
        sb.read_upload("bad.yaml", b"name: [unclosed\n")
    with pytest.raises(sb.BuildError, match=r"bad\.yaml: grid\.lr must be a non-empty list"):
        sb.read_upload("bad.yaml", b"name: x\ngrid: {lr: []}\n")
    with pytest.raises(sb.BuildError, match="not UTF-8"):
        sb.read_upload("bad.json", b"\xff\xfe")


def finished(store: RunStore, cfg: TrainConfig, seconds: float, epochs: int) -> int:
    run = store.create(cfg, "past", status="running", pid=os.getpid())
    for epoch in range(1, epochs + 1):
        store.add_epoch(
            run.id,
            {"epoch": epoch, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0,
             "val_accuracy": 0.5, "lr": 0.1, "seconds": seconds / epochs,
             "elapsed": seconds * epoch / epochs},
            [],
        )  # fmt: skip
    store.finish(run.id, "finished", "done", train_seconds=seconds)
    return run.id


def test_the_estimate_is_the_median_speed_of_past_runs_of_the_same_kind(tmp_path):
    store = RunStore(tmp_path / "runs")
    finished(store, TrainConfig(train_size=1000, epochs=2), 2.0, 2)  # 1.0 ms per image-epoch
    finished(store, TrainConfig(train_size=2000, epochs=1), 4.0, 1)  # 2.0 ms
    finished(store, TrainConfig(train_size=0, val_size=5000, epochs=1), 55.0 * 4, 1)  # 4.0 ms
    finished(store, preset("cnn").replace(train_size=1000, epochs=1), 50.0, 1)  # not an MLP
    rates = sb.past_rates(
        store.runs(status="finished"), {i: s["epochs"] for i, s in store.epoch_summaries().items()}
    )
    assert sorted(rates["mlp"]) == pytest.approx([1e-3, 2e-3, 4e-3])
    _, configs = sb.check_raw(sb.build_raw(tiny_form()))  # 4 MLP runs, 1000 images, 1 epoch
    guess = sb.estimate(configs, {"mlp": rates["mlp"]}, workers=2)
    assert guess.seconds == pytest.approx(4 * 2e-3 * 1000 * 1 / 2 + sb.STARTUP_SECONDS)
    assert guess.past == {"mlp": 3} and "median of 3 finished MLP runs" in guess.basis
    # With no past CNN run, the stated default is used and said so.
    cnn = [preset("cnn").replace(train_size=1000, epochs=3)]
    guess = sb.estimate(cnn, {"mlp": rates["mlp"]}, workers=4)
    assert guess.seconds == pytest.approx(sb.DEFAULT_RATES["cnn"] * 3000 + sb.STARTUP_SECONDS)
    assert "no finished CNN run" in guess.basis and guess.workers == 1


def test_the_trials_table_and_leaderboard(tmp_path):
    store = RunStore(tmp_path / "runs")
    spec = parse_spec(sb.build_raw(tiny_form()))
    runs, _ = plan(store, spec)
    store.claim(runs[0].id, os.getpid())
    store.set_progress(runs[0].id, {"epoch": 1, "epochs": 1, "batch": 4, "batches": 8, "eta": 3.0})
    table = sb.trials_table(store.sweep_runs("tiny"))
    assert list(table["status"]) == ["running", "queued", "queued", "queued"]
    assert table["progress"][0] == pytest.approx(0.5) and table["time left (s)"][0] == 3.0
    rows = [{"rank": 1, "run_id": 1, "name": "a", "status": "finished", "val_accuracy": 0.9,
             "seconds": 1.0, "hidden": [128, 64]}]  # fmt: skip
    board = sb.leaderboard(rows, "val_accuracy")
    assert list(board.columns) == ["rank", "run", "status", "val_accuracy", "seconds", "hidden"]
    assert board["hidden"][0] == "128,64"


def test_a_name_with_runs_is_refused_with_the_command_lines_words(tmp_path):
    store = RunStore(tmp_path / "runs")
    spec = parse_spec(sb.build_raw(tiny_form()))
    assert sp.refusal(store, "tiny") is None
    plan(store, spec)
    with pytest.raises(SweepError) as cli:
        plan(store, spec)
    assert sp.refusal(store, "tiny") == str(cli.value)
    with pytest.raises(sp.SweepProcessError) as page:
        sp.start(store, "tiny", sb.spec_yaml(sb.build_raw(tiny_form())), workers=1)
    assert str(page.value) == str(cli.value)
    assert not sp.spec_path(store, "tiny").exists()  # nothing was written or started


@pytest.mark.parametrize(
    "address", ["", "localhost", "tcp://host:port", "http://x:8786", "h:99999"]
)
def test_a_malformed_scheduler_address_is_refused(address):
    with pytest.raises(sp.SweepProcessError, match="is not a scheduler address"):
        sp.check_scheduler(address)


def test_an_unreachable_scheduler_is_refused():
    import socket

    with socket.socket() as s:  # a port nobody listens on: bound, then closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(sp.SweepProcessError, match="No Dask scheduler answers"):
        sp.check_scheduler(f"tcp://127.0.0.1:{port}", timeout=1.0)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert sp.check_scheduler(f"127.0.0.1:{port}") == f"tcp://127.0.0.1:{port}"
