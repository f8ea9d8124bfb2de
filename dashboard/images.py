"""Pure figure builders for single images, and what every image figure shares.

The colour scales, the tiling of many images into one array, and the frame of an image
figure (square pixels, no axes, rows downwards); one digit large, and its class
probabilities. Data in, Plotly figure out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

GRAY = [[0.0, "rgb(0,0,0)"], [1.0, "rgb(255,255,255)"]]
DIVERGING = "RdBu_r"  # negative blue, zero white, positive red
# The class the model reads, and the others: Okabe and Ito's vermillion, which colour-blind
# eyes still tell from the grey-blue; the answer is also outlined, and labelled elsewhere.
ACCENT, NEUTRAL = "#d55e00", "#8c9bb5"
DIGITS = [str(i) for i in range(10)]


def value_noun(class_names: Sequence[str]) -> str:
    """What the classes are called on an axis: "digit" for 0 to 9, else "answer"."""
    return "digit" if list(class_names) == DIGITS else "answer"


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
    probs: np.ndarray,
    class_names: Sequence[str],
    highlight: int | None = None,
    title: str | None = None,
    height: int = 260,
    noun: str | None = None,
) -> go.Figure:
    """How sure the model is of every class, as bars; the highlighted class in the accent
    colour and outlined. `noun` names the classes on the axis ("digit" for 0 to 9)."""
    colors = [ACCENT if i == highlight else NEUTRAL for i in range(len(probs))]
    outline = [2 if i == highlight else 0 for i in range(len(probs))]
    fig = go.Figure(
        go.Bar(
            x=list(class_names),
            y=probs,
            marker=dict(color=colors, line=dict(color="#3a3a3a", width=outline)),
            text=[f"{p:.0%}" if p >= 0.01 else "" for p in probs],
            textposition="outside",
            hovertemplate="%{x}: %{y:.2%}<extra></extra>",
        )
    )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30 if title else 10, b=10),
        title=title,
        xaxis=dict(title=noun or value_noun(class_names), type="category"),
        yaxis=dict(title="how sure", range=[0, 1.1], tickformat=".0%"),
        showlegend=False,
    )
    return fig


def prediction(
    image: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    true: int,
    source: str | None = None,
    heights: tuple[int, int] = (280, 260),
) -> tuple[go.Figure, go.Figure]:
    """A uint8 image of class `true`, large, and the model's probabilities for it, titled
    with what it is and what the model read ("Test image #7: a 3, read as 5")."""
    read = int(np.argmax(probs))
    what = f"a {class_names[true]}, read as {class_names[read]}"
    title = f"{source}: {what}" if source else what[0].upper() + what[1:]
    bars = probability_bars(probs, class_names, highlight=read, title=title, height=heights[1])
    return digit(np.asarray(image) / 255, height=heights[0]), bars
