"""Hints on the Train and Compare pages: each in a box, with a "Try this" link that opens
the Train page with its form filled with the fix (the settings travel in the URL, the way
every link to the Train page does; dashboard/settings.py reads them).

The rules are core/hints.py. Those that look inside the network run its checkpoint on a
few hundred training images, once per checkpoint file (cached by path and modification
time), so the Train page's live panel, which reruns every second, pays for it only when a
new best epoch is saved.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from core.config import TrainConfig
from core.data import DataError
from core.hints import Hint, Internals, hints, measure_internals, sample_size
from core.model import ModelFileError
from core.runs import Run, RunStore
from dashboard import settings
from dashboard.state import FileKey, file_key, load_data, working_copy

ICON = ":material/lightbulb:"
FIX_ICON = ":material/build:"
HELP = "Opens the Train page with this run's settings and this change; press Start to train it."
TRAIN_PAGE = "views/train.py"
CHECKED = 32  # checkpoints whose insides are kept measured: every cache is bounded
INSIDE_RUNS = 8  # Compare looks inside at most this many of the selected runs


@st.cache_data(show_spinner=False, max_entries=CHECKED)
def _internals(model: FileKey, data_dir: str) -> Internals | None:
    """Dead and saturated units of a checkpoint on the first training images of its data;
    None when the file or the data cannot be read (tried again when the file changes)."""
    try:
        network = working_copy(*model)
        images = load_data(data_dir).train_images
    except (ModelFileError, OSError, DataError, ValueError):
        return None
    return measure_internals(network, images[: sample_size(network)])


def internals(run: Run) -> Internals | None:
    """What the run's latest checkpoint does inside; None before its first epoch."""
    try:
        key = file_key(run.checkpoint)
    except OSError:  # no checkpoint yet, or deleted meanwhile
        return None
    return _internals(key, run.config.data_dir)


def link(config: TrainConfig, hint: Hint) -> dict[str, str]:
    """The query parameters that fill the Train form with `config` fixed by `hint`.

    The fix's own settings are always in them, even at their default value: a link with no
    settings at all would leave the form as the session last had it.
    """
    fixed = hint.fixed(config)
    changed = {name: settings.query_text(getattr(fixed, name)) for name in hint.fix}
    return settings.to_query(fixed) | changed


def show(run: Run, found: Sequence[Hint], who: str = "") -> None:
    """Each hint in a box, `who` (e.g. the run's label) before it, with its Try-this link
    (a link even on the Train page itself: it opens the page again with the new settings)."""
    for hint in found:
        st.info(f"**{who}** {hint.sentence}" if who else hint.sentence, icon=ICON)
        if hint.fix:
            st.page_link(
                TRAIN_PAGE,
                label=f"Try this: {hint.label}",
                icon=FIX_ICON,
                query_params=link(run.config, hint),
                help=HELP,
            )


def for_run(run: Run, epochs: Sequence[dict], batch_losses: Sequence[Sequence[float]] = ()) -> None:
    """The watched run's hints on the Train page, live while it trains."""
    if run.status == "queued":
        return
    show(run, hints(run.config, epochs, run.status, batch_losses, internals(run)))


def for_runs(store: RunStore, runs: Sequence[Run], labels: dict[int, str]) -> None:
    """The hints for each of Compare's selected runs, under its label."""
    started = [r for r in runs if r.status != "queued"]
    epochs = store.epochs_of([r.id for r in started])
    st.markdown("**Hints**")
    any_shown = False
    for i, run in enumerate(started):
        inside = internals(run) if i < INSIDE_RUNS else None
        found = hints(run.config, epochs[run.id], run.status, internals=inside)
        show(run, found, labels.get(run.id, f"#{run.id}"))
        any_shown = any_shown or bool(found)
    if not any_shown:
        st.caption("Nothing in these runs' curves or neurons suggests a setting to change.")
