"""Compare: every run in one table; tick runs to overlay their curves and see what differs.

The selection and the filters live in the URL (`?runs=12,13&status=finished&lr=0.1`), so a
comparison can be shared as a link; the Train page opens this page that way too.
"""

import time
from collections import Counter

import streamlit as st

from core.config import HELP
from core.runs import STATUSES, StoreError
from dashboard import compare as cmp
from dashboard import state

SELECTED = "compare_selected"  # ids of the selected runs, sorted
VISIBLE = "compare_visible"  # ids of the table's rows as last drawn, in order
TABLE = "compare_table"
URL_MEMO = "compare_url"  # this page's query parameters as it last wrote them
CONFIRM = "compare_confirm_delete"
FLASH = "compare_flash"
FILTERS = {"status": "compare_status", "sweep": "compare_sweep", "tag": "compare_tag"}
PARAMS = ["runs", *FILTERS, "x", *cmp.SETTINGS]
ss = st.session_state


def setting_key(name: str) -> str:
    return f"compare_set_{name}"


def read_url() -> dict[str, list[str]]:
    return {p: v for p in PARAMS if (v := st.query_params.get_all(p))}


def write_url(wanted: dict[str, list[str]]) -> None:
    """Put this page's state in the URL, leaving other parameters (the sidebar's) alone."""
    current = read_url()
    for param in PARAMS:
        value = wanted.get(param) or []
        if value != current.get(param, []):
            if value:
                st.query_params[param] = value
            else:
                st.query_params.pop(param, None)
    ss[URL_MEMO] = {p: v for p, v in wanted.items() if v}


def keep_valid(key: str, options: list[str]) -> None:
    # A value that vanished (a deleted run's tag, a sweep) would break the widget.
    if key in ss and any(v not in options for v in ss[key]):
        ss[key] = [v for v in ss[key] if v in options]


def delete_runs(ids: list[int]) -> None:
    """Delete runs with their files; a run still training is refused and kept."""
    done, messages = [], []
    for run_id in ids:
        try:
            store.delete(run_id)
            done.append(run_id)
        except KeyError:
            done.append(run_id)  # already gone: someone else deleted it
        except ValueError:
            messages.append(
                f"Run #{run_id} is still training, so it was not deleted: stop it on the "
                "Train page first, then delete it here."
            )
        except StoreError as exc:
            messages.append(f"Run #{run_id} was not deleted: {exc}")
    ss[SELECTED] = [i for i in ss.get(SELECTED, []) if i not in done]
    flash = [("error", m) for m in messages]
    if done:
        listed = ", ".join(f"#{i}" for i in done)
        flash.insert(0, ("success", f"Deleted run{'s' if len(done) > 1 else ''} {listed}."))
    ss[FLASH] = flash
    ss.pop(CONFIRM, None)


def curves(
    ids: list[int], labels: dict[int, str], colors: dict[int, str], x: str, live: bool
) -> None:
    """The overlaid curves; while a run trains this refreshes itself every few seconds."""
    runs = []
    for run_id in ids:
        try:
            runs.append(store.get(run_id))
        except KeyError:
            continue
    epochs = store.epochs_of(ids)
    st.plotly_chart(cmp.curves_figure(runs, epochs, colors, labels, x))
    waiting = [f"#{r.id} ({r.status})" for r in runs if not epochs[r.id]]
    if waiting:
        st.caption(f"No finished epoch yet for {', '.join(waiting)}.")
    if live and not any(r.active for r in runs):
        st.rerun()  # all done: redraw the whole page with the final results


st.title("Compare runs")
st.caption(
    "Every training run is a row. Tick runs to overlay their curves and to see which settings "
    "differ; the address of this page keeps your choice, so you can share it as a link."
)
store = state.store()
runs = store.list()
state.show_skipped(store)
by_id = {r.id: r for r in runs}
now = time.time()

for kind, message in ss.pop(FLASH, []):
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
varying = cmp.varying_settings(runs)
options = {
    "status": list(STATUSES),
    "sweep": sorted({r.sweep for r in runs if r.sweep}),
    "tag": sorted({t for r in runs for t in r.tags}),
}

# A link (shared, or the Train page's "vary one setting") decides the whole view; without
# one, the view stays as this session left it.
url = read_url()
from_link = bool(url) and url != ss.get(URL_MEMO)
if from_link:
    ss[SELECTED] = cmp.parse_run_ids(",".join(url.get("runs", [])))
    ss.pop(VISIBLE, None)  # the table's old ticks must not override the link
    for param, key in FILTERS.items():
        ss[key] = [v for v in url.get(param, []) if v in options[param]]
    ss["compare_settings"] = [k for k in varying if k in url]
    for k in varying:
        ss[setting_key(k)] = url.get(k, [])
    ss["compare_x"] = "seconds" if url.get("x") == ["seconds"] else "epoch"
    missing = [f"#{i}" for i in ss[SELECTED] if i not in by_id]
    if missing:
        st.warning(f"Run {', '.join(missing)} from the link is no longer in the store.")

# Filters
columns = st.columns(4)
for param, key in FILTERS.items():
    keep_valid(key, options[param])
counts = Counter(r.status for r in runs)
columns[0].multiselect(
    "Status", options["status"], key=FILTERS["status"], placeholder="any status",
    format_func=lambda s: f"{s} ({counts[s]})", persist_state="session",
)  # fmt: skip
columns[1].multiselect(
    "Sweep", options["sweep"], key=FILTERS["sweep"],
    placeholder="any sweep" if options["sweep"] else "no sweeps yet", persist_state="session",
    help="Runs started together by a sweep share a sweep id.",
)  # fmt: skip
columns[2].multiselect(
    "Tags", options["tag"], key=FILTERS["tag"], persist_state="session",
    placeholder="any tag" if options["tag"] else "no tags yet",
    help="Runs with any of these tags. Tag runs below the table.",
)  # fmt: skip
keep_valid("compare_settings", varying)
chosen_settings = columns[3].multiselect(
    "Filter by setting", varying, key="compare_settings", persist_state="session",
    placeholder="pick settings" if varying else "all runs share their settings",
    help="Pick settings, then the values to keep.",
)  # fmt: skip
setting_filters: dict[str, list[str]] = {}
for i, name in enumerate(chosen_settings):
    if i % 4 == 0:
        row = st.columns(4)
    values = cmp.setting_values(runs, name)
    keep_valid(setting_key(name), values)
    setting_filters[name] = row[i % 4].multiselect(
        name, values, key=setting_key(name), help=HELP.get(name), placeholder="any value",
        persist_state="session",
    )  # fmt: skip

shown = cmp.filter_runs(
    runs, ss[FILTERS["status"]], ss[FILTERS["sweep"]], ss[FILTERS["tag"]], setting_filters
)
table = cmp.runs_table(shown, varying, summaries, now)
visible = table["id"].tolist()

# The selection is kept as run ids: the table's ticks are row positions, which move
# whenever a filter changes, so fold the last ticks into the ids, then redraw them.
selected = set(ss.get(SELECTED, []))
if VISIBLE in ss and TABLE in ss:
    selected = cmp.merge_ticks(selected, ss[VISIBLE], ss[TABLE]["selection"]["rows"])
selected &= set(by_id)
rows = [i for i, run_id in enumerate(visible) if run_id in selected]
if TABLE not in ss or list(ss[TABLE]["selection"]["rows"]) != rows:
    ss[TABLE] = {"selection": {"rows": rows, "columns": [], "cells": []}}
ss[SELECTED], ss[VISIBLE] = sorted(selected), visible

st.dataframe(
    table, key=TABLE, on_select="rerun", selection_mode="multi-row", hide_index=True,
    placeholder="–",
    column_config={
        "id": st.column_config.NumberColumn("id", format="%d", width="small", pinned=True),
        "name": st.column_config.TextColumn("name", pinned=True),
        "started": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm"),
        "duration (s)": st.column_config.NumberColumn(
            "duration (s)", format="%.0f", help="Wall-clock seconds of training"
        ),
        **{k: st.column_config.Column(k, help=HELP.get(k)) for k in varying},
        cmp.ACCURACY: st.column_config.NumberColumn(
            cmp.ACCURACY, help="On the held-out validation images, at the best epoch",
            format="percent",
        ),
        "test accuracy": st.column_config.NumberColumn(
            "test accuracy", help="On the 10,000 test digits, with the best epoch's weights",
            format="percent",
        ),
    },
)  # fmt: skip
hidden = len(selected - set(visible))
st.caption(
    f"{len(shown)} of {len(runs)} runs shown · {len(selected)} selected"
    + (f" ({hidden} hidden by the filters)" if hidden else "")
    + " · tick the boxes on the left to compare runs; click a column header to sort."
)
left, right = st.columns([1, 3])
left.download_button(
    "Download the table (CSV)", cmp.to_csv(table), "runs.csv", "text/csv",
    icon=":material/download:", on_click="ignore",
)  # fmt: skip
if selected and right.button("Clear the selection", icon=":material/deselect:"):
    ss[SELECTED], ss[VISIBLE] = [], []
    st.rerun()

write_url(
    {
        "runs": [",".join(map(str, sorted(selected)))] if selected else [],
        **{param: list(ss[key]) for param, key in FILTERS.items()},
        **setting_filters,
        "x": ["seconds"] if ss.get("compare_x") == "seconds" else [],
    }
)

# The selected runs, and all runs
chosen = [by_id[i] for i in sorted(selected)]
colors = cmp.run_colors(selected)
differ = cmp.varying_settings(chosen)
labels = {r.id: cmp.run_label(r, differ) for r in chosen}

# Only the open tab is drawn: the parallel-coordinates plot needs WebGL, which is slow to
# start in a browser without a GPU, so it is not paid for on every load.
curves_tab, parallel_tab, scatter_tab = st.tabs(
    ["Curves of the selected runs", "Settings against accuracy", "Accuracy against time"],
    key="compare_view", on_change="rerun", bind="query-params",
)  # fmt: skip
if curves_tab.open:
    with curves_tab:
        if not chosen:
            st.info(
                "Tick one or more runs in the table to overlay their curves and see which "
                "settings differ; the other tabs show every run in the table."
            )
        else:
            if "compare_x" not in ss:
                ss["compare_x"] = "epoch"
            x = st.segmented_control(
                "Horizontal axis", ["epoch", "seconds"], key="compare_x", required=True,
                format_func=lambda v: "epochs" if v == "epoch" else "seconds of training",
                persist_state="session",
            )  # fmt: skip
            live = any(r.active for r in chosen)
            ids = sorted(selected)
            st.fragment(curves, run_every=3 if live else None)(ids, labels, colors, x, live)
            st.markdown("**Settings that differ**")
            if len(chosen) < 2:
                st.caption("Tick two or more runs to see which settings differ.")
            elif not differ:
                st.info("The selected runs have exactly the same settings.")
            else:
                st.dataframe(cmp.config_diff(chosen))
if parallel_tab.open:
    with parallel_tab:
        parallel = cmp.parallel_figure(shown, summaries, colors)
        if parallel is None:
            st.info("This needs two or more runs with an accuracy that differ in some setting.")
        else:
            st.caption(
                "One line per run in the table, through its settings to its best validation "
                "accuracy; selected runs are in their colour. Drag along an axis to keep only "
                "the lines in a range."
            )
            st.plotly_chart(parallel)
if scatter_tab.open:
    with scatter_tab:
        scatter = cmp.time_scatter(shown, summaries, colors, labels, now)
        if scatter is None:
            st.info("No run in the table has finished an epoch yet.")
        else:
            st.caption("One point per run in the table; selected runs are in their colour.")
            st.plotly_chart(scatter)

# Managing the selected runs
st.subheader("Rename, tag, download or delete")
if not chosen:
    st.caption("Tick a run in the table to rename, tag or delete it, or to download its metrics.")
else:
    ids = [r.id for r in chosen]
    if ss.get("compare_edit") not in ids:
        ss["compare_edit"] = ids[0]
    run = by_id[
        st.selectbox(
            "Run",
            ids,
            key="compare_edit",
            format_func=lambda i: f"#{i} {by_id[i].name}",
            persist_state="session",
        )
    ]
    with st.form(f"compare_edit_{run.id}", border=False):
        name_col, tags_col = st.columns(2)
        name = name_col.text_input("Name", run.name, max_chars=100)
        tags = tags_col.text_input(
            "Tags", ", ".join(run.tags), help="Separated by commas, e.g. baseline, adam"
        )
        if st.form_submit_button("Save name and tags", icon=":material/save:"):
            if not name.strip():
                st.error("A run needs a name: type one, then save again.")
            else:
                try:
                    store.rename(run.id, name)
                    store.set_tags(run.id, tags.split(","))
                    ss[FLASH] = [("success", f"Saved run #{run.id}.")]
                except StoreError as exc:
                    ss[FLASH] = [("error", f"Run #{run.id} was not saved: {exc}")]
                st.rerun()  # the sidebar's model list shows the new name
    st.download_button(
        f"Download the per-epoch metrics of #{run.id} (CSV)",
        cmp.to_csv(cmp.epochs_frame(store.epochs(run.id))),
        f"run-{run.id}-epochs.csv", "text/csv", icon=":material/download:", on_click="ignore",
    )  # fmt: skip

    if ss.get(CONFIRM) not in (None, ids):
        ss.pop(CONFIRM)  # the selection changed since Delete was pressed: ask again
    listed = ", ".join(f"#{i}" for i in ids)
    if CONFIRM not in ss:
        label = f"Delete {listed}…" if len(ids) <= 4 else f"Delete the {len(ids)} selected runs…"
        if st.button(label, icon=":material/delete:"):
            ss[CONFIRM] = ids
            st.rerun()
    else:
        st.warning(
            f"Delete {listed} for good, with their checkpoints and weight snapshots? "
            "This cannot be undone."
        )
        yes, no = st.columns([1, 4])
        if yes.button("Yes, delete", type="primary"):
            delete_runs(ids)
            st.rerun()  # the sidebar's model list drops the deleted runs
        if no.button("Cancel"):
            ss.pop(CONFIRM)
            st.rerun()
