"""dashboard.inspect: the figure builders of the Evaluate, Weights and Data pages."""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from dashboard import inspect
from dashboard.images import DIVERGING, GRAY

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


def has_axis_titles(figure: go.Figure) -> bool:
    layout = figure.layout
    axes = [getattr(layout, key) for key in layout if key.startswith(("xaxis", "yaxis"))]
    return all(a.title.text for a in axes if a.visible is not False)


# Images as one PNG


def test_colorize_maps_the_ends_of_the_scale_and_hides_nan():
    values = np.array([[0.0, 1.0], [np.nan, 7.0]])
    rgba = inspect.colorize(values, GRAY, 0.0, 1.0)
    assert rgba.dtype == np.uint8 and rgba.shape == (2, 2, 4)
    assert rgba[0, 0].tolist() == [0, 0, 0, 255]
    assert rgba[0, 1].tolist() == [255, 255, 255, 255]
    assert rgba[1, 0, 3] == 0  # transparent
    assert rgba[1, 1].tolist() == [255, 255, 255, 255]  # clipped to the top
    diverging = inspect.colorize(np.array([[-2.0, 0.0, 2.0]]), DIVERGING, -2, 2)[0]
    assert diverging[0, 2] > diverging[0, 0]  # blue end
    assert diverging[2, 0] > diverging[2, 2]  # red end
    assert diverging[1, :3].min() > 230  # near white in the middle


def test_png_round_trip(rng):
    rgba = rng.integers(0, 256, (7, 5, 4), dtype=np.uint8)
    uri = inspect.png_data_uri(rgba)
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    np.testing.assert_array_equal(pixels, rgba)


def test_tile_grid_lays_out_every_image_with_a_clickable_marker(rng):
    images = rng.random((7, 28, 28)).astype(np.float32)
    images[3] = 1.0
    figure = inspect.tile_grid(
        images, 3, hover=[f"image {i}" for i in range(7)], customdata=[10 + i for i in range(7)]
    )
    pixels = decode(figure)
    assert pixels.shape[:2] == (3 * 29 - 1, 3 * 29 - 1)  # 3 rows of 3, 1-pixel gaps
    # Image 3 is row 1, column 0: all white, and the gaps around it are transparent.
    np.testing.assert_array_equal(pixels[29 : 29 + 28, 0:28, :3], 255)
    assert pixels[28, 0, 3] == 0 and pixels[29, 28, 3] == 0
    tiles = trace(figure, "tiles")
    assert len(tiles.x) == 7 and list(tiles.customdata) == list(range(10, 17))
    assert (tiles.x[3], tiles.y[3]) == (13.5, 29 + 13.5)  # over the tile's centre
    assert list(tiles.hovertext) == [f"image {i}" for i in range(7)]
    assert figure.layout.xaxis.fixedrange and figure.layout.yaxis.scaleanchor == "x"


def test_tile_grid_captions_highlight_row_labels_and_colour_bar():
    images = np.zeros((4, 28, 28), np.float32)
    figure = inspect.tile_grid(
        images, 2, captions=list("abcd"), highlight=2, row_labels=["top", "bottom"],
        colorbar_title="weight", colorscale=DIVERGING, zmin=-1, zmax=1,
    )  # fmt: skip
    assert [a.text for a in figure.layout.annotations] == list("abcd")
    assert decode(figure).shape[0] == 2 * (28 + 10 + 1) - 1  # room for a caption per row
    (shape,) = figure.layout.shapes
    assert (shape.x0, shape.y0) == (-1, 28 + 10)  # around image 2: row 1, column 0
    assert list(figure.layout.yaxis.ticktext) == ["top", "bottom"]
    bar = [t for t in figure.data if t.type == "scatter" and t.marker.showscale]
    assert len(bar) == 1 and (bar[0].marker.cmin, bar[0].marker.cmax) == (-1, 1)
    assert not [t for t in figure.data if t.name == "tiles"]  # nothing to hover: no markers


def test_selected_custom_reads_a_selection_event():
    event = {
        "selection": {
            "points": [{"curve_number": 0, "x": 1}, {"curve_number": 2, "customdata": [4, 9, 7]}]
        }
    }
    assert inspect.selected_custom(event) == [4, 9, 7]
    assert inspect.selected_custom(event, trace=0) is None
    assert inspect.selected_custom({"selection": {"points": []}}) is None
    assert inspect.selected_custom(None) is None


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
    figure = inspect.confusion_figure(cm, NAMES)
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
    assert figure.layout.xaxis.title.text == "predicted digit"
    assert figure.layout.yaxis.title.text == "true digit"
    assert tuple(figure.layout.yaxis.range) == (9.5, -0.5)  # 0 at the top


def test_confusion_figure_rates_and_highlight(cm):
    figure = inspect.confusion_figure(cm, NAMES, rates=True, highlight=(3, 5))
    rates = heat_values(figure, "right") + heat_values(figure, "wrong")
    np.testing.assert_allclose(rates.sum(axis=1), 1.0)
    (shape,) = figure.layout.shapes
    assert (shape.x0, shape.x1, shape.y0, shape.y1) == (4.5, 5.5, 2.5, 3.5)


def test_threshold_and_robustness_figures():
    grid = np.linspace(0.1, 0.99, 50)
    figure = inspect.threshold_figure(grid, np.linspace(1, 0.8, 50), np.linspace(0.9, 1, 50), 0.5)
    assert len(figure.data) == 2 and has_axis_titles(figure)
    assert [s.x0 for s in figure.layout.shapes] == [0.5]
    assert figure.layout.yaxis.range[0] == pytest.approx(0.78)
    amounts = np.array([0, 10, 20, 30])
    figure = inspect.robustness_figure(amounts, np.array([0.99, 0.9, 0.6, 0.3]), "rotation", 20)
    assert has_axis_titles(figure) and figure.layout.xaxis.title.text == "rotation"
    (chosen,) = [t for t in figure.data if t.name == "chosen"]
    assert (chosen.x[0], chosen.y[0]) == (20, 0.6)
    assert [s.y0 for s in figure.layout.shapes] == [0.1]  # guessing


# Weights


def test_weight_grid_has_one_tile_per_neuron_on_a_centred_scale(rng):
    weights = rng.standard_normal((20, 28, 28)).astype(np.float32)
    biases = np.linspace(-1, 1, 20)
    figure = inspect.weight_grid(weights, biases, highlight=4)
    tiles = trace(figure, "tiles")
    assert list(tiles.customdata) == list(range(20))
    assert "bias +1.000" in tiles.hovertext[19]
    (bar,) = [t for t in figure.data if t.type == "scatter" and t.marker.showscale]
    assert bar.marker.cmin == -bar.marker.cmax > -np.abs(weights).max() - 1e-6
    assert decode(figure).shape[:2] == (3 * 29 - 1, 8 * 29 - 1)  # 8 columns for 20 neurons


def test_weight_image_and_matrix_figures(rng):
    image = rng.standard_normal((28, 28))
    heat = inspect.weight_image(image).data[0]
    assert heat.zmin == -heat.zmax == -np.abs(image).max()
    small = rng.standard_normal((30, 12))
    figure = inspect.matrix_figure(small, "input", "neuron")
    np.testing.assert_array_equal(np.array(figure.data[0].z), small.T)
    assert has_axis_titles(figure)
    big = rng.standard_normal((800, 128))
    figure = inspect.matrix_figure(big, "input", "neuron")
    assert decode(figure).shape[:2] == (128, 800)  # one pixel per weight, rows are neurons


def test_conv_filters_figure(rng):
    first = rng.standard_normal((3, 3, 1, 8))
    figure = inspect.conv_filters_figure(first, np.zeros(8))
    assert len(trace(figure, "tiles").x) == 8
    deeper = rng.standard_normal((5, 5, 4, 6))
    pixels = decode(inspect.conv_filters_figure(deeper, np.zeros(6)))
    assert pixels.shape[:2] == (6 * 6 - 1, 4 * 6 - 1)  # a row per filter, a tile per channel


def test_histogram_densities_integrate_to_one_and_constants_are_skipped(rng):
    layers = [
        ("Dense 1", rng.standard_normal((50, 20)), rng.standard_normal(20)),
        ("Dense 2", rng.standard_normal((20, 10)), np.zeros(10)),
    ]
    figure = inspect.histogram_figure(layers)
    assert [t.name for t in figure.data] == ["Dense 1", "Dense 1", "Dense 2"]
    for line in figure.data:
        x, y = np.array(line.x), np.array(line.y)
        assert (y * (x[1] - x[0])).sum() == pytest.approx(1.0)
    assert has_axis_titles(figure)


def test_neuron_grid_and_feature_maps(rng):
    values = rng.random(37)
    heat = inspect.neuron_grid(values, cols=16).data[0]
    z = np.array(heat.z, dtype=float)
    assert z.shape == (3, 16) and np.isnan(z).sum() == 48 - 37
    np.testing.assert_allclose(z.ravel()[:37], values)
    signed = inspect.neuron_grid(rng.standard_normal(8), signed=True).data[0]
    assert signed.zmin == -signed.zmax
    maps = inspect.feature_maps(rng.random((13, 13, 5)), cols=4)
    assert len(trace(maps, "tiles").x) == 5


# Data


def test_class_balance_figure_shows_shares_with_counts():
    counts = {"training": np.arange(1, 11) * 100, "test": np.full(10, 50)}
    figure = inspect.class_balance_figure(counts, NAMES)
    assert [t.name for t in figure.data] == ["training (5,500)", "test (500)"]
    for bars, values in zip(figure.data, counts.values(), strict=True):
        assert sum(bars.y) == pytest.approx(1.0)
        assert list(bars.customdata) == list(values)
    assert has_axis_titles(figure)


def test_pca_figure_has_every_point_once_by_class(rng):
    coords = rng.standard_normal((60, 2))
    labels = rng.integers(0, 10, 60)
    figure = inspect.pca_figure(coords, labels, NAMES, np.array([0.3, 0.2]), highlight=[5, 9])
    classes = figure.data[:10]
    assert [t.name for t in classes] == NAMES
    rows = sorted(int(r) for t in classes for r in t.customdata)
    assert rows == list(range(60))
    for cls, points in enumerate(classes):
        assert np.all(labels[np.array(points.customdata, dtype=int)] == cls)
    for ringed in [t for t in figure.data if t.name == "chosen"]:
        assert list(ringed.x) == [coords[5, 0], coords[9, 0]]
    assert "30%" in figure.layout.xaxis.title.text and has_axis_titles(figure)
