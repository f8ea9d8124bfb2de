"""Pure figure builders for training curves: per-epoch metrics in, Plotly figure out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from core.control import describe

TRAIN_COLOR, VAL_COLOR, BATCH_COLOR = "#1f77b4", "#ff7f0e", "rgba(31,119,180,0.25)"
EVENT_COLOR = "#7f7f7f"
MERGE = 0.01  # events closer than this fraction of the x range share one line
MAX_LABELS = 3  # different labels written out on one line; the rest are counted


def merge_events(
    xs: Sequence[float], labels: Sequence[str], span: float
) -> list[tuple[float, str]]:
    """(x, label) of one line per group of events closer than MERGE * span to the group's
    first; a group's label joins its different labels in order ("paused, lr 0.1 → 0.01"),
    repeated ones counted ("step 1 batch ×12")."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    gap = MERGE * span if span > 0 else 0.0
    groups: list[tuple[float, list[str]]] = []
    for i in order:
        if groups and xs[i] - groups[-1][0] <= gap:
            groups[-1][1].append(labels[i])
        else:
            groups.append((xs[i], [labels[i]]))
    return [(x, _join(texts)) for x, texts in groups]


def _join(texts: list[str]) -> str:
    counts: dict[str, int] = {}
    for text in texts:
        counts[text] = counts.get(text, 0) + 1
    parts = [f"{t} ×{n}" if n > 1 else t for t, n in counts.items()]
    if len(parts) > MAX_LABELS:
        parts = [*parts[:MAX_LABELS], f"+{len(parts) - MAX_LABELS} more"]
    return ", ".join(parts)


def training_curves(
    epochs: Sequence[dict[str, float]],
    batch_losses: Sequence[tuple[int, float, float]] = (),
    height: int = 360,
    events: Sequence[dict[str, Any]] = (),
    epoch_offset: int = 0,
) -> go.Figure:
    """Loss (left) and accuracy (right) against epoch, training and validation.

    `epochs` are the store's per-epoch rows; `batch_losses` are (step, epoch, loss) samples,
    drawn faintly behind the per-epoch training loss. `events` (core/control.py: pauses,
    knob changes, ...) are dotted vertical lines labelled in words, events close together
    sharing one. A run continued from another (`epoch_offset`) numbers its epochs on.
    """
    # One constructor call with the layout as plain dicts (two panels side by side, as
    # make_subplots would lay them out): Plotly checks each property as it is set, and
    # make_subplots with add_vline per event took 60-200 ms, every second on the Train page.
    x = np.asarray([e["epoch"] + epoch_offset for e in epochs], dtype=np.float64)
    traces = []
    if batch_losses:
        steps = np.asarray(batch_losses, dtype=np.float64).reshape(-1, 3)
        traces.append(
            go.Scatter(
                x=steps[:, 1] + epoch_offset,
                y=steps[:, 2],
                mode="lines",
                name="batch loss",
                line=dict(color=BATCH_COLOR, width=1),
                hovertemplate="epoch %{x:.2f}: loss %{y:.3f}<extra>batch</extra>",
            )
        )
    panels = (("", "loss", "loss %{y:.4f}"), ("2", "accuracy", "%{y:.2%}"))
    for key, name, color in (("train", "training", TRAIN_COLOR), ("val", "validation", VAL_COLOR)):
        for axis, metric, value in panels:
            traces.append(
                go.Scatter(
                    x=x,
                    y=np.asarray([e[f"{key}_{metric}"] for e in epochs], dtype=np.float64),
                    xaxis=f"x{axis}",
                    yaxis=f"y{axis}",
                    mode="lines+markers",
                    name=name,
                    line=dict(color=color),
                    legendgroup=key,
                    showlegend=axis == "",  # one legend entry for both panels
                    hovertemplate=f"epoch %{{x}}: {value}<extra>{name}</extra>",
                )
            )
    titles = [
        dict(text=text, x=mid, xref="paper", y=1.0, yref="paper", yanchor="bottom",
             xanchor="center", showarrow=False, font=dict(size=16))
        for text, mid in (("Loss", 0.225), ("Accuracy", 0.775))
    ]  # fmt: skip
    shapes, labels = [], []
    if events:
        event_x = [e["epoch"] + epoch_offset for e in events]
        seen = [*x.tolist(), *(b[1] + epoch_offset for b in batch_losses), *event_x]
        span = max(seen) - min(seen) if len(seen) > 1 else 0.0
        for at, label in merge_events(event_x, [describe(e) for e in events], span):
            for axis in ("", "2"):  # the line in both panels, its words once
                shapes.append(
                    dict(type="line", x0=at, x1=at, xref=f"x{axis}", y0=0, y1=1,
                         yref=f"y{axis} domain", line=dict(color=EVENT_COLOR, width=1, dash="dot"))
                )  # fmt: skip
            labels.append(
                dict(text=label, x=at, xref="x", y=1, yref="y domain", xanchor="right",
                     yanchor="top", textangle=-90, showarrow=False,
                     font=dict(size=10, color=EVENT_COLOR))
            )  # fmt: skip
    return go.Figure(
        traces,
        layout=dict(
            xaxis=dict(domain=[0.0, 0.45], anchor="y", title=dict(text="epoch")),
            yaxis=dict(anchor="x", title=dict(text="cross-entropy loss")),
            xaxis2=dict(domain=[0.55, 1.0], anchor="y2", title=dict(text="epoch")),
            yaxis2=dict(anchor="x2", title=dict(text="accuracy"), tickformat=".1%"),
            annotations=titles + labels,
            shapes=shapes,
            height=height,
            margin=dict(l=10, r=10, t=40, b=10),
            legend=dict(orientation="h", yanchor="bottom", y=-0.35, x=0),
        ),
    )
