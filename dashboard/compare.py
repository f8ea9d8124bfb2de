"""Pure pieces of the Compare page (no Streamlit): runs in, tables out; and the page's view
(selection, filters, axis) kept in the URL, the session and the table's ticks.

The functions that keep the view take the session as a mapping and the URL as Streamlit's
query parameters (anything with get_all, item assignment and pop), so they can be tested
with plain stand-ins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, MutableMapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from plotly.colors import qualitative

from core.config import HELP, TrainConfig
from core.control import describe
from core.groups import Group
from core.runs import Run, RunStore, StoreError

SETTINGS = [f.name for f in dataclasses.fields(TrainConfig)]
PALETTE = qualitative.Plotly + qualitative.Dark24[1:]  # Dark24[0] is near-black, like text
ACCURACY = "best validation accuracy"
EPOCH_COLUMNS = [
    "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds",
    "elapsed",
]  # fmt: skip
LABEL_SETTINGS = 3  # differing settings named in a run's legend label; more would not fit
# Session keys of the view
SELECTED = "compare_selected"  # ids of the selected runs, sorted
VISIBLE = "compare_visible"  # ids of the table's rows as last drawn, in order
TABLE = "compare_table"  # the table's own selection state (its ticks)
URL_MEMO = "compare_url"  # this page's query parameters as it last wrote them
SETTINGS_SHOWN = "compare_settings"  # the settings picked to filter by
X_AXIS = "compare_x"
FILTERS = {"status": "compare_status", "sweep": "compare_sweep", "tag": "compare_tag"}
PARAMS = ["runs", *FILTERS, "x", *SETTINGS]  # the query parameters this page owns


# Values and settings


def fmt_value(value: Any) -> str:
    """A setting's value as short text, the same in the table, the filters and the URL."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return format(value, ".10g")
    return str(value)


def sort_key(text: str) -> tuple[int, float, str]:
    # Numbers in numeric order, then text: "0.01" < "0.1" < "1" < "adam".
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def setting_values(runs: Iterable[Run], key: str) -> list[str]:
    """The distinct values (as text) that `runs` use for setting `key`, in natural order."""
    return sorted({fmt_value(getattr(r.config, key)) for r in runs}, key=sort_key)


def varying_settings(runs: Sequence[Run]) -> list[str]:
    """The settings on which at least two of `runs` differ, in TrainConfig's order."""
    return [k for k in SETTINGS if len({fmt_value(getattr(r.config, k)) for r in runs}) > 1]


def parse_run_ids(text: str | None) -> list[int]:
    """Run ids from a URL value like "12,13,14"; anything else in it is ignored."""
    ids = {int(part) for part in (text or "").split(",") if part.strip().isdigit()}
    return sorted(ids)


def merge_ticks(selected: Collection[int], shown: Sequence[int], rows: Iterable[int]) -> set[int]:
    """The selection after the user ticked `rows` (positions) of a table showing the runs `shown`;
    selected runs that the table does not show stay selected."""
    ticked = {shown[i] for i in rows if 0 <= i < len(shown)}
    return (set(selected) - set(shown)) | ticked


def run_colors(ids: Iterable[int]) -> dict[int, str]:
    """One colour per run, by ascending id, so every chart on the page agrees."""
    return {run_id: PALETTE[i % len(PALETTE)] for i, run_id in enumerate(sorted(ids))}


def run_label(run: Run, keys: Sequence[str] = ()) -> str:
    """A run's legend label: its id and the settings that set it apart, else its name."""
    shown = [f"{k}={fmt_value(getattr(run.config, k))}" for k in keys[:LABEL_SETTINGS]]
    if len(keys) > LABEL_SETTINGS:
        shown.append("…")
    return f"#{run.id} " + (", ".join(shown) if shown else run.name)


def filter_runs(
    runs: Iterable[Run],
    statuses: Collection[str] = (),
    sweeps: Collection[str] = (),
    tags: Collection[str] = (),
    settings: Mapping[str, Collection[str]] | None = None,
) -> list[Run]:
    """The runs passing every non-empty filter; within one filter any chosen value passes."""
    settings = {k: v for k, v in (settings or {}).items() if v}
    return [
        r
        for r in runs
        if (not statuses or r.status in statuses)
        and (not sweeps or r.sweep in sweeps)
        and (not tags or not set(tags).isdisjoint(r.tags))
        and all(fmt_value(getattr(r.config, k)) in v for k, v in settings.items())
    ]


# The runs table


def best_accuracy(run: Run, summaries: Mapping[int, Mapping[str, float]]) -> float | None:
    """The run's best validation accuracy: recorded at the end, else the best epoch so far."""
    if run.best_val_accuracy is not None:
        return run.best_val_accuracy
    return summaries.get(run.id, {}).get("best_val_accuracy")


def duration(run: Run, summaries: Mapping[int, Mapping[str, float]], now: float) -> float | None:
    """Seconds of training: the recorded time, the time so far, or None if it never started."""
    if run.train_seconds is not None:
        return run.train_seconds
    if run.status == "running" and run.started is not None:
        return max(now - run.started, 0.0)
    if run.started is not None and run.ended is not None:
        return max(run.ended - run.started, 0.0)
    return summaries.get(run.id, {}).get("elapsed")


def runs_table(
    runs: Sequence[Run],
    settings: Sequence[str],
    summaries: Mapping[int, Mapping[str, float]],
    now: float,
) -> pd.DataFrame:
    """One row per run: identity, status, timing, the given settings, and its accuracies."""
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "id": run.id,
            "name": run.name,
            "status": run.status,
            "tags": ", ".join(run.tags),
            "sweep": run.sweep,
            "started": datetime.fromtimestamp(run.started) if run.started else None,
            "duration (s)": duration(run, summaries, now),
        }
        for key in settings:
            value = getattr(run.config, key)
            row[key] = fmt_value(value) if isinstance(value, list) else value
        row[ACCURACY] = best_accuracy(run, summaries)
        row["test accuracy"] = run.test_accuracy
        rows.append(row)
    columns = [
        "id",
        "name",
        "status",
        "tags",
        "sweep",
        "started",
        "duration (s)",
        *settings,
        ACCURACY,
        "test accuracy",
    ]
    table = pd.DataFrame(rows, columns=columns)
    table["started"] = pd.to_datetime(table["started"])
    for key in ("duration (s)", ACCURACY, "test accuracy"):
        table[key] = table[key].astype(float)
    return table


def config_diff(runs: Sequence[Run]) -> pd.DataFrame:
    """Only the settings on which `runs` differ: one row per setting, one column per run."""
    keys = varying_settings(runs)
    table = pd.DataFrame(
        {f"#{r.id} {r.name}": [fmt_value(getattr(r.config, k)) for k in keys] for r in runs},
        index=pd.Index(keys, name="setting"),
    )
    table["what it means"] = [HELP.get(k, "") for k in keys]
    return table


def history_table(
    runs: Sequence[Run], events: Mapping[int, Sequence[Mapping[str, Any]]]
) -> pd.DataFrame:
    """What happened to the runs while they trained: each one's parent (Train more) and its
    events (pauses, steps, knob changes), one row each, in order; empty if nothing did."""
    rows = []
    for run in runs:
        name = f"#{run.id} {run.name}"
        if run.parent is not None:
            rows.append(
                {
                    "run": name,
                    "epoch": float(run.epoch_offset),
                    "batch": 0,
                    "what happened": f"continued from run #{run.parent} at its epoch "
                    f"{run.epoch_offset}",
                }
            )
        for event in events.get(run.id, ()):
            rows.append(
                {
                    "run": name,
                    "epoch": run.epoch_offset + float(event["epoch"]),
                    "batch": int(event["step"]),
                    "what happened": describe(event),
                }
            )
    return pd.DataFrame(rows, columns=["run", "epoch", "batch", "what happened"])


def epochs_frame(epochs: Sequence[Mapping[str, float]]) -> pd.DataFrame:
    """A run's per-epoch metrics as a table, one row per epoch."""
    return pd.DataFrame(list(epochs), columns=EPOCH_COLUMNS)


def to_csv(table: pd.DataFrame, index: bool = False) -> bytes:
    """CSV bytes, with text that a spreadsheet would run as a formula made inert."""
    safe = table.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(_inert)
    return safe.to_csv(index=index).encode()


def _inert(value: Any) -> Any:
    # A run name such as "=HYPERLINK(...)" is data; a leading quote keeps it data in Excel.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# The view: URL, session and the table's ticks


def setting_key(name: str) -> str:
    """The session key of the values kept for setting `name`."""
    return f"compare_set_{name}"


def read_url(params: Any) -> dict[str, list[str]]:
    """This page's query parameters, leaving out the others (the sidebar's model)."""
    return {p: v for p in PARAMS if (v := params.get_all(p))}


def write_url(params: Any, session: MutableMapping[str, Any], wanted: dict[str, list[str]]) -> None:
    """Put this page's view in the URL, touching only the parameters that change."""
    current = read_url(params)
    for param in PARAMS:
        value = wanted.get(param) or []
        if value != current.get(param, []):
            if value:
                params[param] = value
            else:
                params.pop(param, None)
    session[URL_MEMO] = {p: v for p, v in wanted.items() if v}


def follow_link(
    session: MutableMapping[str, Any],
    url: dict[str, list[str]],
    options: Mapping[str, Sequence[str]],
    varying: Sequence[str],
    known: Collection[int],
) -> list[int]:
    """Let a link (a URL this page did not write: shared, or the Train page's "vary one
    setting") decide the whole view; returns the linked runs that are not in the store.

    Without a link the view stays as this session left it.
    """
    if not url or url == session.get(URL_MEMO):
        return []
    session[SELECTED] = parse_run_ids(",".join(url.get("runs", [])))
    session.pop(VISIBLE, None)  # the table's old ticks must not override the link
    for param, key in FILTERS.items():
        session[key] = [v for v in url.get(param, []) if v in options[param]]
    session[SETTINGS_SHOWN] = [k for k in varying if k in url]
    for k in varying:
        session[setting_key(k)] = url.get(k, [])
    session[X_AXIS] = "seconds" if url.get("x") == ["seconds"] else "epoch"
    return [i for i in session[SELECTED] if i not in known]


def keep_valid(session: MutableMapping[str, Any], key: str, options: Sequence[str]) -> None:
    """Drop chosen values that are no longer offered (a deleted run's tag, a sweep): a
    multiselect given a value outside its options fails."""
    if key in session and any(v not in options for v in session[key]):
        session[key] = [v for v in session[key] if v in options]


def reconcile_selection(
    session: MutableMapping[str, Any], visible: Sequence[int], known: Collection[int]
) -> set[int]:
    """The selected run ids, after the ticks the table last reported; the table's ticks are
    then set to the selected runs among the `visible` rows.

    The selection is kept as run ids: the ticks are row positions, which move whenever a
    filter changes, so the last ticks are folded into the ids before the table is redrawn.
    """
    selected = set(session.get(SELECTED, []))
    if VISIBLE in session and TABLE in session:
        selected = merge_ticks(selected, session[VISIBLE], session[TABLE]["selection"]["rows"])
    selected &= set(known)
    rows = [i for i, run_id in enumerate(visible) if run_id in selected]
    if TABLE not in session or list(session[TABLE]["selection"]["rows"]) != rows:
        session[TABLE] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    session[SELECTED], session[VISIBLE] = sorted(selected), list(visible)
    return selected


def view_url(
    selected: Collection[int],
    filters: Mapping[str, Sequence[str]],
    settings: Mapping[str, Sequence[str]],
    x: str | None,
) -> dict[str, list[str]]:
    """The query parameters of a view: the selected runs, the filters (by parameter), the
    setting filters and the horizontal axis (epochs are the default, so not written)."""
    return {
        "runs": [",".join(map(str, sorted(selected)))] if selected else [],
        **{param: list(values) for param, values in filters.items()},
        **{name: list(values) for name, values in settings.items()},
        "x": ["seconds"] if x == "seconds" else [],
    }


def delete_runs(store: RunStore, ids: Iterable[int]) -> tuple[list[int], list[str]]:
    """Delete runs with their files; returns the ids gone and a message per run kept (a run
    still training is refused, a store fault is named)."""
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
    return done, messages


# Groups of seeds


def groups_table(groups: Sequence[Group], names: Sequence[str]) -> pd.DataFrame:
    """One row per group, in the groups' order (best mean first): its name, n, mean ± sd and
    runs."""
    return pd.DataFrame(
        {
            "group": list(names),
            "runs with a result": [g.n for g in groups],
            "mean": [g.mean for g in groups],
            "± sd": [g.std for g in groups],
            "runs": [", ".join(f"#{i}" for i in g.ids) for g in groups],
        }
    )
