"""Hints (core/hints.py): every rule fires on a history or network built to show its problem,
none fires on a healthy run of the `default` preset, every fix is a valid config, and the
"Try this" link on the Train and Compare pages fills the Train form with the fix (AppTest)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from streamlit.testing.v1 import AppTest

from core import hints as H
from core.architecture import spec_from_config
from core.config import TrainConfig, problems
from core.model import Model
from core.model_load import load_model
from core.presets import preset
from core.runs import RunStore
from core.train import fit
from dashboard.hints import link

REPO = Path(__file__).resolve().parent.parent
DEFAULT = preset("default")

# (train_loss, train_accuracy, val_loss, val_accuracy) of each of the 30 epochs of
# `python -m core train` (the default preset, seed 0), as the run store records them.
DEFAULT_HISTORY = [
    (0.2838, 0.9135, 0.1517, 0.9540), (0.1159, 0.9648, 0.1241, 0.9598),
    (0.0870, 0.9735, 0.1160, 0.9628), (0.0664, 0.9794, 0.1090, 0.9680),
    (0.0536, 0.9833, 0.0977, 0.9698), (0.0409, 0.9872, 0.0802, 0.9756),
    (0.0335, 0.9894, 0.0960, 0.9730), (0.0278, 0.9907, 0.0856, 0.9760),
    (0.0205, 0.9937, 0.0844, 0.9760), (0.0188, 0.9940, 0.0877, 0.9762),
    (0.0136, 0.9958, 0.0964, 0.9738), (0.0095, 0.9979, 0.0767, 0.9786),
    (0.0059, 0.9987, 0.0783, 0.9772), (0.0044, 0.9995, 0.0742, 0.9794),
    (0.0032, 0.9997, 0.0714, 0.9786), (0.0028, 0.9999, 0.0713, 0.9782),
    (0.0026, 0.9999, 0.0694, 0.9788), (0.0025, 0.9999, 0.0692, 0.9792),
    (0.0024, 0.9999, 0.0719, 0.9794), (0.0023, 0.9999, 0.0688, 0.9790),
    (0.0023, 0.9999, 0.0707, 0.9782), (0.0022, 0.9999, 0.0694, 0.9788),
    (0.0022, 0.9999, 0.0688, 0.9788), (0.0022, 1.0000, 0.0686, 0.9788),
    (0.0022, 1.0000, 0.0687, 0.9794), (0.0021, 1.0000, 0.0686, 0.9792),
    (0.0021, 1.0000, 0.0687, 0.9792), (0.0021, 1.0000, 0.0687, 0.9792),
    (0.0021, 1.0000, 0.0686, 0.9792), (0.0021, 1.0000, 0.0686, 0.9792),
]  # fmt: skip


def history(rows: Sequence[Sequence[float]]) -> list[dict[str, float]]:
    """Per-epoch rows as the run store returns them, from (train_loss, train_accuracy,
    val_loss, val_accuracy) tuples."""
    names = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    return [{"epoch": i, **dict(zip(names, r, strict=True))} for i, r in enumerate(rows, 1)]


def rules(found: list[H.Hint]) -> list[str]:
    return [h.rule for h in found]


def check_fix(config: TrainConfig, hint: H.Hint) -> TrainConfig:
    """The hint's fixed config: it changes something, and is valid."""
    assert hint.fix and hint.label and hint.sentence.endswith(".")
    fixed = hint.fixed(config)
    assert fixed != config
    assert not problems(fixed), (hint.rule, problems(fixed))
    return fixed


# Healthy: none fires


def test_no_hint_at_any_epoch_of_the_default_preset():
    epochs = history(DEFAULT_HISTORY)
    for n in range(1, len(epochs)):  # live, after each epoch
        assert H.hints(DEFAULT, epochs[:n], status="running") == [], n
    assert H.hints(DEFAULT, epochs, status="finished") == []


@pytest.fixture(scope="module")
def quick_default(mnist) -> Model:
    """The default preset trained briefly on 5,000 images (about 1 s)."""
    return fit(DEFAULT.replace(train_size=5000, epochs=2), mnist, evaluate_test=False).model


def test_no_inside_hint_on_healthy_networks(mnist, quick_default):
    shipped_mlp, _ = load_model(REPO / "data" / "models" / "mlp.npz")  # the default's shape
    shipped_cnn, _ = load_model(REPO / "data" / "models" / "default.npz")
    for model, config in ((quick_default, DEFAULT), (shipped_mlp, DEFAULT),
                          (shipped_cnn, preset("cnn"))):  # fmt: skip
        inside = H.measure_internals(model, mnist.train_images[: H.sample_size(model)])
        assert inside.dead is not None and inside.dead < H.STUCK_SHARE
        assert H.hints(config, history(DEFAULT_HISTORY), internals=inside) == []


# Each rule fires on its problem


def test_a_diverged_run_gets_a_ten_times_smaller_learning_rate():
    config = DEFAULT.replace(lr=5.0)
    (hint,) = H.hints(config, [], status="diverged")
    assert hint.rule == "diverging" and check_fix(config, hint).lr == 0.5
    # While it trains: the epoch's loss doubled, or the batches' loss climbed back above
    # guessing after it had fallen.
    rising = history([(0.5, 0.85, 0.4, 0.88), (0.3, 0.9, 0.3, 0.91), (0.9, 0.7, 1.2, 0.6)])
    assert rules(H.hints(config, rising, status="running")) == ["diverging"]
    assert rules(H.hints(config, rising[:2], status="running")) == []
    batches = [(s, s / 10, 0.4) for s in range(1, 20)] + [(s, s / 10, 5.0) for s in range(20, 26)]
    assert rules(H.hints(config, rising[:2], "running", batches)) == ["diverging"]
    assert rules(H.hints(config, rising[:2], "running", batches[:19])) == []
    nan = history([(0.5, 0.85, 0.4, 0.88), (math.nan, 0.1, math.nan, 0.1)])
    assert rules(H.hints(config, nan, status="running")) == ["diverging"]
    # A tiny loss that doubles is noise, not a blow-up (the default preset ends at 0.002).
    tiny = history([*DEFAULT_HISTORY[:20], (0.0050, 0.9998, 0.0690, 0.9790)])
    assert H.hints(DEFAULT, tiny, status="running") == []


def test_too_low_a_learning_rate_is_raised_ten_times():
    # sgd at 0.01 for 10 epochs: validation accuracy from 81 % to 90 %.
    config = DEFAULT.replace(lr=0.01, epochs=10)
    slow = history([(1.45, 0.62, 0.75, 0.815), (0.57, 0.855, 0.48, 0.866),
                    (0.42, 0.885, 0.41, 0.883), (0.37, 0.897, 0.37, 0.889)])  # fmt: skip
    (hint,) = H.hints(config, slow, status="running")
    assert hint.rule == "slow" and check_fix(config, hint).lr == 0.1
    adam = DEFAULT.replace(optimizer="adam", lr=1e-4)
    assert check_fix(adam, H.hints(adam, slow, "running")[0]).lr == 1e-3
    assert H.hints(DEFAULT, slow, status="running") == []  # the usual rate: not this rule
    # A small rate that still got there is left alone.
    there = history(
        [*[(r[0], r[1], r[2], r[3]) for r in DEFAULT_HISTORY[:3]], (0.07, 0.98, 0.1, 0.975)]
    )
    assert H.hints(config, there, status="running") == []
    # The new rate is written as a person would type it (0.03 * 10 is 0.30000000000000004).
    odd = DEFAULT.replace(lr=0.03)
    assert check_fix(odd, H.hints(odd, slow, "running")[0]).lr == 0.3


def overfit_rows(epochs: int = 12) -> list[tuple[float, ...]]:
    """1,000 training images without L2: training accuracy to 100 %, validation loss up."""
    rows = [
        (2.03, 0.356, 1.378, 0.658), (0.958, 0.74, 0.726, 0.770), (0.615, 0.802, 0.556, 0.834),
        (0.385, 0.886, 0.583, 0.823), (0.295, 0.898, 0.559, 0.829), (0.192, 0.94, 0.453, 0.867),
        (0.108, 0.97, 0.475, 0.870), (0.068, 0.983, 0.474, 0.879), (0.039, 0.994, 0.494, 0.879),
        (0.026, 0.996, 0.480, 0.883), (0.018, 0.999, 0.493, 0.885), (0.011, 1.0, 0.513, 0.884),
    ]  # fmt: skip
    return rows[:epochs]


def test_overfitting_makes_training_harder_one_remedy_at_a_time():
    config = DEFAULT.replace(train_size=1000, weight_decay=0.0, epochs=60)
    epochs = history(overfit_rows())
    assert rules(H.hints(config, epochs[:8], status="running")) == []  # loss up 5 % only
    (hint,) = H.hints(config, epochs, status="running")
    assert hint.rule == "overfitting"
    augmented = check_fix(config, hint)
    assert augmented.augments
    decayed = check_fix(augmented, H.hints(augmented, epochs, "running")[0])
    assert decayed.weight_decay == 1e-4
    dropout = decayed.replace(weight_decay=1e-3)
    assert check_fix(dropout, H.hints(dropout, epochs, "running")[0]).dropout == 0.2
    everything = dropout.replace(dropout=0.5)
    assert check_fix(everything, H.hints(everything, epochs, "running")[0]).train_size == 0
    # A finished overfitting run is not told to train longer.
    assert rules(H.hints(config.replace(epochs=12), epochs, "finished")) == ["overfitting"]


def test_underfitting_gets_a_bigger_network():
    # 784-4-10 for 10 epochs: 81 % on its own training digits, flat.
    config = DEFAULT.replace(hidden=[4], epochs=10)
    rows = [(1.31, 0.488, 1.24, 0.534), (1.0, 0.652, 0.84, 0.761), (0.77, 0.766, 0.79, 0.770),
            (0.73, 0.781, 0.80, 0.761), (0.71, 0.786, 0.74, 0.787), (0.69, 0.794, 0.75, 0.783),
            (0.67, 0.804, 0.73, 0.794), (0.66, 0.808, 0.71, 0.797), (0.65, 0.812, 0.71, 0.802),
            (0.64, 0.815, 0.70, 0.800)]  # fmt: skip
    (hint,) = H.hints(config, history(rows), status="finished")
    assert hint.rule == "underfitting" and check_fix(config, hint).hidden == [128]
    assert rules(H.hints(config, history(rows[:4]), status="running")) == []  # too early
    # Still climbing (a sigmoid network: 92.6 % to 93.8 % in its last 3 epochs): not yet.
    sigmoid = DEFAULT.replace(activation="sigmoid", epochs=10)
    climbing = [(0.68, 0.798, 0.31, 0.905), (0.27, 0.923, 0.25, 0.926), (0.21, 0.938, 0.22, 0.935),
                (0.19, 0.946, 0.21, 0.937), (0.18, 0.949, 0.20, 0.938)]  # fmt: skip
    assert H.hints(sigmoid, history(climbing), status="running") == []
    cnn = preset("cnn").replace(conv=[4, 8])
    assert check_fix(cnn, H.hints(cnn, history(rows), "finished")[0]).conv == [8, 16]
    held = DEFAULT.replace(weight_decay=1e-2)
    assert check_fix(held, H.hints(held, history(rows), "finished")[0]).weight_decay == 1e-4


def test_learning_nothing_says_so_and_fixes_the_likely_cause():
    flat = history([(2.31, 0.11, 2.30, 0.113), (2.30, 0.11, 2.30, 0.112)])
    for config, change in (
        (DEFAULT.replace(lr=20.0), {"lr": 2.0}),
        (DEFAULT.replace(lr=1e-4), {"lr": 1.0}),
        (DEFAULT.replace(activation="sigmoid", init="lecun"), {"activation": "relu"}),
    ):
        (hint,) = H.hints(config, flat, status="running")
        assert hint.rule == "learned_nothing" and "guessing" in hint.sentence
        fixed = check_fix(config, hint)
        assert {k: getattr(fixed, k) for k in change} == change
    (hint,) = H.hints(DEFAULT, [], status="learned_nothing")
    assert hint.rule == "learned_nothing"
    # 26 % after one epoch (sigmoid at learning rate 50, 94 % two epochs later) is a start.
    start = history([(2.43, 0.112, 1.97, 0.264)])
    assert H.hints(DEFAULT.replace(activation="sigmoid", lr=50.0), start, "running") == []


def test_a_run_still_improving_at_its_end_gets_more_epochs():
    # A constant rate of 0.5 for 3 epochs: 91.4 %, 94.1 %, 94.7 %.
    config = DEFAULT.replace(schedule="constant", lr=0.5, epochs=3)
    rows = [(0.52, 0.852, 0.28, 0.914), (0.23, 0.935, 0.21, 0.941), (0.17, 0.95, 0.17, 0.947)]
    (hint,) = H.hints(config, history(rows), status="finished")
    assert hint.rule == "too_few_epochs" and check_fix(config, hint).epochs == 6
    assert H.hints(config, history(rows), status="running") == []  # not over yet
    assert H.hints(config, history(rows), status="stopped") == []  # stopped by hand
    past_best = [*rows[:2], (0.17, 0.95, 0.17, 0.940)]
    assert H.hints(config, history(past_best), status="finished") == []
    # Three epochs of the default preset: its cosine schedule slows it down at the end
    # (95.2 %, 96.9 %, 97.2 %).
    short = [
        (0.28, 0.915, 0.139, 0.952),
        (0.096, 0.971, 0.101, 0.9694),
        (0.058, 0.983, 0.092, 0.9722),
    ]
    assert H.hints(DEFAULT.replace(epochs=3), history(short), status="finished") == []


def test_many_dead_relu_units_get_leaky_relu(mnist):
    config = DEFAULT.replace(hidden=[32, 16])
    model = Model(spec_from_config(config), seed=0)
    images = mnist.train_images[: H.sample_size(model)]
    assert H.measure_internals(model, images).dead == 0.0
    model.layers[1].params["b"][:10] = -1000.0  # 10 of 32 first-layer units never fire
    inside = H.measure_internals(model, images)
    assert inside == H.Internals(dead=10 / 32, saturated=None)
    (hint,) = H.hints(config, history(DEFAULT_HISTORY), internals=inside)
    assert hint.rule == "dead_units" and "31.2 %" in hint.sentence
    assert check_fix(config, hint).activation == "leaky_relu"
    model.layers[1].params["b"][:10] = 0.0
    model.layers[1].params["b"][:9] = -1000.0  # 28 %: not over 30 %
    assert H.hints(config, [], internals=H.measure_internals(model, images)) == []


def test_saturated_tanh_units_get_relu(mnist):
    config = DEFAULT.replace(hidden=[32, 16], activation="tanh")
    model = Model(spec_from_config(config), seed=0)
    images = mnist.train_images[: H.sample_size(model)]
    assert H.measure_internals(model, images) == H.Internals(dead=None, saturated=0.0)
    model.layers[1].params["W"] *= 200  # sums far beyond where tanh bends
    inside = H.measure_internals(model, images)
    assert inside.saturated > H.STUCK_SHARE
    (hint,) = H.hints(config, [], status="running", internals=inside)
    assert hint.rule == "saturated" and "tanh" in hint.sentence
    assert check_fix(config, hint).activation == "relu"
    sigmoid = Model(spec_from_config(config.replace(activation="sigmoid")), seed=0)
    sigmoid.layers[1].params["W"] *= 200
    assert H.measure_internals(sigmoid, images).saturated > H.STUCK_SHARE
    # A trained tanh network uses the whole range of its units without sticking at the ends.
    trained = fit(config.replace(train_size=2000, epochs=2), mnist, evaluate_test=False).model
    assert H.measure_internals(trained, images).saturated < H.STUCK_SHARE


def test_every_sentence_is_one_plain_sentence():
    config = DEFAULT.replace(lr=0.01, hidden=[4], epochs=3)
    found = [
        *H.hints(DEFAULT, [], status="diverged"),
        *H.hints(config, history(overfit_rows()), "running"),
        *H.hints(DEFAULT, [], internals=H.Internals(dead=0.5)),
        *H.hints(config.replace(activation="sigmoid"), [], internals=H.Internals(saturated=0.9)),
    ]
    assert rules(found) == ["diverging", "slow", "overfitting", "dead_units", "saturated"]
    for hint in found:
        body = hint.sentence.rstrip(".")
        assert ". " not in body and "!" not in body and ";" not in body, hint.sentence
        # A technical word comes with a plain explanation in brackets beside it.
        for word in ("learning rate", "weight decay", "dropout", "augmentation", "epoch"):
            if word in hint.sentence:
                assert "(" in hint.sentence, (word, hint.sentence)


# The "Try this" link, on the real app


def page_links(at: AppTest) -> list[tuple[str, dict[str, str]]]:
    """(label, query parameters) of every "Try this" link on the page."""
    links = [link.proto for link in at.get("page_link") if link.proto.label.startswith("Try this")]
    assert all(link.page == "train" for link in links)  # the Train page's address
    return [(link.label, dict(parse_qsl(link.query_string))) for link in links]


def follow(at: AppTest, params: dict[str, str]) -> None:
    """Open a link to the Train page in this session (as the browser does on a click)."""
    for key in list(at.query_params):
        del at.query_params[key]
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page("views/train.py").run()
    assert not at.exception, [e.value for e in at.exception]


def record(store: RunStore, config: TrainConfig, rows, status: str):
    run = store.create(config, "hinted", status="running", pid=os.getpid())
    for epoch in history(rows):
        store.add_epoch(run.id, {**epoch, "lr": config.lr, "seconds": 1.0,
                                 "elapsed": float(epoch["epoch"])}, [])  # fmt: skip
    if status != "running":
        store.finish(run.id, status, best_val_accuracy=max(r[3] for r in rows))
    return store.get(run.id)


def test_try_this_fills_the_train_form_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    store = RunStore(tmp_path / "runs")
    config = DEFAULT.replace(lr=5.0, hidden=[64])
    run = record(store, config, [(0.5, 0.85, 0.4, 0.88), (0.9, 0.7, 1.2, 0.6)], "diverged")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/train.py").run()
    assert not at.exception
    assert any("overshoots" in i.value for i in at.info)
    assert at.session_state["cfg_lr"] == 1.0  # the form before
    ((label, params),) = page_links(at)
    assert (label, params) == ("Try this: learning rate 0.5", {"lr": "0.5", "hidden": "64"})
    follow(at, params)
    assert at.session_state["cfg_lr"] == 0.5 and at.session_state["cfg_hidden"] == "64"
    assert at.query_params["lr"] == "0.5" and at.query_params["hidden"] == "64"  # and stays
    assert not next(b for b in at.button if b.label == "Start").disabled

    # A fix back to a default value still lands: the link names it.
    (hint,) = H.hints(DEFAULT.replace(lr=10.0), [], "diverged")
    assert link(DEFAULT.replace(lr=10.0), hint) == {"lr": "1"}
    follow(at, {"lr": "1"})
    assert at.session_state["cfg_lr"] == 1.0 and at.session_state["cfg_hidden"] == "128,64"

    # Compare shows the same hint for the run, with the same link.
    at.switch_page("views/compare.py")
    at.query_params["runs"] = str(run.id)
    at.run()
    assert not at.exception
    assert any(f"#{run.id}" in i.value and "overshoots" in i.value for i in at.info)
    ((label, params),) = page_links(at)
    assert (label, params) == ("Try this: learning rate 0.5", {"lr": "0.5", "hidden": "64"})
    follow(at, params)
    assert at.session_state["cfg_lr"] == 0.5 and at.session_state["cfg_hidden"] == "64"


def test_the_live_panel_shows_hints_while_it_trains(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    store = RunStore(tmp_path / "runs")
    flat = [(2.31, 0.11, 2.30, 0.113), (2.30, 0.11, 2.30, 0.112)]
    record(store, DEFAULT.replace(lr=20.0, epochs=5), flat, "running")  # pid: this process
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/train.py").run()
    assert not at.exception
    assert any("learned nothing" in i.value for i in at.info)
    assert [label for label, _ in page_links(at)] == ["Try this: learning rate 2"]
