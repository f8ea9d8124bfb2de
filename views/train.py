"""Train: choose the settings, press Start, and watch the network learn."""

import re
import time

import streamlit as st

from core import control
from core import live as live_view
from core.augment import preview
from core.config import (
    ConfigError,
    TrainConfig,
    available_memory,
    byte_size,
    memory_estimate,
    problems,
)
from core.control import ControlError
from core.data import DataError
from core.knobs import LABELS
from core.lineage import LineageError, continue_from
from core.runs import Run, RunStore, StoreError, progress_fraction
from core.worker import ensure_worker
from dashboard import curves, grids, hints, live_figures, settings, state

WATCH = "train_watch"  # the id of the run the live panel shows
FLASH = "train_flash"  # a message for the next run of the page (after Start's rerun)
NEXT_WATCH = "train_watch_next"  # the run to watch from the next run of the page on
KNOB_ERROR = "train_knob_error"  # a knob change the run refused, shown by the knobs
LR_VALUES = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]
LR_VALUES += [10.0]
DECAY_VALUES = [0.0, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2]
MAX_REPEATS = 20  # seeds per setting from the page; the command line takes up to 100
PACE_VALUES = [0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0]


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
    repeats = repeats_input("train_repeats")
    if st.button("Start", type="primary", icon=":material/play_arrow:", disabled=bool(found)):
        try:
            if repeats > 1:  # the seeds share one name, so the group reads as one in lists
                name = (name or "").strip() or f"{cfg.arch}-{time.strftime('%m%d-%H%M%S')}"
            runs = [
                store.create(c, f"{name} seed {c.seed}" if repeats > 1 else name)
                for c in with_seeds(cfg, repeats)
            ]
            ensure_worker(store)
        except (StoreError, OSError) as exc:  # e.g. a read-only store: nothing was queued
            st.error(f"The run could not be started: {exc}", icon=":material/database:")
        except ConfigError as exc:
            st.error(f"{settings.LABELS.get(exc.field, exc.field)}: {exc.message}")
        else:
            st.session_state[WATCH] = runs[0].id
            st.session_state[FLASH] = (
                f"Run #{runs[0].id} queued; it starts as soon as the trainer is free."
                if repeats == 1
                else f"Runs #{runs[0].id} to #{runs[-1].id} queued, one per seed; Compare's "
                "'Seeds and verdict' tab shows them as a group."
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


def repeats_input(key: str) -> int:
    return int(
        st.number_input(
            "Repeats (seeds)",
            min_value=1,
            max_value=MAX_REPEATS,
            value=1,
            step=1,
            key=key,
            persist_state="session",
            help="Train the same settings this many times, each with its own seed, to see "
            "how much of a result is luck. Compare shows them as one group.",
        )
    )


def with_seeds(cfg: TrainConfig, repeats: int) -> list[TrainConfig]:
    """`cfg` once per seed: its own seed, then the next ones; ConfigError if one is invalid."""
    configs = [cfg.replace(seed=cfg.seed + i) for i in range(repeats)]
    for c in configs:
        if bad := problems(c):
            raise bad[0]
    return configs


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
        repeats = repeats_input("vary_repeats")
        if st.button("Queue and compare", disabled=cfg is None or bool(found)):
            try:
                values = settings.vary(cfg, field, text)
                configs = [r for c in values for r in with_seeds(c, repeats)]
            except ConfigError as exc:
                st.error(f"{settings.LABELS.get(exc.field, exc.field)}: {exc.message}")
            else:
                prefix = st.session_state.get("train_run_name") or f"vary-{field}"
                seed = (lambda c: f" seed {c.seed}") if repeats > 1 else (lambda c: "")
                runs = [
                    store.create(
                        c, f"{prefix} {field}={getattr(c, field)}{seed(c)}", tags=[f"vary:{field}"]
                    )
                    for c in configs
                ]
                ensure_worker(store)
                view = {"compare_view": "Seeds and verdict"} if repeats > 1 else {}
                st.switch_page(
                    "views/compare.py",
                    query_params={"runs": ",".join(str(r.id) for r in runs), **view},
                )


def train_more(store: RunStore, run: Run) -> None:
    """A form to continue a finished or stopped run from its best checkpoint."""
    with st.form(f"more_{run.id}", border=True):
        st.markdown("**Train more**: go on from its best epoch, with the same network.")
        left, right = st.columns(2)
        epochs = left.number_input(
            "More epochs", min_value=1, max_value=1000, value=5, step=1, key=f"more_epochs_{run.id}"
        )
        lr = right.number_input(
            "Learning rate (optional)",
            min_value=1e-6,
            max_value=100.0,
            value=None,
            format="%g",
            placeholder=f"{run.config.lr:g}, as before",
            key=f"more_lr_{run.id}",
        )
        pressed = st.form_submit_button("Train more", icon=":material/fast_forward:")
    if not pressed:
        return
    changes = {"epochs": int(epochs)} | ({"lr": float(lr)} if lr is not None else {})
    try:
        cfg = run.config.replace(**changes)
        bad = problems(cfg)
        if bad:
            raise bad[0]
        new = continue_from(store, run.id, cfg)
        ensure_worker(store)
    except ConfigError as exc:
        st.error(f"{settings.LABELS.get(exc.field, exc.field)}: {exc.message}")
    except (LineageError, StoreError, OSError) as exc:
        st.error(f"It cannot be trained more: {exc}", icon=":material/error:")
    else:
        st.session_state[NEXT_WATCH] = new.id  # the run selector exists already: next run
        st.session_state[FLASH] = f"Run #{new.id} queued: run #{run.id}, trained more."
        st.rerun()


def outcome(run: Run, store: RunStore) -> None:
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
    if run.status in ("finished", "stopped"):
        train_more(store, run)


def progress(run: Run) -> None:
    p = run.progress
    if run.status == "queued":
        st.info("Queued: it starts when the runs before it are done.")
    elif run.status == "running" and p:
        eta = None if run.paused else p.get("eta")
        where = (
            f"Paused at epoch {p['epoch']}"
            if run.paused
            else f"Epoch {p['epoch']} of {p['epochs']}"
        )
        st.progress(
            min(progress_fraction(p), 1.0),
            text=f"{where}, batch {p['batch']} of {p['batches']}"
            + (f" · loss {p['loss']:.3f}" if p.get("loss") is not None else "")
            + (f" · about {eta:.0f} s to go" if eta is not None else ""),
        )
    elif run.status == "running":
        st.info("Starting…")


def steer(store: RunStore, run_id: int, cmd: dict, done: str) -> None:
    """Send a command to the run; its refusal is shown where the button is."""
    try:
        control.send(store, run_id, cmd)
    except (ControlError, StoreError) as exc:
        st.error(f"The run could not be steered: {exc}", icon=":material/error:")
    else:
        st.toast(done)


def buttons(store: RunStore, run: Run) -> None:
    """Pause or resume, step, and stop the active run."""
    # Two rows of two, so that every label fits beside the live panel at projector widths.
    pause, stop = st.columns(2)
    step, to_end = st.columns(2)
    if run.paused:
        if pause.button("Resume", icon=":material/play_arrow:", key=f"resume_{run.id}"):
            steer(store, run.id, control.command("resume"), "Going on.")
    elif pause.button("Pause", icon=":material/pause:", key=f"pause_{run.id}"):
        steer(store, run.id, control.command("pause"), "Pausing after this batch.")
    if step.button("Step 1 batch", icon=":material/skip_next:", key=f"step_{run.id}"):
        steer(store, run.id, control.command("step", batches=1), "One more batch, then paused.")
    if to_end.button("Step to end of epoch", icon=":material/skip_next:", key=f"epoch_{run.id}"):
        steer(
            store,
            run.id,
            control.command("step", epoch=True),
            "Training to the end of this epoch, then paused.",
        )
    if stop.button("Stop", icon=":material/stop:", key=f"stop_{run.id}"):
        steer(
            store,
            run.id,
            control.command("stop"),
            "Stopping after this batch; the best epoch so far is kept.",
        )


def set_knob(store: RunStore, run_id: int, knob: str, key: str) -> None:
    """on_change of a knob: send its new value to the run."""
    try:
        control.send(store, run_id, control.command("set", **{knob: st.session_state[key]}))
    except (ControlError, StoreError) as exc:
        st.session_state[KNOB_ERROR] = f"{LABELS[knob].capitalize()} not changed: {exc}"


def with_value(values: list[float], value: float) -> list[float]:
    return sorted(set(values) | {float(value)})


def knobs(store: RunStore, run: Run, events: list[dict]) -> None:
    """The settings that can change while the run trains, at their current values."""
    now = control.current_knobs(run.config, events)
    n = len(events)

    def key(knob: str) -> str:
        return f"knob_{knob}_{run.id}_{n}"

    def on_change(knob: str) -> dict:
        return dict(key=key(knob), on_change=set_knob, args=(store, run.id, knob, key(knob)))

    with st.container(border=True):
        st.markdown("**Change it while it trains** (from the next batch on)")
        left, right = st.columns(2)
        with left:
            st.select_slider(
                "Learning rate",
                with_value(LR_VALUES, now["lr"]),
                value=float(now["lr"]),
                format_func=lambda v: f"{v:g}",
                **on_change("lr"),
            )
            st.caption("How big a step each update takes: too big and it jumps about.")
            st.select_slider(
                "Weight decay",
                with_value(DECAY_VALUES, now["weight_decay"]),
                value=float(now["weight_decay"]),
                format_func=lambda v: f"{v:g}",
                **on_change("weight_decay"),
            )
            st.caption("How hard the weights are pulled back towards zero.")
        with right:
            if run.config.optimizer == "sgd":
                st.slider(
                    "Momentum",
                    0.0,
                    0.99,
                    value=min(float(now["momentum"]), 0.99),
                    step=0.01,
                    **on_change("momentum"),
                )
                st.caption("How much of the last step's direction carries into the next.")
            if run.config.dropout > 0:
                st.slider(
                    "Dropout",
                    0.0,
                    0.95,
                    value=min(float(now["dropout"]), 0.95),
                    step=0.05,
                    **on_change("dropout"),
                )
                st.caption("The share of hidden neurons switched off at random in each step.")
            st.select_slider(
                "Pace",
                with_value(PACE_VALUES, now["pace"]),
                value=float(now["pace"]),
                format_func=lambda v: "full speed" if v == 0 else f"{v:g} batches/s",
                **on_change("pace"),
            )
            st.caption("Slow it down to watch each batch change the network.")
        if KNOB_ERROR in st.session_state:
            st.error(st.session_state.pop(KNOB_ERROR), icon=":material/error:")


def live_pictures(run: Run) -> None:
    """The first layer and the ten fixed digits' guesses, as the trainer last wrote them."""
    view = live_view.read(run.live_view)
    if view is None or "digits" not in view:
        return
    try:
        names = state.load_data(run.config.data_dir).class_names
    except DataError:
        names = tuple(str(i) for i in range(view["probs"].shape[1]))
    st.markdown("**Watch it learn**")
    if "weights" in view:
        st.plotly_chart(
            live_figures.live_weights(view),
            key=f"live_weights_{run.id}",
            config=grids.CHART_CONFIG,
        )
    st.plotly_chart(
        live_figures.live_guesses(view, names),
        key=f"live_guesses_{run.id}",
        config=grids.CHART_CONFIG,
    )
    steps, epoch, _ = (float(v) for v in view["where"])
    st.caption(f"After {steps:,.0f} batches (epoch {epoch + run.epoch_offset:.2f}).")


def event_log(run: Run, events: list[dict]) -> None:
    if run.parent is not None:
        st.caption(f"Continued from run #{run.parent}, from its epoch {run.epoch_offset}.")
    if events:
        st.dataframe(
            [
                {
                    "batch": e["step"],
                    "epoch": round(e["epoch"] + run.epoch_offset, 2),
                    "what changed": control.describe(e),
                    "time": time.strftime("%H:%M:%S", time.localtime(e["time"])),
                }
                for e in events
            ],
            hide_index=True,
            key=f"events_{run.id}_{len(events)}",
        )


def watch(store: RunStore, live: bool) -> None:
    """The run selector, the watched run's progress and curves; refreshed every second while
    any run is active (`live`), then once more in full when they are all done."""
    runs = store.runs()
    if live and not any(r.active for r in runs):
        st.rerun()
    by_id = {r.id: r for r in runs}
    if NEXT_WATCH in st.session_state:
        st.session_state[WATCH] = st.session_state.pop(NEXT_WATCH)

    def label(i: int) -> str:
        return f"#{i} {by_id[i].name} · {state.status_label(by_id[i].status)}"

    chosen = st.session_state.get(WATCH)
    if isinstance(chosen, str):  # the label of a run whose status has changed since
        found = re.match(r"#(\d+) ", chosen)
        chosen = int(found[1]) if found else None
    if chosen not in by_id:
        active = [r.id for r in runs if r.active]
        chosen = active[-1] if active else runs[0].id
    if chosen != st.session_state.get(WATCH):
        st.session_state[WATCH] = chosen
    state.refresh_label(WATCH, label(chosen))  # a run whose status changed shows its new one
    run_id = st.selectbox("Run", list(by_id), key=WATCH, persist_state="session", format_func=label)
    run = by_id[run_id]
    events = store.events(run_id)
    progress(run)
    if run.active:
        buttons(store, run)
        knobs(store, run, events)
    epochs = store.epochs(run_id)
    losses = store.batch_losses(run_id) if epochs else []
    if epochs:
        st.plotly_chart(
            curves.training_curves(epochs, losses, events=events, epoch_offset=run.epoch_offset),
            key=f"curves_{run_id}",
        )
    hints.for_run(run, epochs, losses)
    if run.active:
        live_pictures(run)
    outcome(run, store)
    with st.expander("Settings of this run"):
        if run.parent is not None or events:
            event_log(run, events)
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
