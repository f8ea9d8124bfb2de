"""Parameter effects: the table and ranking (core/effects.py) and their figures."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os

import numpy as np
import plotly.graph_objects as go
import pytest

from core import effects
from core.config import TrainConfig
from core.runs import Run, RunStore
from dashboard.effects_figures import TICK_PX, effects_figure, ranking_figure

BASE = TrainConfig(train_size=1000, epochs=3)
LRS = (0.001, 0.01, 0.1, 1.0)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def finished(store: RunStore, config: TrainConfig, test: float | None, status="finished") -> Run:
    """A run recorded the way a trainer records one: created running, then finished."""
    run = store.create(config, "", status="running", pid=os.getpid())
    results = {"best_val_accuracy": test - 0.01} if test is not None else {}
    if test is not None:
        results["test_accuracy"] = test
    if status != "running":
        store.finish(run.id, status, **results)
    return store.get(run.id)


def accuracy(lr: float, optimizer: str, seed: int) -> float:
    """The synthetic truth: the learning rate moves accuracy a lot, the rest barely."""
    by_lr = {0.001: 0.90, 0.01: 0.95, 0.1: 0.98, 1.0: 0.93}[lr]
    return by_lr + (0.002 if optimizer == "adam" else 0.0) + 0.004 * (seed - 0.5)


@pytest.fixture
def sweep(store) -> list[Run]:
    """Four learning rates × two optimizers × two seeds: 16 runs."""
    return [
        finished(store, BASE.replace(lr=lr, optimizer=opt, seed=seed), accuracy(lr, opt, seed))
        for lr, opt, seed in itertools.product(LRS, ("sgd", "adam"), (0, 1))
    ]


def naive_eta_squared(values: list[float], labels: list[object]) -> float:
    """Eta squared the long way: between-group sum of squares over the total sum of squares."""
    mean = sum(values) / len(values)
    total = sum((v - mean) ** 2 for v in values)
    between = 0.0
    for label in set(labels):
        members = [v for v, g in zip(values, labels, strict=True) if g == label]
        between += len(members) * (sum(members) / len(members) - mean) ** 2
    return between / total


def test_the_learning_rate_ranks_first_with_its_true_share(sweep):
    result = effects.parameter_effects(sweep, "test_accuracy")
    values = [r.test_accuracy for r in sweep]
    expected_lr = naive_eta_squared(values, [r.config.lr for r in sweep])
    expected_opt = naive_eta_squared(values, [r.config.optimizer for r in sweep])

    ranking = result.ranking.set_index("setting")
    assert list(result.ranking["setting"]) == ["lr", "optimizer"]  # the seed is no setting
    assert ranking.loc["lr", "share"] == pytest.approx(expected_lr, rel=1e-9)
    assert ranking.loc["optimizer", "share"] == pytest.approx(expected_opt, rel=1e-9)
    assert expected_lr > 0.95 > 0.05 > expected_opt
    assert ranking.loc["lr", ["values", "runs", "groups"]].tolist() == [4, 16, 4]
    assert ranking.loc["lr", "p_value"] < 1e-6 < ranking.loc["optimizer", "p_value"]
    assert result.sentence.startswith(
        f"lr matters most: on its own it explains {expected_lr:.0%} of the differences in "
        "test accuracy between these 16 runs; next is optimizer with"
    )
    # The settings in TrainConfig's order, as everywhere else.
    assert list(result.table.columns) == ["run_id", "name", "test_accuracy", "optimizer", "lr"]
    assert result.table["run_id"].tolist() == [r.id for r in sweep]
    assert result.kinds == {"optimizer": effects.CATEGORY, "lr": effects.LOG}
    assert result.left_out == 0 and result.left_out_text == ""
    assert "eta squared" in result.method and "test accuracy" in result.method


def test_runs_without_the_metric_are_left_out_and_counted(store, sweep):
    failed = finished(store, BASE.replace(lr=10.0), None, status="failed")
    running = store.create(BASE.replace(lr=5.0), "still going", status="running", pid=1)
    broken = dataclasses.replace(sweep[0], id=999, test_accuracy=math.nan)
    runs = [*sweep, failed, running, broken]

    result = effects.parameter_effects(runs, "test_accuracy")

    assert result.left_out == 3
    assert result.left_out_text == "3 runs without a test accuracy are left out"
    assert len(result.table) == 16 and 999 not in set(result.table["run_id"])
    assert set(result.table["lr"]) == set(LRS)  # the left-out runs' settings are not counted
    one = effects.parameter_effects([*sweep, failed], "test_accuracy")
    assert one.left_out_text == "1 run without a test accuracy is left out"


def test_another_metric_and_an_unknown_one(sweep):
    result = effects.parameter_effects(sweep, "best_val_accuracy")
    assert result.label == "best validation accuracy"
    assert result.ranking["setting"].iloc[0] == "lr"
    with pytest.raises(ValueError, match="not one of"):
        effects.parameter_effects(sweep, "accuracy")


def test_fewer_than_two_runs(store):
    none = effects.parameter_effects([], "test_accuracy")
    one = effects.parameter_effects([finished(store, BASE, 0.9)], "test_accuracy")
    for result in (none, one):
        assert result.ranking.empty and result.settings == []
        assert result.sentence.startswith("At least two runs with a test accuracy")
        assert effects_figure(result.table, result.metric) is None
        assert ranking_figure(result.ranking) is None


def test_runs_differing_only_in_seed_have_no_setting(store):
    runs = [finished(store, BASE.replace(seed=s), 0.9 + s / 100) for s in range(4)]
    result = effects.parameter_effects(runs, "test_accuracy")
    assert result.ranking.empty and "seed" not in result.table.columns
    assert result.sentence == (
        "These 4 runs use the same settings (the seed aside): nothing to compare."
    )
    assert effects_figure(result.table, result.metric) is None


def test_layer_lists_with_one_run_each_cannot_be_separated(store):
    layers = ([32], [128, 64], [256, 128, 64])
    runs = [finished(store, BASE.replace(hidden=h), 0.9 + i / 100) for i, h in enumerate(layers)]
    result = effects.parameter_effects(runs, "test_accuracy")

    assert result.table["hidden"].tolist() == ["32", "128,64", "256,128,64"]
    row = result.ranking.iloc[0]
    assert row["setting"] == "hidden" and math.isnan(row["share"])
    assert row["note"] == effects.UNSEPARABLE and row["values"] == 3
    assert "no setting's effect can be separated" in result.sentence
    fig = ranking_figure(result.ranking)
    assert fig.data[0].text[0] == effects.UNSEPARABLE


def test_layer_lists_shared_by_several_runs_are_grouped(store):
    layers = ([32], [128, 64])
    runs = [
        finished(store, BASE.replace(hidden=h, seed=s), 0.9 + 0.05 * i + s / 1000)
        for (i, h), s in itertools.product(enumerate(layers), range(3))
    ]
    result = effects.parameter_effects(runs, "test_accuracy")
    expected = naive_eta_squared(
        [r.test_accuracy for r in runs], [tuple(r.config.hidden) for r in runs]
    )
    assert result.ranking.loc[0, "share"] == pytest.approx(expected)
    fig = effects_figure(result.table, result.metric, kinds=result.kinds)
    assert isinstance(fig.data[0], go.Box) and set(fig.data[0].x) == {"32", "128,64"}
    assert list(fig.layout.xaxis.categoryarray) == ["32", "128,64"]


def test_a_metric_that_never_changes_explains_nothing(store):
    runs = [finished(store, BASE.replace(optimizer=o), 0.95) for o in ("sgd", "adam", "sgd")]
    result = effects.parameter_effects(runs, "test_accuracy")
    assert math.isnan(result.ranking.loc[0, "share"])
    assert (
        result.sentence == "All 3 runs have the same test accuracy: no setting made a difference."
    )


def test_a_random_sweeps_learning_rates_are_binned(store):
    rng = np.random.default_rng(0)
    lrs = 10 ** rng.uniform(-4, 0, size=12)
    runs = [finished(store, BASE.replace(lr=float(lr)), 0.9 + 0.02 * math.log10(lr)) for lr in lrs]
    result = effects.parameter_effects(runs, "test_accuracy")
    row = result.ranking.iloc[0]
    assert row["setting"] == "lr" and row["groups"] == 4 and row["values"] == 12
    assert row["note"] == effects.BINNED.format(bins=4)
    # Bins of three by rank: the share is that of grouping the sorted values in threes.
    order = np.argsort(lrs)
    bins = np.empty(12, dtype=int)
    bins[order] = np.arange(12) // 3
    expected = naive_eta_squared([r.test_accuracy for r in runs], bins.tolist())
    assert row["share"] == pytest.approx(expected) and row["share"] > 0.8


def test_setting_kinds():
    assert effects.setting_kind("lr", [0.1, 0.01]) == effects.LOG
    # A weight decay of 0 has no place on a log axis: its values are drawn as choices.
    assert effects.setting_kind("weight_decay", [0.0, 1e-4]) == effects.CATEGORY
    assert effects.setting_kind("weight_decay", [1e-5, 1e-4]) == effects.LOG
    assert effects.setting_kind("batch_size", [32, 64, 128, 256, 512, 1024, 2048]) == "category"
    assert effects.setting_kind("dropout", [i / 10 for i in range(8)]) == effects.LINEAR
    assert effects.setting_kind("dropout", [0.0, 0.5]) == effects.CATEGORY
    assert effects.setting_kind("hidden", ["32", "128,64"]) == effects.CATEGORY


def test_effects_figure_has_a_log_axis_for_lr_and_boxes_for_choices(sweep):
    result = effects.parameter_effects(sweep, "test_accuracy")
    fig = effects_figure(result.table, result.metric, kinds=result.kinds)

    optimizer, lr = fig.data
    assert isinstance(lr, go.Scatter) and lr.mode == "markers"
    assert fig.layout[lr.xaxis.replace("x", "xaxis")].type == "log"
    assert list(lr.x) == [r.config.lr for r in sweep]
    assert isinstance(optimizer, go.Box) and optimizer.boxpoints == "all"
    assert fig.layout[optimizer.xaxis.replace("x", "xaxis")].type == "category"
    assert sorted(set(optimizer.x)) == ["adam", "sgd"]
    # Hovering a point names its run.
    assert lr.text[0] == f"#{sweep[0].id} {sweep[0].name}"
    assert "%{text}" in lr.hovertemplate and "%{text}" in optimizer.hovertemplate
    assert [a.text for a in fig.layout.annotations] == ["optimizer", "lr"]
    assert fig.layout.xaxis.tickfont.size >= 14 and fig.layout.yaxis.tickfont.size >= 14
    assert fig.layout.yaxis.tickformat == ".1%"
    # Without kinds it works them out from the table itself.
    again = effects_figure(result.table, result.metric)
    assert again.layout.xaxis2.type == "log" and isinstance(again.data[0], go.Box)


def test_ranking_figure_labels_the_shares_in_percent(sweep):
    result = effects.parameter_effects(sweep, "test_accuracy")
    fig = ranking_figure(result.ranking)
    bars = fig.data[0]
    assert bars.orientation == "h" and list(bars.y) == ["lr", "optimizer"]
    assert list(bars.x) == pytest.approx(result.ranking["share"].tolist())
    assert bars.text[0] == f"{result.ranking.loc[0, 'share']:.0%}"
    assert bars.text[1].endswith("%")
    assert fig.layout.yaxis.autorange == "reversed"  # the most important at the top
    assert fig.layout.xaxis.tickformat == ".0%" and fig.layout.xaxis.tickfont.size >= TICK_PX


def test_presentation_mode_enlarges_the_fixed_size_text_by_its_scale(store):
    runs = [
        finished(store, BASE.replace(optimizer=o), a) for o, a in (("sgd", 0.9), ("adam", 0.95))
    ]
    result = effects.parameter_effects(runs, "test_accuracy")
    for build in (
        lambda scale: effects_figure(result.table, result.metric, text_scale=scale),
        lambda scale: ranking_figure(result.ranking, text_scale=scale),
    ):
        plain, large = build(1.0), build(1.5)
        assert plain.layout.xaxis.tickfont.size == TICK_PX
        assert large.layout.xaxis.tickfont.size == round(1.5 * TICK_PX) >= 16
        assert large.layout.font.size == round(1.5 * TICK_PX)
