"""Several dashboard sessions at once, with a real background trainer: nothing gets mixed up."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.runs import RunStore
from dashboard import compare

REPO = Path(__file__).resolve().parent.parent


def train_page() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/train.py").run()
    assert not at.exception
    return at


def shown_to(reader: AppTest) -> tuple[pd.DataFrame, dict]:
    """What the Compare page shows: its table of runs, and the curves of the selected ones."""
    table = next(d.value for d in reader.dataframe if "id" in d.value.columns)
    (curves,) = [json.loads(c.proto.spec) for c in reader.get("plotly_chart")]
    return table, curves


def test_two_sessions_start_runs_while_a_third_reads_compare(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MNIST_TRAINER_SLOTS", "2")
    alice, bob = train_page(), train_page()
    for session, lr in ((alice, 0.5), (bob, 0.05)):
        # 10,000 images: each run trains for seconds, longer than the second session takes
        # to press Start and its worker to start, so the two truly train side by side (on
        # 1,000 images the first could end, in 0.3 s, before the second began).
        session.select_slider(key="cfg_train_size").set_value(10000).run()
        session.number_input(key="cfg_epochs").set_value(3).run()
        session.select_slider(key="cfg_lr").set_value(lr).run()
    # Both press Start within a moment of each other.
    next(b for b in alice.button if b.label == "Start").click()
    next(b for b in bob.button if b.label == "Start").click()
    alice.run()
    bob.run()
    assert not alice.exception and not bob.exception
    store = RunStore(tmp_path / "runs")
    runs = {r.config.lr: r for r in store.runs()}
    assert set(runs) == {0.5, 0.05}

    # A third session watches both runs on Compare (its table, and their curves overlaid)
    # while they train, and notes everything it was shown.
    ids = sorted(r.id for r in runs.values())
    reader = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    reader.query_params["runs"] = ",".join(map(str, ids))
    reader.run()
    reader.switch_page("views/compare.py").run()
    deadline = time.monotonic() + 180
    seen = []
    while any(store.get(r.id).active for r in runs.values()):
        assert time.monotonic() < deadline, "the queued runs did not finish"
        reader.run()
        assert not reader.exception
        seen.append(shown_to(reader))
        for run in store.runs():  # every run the reader sees is whole: status and epochs agree
            epochs = store.epochs(run.id)
            if run.status == "finished":
                assert len(epochs) == 3 and run.test_accuracy is not None
        time.sleep(0.3)
    seen.append(shown_to(reader.run()))
    assert len(seen) >= 2
    for lr, run in runs.items():
        run = store.get(run.id)
        assert run.status == "finished" and run.config.lr == lr
        assert [e["epoch"] for e in store.epochs(run.id)] == [1, 2, 3]
        assert run.checkpoint.exists()
    final = {run_id: store.epochs(run_id) for run_id in ids}
    order = {"queued": 0, "running": 1, "finished": 2}
    statuses: dict[int, list[str]] = {run_id: [] for run_id in ids}
    for table, curves in seen:
        # The right runs, each with its own settings; its accuracy so far is that of
        # whole epochs of its own, and its curves are whole epochs of its own, in order.
        assert sorted(table["id"]) == ids
        for row in table.to_dict("records"):
            run_id = row["id"]
            assert row["lr"] == store.get(run_id).config.lr
            statuses[run_id].append(row["status"])
            so_far = row[compare.ACCURACY]
            best = [max(e["val_accuracy"] for e in final[run_id][:k]) for k in (1, 2, 3)]
            assert math.isnan(so_far) or so_far in best
        for run_id in ids:
            mine = [t for t in curves["data"] if t["legendgroup"] == str(run_id)]
            assert len(mine) == 3  # validation accuracy, validation loss, training loss
            for trace, metric in zip(mine, ("val_accuracy", "val_loss", "train_loss"), strict=True):
                epochs = final[run_id][: len(trace["x"])]
                assert trace["x"] == [e["epoch"] for e in epochs]
                assert trace["y"] == pytest.approx([e[metric] for e in epochs])
    for shown in statuses.values():
        assert shown[-1] == "finished"
        assert [order[s] for s in shown] == sorted(order[s] for s in shown)  # never backwards
    slow, fast = store.get(runs[0.05].id), store.get(runs[0.5].id)
    assert store.epochs(slow.id) != store.epochs(fast.id)  # each run has its own metrics
    # Two trainer slots (the machine's cores, or the test's setting): the runs trained side by
    # side, each in its own process.
    first, second = sorted((slow, fast), key=lambda r: r.started)
    assert second.started < first.ended
