"""Pure figure builders for the Evaluate, Weights and Data pages: data in, Plotly figure out.

A grid of images is one PNG in one image trace, coloured in NumPy, so hundreds of
digits or neurons cost the browser one picture. Over each tile (and each cell of the
confusion matrix) sits an invisible marker that carries the hover text and makes it
clickable: Streamlit reports clicks on scatter points, not on heatmap cells or pixels.
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
from plotly.subplots import make_subplots

from dashboard.images import DIVERGING, GRAY, image_layout, tile

ACCENT = "#ff4b4b"
OUTLINE = "#1c83e1"  # a chosen cell: stands out on green, red, white and dark backgrounds
RIGHT_INK, WRONG_INK = "#2e9e44", "#e53935"  # caption colours readable in light and dark themes
CLASS_COLORS = pcolors.qualitative.T10
CORRECT_SCALE = [[0.0, "#e5f5e0"], [1.0, "#238b45"]]  # the diagonal: read correctly
MISTAKE_SCALE = [[0.0, "#fee5d9"], [1.0, "#cb181d"]]  # off the diagonal: mistakes
ACTIVATION_SCALE = "Viridis"
INVISIBLE = "rgba(0,0,0,0)"
Colorscale = str | Sequence[Sequence[Any]]


# Colouring arrays and grids of images


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


def _colorbar_trace(colorscale: Colorscale, zmin: float, zmax: float, title: str) -> go.Scatter:
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
) -> go.Figure:
    """Images (N, H, W) in a grid `cols` wide, drawn as one PNG.

    `hover` and `customdata` go on an invisible marker over each tile, so a tile can be
    hovered and clicked (trace name "tiles"); `captions` are written under each tile;
    `highlight` outlines one tile; `row_labels` name the rows on the left.
    """
    images = np.asarray(images, dtype=np.float32)
    n, h, w = images.shape
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    gap = 10 if captions is not None else 0  # rows of the image left free for the caption
    padded = np.full((n, h + gap, w), np.nan, dtype=np.float32)
    padded[:, :h] = images
    grid = tile(padded, cols)
    step_x, step_y = w + 1, h + gap + 1
    index = np.arange(n)
    cx = (index % cols) * step_x + (w - 1) / 2
    cy = (index // cols) * step_y + (h - 1) / 2

    fig = go.Figure(
        go.Image(
            source=png_data_uri(colorize(grid, colorscale, zmin, zmax)),
            x0=0,
            y0=0,
            dx=1,
            dy=1,
            hoverinfo="skip",
            name="image",
        )
    )
    tile_screen = tile_px * w / step_x
    if hover is not None or customdata is not None:
        fig.add_trace(
            go.Scatter(
                x=cx,
                y=cy,
                mode="markers",
                name="tiles",
                showlegend=False,
                customdata=list(customdata) if customdata is not None else index.tolist(),
                hovertext=list(hover) if hover is not None else None,
                hovertemplate="%{hovertext}<extra></extra>" if hover is not None else None,
                hoverinfo=None if hover is not None else "skip",
                marker=dict(symbol="square", size=max(6.0, tile_screen * 0.9), color=INVISIBLE),
                selected=dict(marker=dict(opacity=1)),
                unselected=dict(marker=dict(opacity=1)),
            )
        )
    if captions is not None:
        colors = caption_colors or [None] * n
        for i, text in enumerate(captions):
            fig.add_annotation(
                x=cx[i],
                y=cy[i] + (h + 1) / 2 + gap / 2,
                text=text,
                showarrow=False,
                font=dict(size=11 if tile_px < 80 else 13, color=colors[i]),
                xanchor="center",
                yanchor="middle",
            )
    if highlight is not None and 0 <= highlight < n:
        x0, y0 = cx[highlight] - (w - 1) / 2 - 1, cy[highlight] - (h - 1) / 2 - 1
        fig.add_shape(
            type="rect",
            x0=x0,
            y0=y0,
            x1=x0 + w + 1,
            y1=y0 + h + gap + 1,
            line=dict(color=ACCENT, width=3),
        )
    if colorbar_title is not None:
        fig.add_trace(_colorbar_trace(colorscale, zmin, zmax, colorbar_title))

    width_units, height_units = cols * step_x - 1, rows * step_y - 1
    fig.update_xaxes(
        visible=False, range=[-0.5, width_units - 0.5], fixedrange=True, constrain="domain"
    )
    fig.update_yaxes(
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
        fig.update_yaxes(tickvals=centres.tolist(), ticktext=list(row_labels), ticks="")
    top = 30 if title else 4
    height = rows * tile_px * step_y / step_x + top + 4
    if colorbar_title is not None:
        height = max(height, 130)  # room for a readable colour bar
    fig.update_layout(
        height=int(height),
        margin=dict(l=40 if row_labels is not None else 0, r=0, t=top, b=4),
        title=title,
        hovermode="closest",
        dragmode=False,
    )
    return fig


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


# Evaluate


def _percent(share: float) -> str:
    return "100%" if share >= 0.9995 else f"{share:.1%}"


def confusion_figure(
    cm: np.ndarray,
    class_names: Sequence[str],
    rates: bool = False,
    highlight: tuple[int, int] | None = None,
    noun: str = "digit",
    height: int = 540,
) -> go.Figure:
    """The confusion matrix (true classes down, predicted across) with every cell written in.

    The diagonal (right answers) is green and the mistakes red, each on its own scale, so
    a handful of mistakes stays visible next to a thousand right answers. With `rates`,
    each row is divided by its total: the share of that class read as each class.
    """
    cm = np.asarray(cm)
    k = len(cm)
    totals = cm.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(totals > 0, cm / np.maximum(totals, 1), 0.0)
    values = share if rates else cm.astype(float)
    diagonal = np.eye(k, dtype=bool)
    labels = np.array(
        [
            [
                (_percent(share[t, p]) if rates else f"{cm[t, p]:,}") if cm[t, p] else ""
                for p in range(k)
            ]
            for t in range(k)
        ],
        dtype=object,
    )
    names = list(class_names)
    fig = go.Figure()
    for mask, scale, name in (
        (diagonal, CORRECT_SCALE, "right"),
        (~diagonal, MISTAKE_SCALE, "wrong"),
    ):
        z = np.where(mask & (cm > 0), values, np.nan)
        top = float(np.nanmax(z)) if np.isfinite(z).any() else 1.0
        # Plotly gives a heatmap's text one colour, so dark cells (white text) and light
        # cells (dark text) are two traces on the same colour scale.
        dark = np.isfinite(z) & (z > 0.55 * top)
        for cells, ink in ((dark, "white"), (np.isfinite(z) & ~dark, "#3a3a3a")):
            fig.add_trace(
                go.Heatmap(
                    z=np.where(cells, z, np.nan),
                    x=list(range(k)),
                    y=list(range(k)),
                    colorscale=scale,
                    zmin=0,
                    zmax=top or 1.0,
                    showscale=False,
                    text=np.where(cells, labels, "").tolist(),
                    texttemplate="%{text}",
                    textfont=dict(size=13, color=ink),
                    hoverinfo="skip",
                    xgap=2,
                    ygap=2,
                    name=name,
                )
            )
    t_idx, p_idx = np.divmod(np.arange(k * k), k)
    hover = [
        f"{cm[t, p]:,} {noun}s that are {names[t]}, read as {names[p]}"
        f" ({share[t, p]:.1%} of the {names[t]}s)<br>click to see them"
        for t, p in zip(t_idx, p_idx, strict=True)
    ]
    fig.add_trace(
        go.Scatter(
            x=p_idx,
            y=t_idx,
            mode="markers",
            name="cells",
            showlegend=False,
            customdata=np.stack([t_idx, p_idx, cm.ravel()], axis=1).tolist(),
            hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
            marker=dict(symbol="square", size=max(8, (height - 120) / k * 0.9), color=INVISIBLE),
            selected=dict(marker=dict(opacity=1)),
            unselected=dict(marker=dict(opacity=1)),
        )
    )
    if highlight is not None:
        t, p = highlight
        fig.add_shape(
            type="rect",
            x0=p - 0.5,
            x1=p + 0.5,
            y0=t - 0.5,
            y1=t + 0.5,
            line=dict(color=OUTLINE, width=4),
        )
    ticks = dict(tickmode="array", tickvals=list(range(k)), ticktext=names, fixedrange=True)
    fig.update_xaxes(
        title_text=f"predicted {noun}",
        range=[-0.5, k - 0.5],
        showgrid=False,
        zeroline=False,
        constrain="domain",
        **ticks,
    )
    fig.update_yaxes(
        title_text=f"true {noun}",
        range=[k - 0.5, -0.5],
        showgrid=False,
        zeroline=False,
        scaleanchor="x",
        constrain="domain",
        **ticks,
    )
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=10, b=10), hovermode="closest", dragmode=False
    )
    return fig


def threshold_figure(
    thresholds: np.ndarray,
    coverage: np.ndarray,
    accuracy: np.ndarray,
    current: float | None = None,
    height: int = 340,
) -> go.Figure:
    """Coverage (share answered) and accuracy on the answered images against the threshold."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=thresholds,
            y=coverage,
            mode="lines",
            name="answered (coverage)",
            line=dict(color="#1f77b4", width=2),
            hovertemplate="threshold %{x:.2f}: answers %{y:.1%} of the images<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=thresholds,
            y=accuracy,
            mode="lines",
            name="accuracy on the answered",
            line=dict(color="#2ca02c", width=2),
            hovertemplate="threshold %{x:.2f}: %{y:.2%} of its answers right<extra></extra>",
        )
    )
    if current is not None:
        fig.add_vline(x=current, line=dict(color=ACCENT, dash="dash", width=2))
    fig.update_xaxes(title_text="confidence threshold (answers only at or above it)")
    # Zoom in on where the curves live: both are often above 90 % everywhere.
    low = np.nanmin(np.concatenate([np.ravel(coverage), np.ravel(accuracy), [1.0]]))
    fig.update_yaxes(title_text="percent", tickformat=".0%", range=[max(0.0, low - 0.02), 1.005])
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=10, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        hovermode="x unified",
    )
    return fig


def robustness_figure(
    amounts: np.ndarray,
    accuracy: np.ndarray,
    x_title: str,
    current: float | None = None,
    chance: float = 0.1,
    height: int = 340,
) -> go.Figure:
    """Accuracy against the amount of damage, with the level of pure guessing for reference."""
    fig = go.Figure(
        go.Scatter(
            x=amounts,
            y=accuracy,
            mode="lines+markers",
            name="accuracy",
            line=dict(color="#1f77b4", width=2),
            hovertemplate=f"{x_title}: %{{x:g}}<br>accuracy %{{y:.1%}}<extra></extra>",
        )
    )
    fig.add_hline(
        y=chance,
        line=dict(color="#888", dash="dot"),
        annotation_text="guessing",
        annotation_position="bottom right",
    )
    if current is not None:
        i = int(np.argmin(np.abs(np.asarray(amounts) - current)))
        fig.add_trace(
            go.Scatter(
                x=[amounts[i]],
                y=[accuracy[i]],
                mode="markers",
                name="chosen",
                marker=dict(color=ACCENT, size=14, line=dict(color="white", width=2)),
                hoverinfo="skip",
                showlegend=False,
            )
        )
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text="accuracy", tickformat=".0%", range=[0, 1.04])
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), showlegend=False)
    return fig


# Weights


def weight_grid(
    weights: np.ndarray,
    biases: np.ndarray,
    cols: int | None = None,
    highlight: int | None = None,
    dead: Sequence[int] = (),
    tile_px: int = 56,
) -> go.Figure:
    """Each first-layer neuron's incoming weights (units, H, W) as an image, red positive and
    blue negative on one scale centred on zero. Hover and click a tile (customdata: neuron)."""
    units = len(weights)
    cols = cols or (8 if units <= 64 else 12 if units <= 256 else 16)
    top = symmetric_range(weights)
    dead_set = set(int(d) for d in dead)
    hover = [
        f"neuron {j}: bias {biases[j]:+.3f}"
        + (" · never fires on the test set" if j in dead_set else "")
        + "<br>click to enlarge"
        for j in range(units)
    ]
    return tile_grid(
        weights,
        cols,
        colorscale=DIVERGING,
        zmin=-top,
        zmax=top,
        hover=hover,
        customdata=list(range(units)),
        highlight=highlight,
        colorbar_title="weight",
        tile_px=tile_px,
    )


def weight_image(image: np.ndarray, title: str | None = None, height: int = 360) -> go.Figure:
    """One neuron's weights, large, with each weight's value on hover."""
    top = symmetric_range(image, 100)
    hover = "row %{y}, column %{x}: weight %{z:+.3f}<extra></extra>"
    return image_layout(go.Figure(_weight_heatmap(image, top, hover)), height, title)


def _weight_heatmap(z: np.ndarray, top: float, hovertemplate: str) -> go.Heatmap:
    """Weights on the blue-white-red scale, white at zero, from -top to top."""
    return go.Heatmap(
        z=z,
        colorscale=DIVERGING,
        zmin=-top,
        zmax=top,
        zmid=0,
        colorbar=dict(title=dict(text="weight", side="right"), thickness=12),
        hovertemplate=hovertemplate,
    )


MAX_HEATMAP_CELLS = 60_000  # above this a matrix is drawn as an image, without per-cell hover


def matrix_figure(weights: np.ndarray, x_title: str, y_title: str, height: int = 420) -> go.Figure:
    """A dense layer's weight matrix W (inputs, units) as a heatmap: one row per neuron of
    the layer, one column per input, centred on zero."""
    z = np.asarray(weights).T
    top = symmetric_range(z)
    if z.size <= MAX_HEATMAP_CELLS:
        hover = "input %{x} → neuron %{y}: %{z:+.3f}<extra></extra>"
        fig = go.Figure(_weight_heatmap(z, top, hover))
    else:
        fig = go.Figure(
            go.Image(
                source=png_data_uri(colorize(z, DIVERGING, -top, top)),
                hoverinfo="skip",
                name="matrix",
            )
        )
        fig.add_trace(_colorbar_trace(DIVERGING, -top, top, "weight"))
    fig.update_xaxes(title_text=x_title, showgrid=False, zeroline=False)
    fig.update_yaxes(title_text=y_title, autorange="reversed", showgrid=False, zeroline=False)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def conv_filters_figure(weights: np.ndarray, biases: np.ndarray, tile_px: int = 48) -> go.Figure:
    """Convolution filters W (kh, kw, channels, filters) as small images centred on zero.

    Filters that see one channel (the first layer) are one tile each; deeper filters are
    one row each, a tile per input channel.
    """
    kh, kw, channels, filters = weights.shape
    top = symmetric_range(weights)
    if channels == 1:
        images = weights[:, :, 0, :].transpose(2, 0, 1)
        hover = [f"filter {f}: bias {biases[f]:+.3f}" for f in range(filters)]
        return tile_grid(
            images,
            min(16, filters),
            colorscale=DIVERGING,
            zmin=-top,
            zmax=top,
            hover=hover,
            colorbar_title="weight",
            tile_px=tile_px,
        )
    images = weights.transpose(3, 2, 0, 1).reshape(filters * channels, kh, kw)
    hover = None
    if filters * channels <= 1024:
        hover = [f"filter {f}, input channel {c}" for f in range(filters) for c in range(channels)]
    return tile_grid(
        images,
        channels,
        colorscale=DIVERGING,
        zmin=-top,
        zmax=top,
        hover=hover,
        colorbar_title="weight",
        tile_px=max(12, min(tile_px, 900 // channels)),
    )


def histogram_figure(
    layers: Sequence[tuple[str, np.ndarray, np.ndarray]], bins: int = 60, height: int = 340
) -> go.Figure:
    """Distributions of each layer's weights (left) and biases (right), as density outlines.

    Small arrays get fewer bins (about twice the square root of their size), not spikes;
    constant arrays (all-zero biases before a batch norm) are left out.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Weights", "Biases"))
    for i, (name, weights, biases) in enumerate(layers):
        color = CLASS_COLORS[i % len(CLASS_COLORS)]
        for col, values in ((1, weights), (2, biases)):
            values = np.asarray(values, dtype=np.float64).ravel()
            if values.size == 0 or np.ptp(values) < 1e-6:
                continue  # constant (biases under batch norm stay at zero): no distribution
            lo, hi = float(values.min()), float(values.max())
            n_bins = int(min(bins, max(5, 2 * np.sqrt(values.size))))
            density, edges = np.histogram(values, bins=n_bins, range=(lo, hi), density=True)
            fig.add_trace(
                go.Scatter(
                    x=(edges[:-1] + edges[1:]) / 2,
                    y=density,
                    mode="lines",
                    name=name,
                    line=dict(color=color, shape="hvh", width=1.5),
                    legendgroup=name,
                    showlegend=col == 1,
                    hovertemplate=f"{name}<br>value %{{x:+.3f}}: density %{{y:.3g}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="weight value", row=1, col=1)
    fig.update_xaxes(title_text="bias value", row=1, col=2)
    fig.update_yaxes(title_text="density (share per unit of value)", row=1, col=1)
    fig.update_yaxes(title_text="density", row=1, col=2)
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.25, x=0),
    )
    return fig


def neuron_grid(
    values: np.ndarray, signed: bool = False, cols: int = 16, height_px: int = 28
) -> go.Figure:
    """One layer's activations (units,) as a grid of squares, brighter for stronger.

    `signed` activations (tanh, leaky ReLU) use a diverging scale centred on zero.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    units = len(values)
    cols = max(1, min(cols, units))
    rows = math.ceil(units / cols)
    z = np.full(rows * cols, np.nan)
    z[:units] = values
    index = np.full(rows * cols, -1)
    index[:units] = np.arange(units)
    if signed:
        top = symmetric_range(values, 100)
        scale, zmin, zmax = DIVERGING, -top, top
    else:
        scale, zmin, zmax = ACTIVATION_SCALE, 0.0, float(max(values.max(initial=0), 1e-6))
    fig = go.Figure(
        go.Heatmap(
            z=z.reshape(rows, cols),
            customdata=index.reshape(rows, cols),
            colorscale=scale,
            zmin=zmin,
            zmax=zmax,
            xgap=2,
            ygap=2,
            hoverongaps=False,
            colorbar=dict(title=dict(text="activation", side="right"), thickness=10),
            hovertemplate="neuron %{customdata}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(visible=False, constrain="domain", fixedrange=True)
    fig.update_yaxes(
        visible=False, autorange="reversed", scaleanchor="x", constrain="domain", fixedrange=True
    )
    fig.update_layout(height=rows * height_px + 20, margin=dict(l=0, r=0, t=10, b=10))
    return fig


def feature_maps(maps: np.ndarray, cols: int = 16, tile_px: int = 56) -> go.Figure:
    """A convolution layer's output (H, W, channels): one image per channel, brighter for
    stronger, on one scale for the whole layer."""
    images = np.asarray(maps).transpose(2, 0, 1)
    top = float(max(np.abs(images).max(initial=0), 1e-6))
    signed = bool((images < 0).any())
    hover = [f"channel {c}: strongest {images[c].max():.2f}" for c in range(len(images))]
    return tile_grid(
        images,
        cols,
        colorscale=DIVERGING if signed else ACTIVATION_SCALE,
        zmin=-top if signed else 0.0,
        zmax=top,
        hover=hover,
        colorbar_title="activation",
        tile_px=tile_px,
    )


# Data


def class_balance_figure(
    counts: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    noun: str = "digit",
    height: int = 360,
) -> go.Figure:
    """The share of each class in each part of the data (grouped bars, counts on hover)."""
    fig = go.Figure()
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]
    for i, (part, values) in enumerate(counts.items()):
        values = np.asarray(values)
        total = max(int(values.sum()), 1)
        fig.add_trace(
            go.Bar(
                x=list(class_names),
                y=values / total,
                name=f"{part} ({total:,})",
                customdata=values,
                marker_color=palette[i % len(palette)],
                hovertemplate=f"{part}: %{{customdata:,}} images of %{{x}} "
                "(%{y:.1%})<extra></extra>",
            )
        )
    fig.add_hline(y=1 / max(len(class_names), 1), line=dict(color="#888", dash="dot"))
    fig.update_xaxes(title_text=noun, type="category")
    fig.update_yaxes(title_text="share of its part of the data", tickformat=".0%")
    fig.update_layout(
        barmode="group",
        height=height,
        margin=dict(l=10, r=10, t=10, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    return fig


def pca_figure(
    coords: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    explained: np.ndarray,
    highlight: Sequence[int] = (),
    noun: str = "digit",
    height: int = 560,
) -> go.Figure:
    """A 2-D map of N points coloured by class, one trace per class in class order.

    Each point's customdata is its row in `coords`, so a click can be traced back; the rows
    in `highlight` are ringed.
    """
    labels = np.asarray(labels)
    fig = go.Figure()
    for cls, name in enumerate(class_names):
        rows = np.flatnonzero(labels == cls)
        fig.add_trace(
            go.Scatter(
                x=coords[rows, 0],
                y=coords[rows, 1],
                mode="markers",
                name=str(name),
                customdata=rows,
                marker=dict(size=6, opacity=0.75, color=CLASS_COLORS[cls % len(CLASS_COLORS)]),
                hovertemplate=f"{noun} {name} (point %{{customdata}})<br>click to see it"
                "<extra></extra>",
            )
        )
    if len(highlight):
        ringed = np.asarray(highlight, dtype=np.intp)
        # A white ring under a dark one: one of them shows on any theme's background.
        for size, color, width in ((18, "white", 4), (14, "#1f1f1f", 2)):
            fig.add_trace(
                go.Scatter(
                    x=coords[ringed, 0],
                    y=coords[ringed, 1],
                    mode="markers",
                    name="chosen",
                    showlegend=False,
                    hoverinfo="skip",
                    marker=dict(size=size, color=INVISIBLE, line=dict(color=color, width=width)),
                )
            )
    fig.update_xaxes(title_text=f"first principal component ({explained[0]:.0%} of the variance)")
    fig.update_yaxes(title_text=f"second principal component ({explained[1]:.0%})")
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=36, b=10),  # the top margin keeps the mode bar off the legend
        legend=dict(title=dict(text=noun), itemsizing="constant"),
        hovermode="closest",
    )
    return fig
