"""The guided tour's figures: data in, Plotly figure out, in type large enough for a room.

Every axis and title is in plain words. Right and wrong are never told by colour alone:
a wrong answer is also outlined and labelled "wrong". Colours are from palettes people
with red-green colour blindness can tell apart (blue and orange; blue-white-red).

Text is sized in px, which presentation mode's larger root font does not reach: each
figure takes a `text_scale` (1.5 in presentation mode), by default the Streamlit session's,
and grows its text, and the room for it, by that much.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .grids import session_text_scale, signed_pictures
from .images import DIVERGING, GRAY, image_layout, tile

FONT = 20  # px: the tour is read from the back of a room
BLUE, ORANGE, GREY = "#1f77b4", "#e66100", "#8c9bb5"  # safe for colour-blind viewers


def _scale(text_scale: float | None) -> float:
    return session_text_scale() if text_scale is None else text_scale


def _large(fig: go.Figure, height: int, scale: float) -> go.Figure:
    """Text FONT px times `scale`, and the figure as much taller as its text needs."""
    fig.update_layout(
        height=round(height * (1 + (scale - 1) / 2)),
        font=dict(size=round(FONT * scale)),
        margin=dict(l=10, r=10, t=round(50 * scale), b=10),
    )
    return fig


def _picture(z: np.ndarray, low: float, high: float, colours: str | list, **more) -> go.Heatmap:
    """A picture's squares, coloured from `low` to `high`, with each value on hover."""
    return go.Heatmap(
        z=z,
        zmin=low,
        zmax=high,
        colorscale=colours,
        showscale=False,
        **({"hovertemplate": "%{z:.2f}<extra></extra>"} | more),
    )


def _outline(fig: go.Figure, col: int, row: int, left: int, size: int, width: int) -> None:
    """An orange square `size` squares wide at (`row`, `left`) on the panel in column `col`."""
    fig.add_shape(
        type="rect",
        x0=left - 0.5,
        x1=left + size - 0.5,
        y0=row - 0.5,
        y1=row + size - 0.5,
        line=dict(color=ORANGE, width=width),
        row=1,
        col=col,
    )


def pixel_grid(image: np.ndarray, height: int = 480, text_scale: float | None = None) -> go.Figure:
    """A 28x28 picture as its numbers: each square's ink from 0 (paper) to 255 (full ink),
    written in the squares that have any (and the squares as much larger as the numbers)."""
    scale = _scale(text_scale)
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
            textfont=dict(size=round(9 * scale)),  # black or white, Plotly picks per square
            hovertemplate="row %{y}, column %{x}: %{z}<extra></extra>",
        )
    )
    fig = image_layout(fig, height=round(height * scale), title=None)
    fig.update_layout(font=dict(size=round(FONT * scale)))
    return fig


def neuron_panels(
    weights: np.ndarray, image: np.ndarray, products: np.ndarray, text_scale: float | None = None
) -> go.Figure:
    """What a neuron looks for (its weight on every square), the digit, and the two
    multiplied square by square: red pushes its score up, blue pushes it down."""
    scale = _scale(text_scale)
    strongest = float(np.abs(weights).max()) or 1.0
    reach = float(np.abs(products).max()) or 1.0
    fig = make_subplots(
        1,
        3,
        horizontal_spacing=0.04,
        # Short enough for a third of a projector's width in presentation mode's type.
        subplot_titles=("What it looks for", "The digit", "The two multiplied"),
    )
    panels = [
        (weights, -strongest, strongest, DIVERGING),
        (image, 0, 1, GRAY),
        (products, -reach, reach, DIVERGING),
    ]
    for col, (z, low, high, colours) in enumerate(panels, start=1):
        fig.add_trace(_picture(z, low, high, colours), 1, col)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    for col in (2, 3):
        fig.update_yaxes(scaleanchor=f"x{col}", row=1, col=col)
    fig.update_yaxes(scaleanchor="x", row=1, col=1)
    fig.update_annotations(font_size=round(FONT * scale))
    return _large(fig, 330, scale)


def neuron_score(
    up: float, down: float, bias: float, score: float, text_scale: float | None = None
) -> go.Figure:
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
    return _large(fig, 330, _scale(text_scale))


def chance_bars(
    values: np.ndarray,
    names: Sequence[str],
    title: str,
    percent: bool,
    height: int = 340,
    text_scale: float | None = None,
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
    return _large(fig, height, _scale(text_scale))


def accuracy_curve(
    seconds: Sequence[float],
    accuracy: Sequence[float],
    goal: float,
    text_scale: float | None = None,
) -> go.Figure:
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
    return _large(fig, 340, _scale(text_scale))


def weight_pictures(pictures: np.ndarray, cols: int = 8) -> go.Figure:
    """Neurons' weights over the 28x28 squares: red where ink raises their score, blue
    where it lowers it; noise at first, strokes and blobs as it learns."""
    return image_layout(signed_pictures(pictures, cols=cols, pad=2), height=300, title=None)


def guesses(
    digits: np.ndarray, labels: np.ndarray, probs: np.ndarray, text_scale: float | None = None
) -> go.Figure:
    """Ten digits with what the network reads each as; a wrong one is outlined in orange
    and says "wrong", so the colour is never the only sign."""
    scale = _scale(text_scale)
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
            font=dict(size=round(FONT * scale), color="black" if right else ORANGE),
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
    # Room under the digits for two lines of text, as much more as the text is larger.
    below = 12 * scale
    fig = image_layout(fig, height=round(230 * (28 + below) / 40), title=None)
    fig.update_yaxes(range=[28 + below, -2], autorange=False)
    return fig


def slide(
    image: np.ndarray,
    kernel: np.ndarray,
    fmap: np.ndarray,
    row: int,
    col: int,
    text_scale: float | None = None,
) -> go.Figure:
    """A filter at one place on the digit: the digit with the filter's square outlined,
    the filter's numbers, and the new picture built so far, up to this place."""
    text = _scale(text_scale)
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
    fig.add_trace(_picture(image, 0, 1, GRAY), 1, 1)
    _outline(fig, 1, row, col, k, width=4)
    numbers = np.vectorize(lambda v: f"{v:+.1f}")(kernel)
    fig.add_trace(
        _picture(
            kernel,
            -scale,
            scale,
            DIVERGING,
            text=numbers,
            texttemplate="%{text}",
            textfont=dict(size=round(14 * text)),
            hoverinfo="skip",
            hovertemplate=None,
        ),
        1,
        2,
    )
    fig.add_trace(_picture(built, -reach, reach, DIVERGING, hoverongaps=False), 1, 3)
    _outline(fig, 3, row, col, 1, width=3)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    # The map's squares not yet reached are blank, and Plotly would crop them away.
    side = fmap.shape[0]
    fig.update_xaxes(range=[-0.5, fmap.shape[1] - 0.5], row=1, col=3)
    fig.update_yaxes(range=[side - 0.5, -0.5], autorange=False, row=1, col=3)
    for c in (1, 2, 3):
        fig.update_yaxes(scaleanchor="x" if c == 1 else f"x{c}", row=1, col=c)
    fig.update_annotations(font_size=round(FONT * text))
    return _large(fig, 380, text)


def stage(
    values: np.ndarray,
    title: str,
    names: Sequence[str] | None = None,
    text_scale: float | None = None,
) -> go.Figure:
    """One layer's output: its pictures side by side, or one bar per neuron (or chance)."""
    scale = _scale(text_scale)
    if values.ndim == 1:
        if names is not None:
            return chance_bars(values, names, title, percent=True, height=300, text_scale=scale)
        fig = go.Figure(
            go.Bar(y=values, marker_color=GREY, hovertemplate="%{y:.2f}<extra></extra>")
        )
        fig.update_layout(
            title=title, xaxis=dict(title="neuron"), yaxis=dict(title="how strongly it fires")
        )
        return _large(fig, 260, scale)
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
    fig = image_layout(fig, height=max(120, rows * 90) + round(50 * scale), title=title)
    fig.update_layout(font=dict(size=round(FONT * scale)), margin_t=round(30 * scale))
    return fig
