"""Train: choose the settings, press Start, and watch the network learn."""

import re

import streamlit as st

from core.augment import preview
from core.config import (
    ConfigError,
    TrainConfig,
    available_memory,
    byte_size,
    memory_estimate,
    problems,
)
from core.data import DataError
from core.runs import Run, RunStore, StoreError, progress_fraction
from core.worker import ensure_worker
from dashboard import curves, grids, settings, state

WATCH = "train_watch"  # the id of the run the live panel shows
SHOWN = "train_watch_shown"  # the watched run's label as the selector last showed it
FLASH = "train_flash"  # a message for the next run of the page (after Start's rerun)


def check(values: dict) -> tuple[TrainConfig | None, list[ConfigError]]:
    """The form's config (None while some value cannot be read) and every problem with it."""
    readable, found = {}, []
    for name, value in values.items():
        try:
            TrainConfig.from_dict({name: value})
            readable[name] = value
        except ConfigError as exc:
            found.append(exc)
    cfg = TrainConfig.from_dict(readable)
    try:
        pool = len(state.load_data(cfg.data_dir).train_labels)
    except DataError as exc:  # a folder outside data/ is refused before it is looked at
        found.append(ConfigError("data_dir", str(exc)))
        pool = None
    found += problems(cfg) if pool is None else problems(cfg, train_pool=pool)
    return (cfg if len(readable) == len(values) else None), found


def start_button(cfg: TrainConfig | None, found: list[ConfigError], store: RunStore) -> None:
    name = st.text_input(
        "Run name",
        placeholder="optional, e.g. adam-lr-0.001",
        key="train_run_name",
        persist_state="session",
    )
    if st.button("Start", type="primary", icon=":material/play_arrow:", disabled=bool(found)):
        try:
            run = store.create(cfg, name)
            ensure_worker(store)
        except (StoreError, OSError) as exc:  # e.g. a read-only store: nothing was queued
            st.error(f"The run could not be started: {exc}", icon=":material/database:")
        else:
            st.session_state[WATCH] = run.id
            st.session_state[FLASH] = (
                f"Run #{run.id} queued; it starts as soon as the trainer is free."
            )
            st.rerun()  # the whole page (and the sidebar) now shows the new run
    if not found:
        pool = len(state.load_data(cfg.data_dir).train_labels)
        free = available_memory()
        st.caption(
            f"Needs about {byte_size(memory_estimate(cfg, pool))} of memory"
            + (f" ({byte_size(free)} free)." if free is not None else ".")
        )
    if found:
        listed = "\n".join(
            f"- **{settings.LABELS.get(p.field, p.field)}**: {p.message}" for p in found
        )
        st.error(f"Fix these settings to start:\n{listed}", icon=":material/error:")


def vary_one(cfg: TrainConfig | None, found: list[ConfigError], store: RunStore) -> None:
    with st.expander("Compare settings: vary one", icon=":material/compare_arrows:"):
        st.caption(
            "Queue one run per value, everything else as above, and compare them side by side."
        )
        field = st.selectbox(
            "Setting to vary",
            settings.VARY_FIELDS,
            key="vary_field",
            persist_state="session",
            format_func=lambda f: settings.LABELS[f],
        )
        layer_list = isinstance(getattr(settings.DEFAULTS, field), list)
        text = st.text_input(
            "Values",
            placeholder="e.g. 128,64; 256; 32,32" if layer_list else "e.g. 0.01, 0.1, 1",
            key="vary_values",
            persist_state="session",
            help="Two to five values, separated by "
            + ("semicolons (each value is a list of layer sizes)" if layer_list else "commas"),
        )
        if st.button("Queue and compare", disabled=cfg is None or bool(found)):
            try:
                configs = settings.vary(cfg, field, text)
                for c in configs:
                    bad = problems(c)
                    if bad:
                        raise bad[0]
            except ConfigError as exc:
                st.error(f"{settings.LABELS.get(exc.field, exc.field)}: {exc.message}")
            else:
                prefix = st.session_state.get("train_run_name") or f"vary-{field}"
                runs = [
                    store.create(c, f"{prefix} {field}={getattr(c, field)}", tags=[f"vary:{field}"])
                    for c in configs
                ]
                ensure_worker(store)
                st.switch_page(
                    "views/compare.py", query_params={"runs": ",".join(str(r.id) for r in runs)}
                )


def outcome(run: Run) -> None:
    """How the watched run ended, in words, with links to look at its model."""
    if run.status == "finished" and run.test_accuracy is not None:
        st.success(
            f"{run.message} Test accuracy **{run.test_accuracy:.2%}** on 10,000 digits "
            f"it never saw (best epoch {run.best_epoch}, {run.train_seconds:.0f} s)."
        )
    elif run.status in ("diverged", "failed", "learned_nothing"):
        st.error(run.message or f"This run {state.status_label(run.status)}.")
    elif run.status == "stopped":
        st.warning(run.message)
    if run.active or not run.checkpoint.is_file():
        return
    if run.status != "finished" and run.best_epoch:
        st.caption(f"Its best epoch ({run.best_epoch}) was kept and can be looked at:")
    model = {"model": f"run-{run.id}"}
    links = [
        ("views/evaluate.py", "Evaluate it", ":material/fact_check:"),
        ("views/weights.py", "See its weights", ":material/grid_on:"),
        ("views/draw.py", "Draw for it", ":material/draw:"),
    ]
    for column, (page, label, icon) in zip(st.columns(3), links, strict=True):
        column.page_link(page, label=label, icon=icon, query_params=model)


def progress(run: Run) -> None:
    p = run.progress
    if run.status == "queued":
        st.info("Queued: it starts when the runs before it are done.")
    elif run.status == "running" and p:
        eta = p.get("eta")
        st.progress(
            min(progress_fraction(p), 1.0),
            text=f"Epoch {p['epoch']} of {p['epochs']}, batch {p['batch']} of "
            f"{p['batches']}"
            + (f" · loss {p['loss']:.3f}" if p.get("loss") is not None else "")
            + (f" · about {eta:.0f} s to go" if eta is not None else ""),
        )
    elif run.status == "running":
        st.info("Starting…")


def watch(store: RunStore, live: bool) -> None:
    """The run selector, the watched run's progress and curves; refreshed every second while
    any run is active (`live`), then once more in full when they are all done."""
    runs = store.runs()
    if live and not any(r.active for r in runs):
        st.rerun()
    by_id = {r.id: r for r in runs}

    def label(i: int) -> str:
        return f"#{i} {by_id[i].name} · {state.status_label(by_id[i].status)}"

    chosen = st.session_state.get(WATCH)
    if isinstance(chosen, str):  # the label of a run whose status has changed since
        found = re.match(r"#(\d+) ", chosen)
        chosen = int(found[1]) if found else None
    if chosen not in by_id:
        active = [r.id for r in runs if r.active]
        chosen = active[-1] if active else runs[0].id
    if chosen != st.session_state.get(WATCH) or st.session_state.get(SHOWN) != label(chosen):
        # The browser's selector goes on showing the label it was last sent with a value,
        # not the option's new one: a run whose status changed is chosen again to show it.
        st.session_state[WATCH] = chosen
        st.session_state[SHOWN] = label(chosen)
    run_id = st.selectbox("Run", list(by_id), key=WATCH, persist_state="session", format_func=label)
    run = by_id[run_id]
    progress(run)
    if run.active and st.button("Stop", icon=":material/stop:", key=f"stop_{run_id}"):
        try:
            store.request_stop(run_id)
            st.toast("Stopping after this batch; the best epoch so far is kept.")
        except StoreError as exc:
            st.error(f"The run could not be stopped: {exc}")
    epochs = store.epochs(run_id)
    if epochs:
        st.plotly_chart(
            curves.training_curves(epochs, store.batch_losses(run_id)), key=f"curves_{run_id}"
        )
    outcome(run)
    with st.expander("Settings of this run"):
        st.json(settings.to_query(run.config) or {"preset": "default"})


st.title("Train a network")
st.caption(
    "Hover the ? beside a setting to see what it does. Start queues the run; it trains in the "
    "background, so you can look at other pages (or close this tab) while it learns."
)
store = state.store()
for note in settings.init_form():
    st.warning(note.message, icon=":material/link:")
if FLASH in st.session_state:
    st.toast(st.session_state.pop(FLASH), icon=":material/schedule:")

form_column, live_column = st.columns([5, 6], gap="large")

with form_column:
    settings.preset_picker()
    slots = settings.form()
    cfg, found = check(settings.values())
    for problem in found:
        slot = slots.get(problem.field)
        if slot is not None:
            slot.error(problem.message, icon=":material/error:")
    if cfg is not None and cfg.augments and not found:
        with slots["_preview"]:
            data = state.dataset(cfg.data_dir)
            grid = preview(data.train_images[:6], cfg, variants=7, seed=0)
            st.plotly_chart(
                grids.tile_grid(grid.reshape(-1, 28, 28), 8, tile_px=52), key="augment_preview"
            )
            st.caption("Each row: a training digit, then seven random versions the network sees.")
    if cfg is not None:
        settings.write_url(cfg)
    start_button(cfg, found, store)
    vary_one(cfg, found, store)

with live_column:
    runs = store.runs()
    state.show_skipped(store)
    if not runs:
        st.info("No runs yet. Choose the settings and press **Start** to train your first network.")
    else:
        live = any(r.active for r in runs)
        st.fragment(watch, run_every=1.0 if live else None)(store, live)
