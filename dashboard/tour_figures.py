"""The guided tour's figures: data in, Plotly figure out, in type large enough for a room.

Every axis and title is in plain words. Right and wrong are never told by colour alone:
a wrong answer is also outlined and labelled "wrong". Colours are from palettes people
with red-green colour blindness can tell apart (blue and orange; blue-white-red).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .images import DIVERGING, GRAY, image_layout, tile

FONT = 20  # px: the tour is read from the back of a room
BLUE, ORANGE, GREY = "#1f77b4", "#e66100", "#8c9bb5"  # safe for colour-blind viewers


def _large(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(height=height, font=dict(size=FONT), margin=dict(l=10, r=10, t=50, b=10))
    return fig


def pixel_grid(image: np.ndarray, height: int = 480) -> go.Figure:
    """A 28x28 picture as its numbers: each square's ink from 0 (paper) to 255 (full ink),
    written in the squares that have any."""
    values = np.rint(np.asarray(image, float) * (255 if image.max() <= 1 else 1)).astype(int)
    text = np.where(values > 0, values.astype(str), "")
    fig = go.Figure(
        go.Heatmap(
            z=values,
            zmin=0,
            zmax=255,
            colorscale=GRAY,
            showscale=False,
            text=text,
            texttemplate="%{text}",
            textfont=dict(size=9),  # Plotly picks black or white against each square
            hovertemplate="row %{y}, column %{x}: %{z}<extra></extra>",
        )
    )
    fig = image_layout(fig, height=height, title=None)
    fig.update_layout(font=dict(size=FONT))
    return fig


def neuron_panels(weights: np.ndarray, image: np.ndarray, products: np.ndarray) -> go.Figure:
    """What a neuron looks for (its weight on every square), the digit, and the two
    multiplied square by square: red pushes its score up, blue pushes it down."""
    scale = float(np.abs(weights).max()) or 1.0
    reach = float(np.abs(products).max()) or 1.0
    fig = make_subplots(
        1,
        3,
        horizontal_spacing=0.04,
        subplot_titles=("What it looks for", "The digit", "Digit × what it looks for"),
    )
    panels = [
        (weights, -scale, scale, DIVERGING),
        (image, 0, 1, GRAY),
        (products, -reach, reach, DIVERGING),
    ]
    for col, (z, low, high, colours) in enumerate(panels, start=1):
        fig.add_trace(
            go.Heatmap(
                z=z,
                zmin=low,
                zmax=high,
                colorscale=colours,
                showscale=False,
                hovertemplate="%{z:.2f}<extra></extra>",
            ),
            1,
            col,
        )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    for col in (2, 3):
        fig.update_yaxes(scaleanchor=f"x{col}", row=1, col=col)
    fig.update_yaxes(scaleanchor="x", row=1, col=1)
    fig.update_annotations(font_size=FONT)
    return _large(fig, 330)


def neuron_score(up: float, down: float, bias: float, score: float) -> go.Figure:
    """How a neuron's score adds up: the pushes up, the pushes down, its starting point."""
    labels = ["pushes up", "pushes down", "starting point", "score"]
    fig = go.Figure(
        go.Waterfall(
            x=labels,
            y=[up, down, bias, score],
            measure=["relative", "relative", "relative", "total"],
            text=[f"{v:+.1f}" for v in (up, down, bias)] + [f"{score:.1f}"],
            textposition="outside",
            increasing=dict(marker_color=ORANGE),
            decreasing=dict(marker_color=BLUE),
            totals=dict(marker_color=GREY),
            connector=dict(visible=False),
        )
    )
    fig.update_layout(yaxis=dict(title="score", zeroline=True), showlegend=False)
    return _large(fig, 330)


def chance_bars(
    values: np.ndarray, names: Sequence[str], title: str, percent: bool, height: int = 340
) -> go.Figure:
    """One bar per digit (its score, or its chance as a percentage), the highest marked
    by its colour and by its label."""
    best = int(np.argmax(values))
    text = [f"{v:.0%}" if percent else f"{v:.1f}" for v in values]
    text[best] = f"<b>{text[best]}</b>"
    fig = go.Figure(
        go.Bar(
            x=list(names),
            y=values,
            marker_color=[ORANGE if i == best else GREY for i in range(len(values))],
            marker_line=dict(
                width=[3 if i == best else 0 for i in range(len(values))], color="black"
            ),
            text=text,
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}: %{y:.3f}<extra></extra>",
        )
    )
    axis = dict(range=[0, 1.15], tickformat=".0%") if percent else {}
    fig.update_layout(
        title=title,
        xaxis=dict(title="digit", type="category"),
        yaxis=dict(title="chance" if percent else "score", **axis),
        showlegend=False,
    )
    return _large(fig, height)


def accuracy_curve(seconds: Sequence[float], accuracy: Sequence[float], goal: float) -> go.Figure:
    """How many of the practice-exam digits it reads right, over the seconds of learning."""
    fig = go.Figure(
        go.Scatter(
            x=list(seconds),
            y=list(accuracy),
            mode="lines+markers",
            line=dict(color=BLUE, width=4),
            hovertemplate="%{x:.1f} s: %{y:.1%}<extra></extra>",
        )
    )
    fig.add_hline(
        y=goal,
        line_dash="dash",
        line_color=ORANGE,
        annotation_text=f"{goal:.0%}",
        annotation_position="bottom right",
    )
    fig.update_layout(
        xaxis=dict(title="seconds of learning", rangemode="tozero"),
        yaxis=dict(title="read right", range=[0, 1.02], tickformat=".0%"),
        showlegend=False,
    )
    return _large(fig, 340)


def weight_pictures(pictures: np.ndarray, cols: int = 8) -> go.Figure:
    """Neurons' weights over the 28x28 squares: red where ink raises their score, blue
    where it lowers it; noise at first, strokes and blobs as it learns."""
    scale = np.abs(pictures).max(axis=(1, 2), keepdims=True)
    grid = tile(pictures / np.where(scale > 0, scale, 1), cols=cols, pad=2)
    fig = go.Figure(
        go.Heatmap(
            z=grid,
            zmin=-1,
            zmax=1,
            colorscale=DIVERGING,
            showscale=False,
            hoverinfo="skip",
            hoverongaps=False,
        )
    )
    fig = image_layout(fig, height=300, title=None)
    return fig


def guesses(digits: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> go.Figure:
    """Ten digits with what the network reads each as; a wrong one is outlined in orange
    and says "wrong", so the colour is never the only sign."""
    read = probs.argmax(axis=1)
    fig = go.Figure(
        go.Heatmap(
            z=tile(np.asarray(digits, float) / 255, cols=len(digits), pad=4, fill=np.nan),
            zmin=0,
            zmax=1,
            colorscale=GRAY,
            showscale=False,
            hoverinfo="skip",
            hoverongaps=False,
        )
    )
    for i, (true, said) in enumerate(zip(labels, read, strict=True)):
        x0 = i * 32
        right = true == said
        fig.add_annotation(
            x=x0 + 13.5,
            y=28,
            yanchor="top",
            showarrow=False,
            text=f"reads <b>{said}</b><br>{'right' if right else 'wrong'}",
            font=dict(size=FONT, color="black" if right else ORANGE),
        )
        if not right:
            fig.add_shape(
                type="rect",
                x0=x0 - 1.5,
                x1=x0 + 28.5,
                y0=-1.5,
                y1=27.5,
                line=dict(color=ORANGE, width=4, dash="dash"),
            )
    fig = image_layout(fig, height=230, title=None)
    fig.update_yaxes(range=[40, -2], autorange=False)
    return fig


def mistakes(
    images: np.ndarray, labels: np.ndarray, read: np.ndarray, sure: np.ndarray, cols: int = 4
) -> go.Figure:
    """Test digits it got wrong, each captioned with what it is and what it read."""
    n = len(images)
    fig = go.Figure(
        go.Heatmap(
            z=tile(np.asarray(images, float) / 255, cols=cols, pad=12),
            zmin=0,
            zmax=1,
            colorscale=GRAY,
            showscale=False,
            hoverinfo="skip",
            hoverongaps=False,
        )
    )
    for i in range(n):
        r, c = divmod(i, cols)
        fig.add_annotation(
            x=c * 40 + 13.5,
            y=r * 40 + 28,
            yanchor="top",
            showarrow=False,
            text=f"a {labels[i]}, read as <b>{read[i]}</b><br>{sure[i]:.0%} sure",
            font=dict(size=FONT - 2),
        )
    rows = -(-n // cols)
    fig = image_layout(fig, height=rows * 230, title=None)
    fig.update_yaxes(range=[rows * 40, -2], autorange=False)
    return fig


def slide(image: np.ndarray, kernel: np.ndarray, fmap: np.ndarray, row: int, col: int) -> go.Figure:
    """A filter at one place on the digit: the digit with the filter's square outlined,
    the filter's numbers, and the new picture built so far, up to this place."""
    k = len(kernel)
    built = np.full(fmap.shape, np.nan)
    flat = row * fmap.shape[1] + col + 1
    built.reshape(-1)[:flat] = fmap.reshape(-1)[:flat]
    reach = float(np.nanmax(np.abs(fmap))) or 1.0
    scale = float(np.abs(kernel).max()) or 1.0
    fig = make_subplots(
        1,
        3,
        column_widths=[0.4, 0.2, 0.4],
        horizontal_spacing=0.05,
        subplot_titles=("Your digit", "The filter", "Its new picture so far"),
    )
    fig.add_trace(
        go.Heatmap(
            z=image,
            zmin=0,
            zmax=1,
            colorscale=GRAY,
            showscale=False,
            hovertemplate="%{z:.2f}<extra></extra>",
        ),
        1,
        1,
    )
    fig.add_shape(
        type="rect",
        x0=col - 0.5,
        x1=col + k - 0.5,
        y0=row - 0.5,
        y1=row + k - 0.5,
        line=dict(color=ORANGE, width=4),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Heatmap(
            z=kernel,
            zmin=-scale,
            zmax=scale,
            colorscale=DIVERGING,
            showscale=False,
            text=np.vectorize(lambda v: f"{v:+.1f}")(kernel),
            texttemplate="%{text}",
            textfont=dict(size=14),
            hoverinfo="skip",
        ),
        1,
        2,
    )
    fig.add_trace(
        go.Heatmap(
            z=built,
            zmin=-reach,
            zmax=reach,
            colorscale=DIVERGING,
            showscale=False,
            hoverongaps=False,
            hovertemplate="%{z:.2f}<extra></extra>",
        ),
        1,
        3,
    )
    fig.add_shape(
        type="rect",
        x0=col - 0.5,
        x1=col + 0.5,
        y0=row - 0.5,
        y1=row + 0.5,
        line=dict(color=ORANGE, width=3),
        row=1,
        col=3,
    )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    # The map's squares not yet reached are blank, and Plotly would crop them away.
    side = fmap.shape[0]
    fig.update_xaxes(range=[-0.5, fmap.shape[1] - 0.5], row=1, col=3)
    fig.update_yaxes(range=[side - 0.5, -0.5], autorange=False, row=1, col=3)
    for c in (1, 2, 3):
        fig.update_yaxes(scaleanchor="x" if c == 1 else f"x{c}", row=1, col=c)
    fig.update_annotations(font_size=FONT)
    return _large(fig, 380)


def stage(values: np.ndarray, title: str, names: Sequence[str] | None = None) -> go.Figure:
    """One layer's output: its pictures side by side, or one bar per neuron (or chance)."""
    if values.ndim == 1:
        if names is not None:
            return chance_bars(values, names, title, percent=True, height=300)
        fig = go.Figure(
            go.Bar(y=values, marker_color=GREY, hovertemplate="%{y:.2f}<extra></extra>")
        )
        fig.update_layout(
            title=title, xaxis=dict(title="neuron"), yaxis=dict(title="how strongly it fires")
        )
        return _large(fig, 260)
    maps = np.moveaxis(values, -1, 0)
    cols = min(16, len(maps))
    fig = go.Figure(
        go.Heatmap(
            z=tile(maps, cols=cols, pad=1),
            colorscale="Viridis",
            showscale=False,
            hoverinfo="skip",
            hoverongaps=False,
        )
    )
    rows = -(-len(maps) // cols)
    fig = image_layout(fig, height=max(120, rows * 90) + 50, title=title)
    fig.update_layout(font=dict(size=FONT))
    return fig
