"""The figure builders of the Evaluate, Weights and Data pages, and the grid they share."""

from __future__ import annotations

import base64
import colorsys
import io
import itertools

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from core import analysis
from core.metrics import Evaluation
from core.model import Model
from core.replay import Moment
from dashboard import data_figures, evaluate_figures, grids, images, live_figures, weights_figures
from dashboard.images import ACCENT, DIVERGING, GRAY

NAMES = [str(d) for d in range(10)]


def decode(figure: go.Figure) -> np.ndarray:
    """The RGBA pixels of a figure's image trace."""
    (trace,) = [t for t in figure.data if t.type == "image"]
    prefix = "data:image/png;base64,"
    assert trace.source.startswith(prefix)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(trace.source[len(prefix) :]))))


def trace(figure: go.Figure, name: str):
    (found,) = [t for t in figure.data if t.name == name]
    return found


def tile_boxes(figure: go.Figure, tiles: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Where each of the RGBA `tiles` (N, h, w, 4) is drawn in the figure's picture, as
    (top, left, bottom, right) pixel boxes; each must be found exactly once, unscaled."""
    pixels = decode(figure)
    h, w = tiles.shape[1:3]
    windows = np.lib.stride_tricks.sliding_window_view(pixels, (h, w, 4))[:, :, 0]
    boxes = []
    for i, tile in enumerate(tiles):
        (ys, xs) = np.nonzero((windows == tile).all(axis=(2, 3, 4)))
        assert len(ys) == 1, f"tile {i} is drawn {len(ys)} times"
        boxes.append((int(ys[0]), int(xs[0]), int(ys[0]) + h, int(xs[0]) + w))
    return boxes


def assert_a_clean_grid(figure: go.Figure, boxes: list, cols: int) -> None:
    """Tiles in reading order, `cols` to a row, never overlapping, nothing drawn between
    them, and the whole picture in view at square pixels."""
    pixels = decode(figure)
    rows = [boxes[i : i + cols] for i in range(0, len(boxes), cols)]
    for row in rows:
        assert len({top for top, *_ in row}) == 1  # a row is level
        assert all(a[3] <= b[1] for a, b in itertools.pairwise(row))  # left to right
    for upper, lower in itertools.pairwise(rows):
        assert max(b[2] for b in upper) <= min(b[0] for b in lower)  # rows do not overlap
    assert len({left for _, left, *_ in boxes}) == min(cols, len(boxes))
    inside = np.zeros(pixels.shape[:2], dtype=bool)
    for top, left, bottom, right in boxes:
        inside[top:bottom, left:right] = True
    assert np.all(pixels[~inside, 3] == 0)  # the gaps are transparent
    x_range, y_range = figure.layout.xaxis.range, figure.layout.yaxis.range
    assert x_range[0] <= -0.5 and x_range[1] >= pixels.shape[1] - 0.5
    assert y_range[1] <= -0.5 and y_range[0] >= pixels.shape[0] - 0.5  # rows downwards
    assert figure.layout.yaxis.scaleanchor == "x"


def centre(box: tuple[int, int, int, int]) -> tuple[float, float]:
    """A pixel box's centre in the figure's coordinates (one unit per pixel, from 0)."""
    top, left, bottom, right = box
    return (left + right - 1) / 2, (top + bottom - 1) / 2


def has_axis_titles(figure: go.Figure) -> bool:
    layout = figure.layout
    axes = [getattr(layout, key) for key in layout if key.startswith(("xaxis", "yaxis"))]
    return all(a.title.text for a in axes if a.visible is not False)


# Images as one PNG


def test_colorize_maps_the_ends_of_the_scale_and_hides_nan():
    values = np.array([[0.0, 1.0], [np.nan, 7.0]])
    rgba = grids.colorize(values, GRAY, 0.0, 1.0)
    assert rgba.dtype == np.uint8 and rgba.shape == (2, 2, 4)
    assert rgba[0, 0].tolist() == [0, 0, 0, 255]
    assert rgba[0, 1].tolist() == [255, 255, 255, 255]
    assert rgba[1, 0, 3] == 0  # transparent
    assert rgba[1, 1].tolist() == [255, 255, 255, 255]  # clipped to the top
    diverging = grids.colorize(np.array([[-2.0, 0.0, 2.0]]), DIVERGING, -2, 2)[0]
    assert diverging[0, 2] > diverging[0, 0]  # blue end
    assert diverging[2, 0] > diverging[2, 2]  # red end
    assert diverging[1, :3].min() > 230  # near white in the middle


def test_png_round_trip(rng):
    rgba = rng.integers(0, 256, (7, 5, 4), dtype=np.uint8)
    uri = grids.png_data_uri(rgba)
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    np.testing.assert_array_equal(pixels, rgba)


def test_tile_grid_lays_out_every_image_with_a_clickable_marker(rng):
    images = rng.random((7, 28, 28)).astype(np.float32)
    images[3] = 1.0
    figure = grids.tile_grid(
        images, 3, hover=[f"image {i}" for i in range(7)], customdata=[10 + i for i in range(7)]
    )
    boxes = tile_boxes(figure, np.stack([grids.colorize(im, GRAY, 0, 1) for im in images]))
    assert_a_clean_grid(figure, boxes, 3)
    top, left, bottom, right = boxes[3]  # image 3 is all white
    assert np.all(decode(figure)[top:bottom, left:right, :3] == 255)
    tiles = trace(figure, "tiles")
    assert len(tiles.x) == 7 and list(tiles.customdata) == list(range(10, 17))
    for box, x, y in zip(boxes, tiles.x, tiles.y, strict=True):
        assert (x, y) == centre(box)  # each marker over its own tile's centre
    assert list(tiles.hovertext) == [f"image {i}" for i in range(7)]
    assert figure.layout.xaxis.fixedrange and figure.layout.yaxis.fixedrange


def test_tile_grid_captions_highlight_row_labels_and_colour_bar(rng):
    images = rng.uniform(-1, 1, (4, 28, 28)).astype(np.float32)
    figure = grids.tile_grid(
        images,
        2,
        captions=list("abcd"),
        highlight=2,
        row_labels=["top", "bottom"],
        colorbar_title="weight",
        colorscale=DIVERGING,
        zmin=-1,
        zmax=1,
    )
    boxes = tile_boxes(figure, np.stack([grids.colorize(im, DIVERGING, -1, 1) for im in images]))
    assert_a_clean_grid(figure, boxes, 2)
    # Each caption sits under its own tile, in a band left free for a line of text above
    # the next row (or the picture's edge).
    annotations = figure.layout.annotations
    assert [a.text for a in annotations] == list("abcd")
    height, margin = figure.layout.height, figure.layout.margin
    screen_per_pixel = (height - margin.t - margin.b) / decode(figure).shape[0]
    for i, (caption, box) in enumerate(zip(annotations, boxes, strict=True)):
        below = min([b[0] for b in boxes if b[0] >= box[2]], default=decode(figure).shape[0])
        assert caption.x == centre(box)[0] and box[2] - 0.5 < caption.y < below - 0.5, i
        assert (below - box[2]) * screen_per_pixel >= caption.font.size, i
    # The outline goes round tile 2 and touches no other.
    (shape,) = figure.layout.shapes
    for i, (top, left, bottom, right) in enumerate(boxes):
        around = shape.x0 < left - 0.5 and shape.x1 > right - 0.5
        around &= shape.y0 < top - 0.5 and shape.y1 > bottom - 0.5
        overlaps = shape.x0 < right - 0.5 and shape.x1 > left - 0.5
        overlaps &= shape.y0 < bottom - 0.5 and shape.y1 > top - 0.5
        assert around if i == 2 else not overlaps, i
    # A label per row, level with that row's tiles.
    assert list(figure.layout.yaxis.ticktext) == ["top", "bottom"]
    assert list(figure.layout.yaxis.tickvals) == [centre(boxes[0])[1], centre(boxes[2])[1]]
    bar = [t for t in figure.data if t.type == "scatter" and t.marker.showscale]
    assert len(bar) == 1 and (bar[0].marker.cmin, bar[0].marker.cmax) == (-1, 1)
    assert not [t for t in figure.data if t.name == "tiles"]  # nothing to hover: no markers


def test_a_taller_grid_is_a_taller_figure(rng):
    """The figure grows with its rows, so tiles keep their size on screen."""
    one_row = grids.tile_grid(rng.random((4, 28, 28)), 4, tile_px=50)
    three_rows = grids.tile_grid(rng.random((12, 28, 28)), 4, tile_px=50)
    assert three_rows.layout.height - one_row.layout.height == pytest.approx(100, abs=2)


def test_selected_custom_reads_a_selection_event():
    event = {
        "selection": {
            "points": [{"curve_number": 0, "x": 1}, {"curve_number": 2, "customdata": [4, 9, 7]}]
        }
    }
    assert grids.selected_custom(event) == [4, 9, 7]
    assert grids.selected_custom(event, trace=0) is None
    assert grids.selected_custom({"selection": {"points": []}}) is None
    assert grids.selected_custom(None) is None


def test_a_digit_and_its_probabilities_are_titled_with_what_it_is_and_was_read_as(rng):
    image = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    probs = np.full(10, 0.02)
    probs[7] = 0.82
    digit, bars = images.prediction(image, probs, NAMES, 1, heights=(220, 260))
    np.testing.assert_allclose(np.array(digit.data[0].z), image / 255)
    assert digit.layout.height == 220 and bars.layout.height == 260
    assert bars.layout.title.text == "A 1, read as 7"
    colours = list(bars.data[0].marker.color)
    assert colours[7] == ACCENT and colours.count(ACCENT) == 1  # the class it reads
    # ...and outlined, for eyes that cannot tell its colour; the axes in plain words.
    assert [i for i, w in enumerate(bars.data[0].marker.line.width) if w > 0] == [7]
    assert bars.layout.xaxis.title.text == "digit" and bars.layout.yaxis.title.text == "how sure"
    other = images.probability_bars(np.full(3, 1 / 3), ["cat", "dog", "bird"], highlight=0)
    assert other.layout.xaxis.title.text == "answer"
    _, bars = images.prediction(image, probs, NAMES, 7, source="Test image #12")
    assert bars.layout.title.text == "Test image #12: a 7, read as 7"


# Evaluate


@pytest.fixture
def cm(rng):
    cm = rng.integers(0, 4, (10, 10))
    np.fill_diagonal(cm, rng.integers(900, 1100, 10))
    cm[2, 7] = 0
    return cm


def heat_values(figure: go.Figure, name: str) -> np.ndarray:
    """The cells of every heatmap trace called `name`, NaN where a trace leaves a cell."""
    z = [np.array(t.z, dtype=float) for t in figure.data if t.type == "heatmap" and t.name == name]
    return np.nansum(z, axis=0) if z else np.zeros((10, 10))


def test_confusion_figure_draws_every_count_once(cm):
    figure = evaluate_figures.confusion_figure(cm, NAMES)
    right, wrong = heat_values(figure, "right"), heat_values(figure, "wrong")
    assert right.sum() + wrong.sum() == cm.sum()
    np.testing.assert_array_equal(np.diag(right), np.diag(cm))
    assert np.all(np.diag(wrong) == 0) and np.all(right[~np.eye(10, dtype=bool)] == 0)
    cells = trace(figure, "cells")
    assert len(cells.x) == 100
    for (t, p, count), x, y in zip(cells.customdata, cells.x, cells.y, strict=True):
        assert (x, y) == (p, t) and count == cm[t, p]
    texts = {
        (t, p): text
        for heat in figure.data
        if heat.type == "heatmap"
        for t, row in enumerate(heat.text)
        for p, text in enumerate(row)
        if text
    }
    assert texts[(0, 0)] == f"{cm[0, 0]:,}" and (2, 7) not in texts  # zeros stay blank
    assert figure.layout.xaxis.title.text == "the digit it read (its answer)"
    assert figure.layout.yaxis.title.text == "the real digit"
    assert tuple(figure.layout.yaxis.range) == (9.5, -0.5)  # 0 at the top


def test_confusion_figure_rates_and_highlight(cm):
    figure = evaluate_figures.confusion_figure(cm, NAMES, rates=True, highlight=(3, 5))
    rates = heat_values(figure, "right") + heat_values(figure, "wrong")
    np.testing.assert_allclose(rates.sum(axis=1), 1.0)
    (shape,) = figure.layout.shapes
    assert (shape.x0, shape.x1, shape.y0, shape.y1) == (4.5, 5.5, 2.5, 3.5)
    assert shape.line.color == evaluate_figures.PICKED  # neither blue nor orange


def test_the_cells_numbers_grow_with_the_text_scale(cm):
    def sizes(figure: go.Figure) -> set[int]:
        return {t.textfont.size for t in figure.data if t.type == "heatmap"}

    assert sizes(evaluate_figures.confusion_figure(cm, NAMES)) == {evaluate_figures.CELL_TEXT_PX}
    big = evaluate_figures.confusion_figure(cm, NAMES, rates=True, text_scale=1.5)
    assert sizes(big) == {round(1.5 * evaluate_figures.CELL_TEXT_PX)}


def hue(colour: str) -> float:
    """The hue of a '#rrggbb' colour, in degrees."""
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360


def test_confusion_figure_tells_right_from_wrong_without_red_and_green(cm):
    figure = evaluate_figures.confusion_figure(cm, NAMES)
    scales = {t.name: [c for _, c in t.colorscale] for t in figure.data if t.type == "heatmap"}
    # Right in blue, mistakes in orange: no green against red, which one man in twelve
    # cannot tell apart.
    assert all(190 <= hue(c) <= 230 for c in scales["right"])
    assert all(15 <= hue(c) <= 40 for c in scales["wrong"])
    # Not by colour alone: every cell of the diagonal is outlined, and a legend says so.
    outline = trace(figure, "diagonal")
    corners = {
        (x, y) for x, y in zip(outline.x, outline.y, strict=True) if x is not None and x == x
    }
    assert corners == {
        (i + dx, i + dy) for i in range(10) for dx in (-0.5, 0.5) for dy in (-0.5, 0.5)
    }
    assert not figure.layout.shapes  # the layout's shapes are left to a chosen cell
    legend = [t.name for t in figure.data if t.showlegend is not False and t.type == "scatter"]
    assert legend == ["right (on the diagonal, outlined)", "wrong (everywhere else)"]
    assert figure.layout.showlegend


def test_threshold_and_robustness_figures():
    grid = np.linspace(0.1, 0.99, 50)
    figure = evaluate_figures.threshold_figure(
        grid, np.linspace(1, 0.8, 50), np.linspace(0.9, 1, 50), 0.5
    )
    assert len(figure.data) == 2 and has_axis_titles(figure)
    assert [s.x0 for s in figure.layout.shapes] == [0.5]
    assert figure.layout.yaxis.range[0] == pytest.approx(0.78)
    amounts = np.array([0, 10, 20, 30])
    figure = evaluate_figures.robustness_figure(
        amounts, np.array([0.99, 0.9, 0.6, 0.3]), "rotation", 20
    )
    assert has_axis_titles(figure) and figure.layout.xaxis.title.text == "rotation"
    assert figure.layout.yaxis.title.text == "share read right (accuracy)"
    (chosen,) = [t for t in figure.data if t.name == "chosen"]
    assert (chosen.x[0], chosen.y[0]) == (20, 0.6)
    assert [s.y0 for s in figure.layout.shapes] == [0.1]  # guessing


def evaluation(rng, n: int = 300) -> Evaluation:
    labels = rng.integers(0, 10, n)
    logits = rng.standard_normal((n, 10)) + 4 * np.eye(10)[labels] * (rng.random(n) < 0.8)[:, None]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return Evaluation(probs.astype(np.float32), labels, loss=0.3, accuracy=0.8)


def test_the_examples_grid_captions_colours_and_outlines_the_picked_test_images(rng):
    result = evaluation(rng)
    test_images = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    shown = analysis.select_examples(result.labels, result.predictions, result.confidence)[:12]
    figure = evaluate_figures.examples_grid(
        test_images, shown, result.labels, result.predictions, result.confidence, NAMES, shown[5]
    )
    assert list(trace(figure, "tiles").customdata) == shown.tolist()  # a click: the test index
    colored = [grids.colorize(test_images[i] / 255, GRAY, 0, 1) for i in shown]
    boxes = tile_boxes(figure, np.stack(colored))
    assert_a_clean_grid(figure, boxes, 8)
    for i, caption in zip(shown, figure.layout.annotations, strict=True):
        true, read = result.labels[i], result.predictions[i]
        assert caption.text == f"{true}→{read} {result.confidence[i]:.0%} ✗"  # not colour alone
        assert caption.font.color == evaluate_figures.WRONG_INK  # all mistakes here
    (outline,) = figure.layout.shapes
    top, left, bottom, right = boxes[5]
    assert outline.x0 < left and outline.x1 > right - 1
    assert outline.y0 < top and outline.y1 > bottom - 1
    right_ones = np.flatnonzero(result.labels == result.predictions)[:3]
    figure = evaluate_figures.examples_grid(
        test_images, right_ones, result.labels, result.predictions, result.confidence, NAMES
    )
    assert {a.font.color for a in figure.layout.annotations} == {evaluate_figures.RIGHT_INK}
    assert not any("✗" in a.text for a in figure.layout.annotations)
    # Blue and orange, not green and red.
    assert 190 <= hue(evaluate_figures.RIGHT_INK) <= 220
    assert 15 <= hue(evaluate_figures.WRONG_INK) <= 40
    assert not figure.layout.shapes  # no pick among them: nothing outlined


def test_the_damaged_examples_say_what_each_was_read_as(rng):
    damaged = rng.random((10, 28, 28)).astype(np.float32)
    read_as = np.array([0, 1, 2, 3, 9, 5, 6, 7, 8, 4])
    figure = evaluate_figures.damaged_grid(damaged, read_as, NAMES)
    colored = np.stack([grids.colorize(d, GRAY, 0, 1) for d in damaged])
    assert_a_clean_grid(figure, tile_boxes(figure, colored), 5)
    captions = figure.layout.annotations
    marks = ["✗ " if g != c else "" for c, g in enumerate(read_as)]  # not colour alone
    assert [a.text for a in captions] == [f"{marks[c]}read as {g}" for c, g in enumerate(read_as)]
    wrong = [i for i, a in enumerate(captions) if a.font.color == evaluate_figures.WRONG_INK]
    assert wrong == [4, 9]


def test_the_live_guesses_mark_a_wrong_one_with_a_cross_in_orange(rng):
    probs = np.full((4, 10), 0.01)
    probs[np.arange(4), [3, 1, 4, 1]] = 0.91
    view = {"digits": rng.random((4, 28, 28)), "labels": np.array([3, 1, 7, 1]), "probs": probs}
    figure = live_figures.live_guesses(view, NAMES)
    captions = figure.layout.annotations
    assert [a.text for a in captions] == ["3 91%", "1 91%", "✗ 4 91%", "1 91%"]
    assert [a.font.color for a in captions] == [None, None, grids.WRONG_INK, None]
    assert 15 <= hue(grids.WRONG_INK) <= 40  # orange, not red
    assert figure.layout.title.text == "Its guesses now: 3 of 4 right (✗ wrong)"


def test_the_headline_and_the_threshold_in_numbers():
    cm = np.diag([90, 95, 85])
    cm[2, 0], cm[0, 1] = 12, 3
    result = Evaluation(np.zeros((285, 3)), np.zeros(285), loss=0.1234567, accuracy=270 / 285)
    metrics = {m["label"]: m for m in evaluate_figures.headline_metrics(result, cm, list("abc"))}
    assert metrics["Accuracy"]["value"] == "94.74%"
    assert metrics["Mistakes"]["value"] == "15 of 285"
    assert metrics["Surprise (loss)"]["value"] == "0.1235"
    worst = metrics["Most common mistake"]
    assert (worst["value"], worst["delta"]) == ("c → a", "12 times")
    assert "Most common mistake" not in {
        m["label"] for m in evaluate_figures.headline_metrics(result, np.diag([5, 5, 5]), "abc")
    }
    answers = analysis.Abstention(total=1000, answered=900, right=890)
    metrics = evaluate_figures.abstention_metrics(answers, accuracy=0.95, wrong=50)
    assert [(m["label"], m["value"], m.get("delta")) for m in metrics] == [
        ("Answers", "90.0%", "900 images"),
        ("Accuracy on its answers", "98.89%", "+3.89% vs always answering"),
        ("Says “not sure”", "100", None),
        ("Mistakes left", "10", "of 50"),
    ]
    nothing = evaluate_figures.abstention_metrics(analysis.Abstention(10, 0, 0), 0.9, 1)
    assert nothing[1]["value"] == "—" and nothing[1]["delta"] is None


def test_the_scores_table_and_the_viewers_heading():
    cm = np.array([[8, 2, 0], [0, 10, 0], [1, 3, 6]])
    table = evaluate_figures.scores_table(cm, list("abc"), noun="letter")
    assert list(table["Letter"]) == list("abc")
    assert table["Found (recall)"].tolist() == pytest.approx([80, 100, 60])
    precision = table["Right when it says so (precision)"]
    assert precision.tolist() == pytest.approx([800 / 9, 1000 / 15, 100])
    assert list(table.columns[1:4]) == list(evaluate_figures.SCORE_COLUMNS)
    assert table["Test images"].tolist() == [10, 10, 10]
    assert table["Most often read as"].tolist() == ["b (2×)", "—", "b (3×)"]
    heading = evaluate_figures.examples_heading
    assert heading(3, 2, 2, NAMES).startswith("**3** 2s read right, **least confident first**")
    assert heading(1200, None, None, NAMES) == "**1,200** mistakes, **most confident first**."
    assert "4s read as 9" in heading(5, 4, 9, NAMES)
    assert "mistakes on true 4s" in heading(5, 4, None, NAMES)
    assert "mistakes read as 9" in heading(5, None, 9, NAMES)


# Weights


def test_weight_grid_has_one_tile_per_neuron_on_a_centred_scale(rng):
    weights = rng.standard_normal((20, 28, 28)).astype(np.float32)
    biases = np.linspace(-1, 1, 20)
    figure = weights_figures.weight_grid(weights, biases, highlight=4)
    tiles = trace(figure, "tiles")
    assert list(tiles.customdata) == list(range(20))
    assert "bias +1.000" in tiles.hovertext[19]
    (bar,) = [t for t in figure.data if t.type == "scatter" and t.marker.showscale]
    top = bar.marker.cmax
    assert bar.marker.cmin == -top > -np.abs(weights).max() - 1e-6
    coloured = np.stack([grids.colorize(w, DIVERGING, -top, top) for w in weights])
    boxes = tile_boxes(figure, coloured)  # every neuron's own weights, on the one scale
    assert_a_clean_grid(figure, boxes, 8)  # 8 columns for 20 neurons
    for box, x, y in zip(boxes, tiles.x, tiles.y, strict=True):
        assert (x, y) == centre(box)


def test_weight_image_and_matrix_figures(rng):
    image = rng.standard_normal((28, 28))
    heat = weights_figures.weight_image(image).data[0]
    assert heat.zmin == -heat.zmax == -np.abs(image).max()
    small = rng.standard_normal((30, 12))
    figure = weights_figures.matrix_figure(small, "input", "neuron")
    np.testing.assert_array_equal(np.array(figure.data[0].z), small.T)
    assert has_axis_titles(figure)
    big = rng.standard_normal((800, 128))
    figure = weights_figures.matrix_figure(big, "input", "neuron")
    (bar,) = [t for t in figure.data if t.type == "scatter" and t.marker.showscale]
    top = bar.marker.cmax
    # One pixel per weight, a row per neuron, on one scale centred on zero.
    np.testing.assert_array_equal(decode(figure), grids.colorize(big.T, DIVERGING, -top, top))
    assert bar.marker.cmin == -top


def test_conv_filters_figure(rng):
    first = rng.standard_normal((3, 3, 1, 8))
    figure = weights_figures.conv_filters_figure(first, np.zeros(8))
    assert len(trace(figure, "tiles").x) == 8
    deeper = rng.standard_normal((5, 5, 4, 6))
    figure = weights_figures.conv_filters_figure(deeper, np.zeros(6))
    (bar,) = [t for t in figure.data if t.type == "scatter" and t.marker.showscale]
    top = bar.marker.cmax
    filters = [deeper[:, :, c, f] for f in range(6) for c in range(4)]
    boxes = tile_boxes(figure, np.stack([grids.colorize(k, DIVERGING, -top, top) for k in filters]))
    assert_a_clean_grid(figure, boxes, 4)  # a row per filter, a tile per input channel
    hover = trace(figure, "tiles").hovertext[4 * 2 + 3]
    assert hover == "pattern finder (filter) 2, reading picture 3 (input channel)"


def test_histogram_densities_integrate_to_one_and_constants_are_skipped(rng):
    layers = [
        ("Dense 1", rng.standard_normal((50, 20)), rng.standard_normal(20)),
        ("Dense 2", rng.standard_normal((20, 10)), np.zeros(10)),
    ]
    figure = weights_figures.histogram_figure(layers)
    assert [t.name for t in figure.data] == ["Dense 1", "Dense 1", "Dense 2"]
    for line in figure.data:
        x, y = np.array(line.x), np.array(line.y)
        assert (y * (x[1] - x[0])).sum() == pytest.approx(1.0)
    assert has_axis_titles(figure)


def test_neuron_grid_and_feature_maps(rng):
    values = rng.random(37)
    heat = weights_figures.neuron_grid(values, cols=16).data[0]
    z = np.array(heat.z, dtype=float)
    assert z.shape == (3, 16) and np.isnan(z).sum() == 48 - 37
    np.testing.assert_allclose(z.ravel()[:37], values)
    signed = weights_figures.neuron_grid(rng.standard_normal(8), signed=True).data[0]
    assert signed.zmin == -signed.zmax
    maps = weights_figures.feature_maps(rng.random((13, 13, 5)), cols=4)
    assert len(trace(maps, "tiles").x) == 5


def test_the_strongest_inputs_and_a_dense_layers_matrix(rng):
    test_images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    top, drive = np.array([7, 3, 41]), np.array([5.5, 4.25, -1.0])
    figure = weights_figures.strongest_grid(test_images, top, drive)
    colored = [grids.colorize(test_images[i] / 255, GRAY, 0, 1) for i in top]
    assert_a_clean_grid(figure, tile_boxes(figure, np.stack(colored)), 8)
    assert list(trace(figure, "tiles").hovertext) == [
        "test image #7: weighted sum +5.50",
        "test image #3: weighted sum +4.25",
        "test image #41: weighted sum -1.00",
    ]
    figure = weights_figures.dense_weights_figure(rng.standard_normal((128, 64)))
    assert figure.layout.xaxis.title.text == "input (one of 128)"
    assert figure.layout.yaxis.title.text == "neuron (one of 64)"
    assert 220 <= figure.layout.height <= 520


def test_each_layers_weights_with_how_to_read_them():
    layers = [
        {"type": "conv2d", "filters": 3},
        {"type": "conv2d", "filters": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
    ]
    model = Model({"input_shape": [28, 28, 1], "layers": layers})
    first, deeper, dense = (weights_figures.layer_weights(model.layers[i]) for i in (0, 1, 3))
    assert first[1] == "One small image per pattern finder (filter)."
    assert len(trace(first[0], "tiles").x) == 3
    assert deeper[1].startswith("One row per pattern finder (filter), one small image per")
    assert len(trace(deeper[0], "tiles").x) == 2 * 3
    assert dense[1].startswith("One row per neuron") and dense[0].data[0].type == "heatmap"


def test_activations_are_feature_maps_or_a_grid_of_neurons(rng):
    maps = weights_figures.activation_figure(rng.random((13, 13, 4)))
    assert len(trace(maps, "tiles").x) == 4
    neurons = weights_figures.activation_figure(rng.standard_normal(20), signed=True)
    heat = neurons.data[0]
    assert heat.type == "heatmap" and heat.zmin == -heat.zmax


def test_the_words_beside_the_weights(mnist):
    caption = weights_figures.snapshot_caption
    assert caption(Moment(0), None, 4) == (
        "The untrained network: random weights. The selected model is from the best epoch, 4 "
        "(the one that scored best on the images set aside)."
    )
    assert (
        caption(Moment(2), 0.9512, None)
        == "After epoch 2 (2nd pass over the training images). Accuracy on the images set "
        "aside (validation) then: 95.12%. "
    )
    assert caption(Moment(1), None, None).startswith("After epoch 1 (1st pass ")
    assert caption(Moment(12), None, None).startswith("After epoch 12 (12th pass ")
    assert caption(Moment(0, 1), None, None) == (
        "After the first batch of epoch 1 (a batch is a handful of images). "
    )
    assert caption(Moment(0, 64), None, 3).startswith("After the first 64 batches of epoch 1 ")
    assert weights_figures.replay_caption("dense", 64, 128).startswith("The first 64 of the 128 ")
    assert weights_figures.replay_caption("conv2d", 16, 16).startswith(
        "All 16 pattern finders (filters)."
    )
    assert "3 of them never fire" in weights_figures.grid_caption(3)
    assert "never fire" not in weights_figures.grid_caption(0)
    layers = [
        {"type": "conv2d", "filters": 2},
        {"type": "maxpool2d"},
        {"type": "batchnorm"},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 5},
        {"type": "relu"},
        {"type": "dense", "units": 10},
    ]
    model = Model({"input_shape": [28, 28, 1], "layers": layers})
    model.layers[7].params["b"][:] = np.linspace(-1, 1, 10)
    titles = {info.index: info.title for info in analysis.describe_layers(model)}
    note = weights_figures.constant_bias_note(model, titles)
    assert "Convolution 1 (2 filters of 3×3), Dense 1 (" in note  # all zero still
    assert "Dense 2" not in note and not note.endswith("they never move).")  # Dense 1: no norm
    model.layers[5].params["b"][0] = 1.0
    note = weights_figures.constant_bias_note(model, titles)
    assert "Dense 1" not in note and note.endswith("so they never move).")
    model.layers[0].params["b"][0] = 1.0
    assert weights_figures.constant_bias_note(model, titles) == ""
    dead = analysis.dead_units(model, mnist.test_images[:20])
    metrics = weights_figures.dead_metrics(model, dead, titles)
    assert [m["label"] for m in metrics] == [titles[3], titles[6]]
    assert metrics[0]["value"].endswith(" of 2 pictures (channels)")
    assert metrics[1]["value"].endswith(" of 5 neurons")


# Data


def test_class_balance_figure_shows_shares_with_counts():
    counts = {"training": np.arange(1, 11) * 100, "test": np.full(10, 50)}
    figure = data_figures.class_balance_figure(counts, NAMES)
    assert [t.name for t in figure.data] == ["training (5,500)", "test (500)"]
    for bars, values in zip(figure.data, counts.values(), strict=True):
        assert sum(bars.y) == pytest.approx(1.0)
        assert list(bars.customdata) == list(values)
    assert has_axis_titles(figure)


def test_pca_figure_has_every_point_once_by_class(rng):
    coords = rng.standard_normal((60, 2))
    labels = rng.integers(0, 10, 60)
    figure = data_figures.pca_figure(coords, labels, NAMES, np.array([0.3, 0.2]), highlight=[5, 9])
    classes = figure.data[:10]
    assert [t.name for t in classes] == NAMES
    rows = sorted(int(r) for t in classes for r in t.customdata)
    assert rows == list(range(60))
    for cls, points in enumerate(classes):
        assert np.all(labels[np.array(points.customdata, dtype=int)] == cls)
    for ringed in [t for t in figure.data if t.name == "chosen"]:
        assert list(ringed.x) == [coords[5, 0], coords[9, 0]]
    assert "30%" in figure.layout.xaxis.title.text and has_axis_titles(figure)


def test_samples_a_row_per_class_with_gaps_for_a_small_class(rng):
    train_images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    picked = np.array([[3, 9, 12], [5, -1, -1]])
    figure = data_figures.samples_grid(train_images, picked, ["cat", "dog"])
    colored = [grids.colorize(train_images[i] / 255, GRAY, 0, 1) for i in (3, 9, 12, 5)]
    boxes = tile_boxes(figure, np.stack(colored))
    assert_a_clean_grid(figure, boxes, 3)  # nothing drawn where dog has no second or third
    assert list(figure.layout.yaxis.ticktext) == ["cat", "dog"]
    assert list(trace(figure, "tiles").hovertext)[:4] == [
        "training image #3: a cat",
        "training image #9: a cat",
        "training image #12: a cat",
        "training image #5: a dog",
    ]


def test_the_average_digits_and_how_each_differs_from_all_of_them(rng):
    means = rng.random((10, 28, 28)).astype(np.float32)
    figure = data_figures.means_figure(means, NAMES)
    boxes = tile_boxes(figure, np.stack([grids.colorize(m, GRAY, 0, 1) for m in means]))
    assert_a_clean_grid(figure, boxes, 10)
    assert [a.text for a in figure.layout.annotations] == NAMES
    figure = data_figures.means_figure(means, NAMES, difference=True)
    (bar,) = [t for t in figure.data if t.type == "scatter" and t.marker.showscale]
    top = bar.marker.cmax
    delta = means - means.mean(axis=0)
    assert top == pytest.approx(np.abs(delta).max())
    boxes = tile_boxes(figure, np.stack([grids.colorize(d, DIVERGING, -top, top) for d in delta]))
    assert_a_clean_grid(figure, boxes, 10)


def test_a_group_of_picked_dots_shows_their_digits(rng):
    test_images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    rows, labels, predictions = np.array([4, 17, 2]), np.array([1, 7, 7]), np.array([1, 1, 7])
    figure = data_figures.group_grid(test_images, rows, labels, predictions, NAMES)
    colored = [grids.colorize(test_images[r] / 255, GRAY, 0, 1) for r in rows]
    assert_a_clean_grid(figure, tile_boxes(figure, np.stack(colored)), 8)
    assert [a.text for a in figure.layout.annotations] == ["1", "7", "7"]
    assert trace(figure, "tiles").hovertext[1] == "test image #17: a 7, read as 1"


def test_for_the_curious_the_exact_words_and_every_layer_by_its_name():
    layers = [
        {"type": "conv2d", "filters": 2},
        {"type": "maxpool2d"},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
    ]
    infos = analysis.describe_layers(Model({"input_shape": [28, 28, 1], "layers": layers}))
    weights = weights_figures.curious_notes(infos)
    assert "conv2d → maxpool2d → relu → flatten → dense" in weights
    assert "**Convolution 1 (2 filters of 3×3)**: `conv2d`, out 28 × 28 × 2: 2 pattern" in weights
    assert all(info.title in weights for info in infos) and "feature maps" in weights
    evaluate = evaluate_figures.curious_notes([i.title for i in infos])
    assert "softmax" in evaluate and "Convolution 1 (2 filters of 3×3) → Max-pool 1" in evaluate
    data = data_figures.curious_notes("MNIST", infos)
    assert "principal component" in data and "MNIST" in data and "`dense` Dense 1" in data


def test_layer_titles_say_what_a_layer_does_before_its_exact_name():
    layers = [
        {"type": "conv2d", "filters": 2},
        {"type": "maxpool2d"},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 8},
    ]
    model = Model({"input_shape": [28, 28, 1], "layers": layers})
    titles = [weights_figures.plain_title(i) for i in analysis.describe_layers(model)]
    exact = [i.title for i in analysis.describe_layers(model)]
    for title, name in zip(titles, exact, strict=True):
        words, _, tail = title.partition(" · ")
        assert tail == name and words and not words[0].islower()  # plain words, then the name
    joined = " ".join(titles)
    assert "2 pattern finders (filters) slid over the picture · Convolution 1" in joined
    assert "2 pictures of 14×14, shrunk, keeping each patch's strongest value · Max-pool 1" in (
        joined
    )
    assert "negatives set to zero · ReLU" in joined
    assert "8 neurons, each weighing all its inputs · Dense 1" in joined


def test_grid_captions_and_the_room_for_them_grow_with_presentation_mode_s_scale(rng):
    images = rng.random((4, 28, 28))
    words = dict(captions=list("abcd"), row_labels=["top", "bottom"], title="t", tile_px=64)
    plain, large = (grids.tile_grid(images, 2, text_scale=s, **words) for s in (1.0, 1.5))
    assert [a.font.size for a in large.layout.annotations] == [
        round(1.5 * a.font.size) for a in plain.layout.annotations
    ]
    assert large.layout.margin.t == round(1.5 * plain.layout.margin.t)
    assert large.layout.margin.l == round(1.5 * plain.layout.margin.l)
    assert large.layout.height > plain.layout.height  # the captions' rows are taller
    # Outside a Streamlit session (here), the scale is 1.
    default = grids.tile_grid(images, 2, **words)
    assert [a.font.size for a in default.layout.annotations] == [11] * 4
