"""Pure figure builders for digit images: data in, Plotly figure out.

Many digits are drawn as one tiled array in a single heatmap trace, never one
shape per pixel, so a grid of hundreds of digits stays light in the browser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

GRAY = [[0.0, "rgb(0,0,0)"], [1.0, "rgb(255,255,255)"]]
DIVERGING = "RdBu_r"  # negative blue, zero white, positive red


def tile(images: np.ndarray, cols: int, pad: int = 1, fill: float = np.nan) -> np.ndarray:
    """Lay (N, H, W) images out in a grid `cols` wide, separated by `pad` cells of `fill`."""
    n, h, w = images.shape
    rows = max(1, math.ceil(n / cols))
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), fill, dtype=np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = img
    return out


def image_layout(fig: go.Figure, height: int, title: str | None) -> go.Figure:
    """Square pixels, no axes, rows downwards: the frame every image figure here shares."""
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=30 if title else 0, b=0), title=title)
    return fig


def digit_grid(
    images: np.ndarray,
    cols: int = 10,
    captions: Sequence[str] | None = None,
    title: str | None = None,
    tile_px: int = 60,
) -> go.Figure:
    """Digits (N, 28, 28) with values in [0, 1] as white ink on black, in one heatmap trace.

    Hovering a digit shows its caption; the figure's height follows the number of rows.
    """
    n, h, w = images.shape
    cols = max(1, min(cols, n))
    grid = tile(images, cols)
    text = None
    if captions is not None:
        # Each pixel's hover text is its digit's caption: tile the digit indices the same way.
        owner = tile(np.repeat(np.arange(n, dtype=np.float32), h * w).reshape(n, h, w), cols)
        labels = np.full(grid.shape, "", dtype=object)
        inside = ~np.isnan(owner)
        labels[inside] = np.asarray(captions, dtype=object)[owner[inside].astype(int)]
        text = labels.tolist()
    fig = go.Figure(
        go.Heatmap(
            z=grid,
            zmin=0,
            zmax=1,
            colorscale=GRAY,
            showscale=False,
            text=text,
            hovertemplate="%{text}<extra></extra>" if text else "%{z:.2f}<extra></extra>",
            hoverongaps=False,
        )
    )
    rows = max(1, math.ceil(n / cols))
    return image_layout(fig, height=rows * tile_px + (30 if title else 0), title=title)


def digit(image: np.ndarray, title: str | None = None, height: int = 280) -> go.Figure:
    """One 28x28 digit, large, with each pixel's value on hover."""
    fig = go.Figure(
        go.Heatmap(
            z=image,
            zmin=0,
            zmax=1,
            colorscale=GRAY,
            showscale=False,
            hovertemplate="row %{y}, column %{x}: %{z:.2f}<extra></extra>",
        )
    )
    return image_layout(fig, height=height, title=title)


def probability_bars(
    probs: np.ndarray, class_names: Sequence[str], highlight: int | None = None,
    title: str | None = None, height: int = 260,
) -> go.Figure:  # fmt: skip
    """The probability of every class as bars, the highlighted class in the accent colour."""
    colors = ["#ff4b4b" if i == highlight else "#8c9bb5" for i in range(len(probs))]
    fig = go.Figure(
        go.Bar(
            x=list(class_names),
            y=probs,
            marker_color=colors,
            text=[f"{p:.0%}" if p >= 0.01 else "" for p in probs],
            textposition="outside",
            hovertemplate="%{x}: %{y:.2%}<extra></extra>",
        )
    )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30 if title else 10, b=10),
        title=title,
        xaxis=dict(title="class", type="category"),
        yaxis=dict(title="probability", range=[0, 1.1], tickformat=".0%"),
        showlegend=False,
    )
    return fig
