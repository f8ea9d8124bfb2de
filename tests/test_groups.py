"""Groups of runs that differ only in their seed, and the verdict between two groups."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy import stats

from core.config import TrainConfig
from core.groups import Group, differing, group_runs, settings_key, verdict
from core.runs import RunStore


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


def finished(store: RunStore, accuracies: list[float | None], **settings) -> list:
    """Runs with `settings`, one per accuracy, seeds 0, 1, 2, ...; None: a run that failed."""
    runs = []
    for seed, accuracy in enumerate(accuracies):
        run = store.create(TrainConfig(seed=seed, **settings), f"seed {seed}")
        if accuracy is None:
            store.finish(run.id, "failed", "boom")
        else:
            store.finish(run.id, "finished", "done", test_accuracy=accuracy)
        runs.append(store.get(run.id))
    return runs


def test_runs_that_differ_only_in_seed_share_a_group_sorted_by_mean(store):
    low = finished(store, [0.90, 0.92, None], lr=1.0)
    high = finished(store, [0.97, 0.95], lr=0.1)
    other = finished(store, [0.93], lr=0.1, optimizer="adam")
    assert settings_key(low[0].config) == settings_key(low[1].config)
    assert settings_key(low[0].config) != settings_key(high[0].config)
    groups = group_runs(low + high + other)
    assert [g.ids for g in groups] == [[r.id for r in high], [other[0].id], [r.id for r in low]]
    top = groups[0]
    assert top.n == 2 and top.mean == pytest.approx(0.96)
    assert top.std == pytest.approx(statistics.stdev([0.97, 0.95]))
    assert top.summary() == "96.00 % ± 1.41 (n = 2)"
    assert groups[2].n == 2  # the failed run is in the group but has no accuracy
    assert groups[1].std is None and groups[1].summary() == "93.00 % (n = 1)"


def test_a_clear_difference_is_named_with_its_size_and_p_value(store):
    a = Group(finished(store, [0.981, 0.983, 0.982, 0.984, 0.980], lr=0.1))
    b = Group(finished(store, [0.975, 0.978, 0.976, 0.977, 0.979], lr=1.0))
    v = verdict(a, b)
    naive = stats.ttest_ind(a.values, b.values, equal_var=False)
    assert v.clear and v.p_value == pytest.approx(naive.pvalue)
    assert v.difference == pytest.approx(
        100 * (statistics.fmean(a.values) - statistics.fmean(b.values))
    )
    # The margin is half the 95 % interval of Welch's test, by hand:
    va, vb = (statistics.variance(x) / len(x) for x in (a.values, b.values))
    df = (va + vb) ** 2 / (va**2 / 4 + vb**2 / 4)
    assert v.margin == pytest.approx(100 * stats.t.ppf(0.975, df) * math.sqrt(va + vb))
    assert v.sentence.startswith(f"lr 0.1 beats lr 1 by {v.difference:.2f} ± {v.margin:.2f} ")
    assert "points of test accuracy (5 seeds each; Welch's t-test, p" in v.sentence
    # The other way round names the same winner.
    assert verdict(b, a).sentence.startswith("lr 0.1 beats lr 1 by")


def test_overlapping_groups_get_no_clear_difference(store):
    a = Group(finished(store, [0.97, 0.98, 0.96], lr=0.1))
    b = Group(finished(store, [0.975, 0.965, 0.98], lr=0.2))
    v = verdict(a, b)
    assert not v.clear and v.p_value > 0.5
    assert v.sentence.startswith("No clear difference (p = 0.")
    assert v.sentence.endswith("run more seeds (3 seeds each so far).")


def test_single_runs_get_a_warning_not_a_verdict(store):
    a = Group(finished(store, [0.98], lr=0.1))
    b = Group(finished(store, [0.97, 0.971], lr=1.0))
    v = verdict(a, b)
    assert not v.clear and v.p_value is None and v.warning
    assert v.sentence == (
        "lr 0.1 scores 0.95 points of test accuracy above lr 1, but with a single run on one "
        "side no test can tell this from luck: run more seeds."
    )


def test_a_group_without_results_cannot_be_compared(store):
    a = Group(finished(store, [None], lr=0.1))
    b = Group(finished(store, [0.97], lr=1.0))
    v = verdict(a, b)
    assert v.sentence == "lr 0.1 has no test accuracy yet: nothing to compare."
    assert not v.clear and v.difference is None


def test_identical_results_within_groups_still_get_a_verdict(store):
    a = Group(finished(store, [0.98, 0.98], lr=0.1))
    b = Group(finished(store, [0.97, 0.97], lr=1.0))
    assert verdict(a, b).clear
    same = verdict(a, Group(finished(store, [0.98, 0.98], lr=0.5)))
    assert not same.clear and same.p_value == 1.0


def test_groups_are_named_by_what_sets_them_apart():
    configs = [TrainConfig(lr=0.1, seed=1), TrainConfig(lr=0.1, seed=2, optimizer="adam")]
    assert differing(configs) == ["optimizer"]
    assert differing([TrainConfig(seed=1), TrainConfig(seed=2)]) == []


def test_the_metric_can_be_validation_accuracy(store):
    runs = finished(store, [0.9, 0.91], lr=0.1)
    store.finish(runs[0].id, "finished", "done", best_val_accuracy=0.95)
    group = Group([store.get(r.id) for r in runs], metric="best_val_accuracy")
    assert group.values == [0.95]
    with pytest.raises(ValueError, match="metric must be one of"):
        Group(runs, metric="loss")
