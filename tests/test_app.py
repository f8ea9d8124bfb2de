"""The app frame through AppTest: the home page and the model picker every page shares."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import TrainConfig
from core.recorder import train_run
from core.runs import RunStore

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def runs(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture
def finished_run(runs, mnist):
    store = RunStore(runs)
    run = store.create(
        TrainConfig(train_size=500, epochs=1), "tiny", status="running", pid=os.getpid()
    )
    train_run(store, run, mnist)
    return store.get(run.id)


def test_home_page_explains_itself_and_offers_drawing(runs):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    assert at.title[0].value == "See a neural network learn to read handwriting"
    assert "Draw a digit and it will tell you which one it is" in at.markdown[0].value
    assert [b.label for b in at.button][:2] == ["See how it works", "Draw a digit"]
    assert at.selectbox(key="model").value == "default"
    assert "Selected model" in at.caption[0].value


def test_a_link_selects_a_model_and_the_sidebar_can_change_it(runs, finished_run):
    key = f"run-{finished_run.id}"
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.query_params["model"] = key
    at.run()
    assert at.selectbox(key="model").value == key
    assert "#1 tiny" in at.caption[0].value
    at.selectbox(key="model").set_value("default").run()
    assert at.selectbox(key="model").value == "default"  # not undone by the old link
    assert at.query_params["model"] == "default"
    at.switch_page("views/evaluate.py").run()
    assert not at.exception and at.selectbox(key="model").value == "default"


def test_an_unknown_model_in_a_link_falls_back_to_the_default(runs):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.query_params["model"] = "run-999"
    at.run()
    assert not at.exception and at.selectbox(key="model").value == "default"
    (warning,) = [w.value for w in at.warning if "run-999" in w.value]
    assert "showing the default model" in warning


def test_home_draw_button_keeps_the_chosen_model(runs):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.selectbox(key="model").set_value("mlp").run()
    next(b for b in at.button if b.label == "Draw a digit").click().run()
    assert not at.exception
    assert at.query_params["model"] == "mlp" and at.selectbox(key="model").value == "mlp"
    assert "Draw" in at.title[0].value


def test_the_picker_offers_the_kept_checkpoint_of_a_run_that_did_not_finish(runs, mnist):
    store = RunStore(runs)
    cfg = TrainConfig(train_size=500, epochs=2, val_size=500)
    run = store.create(cfg, "blew up", status="running", pid=os.getpid())
    train_run(store, run, mnist)
    store.finish(run.id, "diverged", "Training diverged at epoch 2.")  # as a late blow-up ends
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    (label,) = [o for o in at.selectbox(key="model").options if "blew up" in o]
    assert label.startswith(f"#{run.id} blew up") and label.endswith(" · diverged")
    key = f"run-{run.id}"
    at.query_params["model"] = key
    at.run()
    assert at.selectbox(key="model").value == key and not at.exception


def test_a_data_folder_is_loaded_once_whatever_its_spelling(monkeypatch):
    from dashboard import state

    calls = []
    real = state.load_dataset
    monkeypatch.setattr(state, "load_dataset", lambda folder: calls.append(folder) or real(folder))
    state._dataset.clear()
    for spelling in (
        "data/mnist",
        "data/mnist/",
        "data//mnist/",
        "data/./mnist",
        "data/x/../mnist",
        str(REPO / "data" / "mnist"),
        "data/mnist//",
    ):
        state.load_data(spelling)
    assert len(calls) == 1


def test_every_page_cache_is_bounded():
    sources = [*(REPO / "views").glob("*.py"), *(REPO / "dashboard").glob("*.py")]
    for path in sources:
        text = path.read_text()
        for match in re.finditer(
            r"@st\.cache_(?:data|resource)\((.*?)\)\ndef \w+\((.*?)\)", text, re.S
        ):
            options, params = match.groups()
            assert "max_entries" in options or not params.strip(), (path.name, match.group(0))


def test_the_pages_read_a_model_file_once_however_much_they_compute(runs, monkeypatch):
    """Evaluate, Weights and Data compute many things from one model: all of them get it
    from the one cached loader, so its file is read once."""
    import streamlit as st

    import core.model_load
    from dashboard import state

    st.cache_resource.clear()
    st.cache_data.clear()
    reads = []
    real = core.model_load.load_model

    def counting(path):
        reads.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(core.model_load, "load_model", counting)
    monkeypatch.setattr(state, "load_model", counting)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.query_params["model"] = "mlp"
    at.run()
    visits = {
        "evaluate": ("evaluate_tab", ["Mistakes", "Damaged digits"]),
        "weights": (
            "weights_tab",
            [
                "What each neuron looks for",
                "Replay of training",
                "All layers",
                "What lights up inside",
            ],
        ),
        "data": ("data_tab", ["How the network sorts them"]),
    }
    for page, (key, tabs) in visits.items():
        at.switch_page(f"views/{page}.py").run()
        for tab in tabs:
            at.session_state[key] = tab  # what a click on a tab bound to the URL does
            at.query_params[key] = tab
            at.run()
            assert not at.exception and not at.error, (page, tab)
            assert at.get("plotly_chart"), (page, tab)  # the tab drew what it computed
    assert reads == ["mlp.npz"]
