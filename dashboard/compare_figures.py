"""Pure figure builders for the Compare page: runs in, Plotly figures out.

The curves of the selected runs overlaid, every run as a line through its settings to its
accuracy (parallel coordinates), and accuracy against training time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.runs import Run
from dashboard.compare import (
    ACCURACY,
    best_accuracy,
    duration,
    fmt_value,
    sort_key,
    varying_settings,
)

OTHER_COLOR = "rgba(140,140,140,0.45)"  # runs that are not selected
TIME = "training time (s)"
X_AXES = {
    "epoch": "epoch (one pass over all the training images)",
    "seconds": "time since the run started (seconds)",
}


# Lower is better; the exact measure (cross-entropy) after the plain words.
LOSS_TITLE = "error, lower is better (cross-entropy loss)"


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
    legend entry per run, shared by the three panels. A run continued from another (Train
    more) is drawn from its parent's epoch on, so their curves join.
    """
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(
            "Accuracy on images set aside (validation)",
            "Error on images set aside (validation loss)",
            "Error on the training images (training loss)",
        ),
        horizontal_spacing=0.07,
    )
    x_key = "elapsed" if x == "seconds" else "epoch"
    x_hover = "%{x:.0f} s" if x == "seconds" else "epoch %{x}"
    panels = (("val_accuracy", "%{y:.2%}"), ("val_loss", "%{y:.4f}"), ("train_loss", "%{y:.4f}"))
    for run in runs:
        rows = epochs.get(run.id, [])
        offset = run.epoch_offset if x_key == "epoch" else 0
        for col, (metric, y_hover) in enumerate(panels, start=1):
            fig.add_trace(
                go.Scatter(
                    x=[e[x_key] + offset for e in rows],
                    y=[e[metric] for e in rows],
                    mode="lines+markers",
                    name=labels[run.id],
                    legendgroup=str(run.id),
                    showlegend=col == 1,
                    line=dict(color=colors[run.id], width=2),
                    marker=dict(size=5),
                    hovertemplate=f"{x_hover}: {y_hover}<extra>{labels[run.id]}</extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text=X_AXES[x])
    fig.update_yaxes(title_text="accuracy", tickformat=".1%", row=1, col=1)
    fig.update_yaxes(title_text=LOSS_TITLE, row=1, col=2)
    fig.update_yaxes(title_text=LOSS_TITLE, row=1, col=3)
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.22, x=0),
    )
    return fig


def _dimension(key: str, texts: Sequence[str]) -> dict[str, Any]:
    """A parallel-coordinates axis for one setting; text is categorical, wide ranges are log."""
    distinct = sorted(set(texts), key=sort_key)
    if all(sort_key(t)[0] == 0 for t in distinct):
        low, high = float(distinct[0]), float(distinct[-1])
        if low > 0 and high / low >= 100:
            # Learning rates 0.001 … 1 would crowd at the bottom of a linear axis.
            log = {t: math.log10(float(t)) for t in distinct}
            return dict(
                label=f"{key} (log)",
                values=[log[t] for t in texts],
                tickvals=list(log.values()),
                ticktext=distinct,
            )
        return dict(label=key, values=[float(t) for t in texts])
    index = {t: i for i, t in enumerate(distinct)}
    return dict(
        label=key,
        values=[index[t] for t in texts],
        tickvals=list(index.values()),
        ticktext=distinct,
    )


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
        line = dict(
            color=[position.get(r.id, len(chosen)) for r in scored],
            colorscale=scale,
            cmin=-0.5,
            cmax=len(chosen) + 0.5,
            showscale=False,
        )
    else:
        line = dict(
            color=accuracy,
            colorscale="Viridis",
            showscale=True,
            colorbar=dict(title=dict(text="accuracy"), tickformat=".1%"),
        )
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
                x=[p[2] for p in others],
                y=[p[1] for p in others],
                mode="markers",
                name="other runs",
                marker=dict(color=OTHER_COLOR, size=8),
                text=[f"#{p[0].id} {p[0].name}" for p in others],
                hovertemplate="%{text}<br>%{x:.0f} s: %{y:.2%}<extra></extra>",
            )
        )
    for run, acc, secs in sorted((p for p in points if p[0].id in colors), key=lambda p: p[0].id):
        fig.add_trace(
            go.Scatter(
                x=[secs],
                y=[acc],
                mode="markers",
                name=labels.get(run.id, f"#{run.id}"),
                marker=dict(color=colors[run.id], size=12, line=dict(color="white", width=1)),
                hovertemplate=f"#{run.id} {run.name}<br>%{{x:.0f}} s: %{{y:.2%}}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text=TIME, rangemode="tozero")
    fig.update_yaxes(title_text=ACCURACY, tickformat=".1%")
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0),
    )
    return fig


def group_curves_figure(
    groups: Sequence[tuple[str, Sequence[Sequence[Mapping[str, float]]]]],
    colors: Sequence[str],
    metric: str = "val_accuracy",
    height: int = 380,
    text_scale: float = 1.0,
) -> go.Figure:
    """Each group's mean curve of `metric` over its runs, with a band from the lowest to the
    highest run at each epoch; `groups` holds (name, each run's epochs). `text_scale`
    enlarges its fixed-size text (1.5 in presentation mode)."""
    fig = go.Figure()
    accuracy = metric.endswith("accuracy")
    y_hover = "%{y:.2%}" if accuracy else "%{y:.4f}"
    for (name, runs), color in zip(groups, colors, strict=False):
        by_epoch: dict[int, list[float]] = {}
        for rows in runs:
            for e in rows:
                by_epoch.setdefault(int(e["epoch"]), []).append(e[metric])
        xs = sorted(by_epoch)
        means = [sum(by_epoch[x]) / len(by_epoch[x]) for x in xs]
        counts = [len(by_epoch[x]) for x in xs]
        label = f"{name}: mean of {len(runs)} run{'s' if len(runs) != 1 else ''}"
        fig.add_trace(
            go.Scatter(
                x=xs + xs[::-1],
                y=[max(by_epoch[x]) for x in xs] + [min(by_epoch[x]) for x in xs][::-1],
                fill="toself",
                mode="lines",
                fillcolor=_translucent(color),
                line=dict(width=0),
                name=f"{name}: lowest to highest run",
                legendgroup=name,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=means,
                customdata=counts,
                mode="lines+markers",
                name=label,
                legendgroup=name,
                line=dict(color=color, width=3),
                hovertemplate=f"epoch %{{x}}: {y_hover} (mean of %{{customdata}})"
                f"<extra>{name}</extra>",
            )
        )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(
        title_text="accuracy on images set aside (validation)"
        if metric == "val_accuracy"
        else metric.replace("_", " "),
        tickformat=".1%" if accuracy else None,
    )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=20, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0),
        font=dict(size=round(15 * text_scale)),
    )
    return fig


def _translucent(color: str, alpha: float = 0.2) -> str:
    """A '#rrggbb' or 'rgb(r,g,b)' colour as rgba with `alpha`, for a band under its line."""
    if color.startswith("#") and len(color) == 7:
        r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    else:
        r, g, b = (int(float(v)) for v in color[color.index("(") + 1 : -1].split(",")[:3])
    return f"rgba({r},{g},{b},{alpha})"
