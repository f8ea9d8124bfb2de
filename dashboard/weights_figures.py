"""Pure figure builders for the Weights page, and the words beside them: data in, Plotly
figure (or text) out.

What each first-layer neuron looks for (one tile per neuron), the replay of how the first
layer formed (played in the browser), convolution filters, weight matrices, the
distributions of weights and biases, the dead units of each layer, and what a layer's
units output for one digit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.colors as pcolors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core import analysis
from core.layers import Layer
from core.model import Model
from core.replay import Moment, Replay
from dashboard.grids import (
    CLASS_COLORS,
    click_targets,
    colorbar_trace,
    colorize,
    png_data_uri,
    symmetric_range,
    tile_grid,
)
from dashboard.images import DIVERGING, image_layout, tile

ACTIVATION_SCALE = "Viridis"


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


REPLAY_GAP = "rgba(0,0,0,0)"  # between the tiles: the page shows through, as in the grid
# The frame's name over the slider; the pages' style sheet (dashboard/presentation.py) gives
# it the page's text colour, as every chart label, for contrast on light and dark themes.
REPLAY_LABEL = "#808495"


def replay_figure(
    replay: Replay,
    cols: int | None = None,
    tile_px: int = 44,
    frame_ms: int = 600,
    text_scale: float = 1.0,
) -> go.Figure:
    """The first layer's units frame by frame, played in the browser: Play and Pause, and a
    slider that follows the frames and can be dragged through them.

    Each frame is one heatmap of the tiled units as uint8 (0: the gap between tiles, 1-255:
    the weights on that frame's own scale, 128 at zero), so a frame weighs a byte a pixel.
    `text_scale` enlarges the moment's name over the slider (1.5 in presentation mode).
    """
    frames, units, h, w = replay.weights.shape
    cols = cols or min(units, 8 if replay.layer == "dense" else 16)
    rows = math.ceil(units / cols)
    pictures = [_replay_tiles(replay.weights[i], cols) for i in range(frames)]
    index = np.arange(units)
    cx, cy = (index % cols) * (w + 1) + (w - 1) / 2, (index // cols) * (h + 1) + (h - 1) / 2
    noun = "neuron" if replay.layer == "dense" else "pattern finder (filter)"
    hover = [f"{noun} {u}" for u in replay.units]
    figure = go.Figure(
        [
            go.Heatmap(
                z=pictures[0],
                zmin=0,
                zmax=255,
                colorscale=_replay_scale(),
                colorbar=dict(
                    title=dict(text="weight", side="right"),
                    thickness=12,
                    tickvals=[1, 128, 255],
                    ticktext=["holds back", "0", "excites"],
                ),
                hoverinfo="skip",
                name="weights",
            ),
            click_targets(cx, cy, list(replay.units), hover, tile_px * 0.9, "tiles"),
        ],
        frames=[
            go.Frame(data=[go.Heatmap(z=picture)], traces=[0], name=str(i))
            for i, picture in enumerate(pictures)
        ],
    )
    width = max(cols * tile_px + 110, 420)  # room for the colour bar, and for the controls
    figure.update_layout(
        updatemenus=[_play_pause(frame_ms)],
        sliders=[_frame_slider(replay.labels, round(15 * text_scale))],
        width=width,
        height=int(max(rows * tile_px * (h + 1) / (w + 1), 120) + 130),
        margin=dict(l=0, r=0, t=8, b=122),  # the buttons, and the slider under them
        hovermode="closest",
        dragmode=False,
    )
    width_units, height_units = cols * (w + 1) - 1, rows * (h + 1) - 1
    figure.update_xaxes(
        visible=False, range=[-0.5, width_units - 0.5], fixedrange=True, constrain="domain"
    )
    figure.update_yaxes(
        visible=False,
        range=[height_units - 0.5, -0.5],
        fixedrange=True,
        scaleanchor="x",
        constrain="domain",
    )
    return figure


# Showing a frame at once: the heatmap redrawn, nothing eased in between.
STILL = dict(frame=dict(duration=0, redraw=True), transition=dict(duration=0), mode="immediate")


def _play_pause(frame_ms: int) -> dict[str, Any]:
    """Play (from the frame on show, `frame_ms` each) and Pause buttons under the figure."""
    play = dict(frame=dict(duration=frame_ms, redraw=True), transition=dict(duration=0))
    return dict(
        type="buttons",
        direction="left",
        x=0,
        y=0,
        xanchor="left",
        yanchor="top",
        pad=dict(t=10),
        showactive=False,
        buttons=[
            dict(label="Play", method="animate", args=[None, dict(play, fromcurrent=True)]),
            dict(label="Pause", method="animate", args=[[None], STILL]),
        ],
    )


def _frame_slider(labels: Sequence[str], label_px: int = 15) -> dict[str, Any]:
    """A slider with a step per frame, under the buttons; it moves with the animation and
    shows the frame's label above it."""
    return dict(
        active=0,
        x=0,
        len=1,
        y=0,
        yanchor="top",
        pad=dict(t=50, r=10),
        # Its own colour: it would take the step labels' see-through one.
        currentvalue=dict(prefix="", font=dict(size=label_px, color=REPLAY_LABEL)),
        font=dict(color=REPLAY_GAP),  # a label per step would overlap: only the current shows
        ticklen=3,
        transition=dict(duration=0),
        steps=[
            dict(label=label, method="animate", args=[[str(i)], STILL])
            for i, label in enumerate(labels)
        ],
    )


def _replay_tiles(pictures: np.ndarray, cols: int) -> np.ndarray:
    """Units (units, H, W) tiled `cols` wide as uint8 on their own scale centred on zero."""
    top = symmetric_range(pictures)
    scaled = np.clip(np.asarray(pictures, dtype=np.float32) / top, -1, 1)
    grid = tile(np.rint(128 + 127 * scaled), cols, fill=0)
    return grid.astype(np.uint8)


def _replay_scale() -> list[list[Any]]:
    """The weights' blue-white-red scale on 1-255, and 0 (the gap) see-through."""
    scale = pcolors.get_colorscale(DIVERGING)
    start = 1 / 255  # so 1 is the bluest and 128 (1 + 254 / 2) is white
    return [
        [0.0, REPLAY_GAP],
        [start, REPLAY_GAP],
        *([start + (1 - start) * float(p), c] for p, c in scale),
    ]


def strongest_grid(images: np.ndarray, top: np.ndarray, drive: np.ndarray) -> go.Figure:
    """The uint8 images at indices `top` that excite a neuron most, with their weighted sums."""
    hover = [f"test image #{i}: weighted sum {d:+.2f}" for i, d in zip(top, drive, strict=True)]
    return tile_grid(images[top] / 255, 8, hover=hover, tile_px=44)


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
        fig.add_trace(colorbar_trace(DIVERGING, -top, top, "weight"))
    fig.update_xaxes(title_text=x_title, showgrid=False, zeroline=False)
    fig.update_yaxes(title_text=y_title, autorange="reversed", showgrid=False, zeroline=False)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def dense_weights_figure(weights: np.ndarray) -> go.Figure:
    """A dense layer's weight matrix (inputs, units), as tall as its number of neurons needs."""
    n_in, n_out = weights.shape
    height = min(520, max(220, 6 * n_out + 80))
    return matrix_figure(weights, f"input (one of {n_in})", f"neuron (one of {n_out})", height)


def conv_filters_figure(weights: np.ndarray, biases: np.ndarray, tile_px: int = 48) -> go.Figure:
    """Convolution filters W (kh, kw, channels, filters) as small images centred on zero.

    Filters that see one channel (the first layer) are one tile each; deeper filters are
    one row each, a tile per input channel.
    """
    kh, kw, channels, filters = weights.shape
    top = symmetric_range(weights)
    if channels == 1:
        images = weights[:, :, 0, :].transpose(2, 0, 1)
        hover = [f"pattern finder (filter) {f}: bias {biases[f]:+.3f}" for f in range(filters)]
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
        hover = [
            f"pattern finder (filter) {f}, reading picture {c} (input channel)"
            for f in range(filters)
            for c in range(channels)
        ]
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


def layer_weights(layer: Layer) -> tuple[go.Figure, str]:
    """A dense or convolution layer's weights as a figure, and a caption saying how to read it."""
    W, b = layer.params["W"], layer.params["b"]
    if layer.kind == "dense":
        caption = (
            "One row per neuron of this layer, one column per neuron feeding it: red "
            "connections excite, blue ones hold back."
        )
        return dense_weights_figure(W), caption
    if W.shape[2] > 1:
        return conv_filters_figure(W, b), (
            "One row per pattern finder (filter), one small image per picture it reads from "
            "the layer before (its input channels)."
        )
    return conv_filters_figure(W, b), "One small image per pattern finder (filter)."


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
    fig.update_yaxes(title_text="how common (density)", row=1, col=1)
    fig.update_yaxes(title_text="how common (density)", row=1, col=2)
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
            colorbar=dict(title=dict(text="output", side="right"), thickness=10),
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
    hover = [f"picture {c} (channel): strongest {images[c].max():.2f}" for c in range(len(images))]
    return tile_grid(
        images,
        cols,
        colorscale=DIVERGING if signed else ACTIVATION_SCALE,
        zmin=-top if signed else 0.0,
        zmax=top,
        hover=hover,
        colorbar_title="output",
        tile_px=tile_px,
    )


def activation_figure(values: np.ndarray, signed: bool = False) -> go.Figure:
    """One layer's output for one image: feature maps for an (H, W, channels) output, else a
    grid of neurons (`signed` for activations that can be negative)."""
    if values.ndim == 3:
        channels = values.shape[-1]
        size = 80 if channels <= 8 else 56 if channels <= 16 else 40
        return feature_maps(values, cols=min(16, channels), tile_px=size)
    return neuron_grid(values, signed=signed)


# Words

# What each kind of layer does, for someone who has never heard its name. The exact name
# (an engineer's "Max-pool 1 (13 × 13 × 16)") follows the plain words, never replaces them.
_DOES = {
    "relu": "negatives set to zero",
    "leaky_relu": "negatives shrunk, not zeroed",
    "tanh": "squeezed between −1 and 1",
    "sigmoid": "squeezed between 0 and 1",
    "maxpool2d": "shrunk, keeping each patch's strongest value",
    "batchnorm": "rescaled to a steady range",
    "dropout": "some switched off at random while training",
    "flatten": "laid out as one list",
}


def plain_shape(shape: Sequence[int]) -> str:
    """A layer's output size in words: "16 pictures of 13×13", or "128 numbers"."""
    if len(shape) == 3:
        h, w, c = shape
        return f"{c} picture{'s' if c != 1 else ''} of {h}×{w}"
    return f"{math.prod(shape)} numbers"


def plain_title(info: analysis.LayerInfo) -> str:
    """A layer in plain words first, then its exact name: "128 neurons, each weighing all 784
    inputs · Dense 1 (784 → 128)"."""
    kind, shape = info.kind, info.output_shape
    if kind == "dense":
        words = f"{shape[-1]} neurons, each weighing all its inputs"
    elif kind == "conv2d":
        words = f"{shape[-1]} pattern finders (filters) slid over the picture"
    elif kind in _DOES:
        words = f"{plain_shape(shape)}, {_DOES[kind]}"
    else:
        words = plain_shape(shape)
    return f"{words[0].upper()}{words[1:]} · {info.title}"


def snapshot_caption(moment: Moment, val_accuracy: float | None, best_epoch: int | None) -> str:
    """What the weights at `moment` are: random, or after so much training, and how good."""
    if moment.batches:
        many = f"{moment.batches} batches" if moment.batches > 1 else "batch"
        when = f"After the first {many} of epoch 1 (a batch is a handful of images). "
    elif moment.epoch == 0:
        when = "The untrained network: random weights. "
    else:
        when = f"After epoch {moment.epoch} ({_nth(moment.epoch)} pass over the training images). "
    return (
        when
        + (
            f"Accuracy on the images set aside (validation) then: {val_accuracy:.2%}. "
            if val_accuracy is not None
            else ""
        )
        + (
            f"The selected model is from the best epoch, {best_epoch} (the one that scored "
            "best on the images set aside)."
            if best_epoch
            else ""
        )
    )


def _nth(n: int) -> str:
    """1st, 2nd, 3rd, 4th, …, 11th, 12th, 13th, 21st."""
    last = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th") if n % 100 not in (11, 12, 13) else "th"
    return f"{n}{last}"


def replay_caption(layer: str, shown: int, total: int) -> str:
    """How to read the replay: which units it shows, and its colours."""
    noun = "neurons" if layer == "dense" else "pattern finders (filters)"
    which = f"All {total} {noun}" if shown == total else f"The first {shown} of the {total} {noun}"
    return (
        f"{which}. Each frame has its own colour scale, centred on zero (white), so the "
        "pattern shows while the weights are still small: red wants ink, blue wants none."
    )


def grid_caption(n_dead: int) -> str:
    """What the grid of first-layer neurons shows, and how many of them are dead."""
    dead = f" {n_dead} of them never fire on the test set (dead): their hover says so."
    return (
        "One colour scale for the whole layer, centred on zero. Hover a neuron for its bias; "
        "**click one** to see it large." + (dead if n_dead else "")
    )


def constant_bias_note(model: Model, titles: Mapping[int, str]) -> str:
    """Which layers' biases the histogram leaves out (all one value), and why they never
    moved when a batch norm follows; empty when none."""
    constant = analysis.constant_biases(model)
    if not constant:
        return ""
    why = (
        " (the rescaling step after them, a batch norm, does their job, so they never move)."
        if all(analysis.feeds_batch_norm(model, i) for i in constant)
        else "."
    )
    listed = ", ".join(titles[i] for i in constant)
    return f" Not drawn: the biases of {listed}, which all have the same value{why}"


# A convolutional layer's unit is a channel: one of the pictures the layer passes on.
_PLAIN_UNITS = {"channels": "pictures (channels)", "neurons": "neurons"}


def dead_metrics(
    model: Model, dead: Sequence[analysis.DeadUnits], titles: Mapping[int, str]
) -> list[dict[str, Any]]:
    """One st.metric per ReLU layer: how many of its units never fire."""
    return [
        dict(
            label=titles[d.index],
            value=f"{len(d.dead)} of {d.units} {_PLAIN_UNITS[analysis.unit_noun(model, d.index)]}",
            help="Neurons that output zero for every one of the test images (their ReLU, "
            "which turns negatives into zero, always gets a negative): they pass nothing on "
            "and no longer learn.",
        )
        for d in dead
    ]


# For the curious: the exact terms behind the page's plain words, plain words first.
TERMS = (
    (
        "Neuron",
        "a unit of a dense (fully connected) layer: it computes w · x + b over all its "
        "inputs, then the layer's activation function.",
    ),
    (
        "What each neuron looks for",
        "a first-layer neuron's 784 incoming weights (a column of W) reshaped to 28 × 28.",
    ),
    ("Head start (bias)", "the bias b added to the weighted sum."),
    (
        "Pattern finder (filter)",
        "a convolution kernel of k × k weights per input channel, slid over the image "
        "(cross-correlation) with one bias.",
    ),
    (
        "Pictures a layer passes on",
        "feature maps: the (height × width × channels) output of a convolution, "
        "max-pool, batch norm or ReLU layer; one channel per filter.",
    ),
    (
        "What lights up inside",
        "activations: each layer's output for one image, after its non-linearity; the last "
        "layer's ten raw scores (logits) become the chances through the softmax function.",
    ),
    (
        "Neurons that never fire (dead)",
        "ReLU units whose output is 0 for every test image, so their gradient is 0 too.",
    ),
    ("How common (density)", "a histogram normalised so that its area is 1."),
    (
        "Batch, epoch",
        "a mini-batch of images per gradient step; an epoch is one pass over the training "
        "set. Snapshots are saved after the first 1, 2, 4, … batches and every epoch.",
    ),
)


def layer_notes(infos: Sequence[analysis.LayerInfo]) -> str:
    """Every layer as the code names it, with its output size and what it does in words."""
    lines = []
    for info in infos:
        shape = " × ".join(str(s) for s in info.output_shape)
        words = plain_title(info).split(" · ")[0]
        lines.append(f"{len(lines) + 1}. **{info.title}**: `{info.kind}`, out {shape}: {words}")
    return "\n".join(lines)


def curious_notes(infos: Sequence[analysis.LayerInfo]) -> str:
    """The Weights page's "For the curious": its terms, and the network's exact layers."""
    terms = "\n".join(f"- **{plain}**: {exact}" for plain, exact in TERMS)
    arrows = " → ".join(info.kind for info in infos)
    return f"{terms}\n\n**The network's layers** ({arrows}):\n\n{layer_notes(infos)}"
