"""The app frame through AppTest: the home page and the model picker every page shares."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import TrainConfig
from core.runs import RunStore, train_run

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def runs(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture
def finished_run(runs, mnist):
    store = RunStore(runs)
    run = store.create(TrainConfig(train_size=500, epochs=1), "tiny", status="running",
                       pid=os.getpid())  # fmt: skip
    train_run(store, run, mnist)
    return store.get(run.id)


def test_home_page_explains_itself_and_offers_drawing(runs):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    assert at.title[0].value.startswith("✏️")
    assert "Draw a digit and it will tell you which one it is" in at.markdown[0].value
    assert any(b.label == "Draw a digit" for b in at.button)
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
