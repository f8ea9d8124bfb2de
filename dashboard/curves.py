"""Pure figure builders for training curves: per-epoch metrics in, Plotly figure out."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

TRAIN_COLOR, VAL_COLOR, BATCH_COLOR = "#1f77b4", "#ff7f0e", "rgba(31,119,180,0.25)"


def training_curves(
    epochs: Sequence[dict[str, float]],
    batch_losses: Sequence[tuple[int, float, float]] = (),
    height: int = 360,
) -> go.Figure:
    """Loss (left) and accuracy (right) against epoch, training and validation.

    `epochs` are the store's per-epoch rows; `batch_losses` are (step, epoch, loss) samples,
    drawn faintly behind the per-epoch training loss.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"))
    x = [e["epoch"] for e in epochs]
    if batch_losses:
        fig.add_trace(
            go.Scatter(
                x=[b[1] for b in batch_losses],
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
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="cross-entropy loss", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", tickformat=".1%", row=1, col=2)
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=-0.35, x=0),
    )
    return fig
