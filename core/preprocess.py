"""Turn a photo, scan or canvas drawing of one digit into the 28x28 image MNIST would make.

MNIST's own recipe (LeCun et al.): crop to the ink, scale the longer side to 20
pixels keeping the aspect ratio, with anti-aliasing, and place the result in a
28x28 field so that its centre of mass sits at the centre. Both the CLI's
`predict` and the dashboard's Draw page go through `prepare`.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

F32 = np.float32
MAX_PIXELS = 40_000_000  # larger uploads are refused rather than decoded
WORKING_SIDE = 1024  # bigger images are first shrunk to this, which keeps ~50 ms per image
DIGIT_BOX = 20  # the longer side of the digit in MNIST
CENTRE = 14.0  # mean centre of mass of MNIST's training digits, measured on 20,000 of them
INK_LEVEL = 0.25  # ink contrast below this (after normalising) counts as paper
MIN_CONTRAST = 0.1  # a picture with less contrast than this is blank


class ImageError(ValueError):
    """The input is not an image we can read; the message says why and what to do."""


@dataclass
class Prepared:
    """The network's view of a picture: `image` (28, 28) in [0, 1], or None with a reason."""

    image: np.ndarray | None
    reason: str = ""
    box: tuple[int, int, int, int] | None = None  # ink bounding box (top, left, bottom, right)

    @property
    def ok(self) -> bool:
        return self.image is not None


def load_image(source: str | Path | bytes | IO[bytes]) -> np.ndarray:
    """Read any PIL-readable file into grayscale float32 (H, W) in [0, 1].

    Honours EXIF rotation, takes the first frame of an animation, keeps 16-bit depth,
    and puts a transparent background behind the strokes in a contrasting shade.
    """
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    name = source if isinstance(source, (str, Path)) else getattr(source, "name", "the upload")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(
                    f"{name} is {img.width}x{img.height} pixels, over the limit of "
                    f"{MAX_PIXELS // 1_000_000} megapixels; crop or shrink it to the digit."
                )
            img.seek(0)
            img = ImageOps.exif_transpose(img)
            if max(img.size) > WORKING_SIDE:
                img.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BOX)
            return _to_gray(img)
    except ImageError:
        raise
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise ImageError(f"{name}: no such file") from exc
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        SyntaxError,
        ValueError,
    ) as exc:
        raise ImageError(
            f"{name} could not be read as an image ({type(exc).__name__}: {exc}); "
            "use a PNG or JPEG photo or scan of one digit."
        ) from exc


def _to_gray(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        return (a / top).clip(0, 1).astype(F32)
    if img.mode == "F":
        return np.asarray(img, dtype=F32).clip(0, 1)
    if "A" in img.getbands() or "transparency" in img.info:
        return flatten_rgba(np.asarray(img.convert("RGBA"), dtype=F32) / 255)
    return np.asarray(img.convert("L"), dtype=F32) / 255


def flatten_rgba(rgba: np.ndarray) -> np.ndarray:
    """Grayscale (H, W) of RGBA (H, W, 4) in [0, 1], transparent parts in a contrasting shade.

    A drawing canvas or app exports strokes on a transparent sheet, whose colour channels
    say nothing (often black under black strokes): the alpha channel carries the drawing.
    """
    alpha = rgba[..., 3]
    gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], F32)
    opaque = alpha > 0.5
    # Strokes on a transparent sheet: put the sheet in the shade opposite the strokes.
    sheet = 1.0 if opaque.any() and gray[opaque].mean() < 0.5 else 0.0
    return gray * alpha + sheet * (1 - alpha)


def prepare(gray: np.ndarray, min_extent: float = 0.08) -> Prepared:
    """MNIST-style 28x28 image of the digit in a picture of any size and polarity.

    `gray` is (H, W), or (H, W, 3 or 4) such as a canvas's RGBA; floats in [0, 1], or
    unsigned integers over their type's range (a canvas's uint8). Returns a reason instead
    of an image when there is no digit: a blank picture, or ink whose extent is under
    `min_extent` of the picture's longer side (a stray dot).
    """
    gray = np.asarray(gray)
    if np.issubdtype(gray.dtype, np.unsignedinteger):
        gray = gray.astype(F32) / F32(np.iinfo(gray.dtype).max)
    gray = np.nan_to_num(gray.astype(F32, copy=False), nan=0.0).clip(0, 1)
    if gray.ndim == 3:
        if gray.shape[2] == 4:
            gray = flatten_rgba(gray)
        else:
            gray = gray[..., :3].mean(axis=2) if gray.shape[2] >= 3 else gray[..., 0]
    if gray.ndim != 2 or gray.size == 0:
        return Prepared(None, f"expected a 2-D grayscale picture, got shape {gray.shape}")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    paper = float(np.median(border))
    if paper > 0.5:  # dark ink on light paper: make it light on dark, like MNIST
        gray, paper = 1 - gray, 1 - paper
    contrast = float(gray.max()) - paper
    if contrast < MIN_CONTRAST:
        return Prepared(None, "no digit found: the picture is blank")
    ink = ((gray - paper) / contrast).clip(0, 1)
    ink[ink < INK_LEVEL] = 0
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box = (int(top), int(left), int(bottom), int(right))
    if max(bottom - top, right - left) < min_extent * max(gray.shape):
        return Prepared(None, "no digit found: the ink is only a dot", box)
    crop = ink[top:bottom, left:right]
    h, w = crop.shape
    factor = DIGIT_BOX / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    small = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS))
    small = small.clip(0, 1)
    if small.max() <= 0:
        return Prepared(None, "no digit found: the ink vanished when scaled down", box)
    # MNIST's digits all reach full ink; a thin stroke scaled down comes out faint, and a
    # network reads a faint 7 as a 1. Stretch the brightest pixel back to 1.
    small = small / small.max()
    cy, cx = ndimage.center_of_mass(small)
    sh, sw = small.shape
    y0 = int(np.clip(round(CENTRE - cy), 0, 28 - sh))
    x0 = int(np.clip(round(CENTRE - cx), 0, 28 - sw))
    out = np.zeros((28, 28), F32)
    out[y0 : y0 + sh, x0 : x0 + sw] = small
    return Prepared(out, "", box)
