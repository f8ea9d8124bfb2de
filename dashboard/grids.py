"""Grids of images as one picture, and the colouring behind them: data in, Plotly figure out.

A grid of images is one PNG in one image trace, coloured in NumPy, so hundreds of digits
or neurons cost the browser one picture. Over each tile (and each cell of the confusion
matrix) sits an invisible marker that carries the hover text and makes it clickable:
Streamlit reports clicks on scatter points, not on heatmap cells or pixels.

A few signed pictures (neurons' weights, red for ink wanted, blue for none) are a heatmap
instead, each scaled to its own strongest value: `signed_pictures`.

Captions are sized in px, which presentation mode's larger root font does not reach: a
grid drawn in a Streamlit session takes that session's `presentation.text_scale()`.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import plotly.colors as pcolors
import plotly.graph_objects as go
from PIL import Image

from dashboard.images import ACCENT, DIVERGING, GRAY, tile

CHART_CONFIG = {"displayModeBar": False}  # pictures: nothing to zoom, pan or download
CLICKABLE = {"selection_mode": "points", "config": CHART_CONFIG}  # a picture that reports clicks
CLASS_COLORS = pcolors.qualitative.T10
INVISIBLE = "rgba(0,0,0,0)"
# Captions of right and wrong answers: Okabe and Ito's blue and vermillion, which
# colour-blind eyes tell apart; a wrong one also starts with a cross (U+2717, drawn from
# DejaVu Sans where the theme's font lacks it: no emoji font needed).
RIGHT_INK, WRONG_INK = "#0072b2", "#d55e00"
WRONG_MARK = "✗ "
Colorscale = str | Sequence[Sequence[Any]]
CAPTION_PX, LARGE_CAPTION_PX = 11, 13  # under small tiles, and under tiles of 80 px or more
CAPTION_ROWS = 10  # rows of a tile's height left free under it for its caption, at 1x
TITLE_PX, ROW_LABELS_PX = 30, 40  # room for a title above, and for row labels on the left


def session_text_scale() -> float:
    """Presentation mode's text scale in this Streamlit session; 1 outside one (a test)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if get_script_run_ctx(suppress_warning=True) is None:
        return 1.0
    from dashboard import presentation

    return presentation.text_scale()


# Colouring arrays


@lru_cache(maxsize=32)
def _lut(colorscale: str | tuple[tuple[float, str], ...]) -> np.ndarray:
    """(256, 3) uint8 colours sampled evenly along a Plotly colour scale."""
    scale = pcolors.get_colorscale(colorscale) if isinstance(colorscale, str) else colorscale
    stops = np.array([float(position) for position, _ in scale])
    colors = np.array([_rgb(color) for _, color in scale], dtype=np.float64)
    t = np.linspace(0, 1, 256)
    channels = [np.interp(t, stops, colors[:, c]) for c in range(3)]
    return np.round(np.stack(channels, axis=1)).astype(np.uint8)


def _rgb(color: str) -> tuple[float, float, float]:
    """(r, g, b) in 0-255 of a '#rrggbb' or 'rgb(r, g, b)' colour."""
    if color.startswith("#"):
        return pcolors.hex_to_rgb(color)
    r, g, b = pcolors.unlabel_rgb(color)[:3]
    return float(r), float(g), float(b)


def _scale_key(colorscale: Colorscale) -> str | tuple[tuple[float, str], ...]:
    if isinstance(colorscale, str):
        return colorscale
    return tuple((float(p), str(c)) for p, c in colorscale)


def colorize(values: np.ndarray, colorscale: Colorscale, zmin: float, zmax: float) -> np.ndarray:
    """(H, W, 4) uint8 RGBA of a 2-D array through a colour scale; NaN is transparent."""
    values = np.asarray(values, dtype=np.float64)
    span = zmax - zmin if zmax > zmin else 1.0
    finite = np.isfinite(values)
    t = np.clip((np.where(finite, values, zmin) - zmin) / span, 0, 1)
    rgba = np.empty((*values.shape, 4), dtype=np.uint8)
    rgba[..., :3] = _lut(_scale_key(colorscale))[np.round(t * 255).astype(np.intp)]
    rgba[..., 3] = np.where(finite, 255, 0)
    return rgba


def png_data_uri(rgba: np.ndarray) -> str:
    """An RGBA array as a base64 PNG data URI, the `source` of a Plotly image trace."""
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def symmetric_range(values: np.ndarray, percentile: float = 99.5) -> float:
    """A half-width for a diverging colour scale centred on zero; a few extreme values
    are allowed to saturate so that they do not wash out all the others."""
    values = np.abs(np.asarray(values, dtype=np.float64))
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0
    top = float(np.percentile(values, percentile))
    return top if top > 0 else float(values.max()) or 1.0


def colorbar_trace(colorscale: Colorscale, zmin: float, zmax: float, title: str) -> go.Scatter:
    """A trace that draws nothing but a colour bar (image traces have none)."""
    return go.Scatter(
        x=[None],
        y=[None],
        mode="markers",
        showlegend=False,
        hoverinfo="skip",
        marker=dict(
            colorscale=colorscale,
            cmin=zmin,
            cmax=zmax,
            color=[zmin],
            showscale=True,
            colorbar=dict(title=dict(text=title, side="right"), thickness=12, len=0.9),
        ),
    )


# Clicking


def click_targets(
    x: Sequence[float],
    y: Sequence[float],
    customdata: Sequence[Any],
    hover: Sequence[str] | None,
    size: float,
    name: str,
) -> go.Scatter:
    """Invisible square markers at (x, y) that show `hover` and report `customdata` when
    clicked; they stay invisible when selected."""
    return go.Scatter(
        x=x,
        y=y,
        mode="markers",
        name=name,
        showlegend=False,
        customdata=customdata,
        hovertext=list(hover) if hover is not None else None,
        hovertemplate="%{hovertext}<extra></extra>" if hover is not None else None,
        hoverinfo=None if hover is not None else "skip",
        marker=dict(symbol="square", size=size, color=INVISIBLE),
        selected=dict(marker=dict(opacity=1)),
        unselected=dict(marker=dict(opacity=1)),
    )


def selected_custom(event: Mapping[str, Any] | None, trace: int | None = None) -> Any:
    """The customdata of the first selected point of a chart's selection event, or None.

    `trace` limits it to points of that curve number.
    """
    if not event:
        return None
    selection = event.get("selection") or {}
    for point in selection.get("points") or []:
        if trace is not None and point.get("curve_number") != trace:
            continue
        if "customdata" in point:
            return point["customdata"]
    return None


# The grid


def tile_grid(
    images: np.ndarray,
    cols: int,
    *,
    colorscale: Colorscale = GRAY,
    zmin: float = 0.0,
    zmax: float = 1.0,
    hover: Sequence[str] | None = None,
    customdata: Sequence[Any] | None = None,
    captions: Sequence[str] | None = None,
    caption_colors: Sequence[str] | None = None,
    highlight: int | None = None,
    row_labels: Sequence[str] | None = None,
    colorbar_title: str | None = None,
    tile_px: int = 64,
    title: str | None = None,
    text_scale: float | None = None,
) -> go.Figure:
    """Images (N, H, W) in a grid `cols` wide, drawn as one PNG.

    `hover` and `customdata` go on an invisible marker over each tile, so a tile can be
    hovered and clicked (trace name "tiles"); `captions` are written under each tile;
    `highlight` outlines one tile; `row_labels` name the rows on the left. `text_scale`
    enlarges the captions and the room for them, the title and the row labels (1.5 in
    presentation mode); by default, the session's (`session_text_scale`).
    """
    scale = session_text_scale() if text_scale is None else text_scale
    images = np.asarray(images, dtype=np.float32)
    n, h, w = images.shape
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    # Rows of the image left free for the caption: as many more as its text is larger.
    gap = round(CAPTION_ROWS * scale) if captions is not None else 0
    padded = np.full((n, h + gap, w), np.nan, dtype=np.float32)
    padded[:, :h] = images
    grid = tile(padded, cols)
    step_x, step_y = w + 1, h + gap + 1
    index = np.arange(n)
    cx = (index % cols) * step_x + (w - 1) / 2
    cy = (index // cols) * step_y + (h - 1) / 2

    traces: list[Any] = [
        go.Image(
            source=png_data_uri(colorize(grid, colorscale, zmin, zmax)),
            x0=0,
            y0=0,
            dx=1,
            dy=1,
            hoverinfo="skip",
            name="image",
        )
    ]
    if hover is not None or customdata is not None:
        custom = list(customdata) if customdata is not None else index.tolist()
        size = max(6.0, tile_px * w / step_x * 0.9)
        traces.append(click_targets(cx, cy, custom, hover, size, "tiles"))
    if colorbar_title is not None:
        traces.append(colorbar_trace(colorscale, zmin, zmax, colorbar_title))
    # The layout is built as plain dicts and handed over once: Plotly checks each property
    # as it is set, and a figure built up call by call (add_annotation per caption) took
    # ten times as long, too slow for the Train page's live view redrawn every second.
    annotations = []
    if captions is not None:
        colors = caption_colors or [None] * n
        caption_px = CAPTION_PX if tile_px < 80 else LARGE_CAPTION_PX
        for i, text in enumerate(captions):
            annotations.append(
                dict(
                    x=cx[i],
                    y=cy[i] + (h + 1) / 2 + gap / 2,
                    text=text,
                    showarrow=False,
                    font=dict(size=round(caption_px * scale), color=colors[i]),
                    xanchor="center",
                    yanchor="middle",
                )
            )
    shapes = []
    if highlight is not None and 0 <= highlight < n:
        x0, y0 = cx[highlight] - (w - 1) / 2 - 1, cy[highlight] - (h - 1) / 2 - 1
        shapes.append(
            dict(
                type="rect",
                x0=x0,
                y0=y0,
                x1=x0 + w + 1,
                y1=y0 + h + gap + 1,
                line=dict(color=ACCENT, width=3),
            )
        )
    width_units, height_units = cols * step_x - 1, rows * step_y - 1
    yaxis = dict(
        range=[height_units - 0.5, -0.5],
        fixedrange=True,
        scaleanchor="x",
        constrain="domain",
        showgrid=False,
        zeroline=False,
        visible=row_labels is not None,
    )
    if row_labels is not None:
        centres = np.arange(rows) * step_y + (h - 1) / 2
        yaxis.update(tickvals=centres.tolist(), ticktext=list(row_labels), ticks="")
    top = round(TITLE_PX * scale) if title else 4
    left = round(ROW_LABELS_PX * scale) if row_labels is not None else 0
    height = rows * tile_px * step_y / step_x + top + 4
    if colorbar_title is not None:
        height = max(height, 130)  # room for a readable colour bar
    fig = go.Figure(
        traces,
        layout=dict(
            xaxis=dict(
                visible=False,
                range=[-0.5, width_units - 0.5],
                fixedrange=True,
                constrain="domain",
            ),
            yaxis=yaxis,
            annotations=annotations,
            shapes=shapes,
            height=int(height),
            margin=dict(l=left, r=0, t=top, b=4),
            title=title,
            hovermode="closest",
            dragmode=False,
        ),
    )
    return fig


# Signed pictures


def signed_pictures(pictures: np.ndarray, cols: int, pad: int = 2) -> go.Figure:
    """Pictures (N, H, W) of signed values, such as neurons' weights over the 28x28 squares,
    `cols` wide with `pad` blank cells between: red where a value is positive, blue where it
    is negative, each picture scaled to its own strongest value (a figure with no layout:
    the caller frames it)."""
    pictures = np.asarray(pictures, dtype=np.float64)
    scale = np.abs(pictures).max(axis=(1, 2), keepdims=True)
    grid = tile(pictures / np.where(scale > 0, scale, 1), cols=cols, pad=pad)
    return go.Figure(
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
