"""Sweep: try many settings at once (a grid or a random search), watch the trials, rank them.

What to try becomes a spec in the command line's format (dashboard/sweep_builder.py), run
by `python -m core sweep` as a background process (dashboard/sweep_process.py).
"""

import os

import streamlit as st

from core.presets import PRESETS
from core.sweep import summary
from core.sweep_spec import MAX_SEEDS, MAX_TRIALS, SweepError, load_spec, parse_spec
from dashboard import state
from dashboard import sweep_builder as sb
from dashboard import sweep_process as sp

KEEP = "session"  # the form outlives a visit to another page
FIELDS = "sweep_fields"
SHOWN = "sweep_shown"  # the sweep whose trials the page shows
FLASH = "sweep_flash"
UPLOAD = "sweep_upload"
IMPORT_ERROR = "sweep_import_error"
CORES = os.cpu_count() or 1


def key(name: str, part: str) -> str:
    return f"sweep_{part}_{name}"


def put_form(form: sb.Form) -> None:
    """Fill the widgets with an imported spec's values (before they are drawn)."""
    ss = st.session_state
    ss["sweep_name"], ss["sweep_preset"] = form.name, form.preset
    ss["sweep_epochs"], ss["sweep_train_size"] = form.epochs, form.train_size
    ss["sweep_trials"], ss["sweep_seeds"], ss["sweep_metric"] = form.trials, form.seeds, form.metric
    ss["sweep_extra"], ss["sweep_draw_seed"] = form.extra_base, form.draw_seed
    ss[FIELDS] = [a.field for a in form.axes]
    for a in form.axes:
        ss[key(a.field, "how")], ss[key(a.field, "values")] = a.how, a.values
        ss[key(a.field, "low")], ss[key(a.field, "high")] = a.low, a.high


def on_upload() -> None:
    """Read an uploaded spec; a bad one leaves the form as it was and says why."""
    st.session_state[IMPORT_ERROR] = ""
    upload = st.session_state.get(UPLOAD)
    if upload is None:
        return
    try:
        raw = sb.read_upload(upload.name, upload.getvalue())
        put_form(sb.form_from_raw(raw))
    except (sb.BuildError, SweepError) as exc:
        st.session_state[IMPORT_ERROR] = f"{upload.name} was not imported: {exc}"
    else:
        st.session_state[FLASH] = f"Imported {upload.name}."


def axis_inputs(name: str) -> sb.Axis:
    """One setting's row: how to vary it, and its values or range."""
    hows = list(sb.HOWS) if sb.is_number_setting(name) else ["grid", "choice"]
    if st.session_state.get(key(name, "how")) not in hows:
        st.session_state[key(name, "how")] = "grid"
    left, middle, right = st.columns([2, 2, 3], vertical_alignment="bottom")
    how = left.selectbox(
        sb.label(name),
        hows,
        key=key(name, "how"),
        format_func=sb.HOWS.get,
        persist_state=KEEP,
        help=f"{sb.help_for(name).capitalize()}. A list tries every value (a grid); random "
        "draws one value per trial, on a log scale (good for learning rates) or an even one.",
    )
    if how in sb.RANGES:
        low = middle.text_input(
            "From", key=key(name, "low"), persist_state=KEEP, help="The low end of the range."
        )
        high = right.text_input(
            "To", key=key(name, "high"), persist_state=KEEP, help="The high end of the range."
        )
        return sb.Axis(name, how, low=low, high=high)
    sep = "semicolons, e.g. 128,64; 256" if sb.is_list_setting(name) else "commas, e.g. 0.1, 0.5"
    values = right.text_input(
        "Values",
        key=key(name, "values"),
        persist_state=KEEP,
        help=f"The values to try, separated by {sep}.",
    )
    return sb.Axis(name, how, values=values)


DEFAULTS = {
    "sweep_name": "lr-sweep",
    "sweep_preset": "default",
    "sweep_epochs": 5,
    "sweep_train_size": 10_000,
    FIELDS: ["lr"],
    "sweep_trials": 4,
    "sweep_seeds": 1,
    "sweep_workers": CORES,
}


def form_inputs() -> sb.Form:
    for name, value in DEFAULTS.items():  # set here, not as value=: an import overwrites them
        st.session_state.setdefault(name, value)
    st.text_input(
        "Sweep name",
        key="sweep_name",
        persist_state=KEEP,
        help="Letters, digits, '-' and '_'. Every run of the sweep is tagged with it; the Compare "
        "page can filter by it.",
    )
    left, middle, right = st.columns(3)
    left.selectbox(
        "Start from the preset",
        list(PRESETS),
        key="sweep_preset",
        persist_state=KEEP,
        help="Every setting you do not vary comes from this preset (see the Train page).",
    )
    middle.number_input(
        "Epochs",
        min_value=1,
        max_value=1000,
        key="sweep_epochs",
        persist_state=KEEP,
        help="Passes over the training images, for every run (unless you vary it below).",
    )
    right.number_input(
        "Training images",
        min_value=0,
        max_value=55_000,
        step=1000,
        key="sweep_train_size",
        persist_state=KEEP,
        help="How many images each run trains on; fewer is faster. 0 means all of them.",
    )
    if extra := st.session_state.get("sweep_extra"):
        st.caption(
            f"Also from the imported spec: {', '.join(f'{k}={v}' for k, v in extra.items())}"
        )
    # An imported spec may vary a setting the page does not offer: offer it too.
    chosen = st.session_state.get(FIELDS) or []
    fields = st.multiselect(
        "Settings to vary",
        sb.VARY_FIELDS + [f for f in chosen if f not in sb.VARY_FIELDS],
        key=FIELDS,
        format_func=sb.label,
        persist_state=KEEP,
        help="Pick one or more settings; for each, list values to try or give a range to draw "
        "from.",
    )
    for name in fields:
        st.session_state.setdefault(key(name, "values"), "0.1, 0.5, 1" if name == "lr" else "")
    axes = [axis_inputs(name) for name in fields]
    left, middle, right = st.columns(3)
    trials = left.number_input(
        "Random trials",
        min_value=1,
        max_value=MAX_TRIALS,
        key="sweep_trials",
        persist_state=KEEP,
        disabled=not any(a.how != "grid" for a in axes),
        help="How many random draws to make (for each combination of the listed values). Used "
        "only when some setting is drawn at random.",
    )
    seeds = middle.number_input(
        "Seeds per trial",
        min_value=1,
        max_value=MAX_SEEDS,
        key="sweep_seeds",
        persist_state=KEEP,
        help="Train each setting this many times with different seeds, to see how much of a "
        "result is luck.",
    )
    metric = right.selectbox(
        "Rank by",
        list(sb.METRIC_NAMES),
        key="sweep_metric",
        format_func=sb.METRIC_NAMES.get,
        persist_state=KEEP,
        help="The number the leaderboard sorts the runs by.",
    )
    ss = st.session_state
    return sb.Form(
        name=ss["sweep_name"],
        preset=ss["sweep_preset"],
        epochs=int(ss["sweep_epochs"]),
        train_size=int(ss["sweep_train_size"]),
        axes=axes,
        trials=int(trials),
        seeds=int(seeds),
        metric=metric,
        extra_base=dict(ss.get("sweep_extra") or {}),
        draw_seed=ss.get("sweep_draw_seed"),
    )


def start_section(store, form: sb.Form) -> None:
    try:
        raw = sb.build_raw(form)
        _, configs = sb.check_raw(raw)
    except sb.BuildError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    text = sb.spec_yaml(raw)
    where = st.radio(
        "Where to train",
        ["This computer", "A Dask cluster"],
        horizontal=True,
        key="sweep_where",
        persist_state=KEEP,
        help="This computer trains several runs side by side, one per worker. A Dask cluster "
        "sends them to other machines (see the README's Sweeps section to set one up).",
    )
    workers = st.number_input(
        "Workers (runs at once)",
        min_value=1,
        max_value=256,
        key="sweep_workers",
        persist_state=KEEP,
        help=f"How many runs train at the same time. This computer has {CORES} cores; on a "
        "cluster, give its number of workers so the estimate fits.",
    )
    address = ""
    if where == "A Dask cluster":
        address = st.text_input(
            "Scheduler address",
            placeholder="tcp://192.168.1.20:8786",
            key="sweep_scheduler",
            persist_state=KEEP,
            help="The address `dask scheduler` printed when it started, tcp://HOST:PORT.",
        )
    rates = sb.past_rates(
        store.runs(status="finished"),
        {i: s["epochs"] for i, s in store.epoch_summaries().items()},
    )
    guess = sb.estimate(configs, rates, int(workers))
    st.markdown(
        f"#### {len(configs)} run{'s' if len(configs) != 1 else ''}, about "
        f"{sb.duration(guess.seconds)}"
    )
    st.caption(f"How this is estimated: {guess.basis}")
    if message := sp.refusal(store, raw["name"]):
        st.warning(f"{message}. Press Resume below to continue it.", icon=":material/info:")
    go, export = st.columns(2)
    if go.button("Start", type="primary", icon=":material/play_arrow:", help="Start the sweep "
                 "in the background; it goes on if you close the page."):  # fmt: skip
        try:
            scheduler = sp.check_scheduler(address) if where == "A Dask cluster" else None
            sp.start(store, raw["name"], text, workers=int(workers), scheduler=scheduler)
        except (sp.SweepProcessError, OSError) as exc:
            st.error(str(exc), icon=":material/error:")
        else:
            st.session_state[SHOWN] = raw["name"]
            st.session_state[FLASH] = f"Sweep {raw['name']} started: {len(configs)} runs."
            st.rerun()
    export.download_button(
        "Download the spec (YAML)",
        text,
        file_name=f"{raw['name']}.yaml",
        mime="application/yaml",
        icon=":material/download:",
        help="The same sweep for the command line: `python -m core sweep FILE`.",
    )


def trials_panel(store, name: str, was_live: bool) -> None:
    """The sweep's trials; refreshes itself every two seconds while one is active."""
    runs = store.sweep_runs(name)
    live = any(r.active for r in runs) or bool(sp.running_pids(store, name))
    if was_live and not live:
        st.rerun()  # all done: show the leaderboard and the buttons as they now are
    if not runs:
        st.info("Starting the sweep…" if live else "This sweep has no runs yet.")
        return
    done = sum(r.status == "finished" for r in runs)
    st.markdown(f"**{done} of {len(runs)} runs finished**")
    st.dataframe(
        sb.trials_table(runs),
        hide_index=True,
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1),
            "best validation accuracy": st.column_config.NumberColumn(format="percent"),
            "time left (s)": st.column_config.NumberColumn(format="%.0f"),
        },
    )


def watch_section(store) -> None:
    names = sp.sweep_names(store)
    shown = st.session_state.get(SHOWN)
    if shown and shown not in names:
        names.insert(0, shown)  # just started: its runs are not planned yet
    if not names:
        st.info("No sweep yet: build one above and press Start.")
        return
    name = st.selectbox(
        "Sweep to show",
        names,
        key=SHOWN,
        help="Every sweep in the run store, newest first.",
    )
    pids = sp.running_pids(store, name)
    runs = store.sweep_runs(name)
    stop, resume = st.columns(2)
    if stop.button(
        "Stop", icon=":material/stop:", disabled=not pids, help="Stop the sweep: each run ends "
        "after its current batch and keeps its best epoch. Resume finishes it later.",
    ):  # fmt: skip
        sp.stop(store, name)
        st.toast("Stopping: the runs end after their current batch.")
    unfinished = any(r.status not in ("finished", "learned_nothing") for r in runs)
    if resume.button(
        "Resume", icon=":material/play_arrow:", disabled=bool(pids) or not unfinished,
        help="Start the sweep again; runs that already finished are not trained again.",
    ):  # fmt: skip
        try:
            sp.resume(store, name)
        except (sp.SweepProcessError, OSError) as exc:
            st.error(str(exc), icon=":material/error:")
        else:
            st.session_state[FLASH] = f"Sweep {name} resumed."
            st.rerun()
    live = bool(pids) or any(r.active for r in runs)
    st.fragment(trials_panel, run_every=2 if live else None)(store, name, live)
    if not live and (tail := sp.log_tail(store, name)):
        with st.expander("What the sweep printed", icon=":material/terminal:"):
            st.code(tail, language=None)
    if runs:
        try:
            spec = load_spec(sp.spec_path(store, name))
        except SweepError:  # started elsewhere: rank by the default metric
            spec = parse_spec({"name": name})
        st.markdown(f"**Leaderboard**, best {sb.METRIC_NAMES[spec.metric].split(' (')[0]} first")
        metric = st.column_config.NumberColumn(
            sb.METRIC_NAMES[spec.metric].split(" (")[0],
            format="%.4f" if spec.metric == "val_loss" else "percent",
        )
        st.dataframe(
            sb.leaderboard(summary(store, spec), spec.metric),
            hide_index=True,
            column_config={
                spec.metric: metric,
                "seconds": st.column_config.NumberColumn("seconds", format="%.1f"),
            },
        )


st.title("Sweep: try many settings")
st.markdown(
    "Choose settings to vary and the values to try. Every combination becomes a training run; "
    "they train in the background, several at once, and the best rise to the top."
)
store = state.store()
if flash := st.session_state.pop(FLASH, None):
    st.success(flash, icon=":material/check_circle:")
with st.expander("Import a spec file", icon=":material/upload_file:"):
    st.file_uploader(
        "A sweep spec (YAML or JSON)",
        type=["yaml", "yml", "json"],
        key=UPLOAD,
        on_change=on_upload,
        help="A spec written for `python -m core sweep`, or one downloaded from this page.",
    )
if problem := st.session_state.get(IMPORT_ERROR):
    st.error(problem, icon=":material/error:")
st.subheader("What to try")
form = form_inputs()
st.subheader("Run it")
start_section(store, form)
st.subheader("Trials")
watch_section(store)
