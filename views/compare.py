"""Compare: every run in one table; tick runs to overlay their curves and see what differs.

The selection and the filters live in the URL (`?runs=12,13&status=finished&lr=0.1`), so a
comparison can be shared as a link; the Train page opens this page that way too.
"""

import time

import streamlit as st

from core import effects
from core.groups import METRICS, differing, group_runs, verdict
from core.groups import describe as describe_group
from core.runs import STATUSES, Run, RunStore, StoreError
from dashboard import (
    compare,
    compare_figures,
    compare_widgets,
    effects_figures,
    grids,
    hints,
    presentation,
    state,
)
from dashboard.compare import FILTERS, SELECTED, VISIBLE, X_AXIS

CONFIRM = "compare_confirm_delete"  # the runs Delete was pressed for, awaiting Yes
FLASH = "compare_flash"  # messages for the next run of the page (after a rerun)
KEEP = "session"  # every widget here outlives a visit to another page


def curves(store: RunStore, ids: list[int], labels: dict, colors: dict, x: str, live: bool) -> None:
    """The overlaid curves; while a run trains this refreshes itself every few seconds."""
    runs = []
    for run_id in ids:
        try:
            runs.append(store.get(run_id))
        except KeyError:
            continue
    epochs = store.epochs_of(ids)
    st.plotly_chart(compare_figures.curves_figure(runs, epochs, colors, labels, x))
    waiting = [f"#{r.id} ({r.status})" for r in runs if not epochs[r.id]]
    if waiting:
        st.caption(f"No finished epoch yet for {', '.join(waiting)}.")
    if live and not any(r.active for r in runs):
        st.rerun()  # all done: redraw the whole page with the final results


def curves_tab(
    store: RunStore, chosen: list[Run], differ: list[str], labels: dict, colors: dict
) -> None:
    if not chosen:
        st.info(
            "Tick one or more runs in the table to overlay their curves and see which settings "
            "differ; the other tabs show every run in the table."
        )
        return
    if X_AXIS not in st.session_state:
        st.session_state[X_AXIS] = "epoch"
    x = st.segmented_control(
        "Horizontal axis",
        ["epoch", "seconds"],
        key=X_AXIS,
        required=True,
        format_func=lambda v: "epochs" if v == "epoch" else "seconds of training",
        persist_state=KEEP,
    )
    live = any(r.active for r in chosen)
    ids = [r.id for r in chosen]
    st.fragment(curves, run_every=3 if live else None)(store, ids, labels, colors, x, live)
    hints.for_runs(store, chosen, labels)
    st.markdown("**Settings that differ**")
    if len(chosen) < 2:
        st.caption("Tick two or more runs to see which settings differ.")
    elif not differ:
        st.info("The selected runs have exactly the same settings.")
    else:
        st.dataframe(compare.config_diff(chosen))
    history = compare.history_table(chosen, store.events_of(ids))
    if not history.empty:
        st.markdown("**What happened while they trained**")
        st.dataframe(
            history,
            hide_index=True,
            column_config={"epoch": st.column_config.NumberColumn(format="%.2f")},
        )


def parallel_tab(shown: list[Run], summaries: dict, colors: dict) -> None:
    parallel = compare_figures.parallel_figure(shown, summaries, colors)
    if parallel is None:
        st.info("This needs two or more runs with an accuracy that differ in some setting.")
        return
    st.caption(
        "One line per run in the table, through its settings to its best validation accuracy; "
        "selected runs are in their colour. Point at a line to read its run's settings."
    )
    st.plotly_chart(parallel)


def scatter_tab(shown: list[Run], summaries: dict, colors: dict, labels: dict, now: float) -> None:
    scatter = compare_figures.time_scatter(shown, summaries, colors, labels, now)
    if scatter is None:
        st.info("No run in the table has finished an epoch yet.")
        return
    st.caption("One point per run in the table; selected runs are in their colour.")
    st.plotly_chart(scatter)


def metric_picker(key: str, choices: dict[str, str]) -> str:
    if key not in st.session_state:
        st.session_state[key] = next(iter(choices))
    return st.segmented_control(
        "Compare on", list(choices), key=key, required=True, format_func=choices.get,
        persist_state=KEEP,
    )  # fmt: skip


def groups_tab(store: RunStore, shown: list[Run]) -> None:
    """The runs in the table grouped by their settings but the seed; two groups compared."""
    metric = metric_picker("compare_group_metric", METRICS)
    groups = group_runs(shown, metric)
    keys = differing([g.config for g in groups])
    names = [describe_group(g.config, keys) for g in groups]
    st.caption(
        "Runs in the table whose settings differ only in their seed form a group, best mean "
        "first. Train several seeds with **Repeats** on the Train page (or `python -m core "
        "train --repeats 5`) to tell a real difference from luck."
    )
    st.dataframe(
        compare.groups_table(groups, names),
        hide_index=True,
        column_config={
            "mean": st.column_config.NumberColumn(format="percent"),
            "± sd": st.column_config.NumberColumn(format="percent", help="standard deviation"),
        },
    )
    if len(groups) < 2:
        st.info("All the runs in the table have the same settings: there is nothing to compare.")
        return
    firsts = {g.ids[0]: (g, name) for g, name in zip(groups, names, strict=True)}
    left, right = st.columns(2)
    picks = []
    for column, label, default in ((left, "This group", 0), (right, "against", 1)):
        key = f"compare_group_{default}"
        if st.session_state.get(key) not in firsts:
            st.session_state[key] = list(firsts)[default]
        state.refresh_label(key, firsts[st.session_state[key]][1])  # filters rename groups
        picks.append(
            column.selectbox(label, list(firsts), key=key, format_func=lambda i: firsts[i][1])
        )
    if picks[0] == picks[1]:
        st.info("Choose two different groups.")
        return
    (a, name_a), (b, name_b) = firsts[picks[0]], firsts[picks[1]]
    result = verdict(a, b, (name_a, name_b))
    (st.success if result.clear else st.info)(result.sentence, icon=":material/balance:")
    if result.warning:
        st.warning(result.warning, icon=":material/warning:")
    epochs = store.epochs_of(a.ids + b.ids)
    st.plotly_chart(
        compare_figures.group_curves_figure(
            [(name_a, [epochs[i] for i in a.ids]), (name_b, [epochs[i] for i in b.ids])],
            (effects_figures.BLUE, effects_figures.VERMILLION),
            text_scale=presentation.text_scale(),
        ),
        config=grids.CHART_CONFIG,
    )
    st.caption("Each line is a group's mean; its band runs from its lowest to its highest run.")


def effects_tab(shown: list[Run]) -> None:
    """How much each varied setting matters to a metric, over the runs in the table."""
    fx = effects.parameter_effects(shown, metric_picker("compare_effects_metric", effects.METRICS))
    st.markdown(f"**Share of the differences in {fx.label} explained by each setting, alone**")
    st.markdown(fx.sentence)
    if fx.left_out_text:
        st.caption(fx.left_out_text + ".")
    figures = (
        effects_figures.ranking_figure(fx.ranking, text_scale=presentation.text_scale()),
        effects_figures.effects_figure(
            fx.table, fx.metric, kinds=fx.kinds, text_scale=presentation.text_scale()
        ),
    )
    for figure in figures:
        if figure is not None:
            st.plotly_chart(figure, config=grids.CHART_CONFIG)
    st.caption(fx.method)


def manage(store: RunStore, chosen: list[Run]) -> None:
    """Rename, tag, download or delete the selected runs."""
    session = st.session_state
    if not chosen:
        st.caption(
            "Tick a run in the table to rename, tag or delete it, or to download its metrics."
        )
        return
    ids, by_id = [r.id for r in chosen], {r.id: r for r in chosen}
    if session.get("compare_edit") not in ids:
        session["compare_edit"] = ids[0]
    chosen_run = by_id[session["compare_edit"]]
    state.refresh_label("compare_edit", f"#{chosen_run.id} {chosen_run.name}")  # after a rename
    run = by_id[
        st.selectbox(
            "Run",
            ids,
            key="compare_edit",
            format_func=lambda i: f"#{i} {by_id[i].name}",
            persist_state=KEEP,
        )
    ]
    with st.form(f"compare_edit_{run.id}", border=False):
        name_column, tags_column = st.columns(2)
        name = name_column.text_input("Name", run.name, max_chars=100)
        tags = tags_column.text_input(
            "Tags", ", ".join(run.tags), help="Separated by commas, e.g. baseline, adam"
        )
        if st.form_submit_button("Save name and tags", icon=":material/save:"):
            if not name.strip():
                st.error("A run needs a name: type one, then save again.")
            else:
                try:
                    store.rename(run.id, name)
                    store.set_tags(run.id, tags.split(","))
                    session[FLASH] = [("success", f"Saved run #{run.id}.")]
                except StoreError as exc:
                    session[FLASH] = [("error", f"Run #{run.id} was not saved: {exc}")]
                st.rerun()  # the sidebar's model list shows the new name
    st.download_button(
        f"Download the per-epoch metrics of #{run.id} (CSV)",
        compare.to_csv(compare.epochs_frame(store.epochs(run.id))),
        f"run-{run.id}-epochs.csv",
        "text/csv",
        icon=":material/download:",
        on_click="ignore",
    )
    delete(store, ids)


def delete(store: RunStore, ids: list[int]) -> None:
    """Delete, after asking: the runs with their checkpoints and snapshots."""
    session = st.session_state
    if session.get(CONFIRM) not in (None, ids):
        session.pop(CONFIRM)  # the selection changed since Delete was pressed: ask again
    listed = ", ".join(f"#{i}" for i in ids)
    if CONFIRM not in session:
        label = f"Delete {listed}…" if len(ids) <= 4 else f"Delete the {len(ids)} selected runs…"
        if st.button(label, icon=":material/delete:"):
            session[CONFIRM] = ids
            st.rerun()
        return
    st.warning(
        f"Delete {listed} for good, with their checkpoints and weight snapshots? This cannot "
        "be undone."
    )
    yes, no = st.columns([1, 4])
    if yes.button("Yes, delete", type="primary"):
        done, problems = compare.delete_runs(store, ids)
        session[SELECTED] = [i for i in session.get(SELECTED, []) if i not in done]
        flash = [("error", message) for message in problems]
        if done:
            deleted = ", ".join(f"#{i}" for i in done)
            flash.insert(0, ("success", f"Deleted run{'s' if len(done) > 1 else ''} {deleted}."))
        session[FLASH] = flash
        session.pop(CONFIRM, None)
        st.rerun()  # the sidebar's model list drops the deleted runs
    if no.button("Cancel"):
        session.pop(CONFIRM)
        st.rerun()


st.title("Compare runs")
st.caption(
    "Every training run is a row. Tick runs to overlay their curves and to see which settings "
    "differ; the address of this page keeps your choice, so you can share it as a link."
)
session = st.session_state
store = state.store()
runs = store.runs()
state.show_skipped(store)
by_id = {r.id: r for r in runs}
now = time.time()
for kind, message in session.pop(FLASH, []):
    getattr(st, kind)(message)
if not runs:
    st.info("No runs yet. Train a network on the Train page and it will appear here.")
    st.page_link("views/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

try:
    summaries = store.epoch_summaries()
except StoreError as exc:  # a locked store must not take the whole page down
    st.error(f"The per-epoch metrics could not be read ({exc}). Reload the page in a moment.")
    summaries = {}
varying = compare.varying_settings(runs)
options = {
    "status": list(STATUSES),
    "sweep": sorted({r.sweep for r in runs if r.sweep}),
    "tag": sorted({t for r in runs for t in r.tags}),
}
missing = compare.follow_link(session, compare.read_url(st.query_params), options, varying, by_id)
if missing:
    listed = ", ".join(f"#{i}" for i in missing)
    st.warning(f"Run {listed} from the link is no longer in the store.")

setting_filters = compare_widgets.filters(runs, options, varying)
chosen_filters = {param: session[key] for param, key in FILTERS.items()}
statuses, sweeps, tags = (chosen_filters[param] for param in ("status", "sweep", "tag"))
shown = compare.filter_runs(runs, statuses, sweeps, tags, setting_filters)
table = compare.runs_table(shown, varying, summaries, now)
visible = table["id"].tolist()
selected = compare.reconcile_selection(session, visible, by_id)
compare_widgets.runs_table(table, varying)
hidden = len(selected - set(visible))
st.caption(
    f"{len(shown)} of {len(runs)} runs shown · {len(selected)} selected"
    + (f" ({hidden} hidden by the filters)" if hidden else "")
    + " · tick the boxes on the left to compare runs; click a column header to sort."
)
left, right = st.columns([1, 3])
left.download_button(
    "Download the table (CSV)",
    compare.to_csv(table),
    "runs.csv",
    "text/csv",
    icon=":material/download:",
    on_click="ignore",
)
if selected and right.button("Clear the selection", icon=":material/deselect:"):
    session[SELECTED], session[VISIBLE] = [], []
    st.rerun()
wanted = compare.view_url(selected, chosen_filters, setting_filters, session.get(X_AXIS))
compare.write_url(st.query_params, session, wanted)

chosen = [by_id[i] for i in sorted(selected)]
colors = compare.run_colors(selected)
differ = compare.varying_settings(chosen)
labels = {r.id: compare.run_label(r, differ) for r in chosen}
# Each view is drawn only when its tab is open, so a load pays for one of them.
state.lazy_tabs(
    {
        "Curves of the selected runs": lambda: curves_tab(store, chosen, differ, labels, colors),
        "Settings against accuracy": lambda: parallel_tab(shown, summaries, colors),
        "Accuracy against time": lambda: scatter_tab(shown, summaries, colors, labels, now),
        "Seeds and verdict": lambda: groups_tab(store, shown),
        "What matters": lambda: effects_tab(shown),
    },
    key="compare_view",
)

st.subheader("Rename, tag, download or delete")
manage(store, chosen)
