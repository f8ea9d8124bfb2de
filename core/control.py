"""Steering a run while it trains: pause, resume, step, stop, and changing its knobs.

Anyone (the Train page, `python -m core control`) sends a command through the run store
with `send`, which checks it first; the trainer's `Controller` takes the run's commands
between two batches, at most POLL seconds apart, and records each as an event of the run:
when it took effect (batches trained, fractional epoch, time) and what changed.

    {"action": "pause"}                  hold after the current batch
    {"action": "resume"}                 go on
    {"action": "step", "batches": N}     train N more batches, then hold again
    {"action": "step", "epoch": true}    train to the end of this epoch, then hold
    {"action": "stop"}                   end the run after the current batch
    {"action": "set", "changes": {...}}  change knobs (core/knobs.py) from the next batch

A held run sleeps between looks at the store, so it uses no CPU; if its process dies
it is reaped like any other run. A command sent to a queued run waits for it to start.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from .config import TrainConfig
from .knobs import KNOBS, SHORT, KnobError, Knobs, check_changes, starting_values
from .model import Model
from .run import Run
from .runs import RunStore
from .train import BatchStats, Callback, EpochStats

ACTIONS = ("pause", "resume", "step", "stop", "set")
POLL = 0.2  # seconds between looks at the store while training (the latency of a command)
HOLD_POLL = 0.1  # while held: a look costs a query, and the class is waiting
MAX_STEP = 1_000_000  # batches one step may ask for


class ControlError(ValueError):
    """A command that cannot be sent; the message says why."""


def command(action: str, batches: int | None = None, epoch: bool = False, **changes: Any) -> dict:
    """A command for `send`, from its parts; ControlError if they do not make one."""
    if action not in ACTIONS:
        raise ControlError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if action == "step":
        if epoch and batches is not None:
            raise ControlError("step either some batches or to the end of the epoch, not both")
        if epoch:
            return {"action": "step", "epoch": True}
        n = 1 if batches is None else batches
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_STEP:
            raise ControlError(f"a step is 1 to {MAX_STEP:,} batches, got {batches!r}")
        return {"action": "step", "batches": n}
    if action == "set":
        if not changes:
            raise ControlError(f"set needs at least one knob, e.g. lr=0.01 ({', '.join(KNOBS)})")
        return {"action": "set", "changes": changes}
    if batches is not None or epoch or changes:
        raise ControlError(f"{action} takes no values")
    return {"action": action}


def send(store: RunStore, run_id: int, cmd: dict[str, Any]) -> Run:
    """Check `cmd` against the run and queue it for its trainer; returns the run.

    ControlError if there is no such run, it is no longer queued or running, or the command
    is not valid for it (a knob out of range, momentum for adam, ...).
    """
    try:
        run = store.get(run_id)
    except KeyError:
        raise ControlError(f"there is no run {run_id}") from None
    if not run.active:
        raise ControlError(
            f"run {run_id} has {run.status.replace('_', ' ')}: only a queued or running run "
            "can be steered"
        )
    if cmd.get("action") not in ACTIONS:
        raise ControlError(f"unknown action {cmd.get('action')!r}; one of {', '.join(ACTIONS)}")
    if cmd["action"] == "set":
        try:
            cmd = {"action": "set", "changes": check_changes(run.config, cmd["changes"])}
        except KnobError as exc:
            raise ControlError(str(exc)) from None
    if cmd["action"] == "stop":
        store.request_stop(run_id)  # also cancels a queued run, or closes one whose trainer died
    else:
        store.send(run_id, cmd)
    return run


def describe(event: dict[str, Any]) -> str:
    """An event in a few words, as charts label it: "lr 0.1 → 0.01", "paused", ..."""
    kind, detail = event["kind"], event.get("detail") or {}
    if kind == "set":
        return ", ".join(
            f"{SHORT.get(k, k)} {_number(a)} → {_number(b)}" if k != "pace" else _pace(a, b)
            for k, (a, b) in detail.items()
        )
    if kind == "step":
        if detail.get("epoch"):
            return "step to epoch end"
        n = detail.get("batches", 1)
        return f"step {n} batch{'es' if n != 1 else ''}"
    return {"pause": "paused", "resume": "resumed", "stop": "stop asked"}.get(kind, kind)


def _number(x: float) -> str:
    return f"{x:.4g}"


def _pace(a: float, b: float) -> str:
    def say(v: float) -> str:
        return "full speed" if v == 0 else f"{v:g}/s"

    return f"pace {say(a)} → {say(b)}"


def current_knobs(config: TrainConfig, events: list[dict[str, Any]]) -> dict[str, float]:
    """The knob values a run trains with after `events` (its config's, then each change)."""
    values = starting_values(config)
    for event in events:
        if event["kind"] == "set":
            for key, (_, after) in (event.get("detail") or {}).items():
                if key in values:
                    values[key] = after
    return values


class Controller(Callback):
    """Takes a run's commands between batches and carries them out; records the events.

    `on_hold(paused)` is called whenever the run starts or stops being held, so the
    caller can write its progress and live view at once.
    """

    def __init__(
        self,
        store: RunStore,
        run: Run,
        knobs: Knobs,
        on_hold: Callable[[bool], None] | None = None,
        poll: float = POLL,
    ) -> None:
        self.store, self.run, self.knobs, self.poll = store, run, knobs, poll
        self.on_hold = on_hold or (lambda paused: None)
        self.steps = 0  # batches trained so far
        self.epoch, self.batch, self.batches = 1, 0, 1
        self.paused = False
        self.budget: int | None = None  # batches left before holding again (after a step)
        self.stop = False
        self.last_poll = 0.0
        self.last_batch = 0.0  # when the previous batch ended, for the pace

    # The loop's side

    def on_train_begin(self, model: Model, config: TrainConfig, n_train: int) -> None:
        self.batches = math.ceil(n_train / config.batch_size)
        self._take()  # commands sent while it was queued
        self.last_batch = time.monotonic()
        self._hold()

    def on_batch_end(self, stats: BatchStats) -> None:
        self.steps += 1
        self.epoch, self.batch, self.batches = stats.epoch, stats.batch, stats.batches
        if self.budget is not None:
            self.budget -= 1
            if self.budget <= 0:
                self.budget, self.paused = None, True
        self._keep_pace()
        now = time.monotonic()
        if now - self.last_poll >= self.poll:
            self._take()
        self._hold()
        self.last_batch = time.monotonic()

    def on_epoch_end(self, stats: EpochStats, model: Model) -> None:
        self._take()  # an epoch's evaluation can take a while: look again before the next

    def should_stop(self) -> bool:
        """Whether the run was asked to stop (by `send` or the dashboard's Stop)."""
        return self.stop

    # Carrying out commands

    def _take(self) -> None:
        self.last_poll = time.monotonic()
        events = [self._do(cmd) for cmd in self.store.take_commands(self.run.id)]
        events = [e for e in events if e is not None]
        if self.store.stop_requested(self.run.id) and not self.stop:
            self.stop = True
            events.append(self._event("stop", {}))
        self.store.add_events(self.run.id, events)

    def _do(self, cmd: dict[str, Any]) -> dict[str, Any] | None:
        action = cmd.get("action")
        if action == "pause":
            if self.paused:
                return None
            self.paused, self.budget = True, None
            return self._event("pause", {})
        if action == "resume":
            if not self.paused and self.budget is None:
                return None
            self.paused, self.budget = False, None
            return self._event("resume", {})
        if action == "step":
            if cmd.get("epoch"):
                at_end = self.batch in (0, self.batches)
                self.budget = self.batches if at_end else self.batches - self.batch
                detail: dict[str, Any] = {"epoch": True, "batches": self.budget}
            else:
                self.budget = int(cmd.get("batches", 1))
                detail = {"batches": self.budget}
            self.paused = False
            return self._event("step", detail)
        if action == "set":
            try:  # checked when sent; checked again, since anyone can write the store
                changes = check_changes(self.run.config, cmd.get("changes") or {})
            except KnobError:
                return None
            done = self.knobs.request(changes)
            if not done:
                return None
            return self._event("set", {k: list(v) for k, v in done.items()})
        return None

    def _event(self, kind: str, detail: dict[str, Any]) -> dict[str, Any]:
        # Where the run is: `steps` batches trained, so many into epoch `epoch`.
        epoch = self.epoch - 1 + (self.batch / self.batches if self.batches else 0)
        return {
            "step": self.steps,
            "epoch": epoch,
            "time": time.time(),
            "kind": kind,
            "detail": detail,
        }

    def _hold(self) -> None:
        """While paused: sleep, looking at the store, until resumed, stepped or stopped."""
        if not self.paused or self.stop:
            return
        self.on_hold(True)
        while self.paused and not self.stop:
            time.sleep(HOLD_POLL)
            self._take()
        self.on_hold(False)

    def _keep_pace(self) -> None:
        """Wait out the rest of this batch's share of a second when a pace is set."""
        pace = self.knobs.values["pace"]
        if not pace:
            return
        due = self.last_batch + 1 / pace
        while not self.stop and not self.paused and (now := time.monotonic()) < due:
            time.sleep(min(due - now, HOLD_POLL))
            self._take()
            pace = self.knobs.pending.get("pace", self.knobs.values["pace"])
            due = self.last_batch + (1 / pace if pace else 0)
