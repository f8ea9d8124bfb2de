"""What every page shares: the run store, the data set, and the selected model.

Loaded objects are cached across reruns and sessions (`st.cache_resource`), keyed
by file path and modification time, so a page never reloads what it already has
and a retrained checkpoint is picked up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from core.data import DataError, Dataset, load_dataset
from core.model import Model, ModelFileError, load_model
from core.runs import RunStore, runs_dir
from core.worker import ensure_worker

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "data" / "models" / "default.npz"  # the cnn preset: 99.49 %
SHIPPED_MLP = REPO / "data" / "models" / "mlp.npz"  # the mlp preset: its weights are pictures
DEFAULT_KEY = "default"
MODEL_PARAM = "model"  # the query parameter (and session key) holding the selected model


@dataclass(frozen=True)
class ModelChoice:
    key: str  # "default" or "run-<id>", as in the URL
    label: str
    path: Path
    run_id: int | None = None


def store() -> RunStore:
    """The run store ($MNIST_RUNS_DIR or ./runs), reaped of dead trainers once per server."""
    return _store(str(runs_dir().resolve()))


@st.cache_resource(show_spinner=False)
def _store(root: str) -> RunStore:
    runs = RunStore(root)
    runs.reap()
    return runs


@st.cache_resource(show_spinner="Loading MNIST…")
def _dataset(data_dir: str) -> Dataset:
    return load_dataset(data_dir or None)


def dataset(data_dir: str = "") -> Dataset:
    """The data set (bundled MNIST by default); a data error stops the page with a message."""
    try:
        return _dataset(data_dir)
    except DataError as exc:
        st.error(f"The data could not be loaded: {exc}")
        st.stop()


@st.cache_resource(show_spinner="Loading the model…", max_entries=16)
def _load(path: str, mtime: float) -> tuple[Model, dict[str, Any]]:
    return load_model(path)


def load(choice: ModelChoice) -> tuple[Model, dict[str, Any]]:
    """The model and its metadata for a choice, cached until its file changes."""
    return _load(str(choice.path), choice.path.stat().st_mtime)


def model_choices() -> list[ModelChoice]:
    """The two shipped models, then every run with a checkpoint, newest first."""
    choices = [
        ModelChoice(DEFAULT_KEY, "Default model (shipped CNN)", DEFAULT_MODEL),
        ModelChoice("mlp", "Shipped MLP (784-128-64-10)", SHIPPED_MLP),
    ]
    for run in store().list(status=("finished", "stopped")):
        if run.checkpoint.exists():
            accuracy = f" · {run.test_accuracy:.2%}" if run.test_accuracy is not None else ""
            label = f"#{run.id} {run.name}{accuracy}"
            choices.append(ModelChoice(f"run-{run.id}", label, run.checkpoint, run.id))
    return choices


def model_picker() -> ModelChoice:
    """The sidebar's model select box, shared by every page and kept in the URL.

    A link that names a model (`?model=run-12`) selects it; otherwise the widget's own
    value stands, so a change in the sidebar is not undone by the URL it left behind.
    """
    choices = {c.key: c for c in model_choices()}
    linked = st.query_params.get(MODEL_PARAM)
    if linked != st.session_state.get("_model_in_url") and linked in choices:
        st.session_state[MODEL_PARAM] = linked  # a link arrived: it wins
    if st.session_state.get(MODEL_PARAM) not in choices:
        st.session_state[MODEL_PARAM] = DEFAULT_KEY
    key = st.sidebar.selectbox(
        "Model",
        list(choices),
        format_func=lambda k: choices[k].label,
        key=MODEL_PARAM,
        help="The network every page looks at: the shipped default, or any run you trained.",
    )
    st.query_params[MODEL_PARAM] = st.session_state["_model_in_url"] = key
    return choices[key]


def selected_model() -> tuple[ModelChoice, Model, dict[str, Any]]:
    """The model chosen in the sidebar, loaded; a broken file stops the page with a message."""
    choice = st.session_state.get("model_choice") or model_picker()
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


def training_status() -> None:
    """A sidebar line about runs in progress, refreshed every two seconds on every page."""
    with st.sidebar:
        _training_status()


@st.fragment(run_every=2)
def _training_status() -> None:
    active = store().list(status=("running", "queued"))
    if not active:
        return
    ensure_worker(store())  # a queued run never waits for a worker that is not there
    running = [r for r in active if r.status == "running"]
    for run in running:
        p = run.progress
        where = f"epoch {p['epoch']}/{p['epochs']}" if p else "starting"
        st.caption(f"⏳ Training #{run.id} {run.name}: {where}")
    queued = len(active) - len(running)
    if queued:
        st.caption(f"{queued} run{'s' if queued > 1 else ''} queued")
