"""Pure figure builders for the Compare page: runs in, Plotly figures out.

The curves of the selected runs overlaid, every run as a line through its settings to its
accuracy (parallel coordinates), and accuracy against training time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.colors import sample_colorscale
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
AXIS_COLOR = "#555"
LABEL_BACKING = "rgba(255,255,255,0.75)"  # behind an axis's values, so lines do not cross them
ACCURACY_SCALE = "Viridis"  # lines by accuracy when no run is selected
MAX_TICKS = 8  # labelled values on one axis of the parallel-coordinates figure
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


@dataclass(frozen=True)
class Axis:
    """One upright axis of the parallel-coordinates figure: a title, and where each run and
    each tick sit on it, from 0 (bottom) to 1 (top)."""

    title: str
    positions: list[float]  # one per run
    ticks: list[tuple[float, str]]  # (position, text)


def _spread(values: Sequence[float]) -> list[float]:
    """`values` rescaled to 0..1 (all at the middle when they are all equal)."""
    low, high = min(values), max(values)
    return [0.5 if high == low else (v - low) / (high - low) for v in values]


def _axis(key: str, texts: Sequence[str]) -> Axis:
    """The axis of one setting: text is categorical (evenly spaced), wide ranges are log."""
    distinct = sorted(set(texts), key=sort_key)
    if all(sort_key(t)[0] == 0 for t in distinct):
        low, high = float(distinct[0]), float(distinct[-1])
        if low > 0 and high / low >= 100:
            # Learning rates 0.001 … 1 would crowd at the bottom of a linear axis.
            logs = [math.log10(float(t)) for t in distinct]
            where = dict(zip(distinct, _spread(logs), strict=True))
            title = f"{key} (log)"
        else:
            where = dict(zip(distinct, _spread([float(t) for t in distinct]), strict=True))
            title = key
    else:
        where = dict(zip(distinct, _spread(range(len(distinct))), strict=True))
        title = key
    # At most MAX_TICKS labels, always the ends: thirty dropout values would overprint.
    step = math.ceil(len(distinct) / MAX_TICKS)
    labelled = {*distinct[::step], distinct[-1]}
    ticks = [(where[t], t) for t in distinct if t in labelled]
    return Axis(title, [where[t] for t in texts], ticks)


def _accuracy_axis(accuracy: Sequence[float]) -> Axis:
    low, high = min(accuracy), max(accuracy)
    ticks = sorted({low, (low + high) / 2, high})
    spread = dict(zip(ticks, _spread(ticks), strict=True))
    return Axis(
        ACCURACY,
        _spread(accuracy),
        [(spread[t], f"{t:.1%}") for t in ticks],
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
    Drawn as plain 2-D lines (SVG): Plotly's own parallel-coordinates chart needs WebGL,
    which took 4 s to draw in a browser without a graphics card.
    """
    scored = [r for r in runs if best_accuracy(r, summaries) is not None]
    keys = varying_settings(scored)
    if len(scored) < 2 or not keys:
        return None
    # Grey lines first, so the selected runs are drawn on top of them.
    scored.sort(key=lambda r: (r.id in colors, r.id))
    accuracy = [best_accuracy(r, summaries) for r in scored]
    texts = {k: [fmt_value(getattr(r.config, k)) for r in scored] for k in keys}
    axes = [_axis(k, texts[k]) for k in keys] + [_accuracy_axis(accuracy)]
    fig = go.Figure()
    for i, run in enumerate(scored):
        if run.id in colors:
            color, width = colors[run.id], 3
        elif colors:
            color, width = OTHER_COLOR, 1.5
        else:
            color, width = sample_colorscale(ACCURACY_SCALE, axes[-1].positions[i])[0], 2
        shown = [texts[k][i] for k in keys] + [f"{accuracy[i]:.2%}"]
        name = run.name or f"run {run.id}"
        fig.add_trace(
            go.Scatter(
                x=list(range(len(axes))),
                y=[axis.positions[i] for axis in axes],
                mode="lines+markers",
                line=dict(color=color, width=width),
                marker=dict(size=6, color=color),
                name=name,
                customdata=[[a.title, text] for a, text in zip(axes, shown, strict=True)],
                hovertemplate="%{customdata[0]}: %{customdata[1]}<extra>%{fullData.name}</extra>",
                showlegend=False,
            )
        )
    if not colors:  # the key to the colours: an invisible point with a colour bar
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker=dict(
                    colorscale=ACCURACY_SCALE,
                    cmin=min(accuracy),
                    cmax=max(accuracy),
                    color=[min(accuracy)],
                    showscale=True,
                    colorbar=dict(title=dict(text="accuracy"), tickformat=".1%"),
                ),
                hoverinfo="skip",
                showlegend=False,
            )
        )
    for x, axis in enumerate(axes):
        fig.add_shape(type="line", x0=x, x1=x, y0=0, y1=1, line=dict(color=AXIS_COLOR, width=1))
        for y, text in axis.ticks:
            fig.add_annotation(
                x=x,
                y=y,
                text=text,
                showarrow=False,
                xanchor="left",
                xshift=6,
                bgcolor=LABEL_BACKING,
            )
    fig.update_xaxes(
        tickvals=list(range(len(axes))),
        ticktext=[a.title for a in axes],
        side="top",
        range=[-0.3, len(axes) - 0.3],
        showgrid=False,
        zeroline=False,
    )
    fig.update_yaxes(visible=False, range=[-0.05, 1.05])
    fig.update_layout(height=height, margin=dict(l=20, r=20, t=50, b=20), hovermode="closest")
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
