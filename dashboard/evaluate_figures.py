"""Pure figure builders for the Evaluate page, and the table and words beside them.

The confusion matrix (clickable cells), the test images behind a cell, the scores per
class, the confidence threshold's trade-off, and accuracy under damage with an example of
each class. Data in, Plotly figure (or table, or text) out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.analysis import Abstention
from core.metrics import Evaluation, most_common_mistake, most_often_read_as, per_class
from dashboard.grids import RIGHT_INK, WRONG_INK, WRONG_MARK, click_targets, tile_grid
from dashboard.images import ACCENT

# Right in blue, wrong in orange: a pair that colour-blind eyes tell apart, where about one
# man in twelve cannot tell green from red. Colour is never the only sign: the right
# answers' cells are outlined and named in a legend, and a wrong caption starts with a cross.
CORRECT_SCALE = [[0.0, "#deebf7"], [1.0, "#08519c"]]  # the diagonal: read correctly
MISTAKE_SCALE = [[0.0, "#feedde"], [1.0, "#a63603"]]  # off the diagonal: mistakes
RIGHT_OUTLINE = "#08306b"  # round each cell of the diagonal
PICKED = "#cc79a7"  # a chosen cell: Okabe and Ito's purple, on blue, orange, white and dark
EXAMPLE_COLUMNS = 8
CELL_TEXT_PX = 13  # the numbers in the confusion matrix's cells, before text_scale


def _percent(share: float) -> str:
    return "100%" if share >= 0.9995 else f"{share:.1%}"


def confusion_figure(
    cm: np.ndarray,
    class_names: Sequence[str],
    rates: bool = False,
    highlight: tuple[int, int] | None = None,
    noun: str = "digit",
    height: int = 540,
    text_scale: float = 1.0,
) -> go.Figure:
    """The confusion matrix (true classes down, predicted across) with every cell written in.

    The diagonal (right answers) is blue and outlined, the mistakes orange, each on its own
    scale, so a handful of mistakes stays visible next to a thousand right answers; a legend
    says which is which. With `rates`, each row is divided by its total: the share of that
    class read as each class. `text_scale` enlarges the numbers in the cells, whose size is
    fixed in px (1.5 in presentation mode).
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
                    textfont=dict(size=round(CELL_TEXT_PX * text_scale), color=ink),
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
    customdata = np.stack([t_idx, p_idx, cm.ravel()], axis=1).tolist()
    size = max(8, (height - 120) / k * 0.9)
    fig.add_trace(click_targets(p_idx, t_idx, customdata, hover, size, "cells"))
    for scale, label, line in (
        (CORRECT_SCALE, "right (on the diagonal, outlined)", dict(color=RIGHT_OUTLINE, width=2)),
        (MISTAKE_SCALE, "wrong (everywhere else)", dict(width=0)),
    ):
        fig.add_trace(  # nothing drawn: a legend entry, in words as well as colour
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=label,
                marker=dict(symbol="square", size=14, color=scale[-1][1], line=line),
                hoverinfo="skip",
            )
        )
    # The diagonal's outlines as one trace of lines, each square closed and cut from the
    # next by a gap, leaving the layout's shapes to the chosen cell alone.
    square = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    outline = np.concatenate([np.vstack([square + i, [np.nan, np.nan]]) for i in range(k)])
    fig.add_trace(
        go.Scatter(
            x=outline[:, 0],
            y=outline[:, 1],
            mode="lines",
            name="diagonal",
            line=dict(color=RIGHT_OUTLINE, width=2),
            hoverinfo="skip",
            showlegend=False,
            connectgaps=False,
        )
    )
    shapes = []
    if highlight is not None:
        t, p = highlight
        shapes.append(
            dict(
                type="rect",
                x0=p - 0.5,
                x1=p + 0.5,
                y0=t - 0.5,
                y1=t + 0.5,
                line=dict(color=PICKED, width=4),
            )
        )
    ticks = dict(tickmode="array", tickvals=list(range(k)), ticktext=names, fixedrange=True)
    fig.update_xaxes(
        title_text=f"the {noun} it read (its answer)",
        range=[-0.5, k - 0.5],
        showgrid=False,
        zeroline=False,
        constrain="domain",
        **ticks,
    )
    fig.update_yaxes(
        title_text=f"the real {noun}",
        range=[k - 0.5, -0.5],
        showgrid=False,
        zeroline=False,
        scaleanchor="x",
        constrain="domain",
        **ticks,
    )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        hovermode="closest",
        dragmode=False,
        shapes=shapes,
        showlegend=True,
        legend=dict(orientation="h", x=0, y=1.01, yanchor="bottom", itemclick=False),
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
    curves = (
        (coverage, "share it answers (coverage)", "#1f77b4", "answers %{y:.1%} of the images"),
        (
            accuracy,
            "share of its answers right (accuracy)",
            "#2ca02c",
            "%{y:.2%} of its answers right",
        ),
    )
    for y, name, color, value in curves:
        fig.add_trace(
            go.Scatter(
                x=thresholds,
                y=y,
                mode="lines",
                name=name,
                line=dict(color=color, width=2),
                hovertemplate=f"answering when at least %{{x:.1%}} sure: {value}<extra></extra>",
            )
        )
    if current is not None:
        fig.add_vline(x=current, line=dict(color=ACCENT, dash="dash", width=2))
    fig.update_xaxes(
        title_text="how sure it must be to answer (the confidence threshold)", tickformat=".0%"
    )
    # Zoom in on where the curves live: both are often above 90 % everywhere.
    low = np.nanmin(np.concatenate([np.ravel(coverage), np.ravel(accuracy), [1.0]]))
    fig.update_yaxes(title_text="share", tickformat=".0%", range=[max(0.0, low - 0.02), 1.005])
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
            name="read right",
            line=dict(color="#1f77b4", width=2),
            hovertemplate=f"{x_title}: %{{x:g}}<br>read right: %{{y:.1%}}<extra></extra>",
        )
    )
    fig.add_hline(
        y=chance,
        line=dict(color="#888", dash="dot"),
        annotation_text="blind guessing",
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
    fig.update_yaxes(title_text="share read right (accuracy)", tickformat=".0%", range=[0, 1.04])
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), showlegend=False)
    return fig


Metric = dict[str, Any]  # the arguments of one st.metric
UNCOLOURED = {"delta_color": "off", "delta_arrow": "off"}  # a delta that is a count, not a change


def headline_metrics(
    result: Evaluation, cm: np.ndarray, names: Sequence[str], noun: str = "digit"
) -> list[Metric]:
    """Accuracy, mistakes, loss and (when there is one) the most common mistake."""
    n_test, n_wrong = len(result.labels), int(cm.sum() - np.trace(cm))
    metrics = [
        dict(
            label="Accuracy",
            value=f"{result.accuracy:.2%}",
            help="Share of test images read right.",
        ),
        dict(
            label="Mistakes",
            value=f"{n_wrong:,} of {n_test:,}",
            help=f"Test images it read as the wrong {noun}.",
        ),
        dict(
            label="Surprise (loss)",
            value=f"{result.loss:.4f}",
            help="How surprised the network is by the right answers, on average: low when it "
            "gave the right answer a high chance. Lower is better. (Its exact name: the "
            "cross-entropy loss.)",
        ),
    ]
    worst = most_common_mistake(cm)
    if worst is not None:
        metrics.append(
            dict(
                label="Most common mistake",
                value=f"{names[worst.true]} → {names[worst.predicted]}",
                delta=f"{worst.count} times",
                **UNCOLOURED,
                help=f"The real {noun} and what the network read it as, most often.",
            )
        )
    return metrics


def abstention_metrics(answers: Abstention, accuracy: float, wrong: int) -> list[Metric]:
    """What answering only above the threshold gives, against always answering (`accuracy`,
    `wrong` mistakes)."""
    answered = answers.answered > 0
    return [
        dict(
            label="Answers",
            value=f"{answers.coverage:.1%}",
            delta=f"{answers.answered:,} images",
            **UNCOLOURED,
        ),
        dict(
            label="Accuracy on its answers",
            value=f"{answers.accuracy:.2%}" if answered else "—",
            delta=f"{answers.accuracy - accuracy:+.2%} vs always answering" if answered else None,
        ),
        dict(label="Says “not sure”", value=f"{answers.abstained:,}"),
        dict(
            label="Mistakes left",
            value=f"{answers.mistakes_left:,}",
            delta=f"of {wrong:,}",
            **UNCOLOURED,
        ),
    ]


def examples_heading(n: int, true: int | None, pred: int | None, names: Sequence[str]) -> str:
    """What the example viewer lists for a (true, read as) filter, and in which order."""
    if true is not None and true == pred:
        return (
            f"**{n:,}** {names[true]}s read right, **least confident first**: the ones it "
            "nearly got wrong."
        )
    if true is not None and pred is not None:
        what = f"{names[true]}s read as {names[pred]}"
    elif true is not None:
        what = f"mistakes on true {names[true]}s"
    elif pred is not None:
        what = f"mistakes read as {names[pred]}"
    else:
        what = "mistakes"
    return f"**{n:,}** {what}, **most confident first**."


FOUND = "Found (recall)"
RIGHT_WHEN_SAID = "Right when it says so (precision)"
BOTH = "One score for both (F1)"
SCORE_COLUMNS = (FOUND, RIGHT_WHEN_SAID, BOTH)


def scores_table(cm: np.ndarray, names: Sequence[str], noun: str = "digit") -> pd.DataFrame:
    """Recall, precision and F1 (in percent, each column named in plain words first), test
    images, and the class each is most often mistaken for, one row per class."""
    scores = per_class(cm)
    confused = [
        f"{names[c.predicted]} ({c.count}×)" if c is not None else "—"
        for c in most_often_read_as(cm)
    ]
    return pd.DataFrame(
        {
            noun.capitalize(): list(names),
            FOUND: scores["recall"] * 100,
            RIGHT_WHEN_SAID: scores["precision"] * 100,
            BOTH: scores["f1"] * 100,
            "Test images": scores["support"].astype(int),
            "Most often read as": confused,
        }
    )


def _short(name: str) -> str:
    return name if len(name) <= 5 else name[:4] + "."


def examples_grid(
    images: np.ndarray,
    shown: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    confidence: np.ndarray,
    names: Sequence[str],
    pick: int | None = None,
) -> go.Figure:
    """The uint8 test images at indices `shown`, each captioned "true→read as confidence" in
    blue when read right, and in orange followed by a cross when not; test image `pick` is
    outlined. A click on a tile reports its test index."""
    captions = [
        f"{_short(names[labels[i]])}→{_short(names[predictions[i]])} {confidence[i]:.0%}"
        f"{'' if labels[i] == predictions[i] else ' ' + WRONG_MARK.strip()}"
        for i in shown
    ]
    hover = [
        f"test image #{i}: a {names[labels[i]]}, read as {names[predictions[i]]} "
        f"({confidence[i]:.1%} sure)<br>click to see how sure it was of each answer"
        for i in shown
    ]
    colors = [RIGHT_INK if labels[i] == predictions[i] else WRONG_INK for i in shown]
    here = np.flatnonzero(np.asarray(shown) == pick)
    return tile_grid(
        images[shown] / 255,
        EXAMPLE_COLUMNS,
        hover=hover,
        customdata=np.asarray(shown).tolist(),
        captions=captions,
        caption_colors=colors,
        highlight=int(here[0]) if len(here) else None,
        tile_px=60,
    )


# For the curious: the exact terms behind the page's plain words, plain words first.
TERMS = (
    (
        "Accuracy, read right",
        "accuracy: the share of test images whose highest-scoring class "
        "(the argmax of the output) is the label.",
    ),
    (
        "How sure",
        "confidence: the softmax probability of the top class. The last layer's ten "
        "raw scores (logits) go through the softmax function, which turns them into chances "
        "between 0 and 1 that add up to 1.",
    ),
    (
        "Surprise (loss)",
        "the mean cross-entropy loss, −log of the chance given to the right "
        "class, averaged over the test set (natural log).",
    ),
    (
        "The grid of counts",
        "the confusion matrix: true labels down the rows, predicted labels across the columns.",
    ),
    (
        "Found, right when it says so, one score for both",
        "per-class recall TP / (TP + FN), precision TP / (TP + FP) and F1, their harmonic mean.",
    ),
    (
        "Answer only when at least this sure",
        "selective classification (abstention) with a "
        "confidence threshold; the share it answers is the coverage, and the accuracy on "
        "the answered images is the selective accuracy.",
    ),
    (
        "Damage",
        "perturbations applied to a class-balanced sample of the test set: rotation "
        "by ± the angle, translation by the given pixels in a random direction, additive "
        "Gaussian noise of the given standard deviation, each clipped to [0, 1].",
    ),
)


def curious_notes(layer_titles: Sequence[str]) -> str:
    """The Evaluate page's "For the curious": its terms, and the network's exact layers."""
    return terms_markdown(TERMS) + f"\n\n**The network's layers:** {' → '.join(layer_titles)}."


def terms_markdown(terms: Sequence[tuple[str, str]]) -> str:
    """(plain words, exact terms) as a Markdown list."""
    return "\n".join(f"- **{plain}**: {exact}" for plain, exact in terms)


def damaged_grid(damaged: np.ndarray, read_as: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """One damaged image of each class, in class order, captioned with what the model read
    (blue when right, orange after a cross when not)."""
    return tile_grid(
        damaged,
        5,
        captions=[
            f"{'' if g == c else WRONG_MARK}read as {class_names[g]}" for c, g in enumerate(read_as)
        ],
        caption_colors=[RIGHT_INK if g == c else WRONG_INK for c, g in enumerate(read_as)],
        tile_px=64,
    )
