"""The Compare page's widgets that hold its view: the filters, and the runs table with a
tick box per row. Their values live in the session (and, through dashboard.compare, in
the URL), so the view survives a visit to another page and can be shared as a link.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import pandas as pd
import streamlit as st

from core.config import HELP
from core.runs import Run
from dashboard import compare
from dashboard.compare import FILTERS, SETTINGS_SHOWN

KEEP = "session"  # every widget here outlives a visit to another page
# The filters above the table: label, placeholder (with options / without any), help.
FILTER_WIDGETS = {
    "status": ("Status", "any status", "any status", None),
    "sweep": ("Sweep", "any sweep", "no sweeps yet",
              "Runs started together by a sweep share a sweep id."),
    "tag": ("Tags", "any tag", "no tags yet",
            "Runs with any of these tags. Tag runs below the table."),
    "settings": ("Filter by setting", "pick settings", "all runs share their settings",
                 "Pick settings, then the values to keep."),
}  # fmt: skip


def filters(runs: list[Run], options: Mapping[str, list[str]], varying: list[str]) -> dict:
    """The filter widgets; returns the values kept for each setting picked to filter by."""
    session = st.session_state
    keys, choices = {**FILTERS, "settings": SETTINGS_SHOWN}, {**options, "settings": varying}
    counts = Counter(r.status for r in runs)
    picked = {}
    for column, (param, (label, some, none, tip)) in zip(
        st.columns(4), FILTER_WIDGETS.items(), strict=True
    ):
        compare.keep_valid(session, keys[param], choices[param])
        picked[param] = column.multiselect(
            label,
            choices[param],
            key=keys[param],
            placeholder=some if choices[param] else none,
            help=tip,
            format_func=(lambda s: f"{s} ({counts[s]})") if param == "status" else str,
            persist_state=KEEP,
        )
    values: dict[str, list[str]] = {}
    for i, name in enumerate(picked["settings"]):
        if i % 4 == 0:
            row = st.columns(4)
        setting_options = compare.setting_values(runs, name)
        compare.keep_valid(session, compare.setting_key(name), setting_options)
        values[name] = row[i % 4].multiselect(
            name,
            setting_options,
            key=compare.setting_key(name),
            help=HELP.get(name),
            placeholder="any value",
            persist_state=KEEP,
        )
    return values


def runs_table(table: pd.DataFrame, varying: list[str]) -> None:
    """The table of runs, with a tick box per row."""
    column = st.column_config
    st.dataframe(
        table,
        key=compare.TABLE,
        on_select="rerun",
        selection_mode="multi-row",
        hide_index=True,
        placeholder="–",
        column_config={
            "id": column.NumberColumn("id", format="%d", width="small", pinned=True),
            "name": column.TextColumn("name", pinned=True),
            "started": column.DatetimeColumn("started", format="YYYY-MM-DD HH:mm"),
            "duration (s)": column.NumberColumn(
                "duration (s)", format="%.0f", help="How long training took, in seconds"
            ),
            **{k: column.Column(k, help=HELP.get(k)) for k in varying},
            compare.ACCURACY: column.NumberColumn(
                compare.ACCURACY,
                help="On images set aside from training (the validation set), at the run's best "
                "epoch (an epoch is one pass over all the training images)",
                format="percent",
            ),
            "test accuracy": column.NumberColumn(
                "test accuracy",
                help="On the 10,000 test digits, which training never sees, with the best "
                "epoch's weights",
                format="percent",
            ),
        },
    )
