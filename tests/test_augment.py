"""Batch augmentation: exact geometry, value range, reproducibility, labels untouched; `warp`
against its docstring's formula written as a loop over pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from core.augment import augment_batch, elastic_field, gaussian_matrix, preview, warp
from core.config import TrainConfig
from core.data import batch_jobs

ZEROS, ONES = np.zeros(3, np.float32), np.ones(3, np.float32)


@pytest.fixture
def digits(mnist) -> np.ndarray:
    return mnist.train_images[:64].astype(np.float32) / 255


def test_identity_transform_returns_the_images(digits):
    n = len(digits)
    out = warp(digits, np.zeros(n), np.ones(n), np.zeros(n), np.zeros(n))
    np.testing.assert_allclose(out, digits, atol=1e-6)


def test_whole_pixel_shift_matches_a_plain_shift(digits):
    n = len(digits)
    out = warp(digits, np.zeros(n), np.ones(n), np.full(n, 2.0), np.full(n, -3.0))
    expected = ndimage.shift(digits, (0, 2, -3), order=0, mode="constant")
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_rotation_by_90_degrees_is_counter_clockwise(digits):
    n = len(digits)
    out = warp(digits, np.full(n, 90.0), np.ones(n), np.zeros(n), np.zeros(n))
    np.testing.assert_allclose(out, np.rot90(digits, k=1, axes=(1, 2)), atol=1e-5)


def test_rotation_and_scale_match_scipy_affine_transform(digits):
    angle, scale = 17.0, 1.15
    n = len(digits)
    out = warp(digits, np.full(n, angle), np.full(n, scale), np.zeros(n), np.zeros(n))
    theta = np.deg2rad(angle)
    inverse = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]]) / scale
    centre = np.array([13.5, 13.5])
    for img, got in zip(digits[:8], out[:8], strict=True):
        want = ndimage.affine_transform(
            img, inverse, offset=centre - inverse @ centre, order=1, mode="constant"
        )
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_gaussian_matrix_is_scipys_gaussian_filter(rng):
    noise = rng.random((5, 28, 28))
    for sigma in (1.0, 4.0):
        G = gaussian_matrix(28, sigma).astype(np.float64)
        smoothed = np.einsum("ij,njk,lk->nil", G, noise, G)
        expected = ndimage.gaussian_filter(noise, sigma, axes=(1, 2), mode="constant")
        np.testing.assert_allclose(smoothed, expected, atol=1e-6)


def test_elastic_field_is_smooth_and_scaled_by_alpha():
    field = elastic_field(50, 28, 28, alpha=34.0, sigma=4.0, rng=np.random.default_rng(0))
    assert field.shape == (100, 28, 28) and field.dtype == np.float32
    # Neighbouring displacements are nearly equal: the field is smooth, not pixel noise.
    # (iid noise would give a mean step about as large as the values themselves)
    assert np.abs(np.diff(field, axis=2)).mean() < 0.3 * np.abs(field).mean()
    doubled = elastic_field(50, 28, 28, alpha=68.0, sigma=4.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(doubled, 2 * field, rtol=1e-5)


@pytest.mark.parametrize(
    "settings",
    [
        {"rotate": 15},
        {"shift": 3},
        {"scale": 0.2},
        {"elastic": 34},
        {"rotate": 10, "shift": 2, "scale": 0.1, "elastic": 20},
    ],
    ids=["rotate", "shift", "scale", "elastic", "all"],
)
def test_augmentation_keeps_shape_dtype_range_and_is_seeded(digits, settings):
    a = augment_batch(digits, np.random.default_rng(3), **settings)
    b = augment_batch(digits, np.random.default_rng(3), **settings)
    c = augment_batch(digits, np.random.default_rng(4), **settings)
    assert a.shape == digits.shape and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.allclose(a, digits, atol=1e-3)
    # A mild transform keeps most of the ink (nothing important falls off the edge).
    assert a.sum() == pytest.approx(digits.sum(), rel=0.2)


def test_augmented_batches_keep_their_labels(mnist):
    cfg = TrainConfig(aug_rotate=20, aug_shift=3)
    from core.augment import batch_transform

    indices = np.arange(300)
    images, labels = mnist.train_images, mnist.train_labels
    plain = [make() for make in batch_jobs(images, labels, indices, 100, np.random.default_rng(0))]
    augmented = [
        make()
        for make in batch_jobs(
            images, labels, indices, 100, np.random.default_rng(0), batch_transform(cfg)
        )
    ]
    for (x0, y0), (x1, y1) in zip(plain, augmented, strict=True):
        np.testing.assert_array_equal(y0, y1)
        assert x1.shape == x0.shape and not np.array_equal(x0, x1)


def test_preview_grid(mnist):
    grid = preview(mnist.train_images[:4], TrainConfig(aug_rotate=30), variants=5, seed=1)
    assert grid.shape == (4, 6, 28, 28)
    np.testing.assert_allclose(grid[:, 0], mnist.train_images[:4] / 255, atol=1e-6)
    assert not np.allclose(grid[:, 1], grid[:, 2])


def test_nearest_sampling_matches_scipy_order_0(digits):
    angle, scale = 13.0, 0.9
    n = len(digits)
    out = warp(digits, np.full(n, angle), np.full(n, scale), np.zeros(n), np.zeros(n), order=0)
    theta = np.deg2rad(angle)
    inverse = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]]) / scale
    centre = np.array([13.5, 13.5])
    for img, got in zip(digits[:8], out[:8], strict=True):
        want = ndimage.affine_transform(
            img, inverse, offset=centre - inverse @ centre, order=0, mode="constant"
        )
        # Only a coordinate landing exactly between two pixels may round the other way.
        assert np.mean(got != want) < 0.01


def test_nearest_whole_pixel_shift_is_exact(digits):
    n = len(digits)
    out = warp(digits, np.zeros(n), np.ones(n), np.full(n, -1.0), np.full(n, 3.0), order=0)
    np.testing.assert_array_equal(out, ndimage.shift(digits, (0, -1, 3), order=0))


def naive_warp(
    image: np.ndarray,
    angle: float,
    scale: float,
    shift_y: float,
    shift_x: float,
    displacement: np.ndarray | None = None,
    order: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """`warp`'s formula for one image, a pixel at a time in float64; also each pixel's source.

    Output pixel p, from the centre c, reads the zero-extended image at
    q = R(θ) p / s + c - shift + displacement(p), R(θ) = [[cos θ, sin θ], [-sin θ, cos θ]]
    in (row, column) coordinates: bilinearly, or the pixel at ⌊q + ½⌋.
    """
    h, w = image.shape

    def pixel(row: int, col: int) -> float:
        return float(image[row, col]) if 0 <= row < h and 0 <= col < w else 0.0

    theta = math.radians(angle)
    cos, sin = math.cos(theta) / scale, math.sin(theta) / scale
    centre_y, centre_x = (h - 1) / 2, (w - 1) / 2
    out = np.zeros((h, w))
    sources = np.zeros((2, h, w))
    for y in range(h):
        for x in range(w):
            py, px = y - centre_y, x - centre_x
            qy = cos * py + sin * px + centre_y - shift_y
            qx = -sin * py + cos * px + centre_x - shift_x
            if displacement is not None:
                qy, qx = qy + displacement[0, y, x], qx + displacement[1, y, x]
            sources[:, y, x] = qy, qx
            if order == 0:
                out[y, x] = pixel(math.floor(qy + 0.5), math.floor(qx + 0.5))
                continue
            row, col = math.floor(qy), math.floor(qx)
            fy, fx = qy - row, qx - col
            out[y, x] = (
                (1 - fy) * (1 - fx) * pixel(row, col)
                + (1 - fy) * fx * pixel(row, col + 1)
                + fy * (1 - fx) * pixel(row + 1, col)
                + fy * fx * pixel(row + 1, col + 1)
            )
    return out, sources


# (angle, scale, shift_y, shift_x) per image: identity, rotations, zooms, shifts that push
# most of the image off the edge, and a flip's worth of rotation.
WARPS = [
    (0.0, 1.0, 0.0, 0.0),
    (17.0, 1.15, 0.0, 0.0),
    (-33.0, 0.8, 1.3, -2.6),
    (90.0, 1.0, 0.5, 0.25),
    (180.0, 1.3, -4.0, 3.0),
    (8.0, 0.95, 9.0, -12.5),
]


@pytest.mark.parametrize("elastic", [False, True], ids=["affine", "elastic"])
@pytest.mark.parametrize("order", [0, 1], ids=["nearest", "bilinear"])
def test_warp_matches_its_formula_pixel_by_pixel(order, elastic, rng):
    n, h, w = len(WARPS), 9, 12  # not square, so rows and columns cannot be swapped unseen
    x = rng.random((n, h, w), dtype=np.float32)
    angle, scale, shift_y, shift_x = (np.array(c, np.float32) for c in zip(*WARPS, strict=True))
    field = (rng.standard_normal((2 * n, h, w)) * 2).astype(np.float32) if elastic else None
    out = warp(x, angle, scale, shift_y, shift_x, displacement=field, order=order)
    assert out.shape == x.shape and out.dtype == np.float32
    for k in range(n):
        displacement = field[[k, n + k]] if field is not None else None
        want, sources = naive_warp(
            x[k], *(float(v[k]) for v in (angle, scale, shift_y, shift_x)), displacement, order
        )
        if order == 1:  # continuous in the coordinates, which warp computes in float32
            np.testing.assert_allclose(out[k], want, atol=2e-5, err_msg=f"image {k}")
            continue
        # Nearest sampling jumps where a coordinate is half-way between pixels: float32 may
        # round those few the other way.
        halfway = np.abs((sources + 0.5) % 1 - 0.5) > 0.5 - 1e-4
        clear = ~halfway.any(axis=0)
        assert clear.mean() > 0.9
        np.testing.assert_array_equal(out[k][clear], want[clear], err_msg=f"image {k}")
