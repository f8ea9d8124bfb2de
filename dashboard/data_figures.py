"""Pure figure builders for the Data page: data in, Plotly figure out.

Sample digits of every class, the class balance of each part of the data, the average
digit of each class, and a 2-D map of the test images as a layer sees them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from core.analysis import LayerInfo
from dashboard.grids import CLASS_COLORS, INVISIBLE, symmetric_range, tile_grid
from dashboard.images import DIVERGING


def samples_grid(images: np.ndarray, picked: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """(classes, k) indices of uint8 training `images` as one row per class, labelled; a
    -1 (a class with fewer than k images) leaves a gap."""
    classes, per_class = picked.shape
    flat = picked.ravel()
    pictures = images[np.where(flat >= 0, flat, 0)] / 255
    pictures[flat < 0] = np.nan
    hover = [
        f"training image #{i}: a {class_names[c]}"
        for c, i in zip(np.repeat(range(classes), per_class), flat, strict=True)
    ]
    return tile_grid(pictures, per_class, hover=hover, row_labels=class_names, tile_px=52)


def means_figure(
    means: np.ndarray, class_names: Sequence[str], noun: str = "digit", difference: bool = False
) -> go.Figure:
    """The average image of each class in [0, 1]; with `difference`, how each differs from
    the average of them all (red: more ink, blue: less)."""
    if not difference:
        hover = [f"the average {noun} {n}" for n in class_names]
        return tile_grid(means, 10, captions=class_names, hover=hover, tile_px=96)
    delta = means - means.mean(axis=0)
    top = symmetric_range(delta, 100)
    return tile_grid(
        delta,
        10,
        colorscale=DIVERGING,
        zmin=-top,
        zmax=top,
        captions=class_names,
        hover=[f"{noun} {n}" for n in class_names],
        colorbar_title="ink vs average",
        tile_px=96,
    )


def group_grid(
    images: np.ndarray,
    rows: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    names: Sequence[str],
) -> go.Figure:
    """The uint8 test images at indices `rows`, captioned with their class; `labels` and
    `predictions` are theirs, in the same order."""
    hover = [
        f"test image #{r}: a {names[t]}, read as {names[p]}"
        for r, t, p in zip(rows, labels, predictions, strict=True)
    ]
    captions = [names[t] for t in labels]
    return tile_grid(images[rows] / 255, 8, hover=hover, captions=captions, tile_px=48)


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
    # Plain words first; the statistician's name (principal component) after them.
    fig.update_xaxes(
        title_text="the biggest difference between the images "
        f"({explained[0]:.0%} of all their differences) · principal component 1"
    )
    fig.update_yaxes(
        title_text=f"the next biggest difference ({explained[1]:.0%}) · principal component 2"
    )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=36, b=10),  # the top margin keeps the mode bar off the legend
        legend=dict(title=dict(text=noun), itemsizing="constant"),
        hovermode="closest",
    )
    return fig


# For the curious: the exact terms behind the page's plain words, plain words first.
TERMS = (
    (
        "Digit, kind",
        "the class: the label each image comes with (0 to 9 for MNIST), which the network "
        "learns to predict.",
    ),
    (
        "Parts of the data",
        "the training set (what the weights are fitted on), the validation set (held out of "
        "the training set, stratified by class, seed 0, to pick the best epoch) and the test "
        "set (used once, to score the final model).",
    ),
    ("How many of each", "the class balance: each class's share of each split."),
    (
        "The average digit",
        "the per-class mean image over the training set; the difference view subtracts the "
        "mean of the ten class means.",
    ),
    (
        "How the network sorts them",
        "a 2-D PCA (principal component analysis) of 2,000 class-balanced test images, of "
        "their raw pixels or of one layer's activations (its output), centred, via the SVD; "
        "each axis says the share of the variance its component explains.",
    ),
)


def curious_notes(data_name: str, infos: Sequence[LayerInfo]) -> str:
    """The Data page's "For the curious": its terms, and the layers the map can look through."""
    terms = "\n".join(f"- **{plain}**: {exact}" for plain, exact in TERMS)
    layers = ", ".join(f"`{info.kind}` {info.title}" for info in infos)
    return f"{terms}\n\n**The data:** {data_name}. **The network's layers:** {layers}."
