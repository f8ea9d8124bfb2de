"""Steering a run while it trains (core/control.py, core/knobs.py, core/lineage.py, core/live.py):
pause, resume, step, knob changes and their events, Train more, the live view."""

import os
import re
import threading
import time

import numpy as np
import pytest

from core import control
from core.config import TrainConfig
from core.data import load_dataset
from core.knobs import KnobError, Knobs, check_changes, parse_assignments
from core.lineage import LineageError, continue_from, lineage
from core.live import LiveView, fixed_digits, read
from core.model_load import load_model
from core.recorder import train_run
from core.runs import RunStore

CFG = TrainConfig(train_size=1000, epochs=2, batch_size=50, schedule="constant", val_size=500)
BATCHES = 20  # per epoch: 1000 / 50


@pytest.fixture(scope="module")
def mnist():
    return load_dataset()


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def start(store, mnist, cfg=CFG, before=()):
    """A run created running, its commands `before` sent, trained in a thread."""
    run = store.create(cfg, "steered", status="running", pid=os.getpid())
    for cmd in before:
        control.send(store, run.id, cmd)
    out = {}
    thread = threading.Thread(target=lambda: out.update(result=train_run(store, run, mnist)))
    thread.start()
    return run, thread, out


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def held(store, run_id):
    return store.get(run_id).paused


def test_pause_and_resume_give_the_same_weights_as_an_uninterrupted_run(store, mnist):
    plain = train_run(store, store.create(CFG, "plain", status="running", pid=os.getpid()), mnist)
    run, thread, out = start(store, mnist, before=[control.command("pause")])
    wait_for(lambda: held(store, run.id))
    time.sleep(0.5)
    assert store.get(run.id).progress["step"] == 0  # held before its first batch
    control.send(store, run.id, control.command("step", batches=7))
    wait_for(lambda: held(store, run.id) and store.get(run.id).progress["step"] == 7)
    control.send(store, run.id, control.command("resume"))
    thread.join(60)
    steered = out["result"]
    assert steered.status == "finished"
    for key, value in plain.model.get_weights().items():
        np.testing.assert_array_equal(steered.model.get_weights()[key], value, err_msg=key)
    kinds = [e["kind"] for e in store.events(run.id)]
    assert kinds == ["pause", "step", "resume"]


def test_a_step_advances_exactly_that_many_batches_then_holds(store, mnist):
    run, thread, _ = start(store, mnist, before=[control.command("pause")])
    wait_for(lambda: held(store, run.id))
    for n, total in ((3, 3), (1, 4), (5, 9)):
        control.send(store, run.id, control.command("step", batches=n))
        wait_for(
            lambda total=total: store.get(run.id).progress["step"] == total and held(store, run.id)
        )
        time.sleep(0.4)  # held: the counter stays where the step ended
        assert store.get(run.id).progress["step"] == total
    control.send(store, run.id, control.command("step", epoch=True))  # to the end of epoch 1
    wait_for(lambda: store.get(run.id).progress["step"] == BATCHES and held(store, run.id))
    assert store.get(run.id).progress["batch"] == BATCHES
    control.send(store, run.id, control.command("stop"))
    thread.join(60)
    assert store.get(run.id).status == "stopped"


def test_a_learning_rate_change_shows_in_the_batches_after_the_event_and_not_before(store, mnist):
    run, thread, _ = start(store, mnist, before=[control.command("pause")])
    wait_for(lambda: held(store, run.id))
    control.send(store, run.id, control.command("step", batches=5))
    wait_for(lambda: store.get(run.id).progress["step"] == 5 and held(store, run.id))
    control.send(store, run.id, control.command("set", lr=0.05))
    control.send(store, run.id, control.command("resume"))
    thread.join(60)
    (event,) = [e for e in store.events(run.id) if e["kind"] == "set"]
    assert event["step"] == 5 and event["detail"] == {"lr": [CFG.lr, 0.05]}
    assert control.describe(event) == "lr 1 → 0.05"
    lrs = {step: lr for step, _, lr in store.batch_lrs(run.id)}
    assert len(lrs) == 2 * BATCHES  # a short run keeps every batch
    assert all(lrs[s] == CFG.lr for s in range(1, 6))
    assert all(lrs[s] == pytest.approx(0.05) for s in range(6, 2 * BATCHES + 1))
    assert store.epochs(run.id)[-1]["lr"] == pytest.approx(0.05)


def test_momentum_weight_decay_and_dropout_reach_the_optimizer_and_layers(store, mnist):
    cfg = CFG.replace(dropout=0.2, epochs=1)
    run, thread, out = start(
        store,
        mnist,
        cfg,
        before=[control.command("set", momentum=0.5, weight_decay=0.001, dropout=0.4, pace=0)],
    )
    thread.join(60)
    result = out["result"]
    dropouts = [layer.rate for layer in result.model.layers if layer.kind == "dropout"]
    assert dropouts and all(rate == 0.4 for rate in dropouts)
    (event,) = store.events(run.id)
    assert event["step"] == 0
    assert event["detail"] == {
        "momentum": [0.9, 0.5],
        "weight_decay": [cfg.weight_decay, 0.001],
        "dropout": [0.2, 0.4],
    }  # pace 0 was already 0: no change recorded
    assert control.current_knobs(cfg, store.events(run.id))["momentum"] == 0.5


def test_knobs_apply_between_batches_not_during_one():
    from core.model import Model
    from core.optimizers import make_optimizer

    knobs = Knobs(CFG.replace(dropout=0.1))
    model = Model(
        {
            "input_shape": [28, 28, 1],
            "layers": [
                {"type": "flatten"},
                {"type": "dropout", "rate": 0.1},
                {"type": "dense", "units": 10},
            ],
        }
    )
    optimizer = make_optimizer("sgd", 0.9, False, 0.0)
    knobs.bind(model, optimizer)
    assert knobs.request({"momentum": 0.3, "lr": 0.5}) == {"momentum": (0.9, 0.3), "lr": (1.0, 0.5)}
    assert optimizer.momentum == 0.9 and knobs.lr == 1.0  # not yet: the batch is still out
    knobs.apply()
    assert optimizer.momentum == 0.3 and knobs.lr == 0.5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr": -1}, "learning rate must be above 0"),
        ({"lr": 0}, "learning rate must be above 0"),
        ({"lr": "abc"}, "lr must be a number"),
        ({"lr": "nan"}, "lr must be a finite number"),
        ({"lr": True}, "lr must be a number"),
        ({"momentum": 1.0}, "momentum: must be in [0, 1)"),
        ({"momentum": -0.1}, "momentum: must be in [0, 1)"),
        ({"weight_decay": 2}, "weight decay must be in [0, 1]"),
        ({"dropout": 0.3}, "built without dropout layers"),
        ({"pace": -1}, "pace must be from 0"),
        ({"pace": 5000}, "pace must be from 0"),
        ({"batch_size": 10}, "'batch_size' cannot be changed while a run trains"),
    ],
)
def test_each_invalid_knob_value_is_refused_with_a_reason(changes, message):
    with pytest.raises(KnobError, match=re.escape(message)):
        check_changes(CFG, changes)


def test_momentum_is_refused_for_an_adam_run_and_dropout_accepted_where_there_is_some():
    with pytest.raises(KnobError, match="momentum is a setting of sgd"):
        check_changes(CFG.replace(optimizer="adam", lr=0.001), {"momentum": 0.5})
    assert check_changes(CFG.replace(dropout=0.2), {"dropout": "0"}) == {"dropout": 0.0}


def test_assignments_parse_and_bad_ones_are_named():
    assert parse_assignments(["lr=0.01", " momentum = 0.5"]) == {"lr": "0.01", "momentum": "0.5"}
    for bad in ("lr", "lr=", "=0.1"):
        with pytest.raises(KnobError, match="key=value"):
            parse_assignments([bad])


def test_commands_are_checked_before_they_are_sent(store):
    run = store.create(CFG, "queued")
    with pytest.raises(control.ControlError, match="there is no run 999"):
        control.send(store, 999, control.command("pause"))
    with pytest.raises(control.ControlError, match="learning rate must be above 0"):
        control.send(store, run.id, control.command("set", lr=-1))
    with pytest.raises(control.ControlError, match="a step is 1 to"):
        control.command("step", batches=0)
    with pytest.raises(control.ControlError, match="unknown action"):
        control.command("jump")
    with pytest.raises(control.ControlError, match="set needs at least one knob"):
        control.command("set")
    assert store.take_commands(run.id) == []  # nothing invalid was queued
    control.send(store, run.id, control.command("pause"))
    assert store.take_commands(run.id) == [{"action": "pause"}]
    control.send(store, run.id, control.command("stop"))  # a queued run is cancelled
    assert store.get(run.id).status == "stopped"
    with pytest.raises(control.ControlError, match="only a queued or running run"):
        control.send(store, run.id, control.command("resume"))


def test_a_held_run_uses_no_cpu(store, mnist):
    run, thread, _ = start(store, mnist, before=[control.command("pause")])
    wait_for(lambda: held(store, run.id))
    before = time.process_time()
    time.sleep(1.0)
    used = time.process_time() - before
    control.send(store, run.id, control.command("stop"))
    thread.join(60)
    assert used < 0.1  # a held trainer sleeps between looks at the store


def test_train_more_starts_from_the_parents_best_weights_and_numbers_epochs_on(store, mnist):
    parent = store.create(CFG, "parent", status="running", pid=os.getpid())
    first = train_run(store, parent, mnist)
    parent = store.get(parent.id)
    child = continue_from(
        store, parent.id, CFG.replace(epochs=1, lr=0.5), status="running", pid=os.getpid()
    )
    assert child.parent == parent.id and child.epoch_offset == parent.best_epoch
    assert [r.id for r in lineage(store, child)] == [parent.id, child.id]
    train_run(store, child, mnist)
    start_weights, _ = load_model(store.get(child.id).snapshot(0))
    for key, value in first.model.get_weights().items():
        np.testing.assert_array_equal(start_weights.get_weights()[key], value, err_msg=key)
    # The first batch's loss is where the parent left off, not a fresh network's ~2.3.
    first_loss = store.batch_losses(child.id)[0][2]
    assert first_loss < 1.0
    assert abs(first_loss - store.epochs(parent.id)[-1]["train_loss"]) < 0.5
    with pytest.raises(LineageError, match="keeps the network's shape"):
        continue_from(store, parent.id, CFG.replace(hidden=[32]))
    with pytest.raises(LineageError, match="there is no run 999"):
        continue_from(store, 999, CFG)


def test_the_live_view_shows_the_first_layer_and_ten_digits_without_changing_training(store, mnist):
    plain = train_run(store, store.create(CFG, "plain", status="running", pid=os.getpid()), mnist)
    run, thread, out = start(store, mnist)
    thread.join(60)
    for key, value in plain.model.get_weights().items():  # the view reads, never changes
        np.testing.assert_array_equal(out["result"].model.get_weights()[key], value)
    view = read(store.get(run.id).live_view)
    assert str(view["kind"]) == "dense" and view["weights"].shape == (64, 28, 28)
    np.testing.assert_array_equal(view["labels"], np.arange(10))
    assert view["probs"].shape == (10, 10)
    np.testing.assert_allclose(view["probs"].sum(axis=1), 1, rtol=1e-5)
    digits, _ = fixed_digits(mnist)
    np.testing.assert_array_equal(view["digits"], digits)
    assert view["where"][0] == 2 * BATCHES


def test_a_cnn_live_view_holds_its_filters_and_their_maps(tmp_path, mnist):
    from core.architecture import spec_from_config
    from core.model import Model

    cfg = TrainConfig(arch="cnn", conv=[4], hidden=[16])
    view_path = tmp_path / "live.npz"
    live = LiveView(view_path, mnist)
    live.on_train_begin(Model(spec_from_config(cfg)), cfg, 100)
    view = read(view_path)
    assert str(view["kind"]) == "conv2d" and view["weights"].shape == (4, 3, 3)
    assert view["maps"].shape == (4, 28, 28)  # 'same' padding: full size, before pooling
    assert np.ptp(view["maps"]) > 0


def test_early_snapshots_are_the_weights_after_that_many_batches(store, mnist):
    run = store.create(CFG.replace(epochs=1), "early", status="running", pid=os.getpid())
    train_run(store, run, mnist)
    run = store.get(run.id)
    assert run.batch_snapshots() == [1, 2, 4, 8, 16]  # 20 batches in the epoch
    untrained, _ = load_model(run.snapshot(0))
    after_one, meta = load_model(run.batch_snapshot(1))
    assert meta["batches"] == 1
    changed = [
        k
        for k, v in untrained.get_weights().items()
        if not np.array_equal(v, after_one.get_weights()[k])
    ]
    assert changed  # one update apart
