"""Train more: a run continued from another run's best checkpoint.

`continue_from` queues (or starts) a new run that names its parent and numbers its
epochs on from the parent's best epoch, so their curves join; `start_of` gives the
trainer the parent's weights and, when it was saved for the same optimizer, the
optimizer's state (momentum, Adam's moments), so training picks up where it left off.
"""

from __future__ import annotations

import numpy as np

from .architecture import spec_from_config
from .config import TrainConfig
from .model import ModelFileError, plan_arrays, spec_plan
from .model_load import load_model
from .run import Run
from .runs import RunStore, StoreError
from .train import Start


class LineageError(ValueError):
    """A run cannot be continued as asked; the message says why."""


def parent_of(store: RunStore, parent_id: int) -> Run:
    """The run to continue from; LineageError unless it has ended with a checkpoint."""
    try:
        parent = store.get(parent_id)
    except KeyError:
        raise LineageError(f"there is no run {parent_id}") from None
    if parent.active:
        raise LineageError(
            f"run {parent_id} is still {parent.status}: continue it once it has ended "
            "(stop it first to continue it now)"
        )
    if not parent.checkpoint.is_file():
        raise LineageError(
            f"run {parent_id} saved no checkpoint (it {parent.status.replace('_', ' ')} before "
            "its first epoch ended), so there are no weights to continue from"
        )
    return parent


def check_same_network(parent: Run, config: TrainConfig, n_classes: int = 10) -> None:
    """LineageError unless `config` builds a network with the parent's weight shapes."""
    mine = plan_arrays(spec_plan(spec_from_config(config, n_classes)))
    theirs = plan_arrays(spec_plan(spec_from_config(parent.config, n_classes)))
    if mine != theirs:
        changed = [
            name
            for name in ("arch", "hidden", "conv", "kernel_size", "padding", "batchnorm")
            if getattr(config, name, None) != getattr(parent.config, name, None)
        ]
        what = ", ".join(changed) if changed else "the layers"
        raise LineageError(
            f"training more keeps the network's shape, but {what} differs from run "
            f"{parent.id}'s; change only training settings (epochs, learning rate, ...)"
        )


def continue_from(
    store: RunStore,
    parent_id: int,
    config: TrainConfig,
    name: str = "",
    status: str = "queued",
    pid: int | None = None,
) -> Run:
    """A new run training `config` on from run `parent_id`'s best checkpoint; LineageError
    if that run cannot be continued with this config."""
    parent = parent_of(store, parent_id)
    check_same_network(parent, config)
    offset = parent.epoch_offset + (parent.best_epoch or 0)
    return store.create(
        config,
        name or f"{parent.name} more",
        status=status,
        pid=pid,
        tags=list(parent.tags),
        parent=parent.id,
        epoch_offset=offset,
    )


def start_of(store: RunStore, run: Run) -> Start | None:
    """Where a run's training starts: its parent's weights (None for a fresh run)."""
    if run.parent is None:
        return None
    try:
        parent = store.get(run.parent)
    except KeyError:
        raise StoreError(
            f"run {run.id} continues run {run.parent}, which has been deleted since"
        ) from None
    try:
        model, _ = load_model(parent.checkpoint)
    except ModelFileError as exc:
        raise StoreError(f"run {parent.id}'s checkpoint cannot be read: {exc}") from exc
    state = None
    if parent.optimizer_state.is_file() and parent.config.optimizer == run.config.optimizer:
        try:
            with np.load(parent.optimizer_state, allow_pickle=False) as data:
                state = {key: data[key] for key in data.files}
        except (OSError, ValueError):
            state = None  # the weights alone still continue the run
    return Start(model.get_weights(), state)


def lineage(store: RunStore, run: Run) -> list[Run]:
    """The run's ancestors, oldest first, then the run itself (deleted ancestors end it)."""
    chain, seen = [run], {run.id}
    while chain[0].parent is not None and chain[0].parent not in seen:
        try:
            chain.insert(0, store.get(chain[0].parent))
        except (KeyError, StoreError):
            break
        seen.add(chain[0].id)
    return chain
