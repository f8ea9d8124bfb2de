"""Pure figure builders for the live view of a training run (core/live.py): what its first
layer looks like now, and how it reads ten fixed test digits. A view in, a Plotly figure
out, fast enough (a few small PNGs) to redraw every second while the run trains."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from dashboard.grids import WRONG_INK, WRONG_MARK, symmetric_range, tile_grid
from dashboard.images import DIVERGING

MAX_FILTERS = 16  # filters (and their maps) shown for a CNN
DENSE_COLS = 16


def _kind(view: Mapping[str, np.ndarray]) -> str:
    kind = view.get("kind")
    return str(kind) if kind is not None else ""


def live_weights(view: Mapping[str, np.ndarray]) -> go.Figure:
    """The first layer now: a dense layer's neurons as 28x28 pictures of their weights
    (red: the pixel pushes the neuron up, blue: down), or a convolution's filters above
    their outputs (feature maps) for the first fixed digit."""
    weights = np.asarray(view["weights"], dtype=np.float32)
    if _kind(view) == "conv2d":
        return _conv(weights, view.get("maps"))
    n = len(weights)
    half = symmetric_range(weights)
    return tile_grid(
        weights,
        min(DENSE_COLS, n),
        colorscale=DIVERGING,
        zmin=-half,
        zmax=half,
        hover=[f"neuron {i}" for i in range(n)],
        tile_px=36,
        title=f"First {n} neurons' weights over the pixels",
    )


def _conv(filters: np.ndarray, maps: np.ndarray | None) -> go.Figure:
    filters = filters[:MAX_FILTERS]
    n = len(filters)
    scaled = filters / symmetric_range(filters)  # in [-1, 1], as the maps below
    tiles, labels, hover = [], ["filters"], [f"filter {i}" for i in range(n)]
    if maps is not None and len(maps):
        maps = np.asarray(maps, dtype=np.float32)[:n]
        size = maps.shape[1:]
        # Each filter blown up (nearest pixel) to the size of its map, so both share a grid.
        reps = (max(1, size[0] // filters.shape[1]), max(1, size[1] // filters.shape[2]))
        big = np.kron(scaled, np.ones(reps, dtype=np.float32))
        pad = np.full((n, *size), np.nan, dtype=np.float32)
        h, w = min(size[0], big.shape[1]), min(size[1], big.shape[2])
        pad[:, :h, :w] = big[:, :h, :w]
        top = float(np.nanmax(np.abs(maps))) or 1.0
        tiles = [pad, maps / top]
        labels.append("outputs")
        hover += [f"filter {i}'s output for the first digit" for i in range(len(maps))]
        images = np.concatenate(tiles)
    else:
        images = scaled
    return tile_grid(
        images,
        n,
        colorscale=DIVERGING,
        zmin=-1.0,
        zmax=1.0,
        hover=hover,
        row_labels=labels,
        tile_px=40,
        title=f"{n} filters, and what each sees in the first digit",
    )


def live_guesses(view: Mapping[str, np.ndarray], class_names: Sequence[str]) -> go.Figure:
    """The ten fixed digits in a strip, each captioned with the network's guess and its
    probability; a wrong guess is written "✗ guess", in orange: the cross says it to eyes
    that cannot tell the colour."""
    digits = np.asarray(view["digits"], dtype=np.float32)
    if digits.max(initial=0) > 1:
        digits = digits / 255.0
    labels = np.asarray(view["labels"]).astype(int)
    probs = np.asarray(view["probs"], dtype=np.float64)
    guesses = probs.argmax(axis=1)
    names = [class_names[c] if c < len(class_names) else str(c) for c in range(probs.shape[1])]
    captions, colors, hover = [], [], []
    for label, guess, p in zip(labels, guesses, probs, strict=True):
        confidence = p[guess]
        right = guess == label
        captions.append(f"{'' if right else WRONG_MARK}{names[guess]} {confidence:.0%}")
        colors.append(None if right else WRONG_INK)
        hover.append(
            f"a {names[label]}, read as {names[guess]} ({confidence:.0%})"
            + ("" if right else ": wrong")
        )
    wrong = int((guesses != labels).sum())
    return tile_grid(
        digits,
        len(digits),
        captions=captions,
        caption_colors=colors,
        hover=hover,
        tile_px=64,
        title=f"Its guesses now: {len(digits) - wrong} of {len(digits)} right (✗ wrong)",
    )
