"""Pure figure builders for training curves: per-epoch metrics in, Plotly figure out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

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
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"))
    x = [e["epoch"] + epoch_offset for e in epochs]
    if batch_losses:
        fig.add_trace(
            go.Scatter(
                x=[b[1] + epoch_offset for b in batch_losses],
                y=[b[2] for b in batch_losses],
                mode="lines",
                name="batch loss",
                line=dict(color=BATCH_COLOR, width=1),
                hovertemplate="epoch %{x:.2f}: loss %{y:.3f}<extra>batch</extra>",
            ),
            row=1,
            col=1,
        )
    panels = ((1, "loss", "loss %{y:.4f}"), (2, "accuracy", "%{y:.2%}"))
    for key, name, color in (("train", "training", TRAIN_COLOR), ("val", "validation", VAL_COLOR)):
        for col, metric, value in panels:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[e[f"{key}_{metric}"] for e in epochs],
                    mode="lines+markers",
                    name=name,
                    line=dict(color=color),
                    legendgroup=key,
                    showlegend=col == 1,  # one legend entry for both panels
                    hovertemplate=f"epoch %{{x}}: {value}<extra>{name}</extra>",
                ),
                row=1,
                col=col,
            )
    if events:
        event_x = [e["epoch"] + epoch_offset for e in events]
        seen = x + [b[1] + epoch_offset for b in batch_losses] + event_x
        span = max(seen) - min(seen) if len(seen) > 1 else 0.0
        for at, label in merge_events(event_x, [describe(e) for e in events], span):
            for col in (1, 2):  # the line in both panels, its words once
                fig.add_vline(
                    x=at,
                    line=dict(color=EVENT_COLOR, width=1, dash="dot"),
                    row=1,
                    col=col,
                    exclude_empty_subplots=False,
                    **(
                        dict(
                            annotation_text=label,
                            annotation_position="top left",
                            annotation_textangle=-90,
                            annotation_font=dict(size=10, color=EVENT_COLOR),
                        )
                        if col == 1
                        else {}
                    ),
                )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="cross-entropy loss", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", tickformat=".1%", row=1, col=2)
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=-0.35, x=0),
    )
    return fig
