"""The Train page and its settings form, through Streamlit's AppTest and the pure helpers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import ConfigError, TrainConfig
from core.presets import PRESETS, preset
from core.runs import RunStore
from dashboard import settings

REPO = Path(__file__).resolve().parent.parent


def test_query_round_trip_keeps_only_changed_settings():
    cfg = TrainConfig(lr=0.05, hidden=[256, 32], nesterov=True)
    query = settings.to_query(cfg)
    assert query == {"lr": "0.05", "hidden": "256,32", "nesterov": "True"}
    again, errors = settings.from_query({**query, "model": "run-3"})
    assert again == cfg and errors == []


def test_bad_query_values_are_reported_not_applied():
    cfg, errors = settings.from_query({"lr": "fast", "epochs": "5"})
    assert cfg.epochs == 5 and cfg.lr == TrainConfig().lr
    assert [e.field for e in errors] == ["lr"]


def test_vary_one_setting():
    base = TrainConfig(epochs=3)
    configs = settings.vary(base, "lr", "0.01, 0.1,1")
    assert [c.lr for c in configs] == [0.01, 0.1, 1.0]
    assert all(c.replace(lr=base.lr) == base for c in configs)
    assert [c.hidden for c in settings.vary(base, "hidden", "64; 128,64")] == [[64], [128, 64]]
    with pytest.raises(ConfigError, match="two to five"):
        settings.vary(base, "lr", "0.1")
    with pytest.raises(ConfigError, match="all be different"):
        settings.vary(base, "lr", "0.1, 0.10")
    with pytest.raises(ConfigError, match="not a number"):
        settings.vary(base, "lr", "0.1, fast")


@pytest.fixture
def app(monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/train.py").run()
    assert not at.exception
    return at


def form_config(at: AppTest) -> TrainConfig:
    values = {name: at.session_state[settings.PREFIX + name] for name in settings.FIELDS}
    return TrainConfig.from_dict(values)


def test_the_form_starts_at_the_defaults(app):
    assert form_config(app) == TrainConfig()
    assert not app.error


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_fills_the_form(app, name):
    app.selectbox(key="preset").set_value(name).run()
    assert not app.exception
    assert form_config(app) == preset(name)
    # The URL now carries the preset's settings, so the link reproduces the form.
    assert settings.from_query(dict(app.query_params))[0] == preset(name)


def test_invalid_values_are_explained_next_to_the_control(app):
    app.text_input(key="cfg_hidden").set_value("128,,64").run()
    assert any("not a list of whole numbers" in e.value for e in app.error)
    start = next(b for b in app.button if b.label == "Start")
    assert start.disabled
    app.text_input(key="cfg_hidden").set_value("128,64").run()
    app.select_slider(key="cfg_train_size").set_value(500).run()
    app.select_slider(key="cfg_batch_size").set_value(1024).run()
    assert any("1024 is larger than the training set (500 images)" in e.value for e in app.error)
    assert not app.exception


def test_settings_in_the_link_fill_the_form(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.query_params["optimizer"] = "adam"
    at.query_params["lr"] = "0.002"
    at.query_params["epochs"] = "nope"
    at.run()
    at.switch_page("views/train.py").run()
    cfg = form_config(at)
    assert cfg.optimizer == "adam" and cfg.lr == 0.002 and cfg.epochs == TrainConfig().epochs
    assert any("epochs" in w.value for w in at.warning)


def test_start_trains_a_tiny_run_in_the_background_and_draws_its_curves(app, tmp_path):
    app.select_slider(key="cfg_train_size").set_value(1000).run()
    app.number_input(key="cfg_epochs").set_value(2).run()
    next(b for b in app.button if b.label == "Start").click().run()
    assert not app.exception
    store = RunStore(tmp_path / "runs")
    (run,) = store.runs()
    assert run.config.train_size == 1000 and run.config.epochs == 2
    deadline = time.monotonic() + 120
    while store.get(run.id).active:
        assert time.monotonic() < deadline, "the background run did not finish"
        time.sleep(0.5)
    run = store.get(run.id)
    assert run.status == "finished" and run.test_accuracy > 0.5
    app.run()
    assert not app.exception
    assert any(f"{run.test_accuracy:.2%}" in s.value for s in app.success)
    charts = app.get("plotly_chart")
    assert len(charts) >= 1  # the live curves of the finished run


def test_repeats_queue_one_run_per_seed(app, tmp_path):
    app.select_slider(key="cfg_train_size").set_value(1000).run()
    app.number_input(key="cfg_epochs").set_value(1).run()
    app.number_input(key="train_repeats").set_value(3).run()
    next(b for b in app.button if b.label == "Start").click().run()
    assert not app.exception
    store = RunStore(tmp_path / "runs")
    runs = sorted(store.runs(), key=lambda r: r.id)
    assert [r.config.seed for r in runs] == [0, 1, 2]
    assert all(r.config.replace(seed=0) == runs[0].config for r in runs)
    assert [r.name.split()[-2:] for r in runs] == [["seed", "0"], ["seed", "1"], ["seed", "2"]]
    (shared,) = {r.name.rsplit(" seed ", 1)[0] for r in runs}  # one name for the group
    assert shared.startswith("mlp-")
    assert app.session_state["train_watch"] == runs[0].id
    deadline = time.monotonic() + 120
    while any(store.get(r.id).active for r in runs):
        assert time.monotonic() < deadline, "the background runs did not finish"
        time.sleep(0.5)


def test_vary_one_with_repeats_opens_compare_on_the_seeds_tab(app, tmp_path):
    app.select_slider(key="cfg_train_size").set_value(1000).run()
    app.number_input(key="cfg_epochs").set_value(1).run()
    app.selectbox(key="vary_field").set_value("lr").run()
    app.text_input(key="vary_values").set_value("0.1, 1").run()
    app.number_input(key="vary_repeats").set_value(2).run()
    next(b for b in app.button if b.label == "Queue and compare").click().run()
    assert not app.exception
    store = RunStore(tmp_path / "runs")
    runs = sorted(store.runs(), key=lambda r: r.id)
    assert [(r.config.lr, r.config.seed) for r in runs] == [(0.1, 0), (0.1, 1), (1.0, 0), (1.0, 1)]
    assert runs[1].name.endswith("lr=0.1 seed 1")
    assert app.query_params["compare_view"] == "Seeds and verdict"
    assert app.query_params["runs"] == ",".join(str(r.id) for r in runs)
    table = next(d.value for d in app.dataframe if "group" in d.value.columns)
    assert sorted(table["group"]) == ["lr 0.1", "lr 1"]  # Compare opened on its seeds tab
    deadline = time.monotonic() + 120
    while any(store.get(r.id).active for r in runs):
        assert time.monotonic() < deadline, "the background runs did not finish"
        time.sleep(0.5)
