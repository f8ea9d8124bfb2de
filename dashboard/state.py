"""What every page shares: the run store, the data set, the selected model, and tabs.

Loaded objects are cached across reruns and sessions (`st.cache_resource`), keyed by
canonical file path (and modification time for models), with a bound on every cache, so a
page never reloads what it already has and no link can make the server grow. Every model
file is read by one loader (`cached_model`); what the pages compute from it is cached in
dashboard/computed.py.

A broken run store (missing, corrupt, read-only, locked, from a newer version) takes
nothing down that does not need it: the model picker then offers the shipped models with a
note, and the pages that need the store raise StoreError, which app.py shows as one message.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from core.data import DataError, Dataset, load_dataset
from core.model import Model, ModelFileError
from core.model_load import load_model
from core.runs import Run, RunStore, StoreError, runs_dir
from core.worker import MAX_SLOTS, SLOTS_SETTING, busy_slots, ensure_worker, trainer_slots

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "data" / "models" / "default.npz"  # the cnn preset: 99.60 %
SHIPPED_MLP = REPO / "data" / "models" / "mlp.npz"  # the mlp preset: its weights are pictures
DEFAULT_KEY = "default"
MODEL_PARAM = "model"  # the query parameter (and session key) holding the selected model
CHOICE_KEY = "model_choice"  # the session key app.py puts the picked ModelChoice under
DATA_DIRS_ENV = "MNIST_DATA_DIRS"  # more folders the app may read data from, ':'-separated
STATUS_LABELS = {"learned_nothing": "learned nothing"}
CACHED = 8  # results kept per cached page computation: every cache is bounded
FileKey = tuple[str, float]  # a model file's path and modification time: what it is cached by


@dataclass(frozen=True)
class ModelChoice:
    key: str  # "default" or "run-<id>", as in the URL
    label: str
    path: Path
    run_id: int | None = None


def status_label(status: str) -> str:
    """A run status in words ("learned_nothing" -> "learned nothing")."""
    return STATUS_LABELS.get(status, status)


# The run store


def store() -> RunStore:
    """The run store ($MNIST_RUNS_DIR or ./runs); raises StoreError when it cannot be used.

    A failed open is not cached, so the next rerun tries again once the store is fixed.
    """
    return _store(str(runs_dir().resolve()))


@st.cache_resource(show_spinner=False, max_entries=4)
def _store(root: str) -> RunStore:
    runs = RunStore(root)
    with contextlib.suppress(StoreError):  # a read-only store can still be read
        runs.reap()
    return runs


def show_store_problem(exc: StoreError) -> None:
    """The one message a page that needs the run store shows when it cannot have it."""
    st.error(
        f"**Your training runs cannot be used right now.** {exc}\n\n"
        "Home, Draw and the shipped models on Evaluate, Weights and Data still work.",
        icon=":material/database:",
    )


def show_skipped(runs: RunStore) -> None:
    """A note about rows of the store this version could not read (they are left untouched)."""
    if runs.skipped:
        listed = "; ".join(f"#{run_id}: {reason}" for run_id, reason in runs.skipped[:5])
        more = f" and {len(runs.skipped) - 5} more" if len(runs.skipped) > 5 else ""
        st.warning(
            f"{len(runs.skipped)} run(s) in the store could not be read and are not shown "
            f"({listed}{more}). They may come from a newer version of this app.",
            icon=":material/warning:",
        )


# Data


def allowed_data_roots() -> list[Path]:
    """Folders the app may read data from: data/, and those listed in $MNIST_DATA_DIRS."""
    listed = [p for p in os.environ.get(DATA_DIRS_ENV, "").split(os.pathsep) if p.strip()]
    return [Path(os.path.realpath(p)) for p in [REPO / "data", *listed]]


def data_folder(text: str) -> Path | None:
    """The canonical folder a data_dir setting names (None: the bundled MNIST).

    Anything outside the allowed roots is refused before the file system is asked about
    it, with the same message whether or not it exists, so a link reveals nothing.
    """
    if not text.strip():
        return None
    path = Path(text.strip()).expanduser()
    path = Path(os.path.realpath(path if path.is_absolute() else REPO / path))
    if any(path == root or root in path.parents for root in allowed_data_roots()):
        return path
    raise DataError(
        f"'{text}' is not a folder this app reads data from. It reads folders under "
        f"{REPO / 'data'} and those listed in ${DATA_DIRS_ENV} (separated by "
        f"'{os.pathsep}'), set before starting the app."
    )


def load_data(data_dir: str = "") -> Dataset:
    """The data set of a data_dir setting (bundled MNIST when empty); raises DataError."""
    folder = data_folder(data_dir)
    return _dataset(str(folder) if folder is not None else "")


@st.cache_resource(show_spinner="Loading the data…", max_entries=3)
def _dataset(folder: str) -> Dataset:
    return load_dataset(folder or None)


def dataset(data_dir: str = "") -> Dataset:
    """The data set (bundled MNIST by default); a data error stops the page with a message."""
    try:
        return load_data(data_dir)
    except DataError as exc:
        st.error(f"The data could not be loaded: {exc}")
        st.stop()


# Models


# 64: every epoch's snapshot of a run stays loaded while its training is replayed.
@st.cache_resource(show_spinner="Loading the model…", max_entries=64)
def cached_model(path: str, mtime: float) -> tuple[Model, dict[str, Any]]:
    """The model saved at `path` and its metadata, loaded once per modification time and
    shared by every session: read its weights, or run it on an image or two (see
    working_copy). Raises ModelFileError."""
    return load_model(path)


def file_key(path: Path) -> FileKey:
    """What a model file is cached by: its path and modification time (OSError if gone)."""
    return str(path), path.stat().st_mtime


def model_at(path: Path) -> tuple[Model, dict[str, Any]]:
    """The model saved at `path` (a checkpoint or an epoch's snapshot) and its metadata,
    cached until the file changes; raises ModelFileError or OSError."""
    return cached_model(*file_key(path))


def load(choice: ModelChoice) -> tuple[Model, dict[str, Any]]:
    """The model and its metadata for a choice, cached until its file changes."""
    return model_at(choice.path)


def working_copy(path: str, mtime: float) -> Model:
    """A private copy of the cached model at `path`, to run on many images: a layer keeps
    its last batch for the backward pass, and a batch of 1,000 images kept by the shared
    model would stay in the cache."""
    shared, _ = cached_model(path, mtime)
    model = Model(shared.spec)
    model.set_weights(shared.get_weights())
    return model


def run_choice(run: Run) -> ModelChoice:
    """A trained run as a model choice, labelled with its accuracy and, unless finished,
    its status (the checkpoint of a diverged or killed run is its best epoch's)."""
    accuracy = f" · {run.test_accuracy:.2%}" if run.test_accuracy is not None else ""
    status = "" if run.status == "finished" else f" · {status_label(run.status)}"
    return ModelChoice(
        f"run-{run.id}", f"#{run.id} {run.name}{accuracy}{status}", run.checkpoint, run.id
    )


def run_of(choice: ModelChoice) -> Run | None:
    """The run behind a model choice; None for a shipped model, or when the run is gone or
    the store cannot say (its weights still show)."""
    if choice.run_id is None:
        return None
    try:
        return store().get(choice.run_id)
    except (KeyError, StoreError):
        return None


def trained_runs() -> tuple[list[Run], str | None]:
    """Every run in the store, newest first, and why the store cannot be read (or None)."""
    try:
        return store().runs(), None
    except StoreError as exc:
        return [], str(exc)


def model_choices(runs: list[Run] | None = None) -> list[ModelChoice]:
    """The two shipped models, then every ended run with a checkpoint, newest first.

    When the run store cannot be read, only the shipped models.
    """
    if runs is None:
        runs, _ = trained_runs()
    choices = [
        ModelChoice(DEFAULT_KEY, "Default model (shipped CNN)", DEFAULT_MODEL),
        ModelChoice("mlp", "Shipped MLP (784-128-64-10)", SHIPPED_MLP),
    ]
    return choices + [run_choice(r) for r in runs if not r.active and r.checkpoint.is_file()]


def model_picker() -> ModelChoice:
    """The sidebar's model select box, shared by every page and kept in the URL.

    A link that names a model (`?model=run-12`) selects it; otherwise the widget's own
    value stands, so a change in the sidebar is not undone by the URL it left behind.
    A link to a model that is not there is named in a warning.
    """
    runs, problem = trained_runs()
    choices = {c.key: c for c in model_choices(runs)}
    linked = st.query_params.get(MODEL_PARAM)
    if linked != st.session_state.get("_model_in_url"):
        if linked in choices:
            st.session_state[MODEL_PARAM] = linked  # a link arrived: it wins
        elif linked is not None:
            st.session_state["_model_missing"] = linked
    if st.session_state.get(MODEL_PARAM) not in choices:
        st.session_state[MODEL_PARAM] = DEFAULT_KEY
    key = st.sidebar.selectbox(
        "Model",
        list(choices),
        format_func=lambda k: choices[k].label,
        key=MODEL_PARAM,
        persist_state="session",
        help="The network every page looks at: the shipped default, or any run you trained.",
    )
    if st.query_params.get(MODEL_PARAM) != key:
        st.query_params[MODEL_PARAM] = key
    st.session_state["_model_in_url"] = key
    if problem:
        st.sidebar.caption(f":material/database: Trained runs are not listed: {problem}")
    return choices[key]


def link_notes() -> None:
    """Say once when a link named a model that is not there (deleted, or never trained)."""
    missing = st.session_state.pop("_model_missing", None)
    if missing is not None:
        st.warning(
            f"The link asked for the model `{missing}`, which is not here (deleted, still "
            "training, or from another machine); showing the default model instead.",
            icon=":material/link_off:",
        )


def selected_model() -> tuple[ModelChoice, Model, dict[str, Any]]:
    """The model chosen in the sidebar, loaded; a broken file stops the page with a message."""
    choice = st.session_state.get(CHOICE_KEY) or model_picker()
    try:
        model, meta = load(choice)
    except (ModelFileError, OSError) as exc:
        st.error(
            f"The model '{choice.label}' could not be loaded: {exc}. "
            "Pick another one in the sidebar, or retrain it on the Train page."
        )
        st.stop()
    return choice, model, meta


def model_data(meta: dict[str, Any]) -> tuple[Dataset, str, list[str]]:
    """The data a model was trained on, its folder ('' for MNIST), and its class names."""
    data_dir = str((meta.get("config") or {}).get("data_dir") or "")
    data = dataset(data_dir)
    return data, data_dir, [str(n) for n in (meta.get("class_names") or data.class_names)]


# Tabs


def refresh_label(key: str, label: str) -> None:
    """Before a keyed selectbox: when its chosen option's label has changed (a run's status,
    a new name), choose it again, so that the browser shows the new label; Streamlit's
    selectbox otherwise goes on showing the label it was last sent a value with."""
    shown = f"_{key}_label"
    if st.session_state.get(shown) != label:
        st.session_state[key] = st.session_state[key]
        st.session_state[shown] = label


def lazy_tabs(
    tabs: dict[str, Callable[[], None]], key: str, renamed: Mapping[str, str] | None = None
) -> None:
    """Tabs (label: what draws it) kept in the URL under `key`; only the open one is drawn,
    so a tab's computations are paid for when it is opened. `renamed` maps a tab's former
    labels to its label now, so links saved before a rename still open that tab."""
    former = st.query_params.get(key)
    if renamed and former in renamed:
        st.session_state[key] = renamed[former]  # the tabs take it, and put it in the URL
    shown = st.tabs(list(tabs), key=key, on_change="rerun", bind="query-params")
    for tab, draw in zip(shown, tabs.values(), strict=True):
        if tab.open:
            with tab:
                draw()


# The sidebar's training status

SLOTS_KEY = "trainer_slots"  # the session key of the sidebar's "Runs trained at once"
SLOTS_SEEN = "_trainer_slots_seen"  # the store's value when the input last showed it
SLOTS_PROBLEM = "_trainer_slots_problem"  # why the last change could not be saved


def training_status() -> None:
    """The trainer's slots and queue and the runs in progress, refreshed every two seconds
    while any trains, and how many runs it trains at once."""
    try:
        active = store().runs(status=("running", "queued"))
    except StoreError:
        return
    with st.sidebar:
        st.fragment(_training_status, run_every=2 if active else None)(bool(active))


def _training_status(was_active: bool) -> None:
    try:
        runs = store()
        runs.reap()  # a trainer that died while the server runs is marked failed at once
        active = runs.runs(status=("running", "queued"))
        if active:
            ensure_worker(runs)  # a queued run never waits for a worker that is not there
        slots, busy = trainer_slots(runs), busy_slots(runs)
    except (StoreError, OSError):
        return
    if was_active and not active:
        st.rerun()  # all done: stop refreshing, and let the page show the results
    running = [r for r in active if r.status == "running"]
    queued = len(active) - len(running)
    line = f":material/memory: Trainer: {busy} of {slots} slot{'s' if slots > 1 else ''} busy"
    st.caption(line + (f" · {queued} queued" if queued else ""))
    for run in running:
        p = run.progress
        where = f"epoch {p['epoch']}/{p['epochs']}" if p else "starting"
        if run.paused:  # a held run keeps its slot until it is resumed or stopped
            st.caption(f":material/pause: #{run.id} {run.name}: paused at {where}, holding a slot")
        else:
            st.caption(f":material/hourglass_top: Training #{run.id} {run.name}: {where}")
    _slots_input(runs, slots)


def _slots_input(runs: RunStore, slots: int) -> None:
    """The number of runs trained at once, kept in the store; another session's change shows."""
    if st.session_state.get(SLOTS_SEEN) != slots:
        st.session_state[SLOTS_KEY] = st.session_state[SLOTS_SEEN] = slots
    st.number_input(
        "Runs trained at once",
        min_value=1,
        max_value=MAX_SLOTS,
        step=1,
        key=SLOTS_KEY,
        on_change=_save_slots,
        disabled=runs.read_only,
        help="How many queued runs the background trainer trains side by side, each on one "
        "core. Lowering it takes effect as the runs in progress finish.",
    )
    if problem := st.session_state.get(SLOTS_PROBLEM):
        st.caption(f":material/error: Not saved: {problem}")


def _save_slots() -> None:
    value = int(st.session_state[SLOTS_KEY])
    st.session_state[SLOTS_PROBLEM] = ""
    try:
        runs = store()
        runs.set_setting(SLOTS_SETTING, str(value))
        st.session_state[SLOTS_SEEN] = value
        ensure_worker(runs)  # more slots: queued runs start now, not at the next refresh
    except (StoreError, OSError) as exc:
        st.session_state[SLOTS_PROBLEM] = str(exc)
