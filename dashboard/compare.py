"""Pure pieces of the Compare page: runs in, tables and Plotly figures out (no Streamlit)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from core.config import HELP, TrainConfig
from core.runs import Run

SETTINGS = [f.name for f in dataclasses.fields(TrainConfig)]
PALETTE = qualitative.Plotly + qualitative.Dark24[1:]  # Dark24[0] is near-black, like text
OTHER_COLOR = "rgba(140,140,140,0.45)"  # runs that are not selected
ACCURACY = "best validation accuracy"
TIME = "training time (s)"
EPOCH_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
                 "seconds", "elapsed"]  # fmt: skip
X_AXES = {"epoch": "epoch", "seconds": "wall-clock time since the run started (s)"}
LABEL_SETTINGS = 3  # differing settings named in a run's legend label; more would not fit


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


def _sort_key(text: str) -> tuple[int, float, str]:
    # Numbers in numeric order, then text: "0.01" < "0.1" < "1" < "adam".
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def setting_values(runs: Iterable[Run], key: str) -> list[str]:
    """The distinct values (as text) that `runs` use for setting `key`, in natural order."""
    return sorted({fmt_value(getattr(r.config, key)) for r in runs}, key=_sort_key)


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


# Bulk reads (read-only SQL against the run store's file)


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
    columns = ["id", "name", "status", "tags", "sweep", "started", "duration (s)", *settings,
               ACCURACY, "test accuracy"]  # fmt: skip
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


# Figures


def curves_figure(
    runs: Sequence[Run],
    epochs: Mapping[int, Sequence[Mapping[str, float]]],
    colors: Mapping[int, str],
    labels: Mapping[int, str],
    x: str = "epoch",
    height: int = 380,
) -> go.Figure:
    """Validation accuracy, validation loss and training loss of `runs`, overlaid.

    `x` is "epoch" or "seconds" (wall-clock time since each run started); one colour and one
    legend entry per run, shared by the three panels.
    """
    fig = make_subplots(
        rows=1, cols=3, subplot_titles=("Validation accuracy", "Validation loss", "Training loss"),
        horizontal_spacing=0.07,
    )  # fmt: skip
    x_key = "elapsed" if x == "seconds" else "epoch"
    x_hover = "%{x:.0f} s" if x == "seconds" else "epoch %{x}"
    panels = (("val_accuracy", "%{y:.2%}"), ("val_loss", "%{y:.4f}"), ("train_loss", "%{y:.4f}"))
    for run in runs:
        rows = epochs.get(run.id, [])
        for col, (metric, y_hover) in enumerate(panels, start=1):
            fig.add_trace(
                go.Scatter(
                    x=[e[x_key] for e in rows], y=[e[metric] for e in rows],
                    mode="lines+markers", name=labels[run.id], legendgroup=str(run.id),
                    showlegend=col == 1, line=dict(color=colors[run.id], width=2),
                    marker=dict(size=5),
                    hovertemplate=f"{x_hover}: {y_hover}<extra>{labels[run.id]}</extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
    fig.update_xaxes(title_text=X_AXES[x])
    fig.update_yaxes(title_text="accuracy", tickformat=".1%", row=1, col=1)
    fig.update_yaxes(title_text="cross-entropy loss", row=1, col=2)
    fig.update_yaxes(title_text="cross-entropy loss", row=1, col=3)
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.22, x=0),
    )
    return fig


def _dimension(key: str, texts: Sequence[str]) -> dict[str, Any]:
    """A parallel-coordinates axis for one setting; text is categorical, wide ranges are log."""
    distinct = sorted(set(texts), key=_sort_key)
    if all(_sort_key(t)[0] == 0 for t in distinct):
        low, high = float(distinct[0]), float(distinct[-1])
        if low > 0 and high / low >= 100:
            # Learning rates 0.001 … 1 would crowd at the bottom of a linear axis.
            log = {t: math.log10(float(t)) for t in distinct}
            return dict(label=f"{key} (log)", values=[log[t] for t in texts],
                        tickvals=list(log.values()), ticktext=distinct)  # fmt: skip
        return dict(label=key, values=[float(t) for t in texts])
    index = {t: i for i, t in enumerate(distinct)}
    return dict(label=key, values=[index[t] for t in texts], tickvals=list(index.values()),
                ticktext=distinct)  # fmt: skip


def parallel_figure(
    runs: Sequence[Run],
    summaries: Mapping[int, Mapping[str, float]],
    colors: Mapping[int, str],
    height: int = 420,
) -> go.Figure | None:
    """Every run with an accuracy as one line through its differing settings to its accuracy.

    Selected runs (the keys of `colors`) are drawn in their colours over the others in grey;
    with none selected, lines are coloured by accuracy. None when there is nothing to compare.
    """
    scored = [r for r in runs if best_accuracy(r, summaries) is not None]
    keys = varying_settings(scored)
    if len(scored) < 2 or not keys:
        return None
    # Grey lines first, so the selected runs are drawn on top of them.
    scored.sort(key=lambda r: (r.id in colors, r.id))
    accuracy = [best_accuracy(r, summaries) for r in scored]
    dims = [_dimension(k, [fmt_value(getattr(r.config, k)) for r in scored]) for k in keys]
    dims.append(dict(label=ACCURACY, values=accuracy, tickformat=".1%"))
    chosen = sorted(set(colors) & {r.id for r in scored})
    if chosen:
        # A stepped colour scale: value i is the i-th selected run's colour, the last step grey.
        steps = [*(colors[i] for i in chosen), OTHER_COLOR]
        position = {run_id: i for i, run_id in enumerate(chosen)}
        scale = []
        for i, color in enumerate(steps):
            scale += [[i / len(steps), color], [(i + 1) / len(steps), color]]
        line = dict(color=[position.get(r.id, len(chosen)) for r in scored], colorscale=scale,
                    cmin=-0.5, cmax=len(chosen) + 0.5, showscale=False)  # fmt: skip
    else:
        line = dict(color=accuracy, colorscale="Viridis", showscale=True,
                    colorbar=dict(title=dict(text="accuracy"), tickformat=".1%"))  # fmt: skip
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line))
    fig.update_layout(height=height, margin=dict(l=60, r=60, t=50, b=20))
    return fig


def time_scatter(
    runs: Sequence[Run],
    summaries: Mapping[int, Mapping[str, float]],
    colors: Mapping[int, str],
    labels: Mapping[int, str],
    now: float,
    height: int = 380,
) -> go.Figure | None:
    """Best validation accuracy against training time, one point per run; None if no run has
    both. Selected runs (the keys of `colors`) get their colour and a legend entry."""
    points = [
        (r, best_accuracy(r, summaries), duration(r, summaries, now))
        for r in runs
        if best_accuracy(r, summaries) is not None and duration(r, summaries, now) is not None
    ]
    if not points:
        return None
    fig = go.Figure()
    others = [p for p in points if p[0].id not in colors]
    if others:
        fig.add_trace(
            go.Scatter(
                x=[p[2] for p in others], y=[p[1] for p in others], mode="markers",
                name="other runs", marker=dict(color=OTHER_COLOR, size=8),
                text=[f"#{p[0].id} {p[0].name}" for p in others],
                hovertemplate="%{text}<br>%{x:.0f} s: %{y:.2%}<extra></extra>",
            )
        )  # fmt: skip
    for run, acc, secs in sorted((p for p in points if p[0].id in colors), key=lambda p: p[0].id):
        fig.add_trace(
            go.Scatter(
                x=[secs], y=[acc], mode="markers", name=labels.get(run.id, f"#{run.id}"),
                marker=dict(color=colors[run.id], size=12, line=dict(color="white", width=1)),
                hovertemplate=f"#{run.id} {run.name}<br>%{{x:.0f}} s: %{{y:.2%}}<extra></extra>",
            )
        )  # fmt: skip
    fig.update_xaxes(title_text=TIME, rangemode="tozero")
    fig.update_yaxes(title_text=ACCURACY, tickformat=".1%")
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0),
    )
    return fig
