"""Data augmentation on whole batches: rotation, shift, scale and elastic deformation.

Every image gets its own random transform, but the batch is warped at once: the
source coordinates of all output pixels come from one matrix product, then each
pixel is gathered from a zero-padded copy. Training samples the nearest pixel:
bilinear interpolation (`order=1`, used for evaluation) costs four times as much,
and the network learns as well either way (the mlp preset reaches 99.2 % with
both), while nearest sampling keeps augmentation to about a fifth of an MLP
epoch instead of doubling it (benchmarks/bench_mlp.py). Elastic
deformation (Simard, Steinkraus & Platt, 2003) adds a random displacement field
smoothed by a Gaussian and scaled by alpha; the Gaussian is applied as two
matrix products, exactly `scipy.ndimage.gaussian_filter(mode="constant")`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .config import TrainConfig

F32 = np.float32
_PAD = 2  # zero border: a source pixel outside the image reads zeros


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> np.ndarray:
    """Rows (y, x, 1) of every output pixel, centred on the image centre."""
    y, x = np.mgrid[0:h, 0:w].astype(F32)
    return np.stack([y.ravel() - (h - 1) / 2, x.ravel() - (w - 1) / 2, np.ones(h * w, F32)])


@lru_cache(maxsize=8)
def gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """The (n, n) matrix that filters a length-n signal with a Gaussian, zeros outside."""
    radius = int(4.0 * sigma + 0.5)  # scipy's default truncate=4.0
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    offset = np.arange(n)[:, None] - np.arange(n)[None, :]
    inside = np.abs(offset) <= radius
    return np.where(inside, taps[np.clip(offset + radius, 0, 2 * radius)], 0).astype(F32)


def elastic_field(
    n: int, h: int, w: int, alpha: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Random displacements (2n, h, w): uniform noise in [-1, 1], Gaussian-smoothed, times alpha."""
    noise = rng.random((2 * n, h, w), dtype=F32) * 2 - 1
    smooth_x = (noise.reshape(-1, w) @ gaussian_matrix(w, sigma)).reshape(2 * n, h, w)
    along_y = smooth_x.transpose(0, 2, 1).reshape(-1, h) @ gaussian_matrix(h, sigma)
    return along_y.reshape(2 * n, w, h).transpose(0, 2, 1) * F32(alpha)


def warp(
    x: np.ndarray,
    angle: np.ndarray,
    scale: np.ndarray,
    shift_y: np.ndarray,
    shift_x: np.ndarray,
    displacement: np.ndarray | None = None,
    order: int = 1,
) -> np.ndarray:
    """Rotate (degrees, counter-clockwise), scale and shift (pixels) each image of (N, H, W).

    Parameters are per image, shape (N,); `displacement` (2N, H, W) adds an elastic field
    (the y displacements of all images, then the x displacements). `order` 1 interpolates
    bilinearly; 0 takes the nearest pixel, a quarter of the work.

    The plain formula, per image: output pixel p = (y, x), measured from the centre
    c = ((H-1)/2, (W-1)/2), reads the image, extended by zeros, at

        q = R(θ) p / s + c - shift + displacement(p),   R(θ) = [[cos θ, sin θ], [-sin θ, cos θ]]

    in (row, column) coordinates, rows pointing down: bilinearly from the four pixels
    around q (order 1), or the pixel at ⌊q + ½⌋ (order 0). tests/test_augment.py holds this
    as a loop over pixels. The code does it for the whole batch at once: every q from one
    matrix product, then gathers from a zero-padded copy, where clipping q onto the border
    stands in for the zeros outside.
    """
    n, h, w = x.shape
    theta = np.deg2rad(angle)
    cos, sin = np.cos(theta) / scale, np.sin(theta) / scale
    # Inverse map: output pixel (y, x), centred, reads the source at R p / s + centre - shift,
    # with R the rotation by θ in (row, column) coordinates, rows pointing down. Nearest
    # sampling adds 0.5 so that truncating below rounds.
    centre_y, centre_x = (h - 1) / 2 + _PAD - shift_y, (w - 1) / 2 + _PAD - shift_x
    rows = np.empty((2 * n, 3), F32)
    rows[:n, 0], rows[:n, 1], rows[:n, 2] = cos, sin, centre_y + (0.5 if order == 0 else 0)
    rows[n:, 0], rows[n:, 1], rows[n:, 2] = -sin, cos, centre_x + (0.5 if order == 0 else 0)
    coords = rows @ _grid(h, w)  # (2N, H*W): source y of every pixel, then source x
    if displacement is not None:
        coords += displacement.reshape(2 * n, h * w)
    # A coordinate outside the image is clipped onto the zero border, where every tap
    # reads 0 whatever the weights.
    hp, wp = h + 2 * _PAD, w + 2 * _PAD
    np.clip(coords[:n], 0, hp - 2, out=coords[:n])
    np.clip(coords[n:], 0, wp - 2, out=coords[n:])
    # Clipped coordinates are never negative, so truncating to integers floors them.
    base = coords.astype(np.int32)
    index = base[:n] * wp
    index += base[n:]
    index += (np.arange(n, dtype=np.int32) * (hp * wp))[:, None]
    index = index.astype(np.intp)
    size = n * hp * wp + wp + 2  # a spare row: every tap stays inside
    padded = np.zeros(size + size % 2, F32)  # even, for the 8-byte view below
    padded[: n * hp * wp].reshape(n, hp, wp)[:, _PAD : _PAD + h, _PAD : _PAD + w] = x
    if order == 0:
        return padded.take(index).reshape(n, h, w)
    frac = np.subtract(coords, np.floor(coords), out=coords)
    # Each gather fetches two horizontal neighbours at once, read as one 8-byte number
    # through a view that starts a new pair at every float: half the gathers of four taps.
    pairs = as_strided(padded.view(np.float64), shape=(len(padded) - 1,), strides=(4,))
    top = pairs.take(index).view(F32).reshape(n, h * w, 2)
    bottom = pairs.take(index + wp).view(F32).reshape(n, h * w, 2)
    fy, fx = frac[:n], frac[n:]
    top_row = top[..., 0] + fx * (top[..., 1] - top[..., 0])
    bottom_row = bottom[..., 0] + fx * (bottom[..., 1] - bottom[..., 0])
    out = top_row + fy * (bottom_row - top_row)
    return out.reshape(n, h, w)


def augment_batch(
    x: np.ndarray,
    rng: np.random.Generator,
    rotate: float = 0.0,
    shift: float = 0.0,
    scale: float = 0.0,
    elastic: float = 0.0,
    elastic_sigma: float = 4.0,
    order: int = 0,
) -> np.ndarray:
    """A randomly transformed copy of a float32 batch (N, H, W); labels are unaffected.

    Each image is rotated by up to ±`rotate` degrees, shifted by up to ±`shift` pixels on
    each axis, scaled by a factor in [1-`scale`, 1+`scale`], and elastically deformed with
    strength `elastic` (alpha, in pixels) and smoothness `elastic_sigma`. `order` 0 samples
    the nearest pixel (training's choice, for speed), 1 interpolates bilinearly.
    """
    n, h, w = x.shape
    uniform = rng.random((4, n), dtype=F32) * 2 - 1
    field = elastic_field(n, h, w, elastic, elastic_sigma, rng) if elastic else None
    out = warp(
        x,
        angle=uniform[0] * F32(rotate),
        scale=1 + uniform[1] * F32(scale),
        shift_y=uniform[2] * F32(shift),
        shift_x=uniform[3] * F32(shift),
        displacement=field,
        order=order,
    )
    # The nearest pixel is always an input value (or the zero border); only interpolation
    # can round past the range.
    return out if order == 0 else np.clip(out, 0, 1, out=out)


def batch_transform(cfg: TrainConfig) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """The augmentation a training config asks for, as a function of (batch, rng)."""
    return partial(
        augment_batch,
        rotate=cfg.aug_rotate,
        shift=cfg.aug_shift,
        scale=cfg.aug_scale,
        elastic=cfg.aug_elastic,
        elastic_sigma=cfg.aug_elastic_sigma,
    )


def preview(images: np.ndarray, cfg: TrainConfig, variants: int = 7, seed: int = 0) -> np.ndarray:
    """(len(images), 1 + variants, H, W) float32: each image, then random augmentations of it."""
    x = images.astype(F32) / 255
    rng = np.random.default_rng(seed)
    repeated = np.repeat(x, variants, axis=0)
    augmented = batch_transform(cfg)(repeated, rng).reshape(len(x), variants, *x.shape[1:])
    return np.concatenate([x[:, None], augmented], axis=1)
