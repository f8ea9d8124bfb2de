"""dashboard/warmup.py: the background warm-up fills the caches the pages read, once."""

from __future__ import annotations

import threading

import pytest

from core.data import DataError
from dashboard import computed, state, warmup


def test_warm_up_scores_the_shipped_models_into_the_pages_cache(monkeypatch):
    warmup.warm()

    def no_second_time(*args, **kwargs):
        raise AssertionError("the warm-up should have cached this")

    # The page's call finds the result the warm-up computed: it does not run the model again.
    monkeypatch.setattr(computed, "evaluate", no_second_time)
    monkeypatch.setattr(computed.analysis, "dead_units", no_second_time)
    monkeypatch.setattr(computed.analysis, "robustness_curve", no_second_time)
    for path in (state.DEFAULT_MODEL, state.SHIPPED_MLP):
        result = computed.evaluation(state.file_key(path), "")
        assert result.accuracy > 0.98
        dead = computed.dead_units(state.file_key(path), "")
        assert dead and all(d.units > 0 for d in dead)  # one entry per ReLU layer
        curve = computed.robustness(state.file_key(path), "", computed.FIRST_DAMAGE)
        assert curve.kind == "rotate" and curve.accuracy[0] > 0.98 > curve.accuracy[-1]


def test_warm_up_starts_once_and_can_be_turned_off(monkeypatch):
    calls = []
    monkeypatch.setattr(warmup, "_thread", None)
    monkeypatch.setattr(warmup, "DELAY", 0.0)
    monkeypatch.setattr(warmup, "warm", lambda: calls.append(threading.current_thread().name))
    monkeypatch.setenv(warmup.ENV, "0")
    assert warmup.start() is None
    monkeypatch.setenv(warmup.ENV, "1")
    first = warmup.start()
    assert warmup.start() is first
    first.join(5)
    assert calls == [warmup.THREAD]


def test_a_failing_warm_up_is_logged_not_raised(monkeypatch, caplog):
    def broken():
        raise DataError("no data here")

    monkeypatch.setattr(warmup, "warm", broken)
    monkeypatch.setattr(warmup, "DELAY", 0.0)
    with caplog.at_level("ERROR", logger=warmup.log.name):
        warmup._run()
    assert "warm-up stopped" in caplog.text


@pytest.fixture(autouse=True)
def _clear_evaluations():
    computed.evaluation.clear()
    computed.dead_units.clear()
    yield
    computed.evaluation.clear()
    computed.dead_units.clear()
