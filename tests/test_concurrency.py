"""Several dashboard sessions at once, with a real background trainer: nothing gets mixed up."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.runs import RunStore

REPO = Path(__file__).resolve().parent.parent


def train_page() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/train.py").run()
    assert not at.exception
    return at


def test_two_sessions_start_runs_while_a_third_reads_compare(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    alice, bob = train_page(), train_page()
    for session, lr in ((alice, 0.5), (bob, 0.05)):
        session.select_slider(key="cfg_train_size").set_value(1000).run()
        session.number_input(key="cfg_epochs").set_value(3).run()
        session.select_slider(key="cfg_lr").set_value(lr).run()
    # Both press Start within a moment of each other.
    next(b for b in alice.button if b.label == "Start").click()
    next(b for b in bob.button if b.label == "Start").click()
    alice.run()
    bob.run()
    assert not alice.exception and not bob.exception
    store = RunStore(tmp_path / "runs")
    runs = {r.config.lr: r for r in store.list()}
    assert set(runs) == {0.5, 0.05}

    reader = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    reader.run()
    reader.switch_page("views/compare.py").run()
    deadline = time.monotonic() + 180
    reads = 0
    while any(store.get(r.id).active for r in runs.values()):
        assert time.monotonic() < deadline, "the queued runs did not finish"
        reader.run()
        reads += 1
        assert not reader.exception
        for run in store.list():  # every run the reader sees is whole: status and epochs agree
            epochs = store.epochs(run.id)
            if run.status == "finished":
                assert len(epochs) == 3 and run.test_accuracy is not None
        time.sleep(0.3)
    assert reads >= 1
    for lr, run in runs.items():
        run = store.get(run.id)
        assert run.status == "finished" and run.config.lr == lr
        assert [e["epoch"] for e in store.epochs(run.id)] == [1, 2, 3]
        assert run.checkpoint.exists()
    slow, fast = store.get(runs[0.05].id), store.get(runs[0.5].id)
    assert store.epochs(slow.id) != store.epochs(fast.id)  # each run has its own metrics
    # One trainer at a time: the runs did not overlap, so neither slowed the other down.
    first, second = sorted((slow, fast), key=lambda r: r.started)
    assert second.started >= first.ended - 0.5
