"""Compare's "Seeds and verdict" and "What matters" tabs: groups of seeds, the verdict
between two groups, their mean curves with bands, and the settings' effects."""

from __future__ import annotations

import statistics

import pytest

from core.groups import Group, group_runs, verdict
from dashboard import compare, compare_figures
from tests.test_compare import BASE, choose, open_page, run_again, seed_run, store  # noqa: F401

GOOD = BASE.replace(lr=0.1)
BAD = BASE.replace(lr=1.0)


@pytest.fixture
def seeds(store):  # noqa: F811
    """Four seeds of lr 0.1 and three of lr 1, with clearly different test accuracies."""
    good = [
        seed_run(store, f"good {s}", GOOD.replace(seed=s), (0.8, 0.9, 0.95 + s / 1000),
                 test=0.95 + s / 1000)
        for s in range(4)
    ]  # fmt: skip
    bad = [
        seed_run(store, f"bad {s}", BAD.replace(seed=s), (0.7, 0.8, 0.9 + s / 1000),
                 test=0.90 + s / 1000)
        for s in range(3)
    ]  # fmt: skip
    return good, bad


def test_the_groups_table_lists_groups_best_mean_first(seeds):
    good, bad = seeds
    groups = group_runs(good + bad)
    table = compare.groups_table(groups, ["lr 0.1", "lr 1"])
    assert table["group"].tolist() == ["lr 0.1", "lr 1"]
    assert table["runs with a result"].tolist() == [4, 3]
    assert table["mean"].tolist() == pytest.approx([0.9515, 0.901])
    assert table["± sd"][0] == pytest.approx(statistics.stdev([0.95, 0.951, 0.952, 0.953]))
    assert table["runs"][1] == ", ".join(f"#{r.id}" for r in bad)


def test_group_curves_are_the_mean_with_a_min_max_band():
    epochs = [
        [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.7}],
        [{"epoch": 1, "val_accuracy": 0.7}, {"epoch": 2, "val_accuracy": 0.8}],
    ]
    fig = compare_figures.group_curves_figure([("lr 0.1", epochs)], ["#0072B2"])
    band, mean = fig.data
    assert list(mean.x) == [1, 2] and list(mean.y) == pytest.approx([0.6, 0.75])
    assert list(band.x) == [1, 2, 2, 1] and list(band.y) == pytest.approx([0.7, 0.8, 0.7, 0.5])
    assert band.fill == "toself" and band.fillcolor == "rgba(0,114,178,0.2)"
    assert mean.name == "lr 0.1: mean of 2 runs" and band.name == "lr 0.1: lowest to highest run"


def test_the_seeds_tab_gives_the_verdict_and_draws_both_groups(monkeypatch, store, seeds):  # noqa: F811
    good, bad = seeds
    at = open_page(monkeypatch, store.root)
    choose(at, compare_view="Seeds and verdict")
    run_again(at)
    table = next(d.value for d in at.dataframe if "group" in d.value.columns)
    assert table["group"].tolist() == ["lr 0.1", "lr 1"]
    expected = verdict(Group(good), Group(bad), ("lr 0.1", "lr 1")).sentence
    assert expected.startswith("lr 0.1 beats lr 1 by 5.05 ± ")
    assert [s.value for s in at.success] == [expected]
    chart = next(c for c in at.get("plotly_chart") if "mean of" in c.proto.spec)
    assert (
        "lr 0.1: mean of 4 runs" in chart.proto.spec and "lr 1: mean of 3 runs" in chart.proto.spec
    )
    # Swapping the sides names the same winner.
    at.selectbox(key="compare_group_0").set_value(bad[0].id)
    at.selectbox(key="compare_group_1").set_value(good[0].id)
    run_again(at)
    assert at.success[0].value.startswith("lr 0.1 beats lr 1 by 5.05 ± ")
    # On validation accuracy instead.
    at.segmented_control(key="compare_group_metric").set_value("best_val_accuracy")
    run_again(at)
    assert "points of validation accuracy" in at.success[0].value


def test_the_seeds_tab_with_one_group_says_there_is_nothing_to_compare(monkeypatch, store):  # noqa: F811
    for s in range(2):
        seed_run(store, f"only {s}", GOOD.replace(seed=s), test=0.9)
    at = open_page(monkeypatch, store.root)
    choose(at, compare_view="Seeds and verdict")
    run_again(at)
    assert "nothing to compare" in at.info[0].value


def test_the_what_matters_tab_ranks_the_settings(monkeypatch, store, seeds):  # noqa: F811
    seed_run(store, "failed", BASE.replace(lr=0.5), status="failed")
    at = open_page(monkeypatch, store.root)
    choose(at, compare_view="What matters")
    run_again(at)
    text = " ".join(m.value for m in at.markdown)
    assert "lr matters most" in text
    assert any("1 run without a test accuracy is left out" in c.value for c in at.caption)
    assert any("eta" in c.value.lower() or "share" in c.value.lower() for c in at.caption)
    assert len(at.get("plotly_chart")) == 2


def test_a_log_axis_with_few_values_labels_each(seeds):
    from core.effects import parameter_effects
    from dashboard.effects_figures import effects_figure

    good, bad = seeds
    fx = parameter_effects(good + bad)
    fig = effects_figure(fx.table, fx.metric, kinds=fx.kinds)
    assert fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis.tickvals) == [0.1, 1.0]
    assert list(fig.layout.xaxis.ticktext) == ["0.1", "1"]


def test_group_curves_text_grows_with_presentation_mode_s_scale():
    epochs = [[{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.7}]]
    plain = compare_figures.group_curves_figure([("a", epochs)], ["#0072B2"])
    large = compare_figures.group_curves_figure([("a", epochs)], ["#0072B2"], text_scale=1.5)
    assert plain.layout.font.size == 15 and large.layout.font.size == 22
