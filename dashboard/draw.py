"""Pure pieces of the Draw page: what to say about a prediction, and what lights up inside.

Data in, answer or Plotly figure out, no Streamlit, so each piece is tested on its own;
except `hide_canvas_toolbar`, the one piece of the page every drawing canvas shares (the
Draw page's and the tour's).
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from core import novelty
from core.model import Model
from core.preprocess import ImageError, Prepared, load_image, prepare

from .grids import signed_pictures
from .images import ACCENT, NEUTRAL, image_layout, tile, value_noun

NOT_A_DIGIT = "Not a digit?"  # the answer's heading for a drawing unlike any digit
NOT_SURE = 0.6  # below this top probability the page says "not sure" instead of naming it
CANVAS = 320  # the drawing box's side in pixels: big enough for a finger on a tablet
# A digit drawn 165 to 220 pixels tall is scaled to 20, which turns this pen into strokes
# 3.1 to 2.4 pixels wide: MNIST's are 2.6 (2.3 to 3.1 for the middle half of them).
PEN = 26
# On the canvas a digit must span a fifth of the box (64 pixels, a pen dot is 26): anything
# smaller is a tap or a slip, and gets "draw a digit", not a guess.
CANVAS_MIN_EXTENT = 0.2
TOP_NEURONS = 8
PARAMETRIC = ("dense", "conv2d")
# The decoder's own words in an ImageError, " (UnidentifiedImageError: …)", up to the advice.
_DECODER_DETAIL = re.compile(r" \(\w+(?:Error|Warning|Exception): .*\)(?=; )")


# streamlit-drawable-canvas 0.13 draws its own toolbar (upload, undo, redo, edit, reset)
# over every canvas; it only duplicates the page's own Undo and Clear, and has no option to
# hide it. The canvas draws in a shadow root that the page's styles cannot reach, so a
# style goes inside each one. The toolbar shows only on hover or keyboard focus: hiding it
# as the pointer arrives or focus moves, before the page is painted again, also covers a
# canvas mounted since (after Clear, or on another step), without watching every change to
# the page. A hidden button can still be pressed from a script (the Draw page presses
# "Update the app with this drawing" when a stroke ends).
HIDE_TOOLBAR = """
const HIDE = ".dc-toolbar { display: none !important; }";
const hideToolbars = () => {
    for (const host of document.querySelectorAll("[data-testid=stBidiComponentIsolated]")) {
        const root = host.shadowRoot;
        if (!root?.querySelector(".dc-toolbar") || root.querySelector("style[data-hide-toolbar]"))
            continue;
        const style = document.createElement("style");
        style.setAttribute("data-hide-toolbar", "");
        style.textContent = HIDE;
        root.append(style);
    }
};
const events = ["pointerover", "focusin"];
export default function () {
    hideToolbars();
    // The same handler added twice is added once, so every rerun may call this again.
    for (const name of events) window.addEventListener(name, hideToolbars, { passive: true });
    return () => {
        for (const name of events) window.removeEventListener(name, hideToolbars);
    };
}
"""


def hide_canvas_toolbar(key: str) -> None:
    """Hide the own toolbar of every drawing canvas on the page, now and mounted later
    (call it on every run of a page with a canvas; `key` is the hider's widget key)."""
    _toolbar_hider()(key=key)


@functools.cache  # once per server: registering it again would log a warning
def _toolbar_hider() -> Any:
    import streamlit as st  # here: the rest of this module is Streamlit-free

    return st.components.v2.component("mnist_hide_canvas_toolbar", js=HIDE_TOOLBAR)


@dataclass(frozen=True)
class Verdict:
    """The network's answer in words: the winning class, how sure, and whether to say so."""

    index: int
    label: str
    confidence: float
    sure: bool
    detail: str


def class_names(meta: Mapping[str, Any], n_classes: int) -> list[str]:
    """The labels saved with a model, or 0, 1, 2, … when it has none that fit."""
    names = meta.get("class_names")
    if isinstance(names, list) and len(names) == n_classes:
        return [str(n) for n in names]
    return [str(i) for i in range(n_classes)]


def verdict(probs: np.ndarray, names: Sequence[str], threshold: float = NOT_SURE) -> Verdict:
    """Name the most probable class; below `threshold`, say "not sure" and give the best two."""
    order = np.argsort(probs)[::-1]
    best, second = int(order[0]), int(order[1])
    p = float(probs[best])
    if p >= threshold:
        return Verdict(best, names[best], p, True, f"{p:.0%} sure")
    detail = (
        f"Not sure: maybe {names[best]} ({p:.0%}) or {names[second]} ({probs[second]:.0%}). "
        "Try drawing it more clearly."
    )
    return Verdict(best, names[best], p, False, detail)


@dataclass(frozen=True)
class Said:
    """One model's reading in a few words: the value to show large, and what it means."""

    value: str
    detail: str


def other_answer(answer: Verdict, seen: novelty.Verdict) -> Said:
    """What another model says about the picture: its answer, or for a picture unlike any
    digit, that it is not one, with its closest guess given as only that."""
    if seen.looks_like_digit:
        return Said(answer.label if answer.sure else f"{answer.label}?", answer.detail)
    return Said(
        NOT_A_DIGIT, f"Closest guess {answer.label} ({answer.confidence:.0%}), not an answer"
    )


def closest_guess_note(answer: Verdict) -> str:
    """Above the insides of a picture unlike any digit: they show a guess, not an answer."""
    return (
        "This is not an answer: the drawing doesn't look like a digit. Below is what lights "
        f"up for the network's closest guess, {answer.label}, the digit it would name for "
        "anything it is shown."
    )


def insides_caption(answer: Verdict, marked: bool, is_answer: bool = True) -> str:
    """How to read the layers' pictures, in plain words."""
    said = answer.label if is_answer else f"its closest guess, {answer.label}"
    text = (
        "Your drawing goes through the network one layer at a time: each layer is a step "
        "between the picture and the answer. Each bar is one neuron (a small sum of what the "
        "step before found): the taller the bar, or the brighter the picture, the more it "
        f"fires for your drawing. The last step's pattern gives {said}."
    )
    if marked:
        text += (
            " The dark orange bars, each marked with a triangle, did most to make it say "
            f"{answer.label}."
        )
    return text


def neurons_heading(answer: Verdict, is_answer: bool = True) -> str:
    """The heading over the first-layer neurons that pushed the answer (or guess) most."""
    if is_answer:
        return f"The first-layer neurons that did most to make it say {answer.label}"
    return f"The first-layer neurons that pushed it most towards {answer.label}, its closest guess"


def not_a_digit_message(reason: str, answer: Verdict, photo: bool = False) -> str:
    """What to say when the picture is unlike any digit: why, and what its guess is worth."""
    again = "Try a photo of one digit." if photo else "Draw one of 0 to 9."
    return (
        f"**{reason}** {again} Its closest guess would be {answer.label} "
        f"({answer.confidence:.0%}), but the network names a digit for anything it is shown."
    )


def no_digit_message(reason: str, photo: bool = False) -> str:
    """What to say when there is nothing to read: a blank canvas, a stray dot, no photo."""
    if photo:
        return "No digit found: try another photo." if reason else "Upload a photo of a digit."
    if "dot" in reason or "vanished" in reason:
        return "That is only a dot. Draw a digit, big, filling most of the box."
    return "Draw a digit in the black box: one of 0 to 9, as big as the box."


def read_upload(data: bytes, name: str) -> tuple[Prepared | None, str]:
    """An uploaded photo or scan, prepared as `python -m core predict` does; or what went wrong.

    The message drops the decoder's own words ("UnidentifiedImageError: cannot identify
    image file <_io.BytesIO object at 0x…>"), which mean nothing to the person uploading.
    """
    source = io.BytesIO(data)
    source.name = name  # load_image's messages name the file
    try:
        return prepare(load_image(source)), ""
    except ImageError as exc:
        return None, _DECODER_DETAIL.sub("", str(exc))


@dataclass(frozen=True)
class Hidden:
    """One hidden layer's output for one input: (units,) or (height, width, channels)."""

    title: str
    values: np.ndarray


def hidden_layers(model: Model, acts: Sequence[np.ndarray]) -> list[Hidden]:
    """The output of every hidden layer (a dense or conv layer with what follows it).

    `acts` is `model.activations(x)` for one input; the output layer is left out.
    """
    blocks: list[list[int]] = []
    for i, layer in enumerate(model.layers):
        if layer.kind in PARAMETRIC:
            blocks.append([i])
        elif blocks and layer.kind != "flatten":
            blocks[-1].append(i)
    out = []
    for number, block in enumerate(blocks[:-1], start=1):
        first, last = model.layers[block[0]], block[-1]
        values = acts[last][0]
        steps = " → ".join(model.layers[i].kind for i in block)
        # Plain words first; the exact layer names, for the curious, in brackets after.
        before = "the pixels" if number == 1 else "the layer before"
        if first.kind == "dense":
            title = (
                f"Layer {number}: {values.shape[0]} neurons, each weighing up {before} ({steps})"
            )
        else:
            h, w, c = values.shape
            title = (
                f"Layer {number}: {c} pattern finders, each a {h}×{w} picture of where its "
                f"pattern is ({c} feature maps: {steps})"
            )
        out.append(Hidden(title, values))
    return out


def first_layer_contributions(
    model: Model, acts: Sequence[np.ndarray], cls: int
) -> tuple[int, np.ndarray] | None:
    """For an MLP: how much each first-layer neuron added to class `cls`'s score.

    Returns (index of the first dense layer, contributions (units,)); None for a CNN. Each
    contribution is the neuron's output times the score's slope along it, so for ReLU
    networks they sum, with the biases' share, exactly to the score.
    """
    kinds = [layer.kind for layer in model.layers]
    if "conv2d" in kinds or kinds.count("dense") < 2:
        return None
    first = kinds.index("dense")
    second = kinds.index("dense", first + 1)
    end = second - 1  # the first hidden layer's output, after its activation
    slope = np.zeros((1, model.n_classes), np.float32)
    slope[0, cls] = 1
    for i in range(len(model.layers) - 1, end, -1):
        slope = model.layers[i].vjp(acts[i - 1][:1], slope)
    return first, acts[end][0] * slope[0]


def layer_figure(hidden: Hidden, highlight: Sequence[int] = (), height: int = 220) -> go.Figure:
    """A dense layer as one bar per neuron, `highlight` in the accent colour and marked with
    a triangle (colour alone is lost on colour-blind eyes); a conv layer as its maps."""
    values = hidden.values
    if values.ndim == 1:
        # Two single-colour traces, not a colour per bar: 128 colours cost Plotly ~20 ms.
        marked = np.zeros(len(values), bool)
        marked[list(highlight)] = True
        traces: list[go.BaseTraceType] = [
            go.Bar(
                x=np.flatnonzero(picked),
                y=values[picked],
                marker_color=ACCENT if accent else NEUTRAL,
                width=0.8,  # else a sparse trace's bars widen to fill its gaps
                hovertemplate="neuron %{x}: %{y:.2f}<extra></extra>",
            )
            for accent, picked in ((False, ~marked), (True, marked))
        ]
        if marked.any():
            top = float(values.max()) or 1.0
            traces.append(
                go.Scatter(
                    x=np.flatnonzero(marked),
                    y=values[marked] + 0.08 * top,
                    mode="markers",
                    marker=dict(symbol="triangle-down", size=9, color=ACCENT),
                    hoverinfo="skip",
                    name="marks",
                )
            )
        return go.Figure(
            traces,
            layout=dict(
                height=height,
                margin=dict(l=10, r=10, t=30, b=10),
                title=hidden.title,
                xaxis=dict(title="neuron", showgrid=False, range=[-1, len(values)]),
                yaxis=dict(title="how strongly it fires"),
                barmode="overlay",
                showlegend=False,
            ),
        )
    maps = np.moveaxis(values, -1, 0)
    grid = tile(maps, cols=min(16, len(maps)))
    fig = go.Figure(
        go.Heatmap(
            z=grid,
            colorscale="Viridis",
            showscale=False,
            hovertemplate="%{z:.2f}<extra></extra>",
            hoverongaps=False,
        )
    )
    rows = -(-len(maps) // 16)
    return image_layout(fig, height=max(height, rows * 70 + 30), title=hidden.title)


def top_neurons(contributions: np.ndarray, k: int = TOP_NEURONS) -> np.ndarray:
    """The indices of the `k` neurons that pushed the score up most, strongest first."""
    order = np.argsort(contributions)[::-1][:k]
    return order[contributions[order] > 0]


def neurons_figure(
    weights: np.ndarray, neurons: np.ndarray, contributions: np.ndarray, height: int = 170
) -> go.Figure:
    """What each of `neurons` looks for: its 784 incoming weights as a 28x28 picture.

    Red where ink makes the neuron fire, blue where ink holds it back; each picture is
    scaled to its own strongest weight, and its title gives the push it gave the answer.
    """
    pictures = weights[:, neurons].T.reshape(-1, 28, 28)
    fig = signed_pictures(pictures, cols=max(1, len(neurons)), pad=2)
    fig.update_layout(
        annotations=[
            dict(
                x=i * 30 + 13.5,
                y=-1,
                yanchor="bottom",
                text=f"#{n}: +{contributions[n]:.1f}",
                showarrow=False,
                font=dict(size=12),
            )
            for i, n in enumerate(neurons)
        ]
    )
    fig = image_layout(fig, height=height, title=None)
    fig.update_layout(margin=dict(l=0, r=0, t=24, b=0))
    return fig


def comparison_figure(
    answers: Mapping[str, tuple[np.ndarray, Sequence[str]]], height: int = 300
) -> go.Figure:
    """Several models' probabilities for the same input, as grouped bars.

    `answers` maps each model's label to its probabilities and its class names.
    """
    fig = go.Figure(
        [
            go.Bar(
                name=label,
                x=list(names),
                y=p,
                hovertemplate=f"{label}<br>%{{x}}: %{{y:.1%}}<extra></extra>",
            )
            for label, (p, names) in answers.items()
        ]
    )
    fig.update_layout(
        height=height,
        barmode="group",
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis=dict(
            title=value_noun(next(iter(answers.values()))[1]) if answers else "digit",
            type="category",
        ),
        yaxis=dict(title="how sure", range=[0, 1.05], tickformat=".0%"),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig
