"""Pictures that are not digits, drawn as a person draws on the Draw page, to fit and measure
core/novelty.py's "does it look like a digit" check; and digits drawn the same way.

Every picture is drawn with a white pen (8 to 34 pixels wide, the page's is 26) on a black
square canvas of 280 to 320 pixels, with a hand's wobble, and goes through the same
`core.preprocess.prepare` a drawing gets. Four kinds:

- letters: rendered from the fonts Debian ships, thickened by a random pen width and
  slightly turned. Letters that are written like digits are left out (O o: 0; I i l: 1;
  S s: 5; Z z: 2; B: 8; G b: 6; g q: 9): saying they look like digits is right;
- scribbles: random pen paths, zigzags, loops and hatching;
- shapes: squares and rectangles, triangles, stars, arrows, houses, hearts, crosses, and
  circles with something inside (a plain circle is a 0);
- faces: a head, two eyes, a mouth, sometimes a nose, ears or hair.

Two splits keep what the detector is fitted on apart from what it is measured on:

- "train" draws letters from the DejaVu fonts only, "measure" from the Liberation fonts
  only: the measured letters are in typefaces the detector never saw;
- every kind's random numbers come from a generator seeded with (seed, split, kind), so
  the two splits never share a drawing even for the same seed. Scribbles, shapes and faces
  come from the same recipes in both splits (only the draws differ).

`drawn_digits` draws digits the same way (from fonts, or from hand-made stroke templates
that are only ever measured on, never fitted) to check that drawings of digits are still
answered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .preprocess import prepare

FONTS = Path("/usr/share/fonts/truetype")
SPLITS = ("train", "measure")
KINDS = ("letters", "scribbles", "shapes", "faces")
# The Draw page's: ink under this share of the canvas's side is a stray dot, not a drawing.
MIN_EXTENT = 0.2
PEN = (8, 34)  # pen widths in pixels on the canvas
SIDE = (280, 320)  # canvas sides in pixels

TRAIN_FONTS = [
    f"dejavu/DejaVu{name}.ttf"
    for name in (
        "Sans",
        "Sans-Bold",
        "Sans-Oblique",
        "Sans-ExtraLight",
        "SansCondensed",
        "SansCondensed-BoldOblique",
        "SansMono",
        "SansMono-Bold",
        "Serif",
        "Serif-Bold",
        "Serif-Italic",
        "SerifCondensed-BoldItalic",
    )
]
MEASURE_FONTS = [
    f"liberation/Liberation{name}.ttf"
    for name in (
        "Sans-Regular",
        "Sans-Bold",
        "Sans-Italic",
        "SansNarrow-Regular",
        "SansNarrow-BoldItalic",
        "Serif-Regular",
        "Serif-Bold",
        "Serif-Italic",
        "Mono-Regular",
        "Mono-Bold",
    )
]
LIKE_DIGITS = "OoIilSsZzBGbgq"  # letters people write like a digit
LETTERS = [
    c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in LIKE_DIGITS
]

# Digits as people draw them on a 320-pixel canvas, strokes of (x, y) points: the Draw
# page's tests' (tests/test_draw.py) and, scaled up, the browser tests'. Measured on only.
STROKE_DIGITS: dict[int, list[list[tuple[float, float]]]] = {
    0: [[(160, 50), (110, 75), (95, 160), (110, 245), (160, 272), (210, 245), (225, 160),
         (210, 75), (160, 50)]],
    1: [[(165, 50), (160, 160), (155, 270)]],
    2: [[(95, 95), (130, 60), (190, 58), (220, 95), (205, 150), (100, 265), (235, 262)]],
    3: [[(100, 70), (160, 50), (215, 80), (200, 135), (150, 155), (215, 185), (215, 240),
         (160, 270), (95, 250)]],
    4: [[(180, 50), (90, 190), (240, 190)], [(190, 120), (190, 280)]],
    5: [[(210, 55), (110, 55), (100, 150), (170, 140), (215, 180), (210, 240), (160, 270),
         (100, 255)]],
    6: [[(200, 55), (130, 120), (100, 200), (120, 260), (175, 270), (215, 225), (195, 175),
         (140, 170), (105, 210)]],
    7: [[(85, 60), (235, 60), (140, 280)]],
    8: [[(200, 80), (160, 50), (110, 75), (120, 130), (200, 190), (210, 250), (160, 275),
         (105, 250), (115, 190), (200, 130), (205, 85)]],
    9: [[(210, 90), (165, 55), (110, 80), (110, 130), (160, 150), (210, 110)],
        [(210, 90), (205, 280)]],
}  # fmt: skip
BROWSER_STROKES = {  # as fractions of the canvas: tests/test_browser_draw.py's digits
    1: [[(0.52, 0.17), (0.51, 0.45), (0.49, 0.84)]],
    0: [[(0.5, 0.16), (0.36, 0.22), (0.3, 0.48), (0.34, 0.76), (0.5, 0.85), (0.65, 0.77),
         (0.7, 0.5), (0.66, 0.24), (0.5, 0.16), (0.45, 0.2)]],
    7: [[(0.27, 0.2), (0.5, 0.19), (0.73, 0.2), (0.6, 0.5), (0.45, 0.86)]],
    2: [[(0.3, 0.3), (0.42, 0.19), (0.59, 0.18), (0.68, 0.29), (0.64, 0.46), (0.31, 0.82),
         (0.5, 0.81), (0.73, 0.82)]],
    4: [[(0.56, 0.16), (0.28, 0.6), (0.75, 0.6)], [(0.59, 0.38), (0.59, 0.88)]],
}  # fmt: skip
BROWSER_DIGITS = {
    d: [[(x * 320, y * 320) for x, y in s] for s in strokes]
    for d, strokes in BROWSER_STROKES.items()
}

Points = list[tuple[float, float]]


@lru_cache(maxsize=64)
def _font(face: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONTS / face), size)


class Canvas:
    """A black square canvas and a white round pen, with a hand's wobble."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.side = int(rng.integers(SIDE[0], SIDE[1] + 1))
        self.pen = int(rng.integers(PEN[0], PEN[1] + 1))
        self.img = Image.new("L", (self.side, self.side), 0)
        self.draw = ImageDraw.Draw(self.img)

    def wobble(self, points: Points, amount: float = 0.01) -> Points:
        """`points` resampled every few pixels and moved by a smooth random drift."""
        p = np.asarray(points, float)
        if len(p) < 2:
            return [tuple(q) for q in p]
        seg = np.hypot(*np.diff(p, axis=0).T)
        at = np.concatenate([[0], np.cumsum(seg)])
        n = max(2, int(at[-1] / 6))
        t = np.linspace(0, at[-1], n)
        dense = np.stack([np.interp(t, at, p[:, 0]), np.interp(t, at, p[:, 1])], 1)
        # A random walk, smoothed: a hand drifts slowly, it does not shake pixel by pixel.
        drift = np.cumsum(self.rng.normal(0, 1, (n, 2)), axis=0)
        drift -= np.linspace(drift[0], drift[-1], n)
        scale = amount * self.side / max(1.0, np.abs(drift).max())
        return [tuple(q) for q in dense + drift * scale]

    def stroke(self, points: Points, wobble: float = 0.01) -> None:
        """One pen stroke through `points`, with round ends and joints, as the canvas draws."""
        pts = self.wobble(points, wobble) if wobble else points
        self.draw.line(pts, fill=255, width=self.pen, joint="curve")
        r = self.pen / 2
        for x, y in (pts[0], pts[-1]):
            self.draw.ellipse([x - r, y - r, x + r, y + r], fill=255)

    def dot(self, x: float, y: float, r: float) -> None:
        self.draw.ellipse([x - r, y - r, x + r, y + r], fill=255)

    def u(self, low: float, high: float) -> float:
        """A random position or length, as a share of the canvas side."""
        return float(self.rng.uniform(low, high)) * self.side


def ellipse_points(cx: float, cy: float, rx: float, ry: float, start=0.0, turn=1.0, n=48) -> Points:
    """Points along an ellipse from angle `start` (radians) through `turn` full turns."""
    a = start + np.linspace(0, 2 * np.pi * turn, n)
    return list(zip(cx + rx * np.cos(a), cy + ry * np.sin(a), strict=True))


def _closed(points: Points) -> Points:
    return [*points, points[0]]


def _turned(points: Points, cx: float, cy: float, angle: float) -> Points:
    c, s = np.cos(angle), np.sin(angle)
    return [(cx + c * (x - cx) - s * (y - cy), cy + s * (x - cx) + c * (y - cy)) for x, y in points]


# The kinds


def letter(rng: np.random.Generator, fonts: Sequence[str]) -> Image.Image:
    """A letter from one of `fonts`, thickened by the pen and turned a little."""
    cv = Canvas(rng)
    ch = LETTERS[int(rng.integers(len(LETTERS)))]
    face = fonts[int(rng.integers(len(fonts)))]
    size = int(cv.side * rng.uniform(0.55, 0.85))
    glyph = Image.new("L", (cv.side, cv.side), 0)
    # Half the letters in the font's own weight, half traced with a pen around it.
    width = 0 if rng.random() < 0.5 else int(rng.integers(1, max(2, cv.pen // 3)))
    ImageDraw.Draw(glyph).text(
        (cv.side / 2, cv.side / 2),
        ch,
        font=_font(face, size),
        fill=255,
        anchor="mm",
        stroke_width=width,
        stroke_fill=255,
    )
    return glyph.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)


def scribble(rng: np.random.Generator) -> Image.Image:
    """Random pen paths: a wandering line, a zigzag, loops, hatching or crossing strokes."""
    cv = Canvas(rng)
    style = int(rng.integers(5))
    if style == 0:  # a wandering path
        n = int(rng.integers(6, 14))
        cv.stroke([(cv.u(0.1, 0.9), cv.u(0.1, 0.9)) for _ in range(n)])
    elif style == 1:  # a zigzag of four or more teeth
        n = int(rng.integers(5, 10))
        xs = np.linspace(cv.u(0.1, 0.25), cv.u(0.75, 0.9), n)
        top, bottom = cv.u(0.15, 0.4), cv.u(0.6, 0.85)
        pts = [(float(x), top if i % 2 else bottom) for i, x in enumerate(xs)]
        cv.stroke(_turned(pts, cv.side / 2, cv.side / 2, rng.uniform(-0.6, 0.6)))
    elif style == 2:  # a row of loops, like joined-up e's
        loops, r = int(rng.integers(3, 6)), cv.u(0.08, 0.14)
        t = np.linspace(0, 2 * np.pi * loops, 40 * loops)
        x0 = cv.side / 2 - loops * r * 0.8
        pts = list(
            zip(
                x0 + t / (2 * np.pi) * r * 1.6 + r * np.sin(t),
                cv.side / 2 - r * np.cos(t),
                strict=True,
            )
        )
        cv.stroke(_turned(pts, cv.side / 2, cv.side / 2, rng.uniform(-0.5, 0.5)))
    elif style == 3:  # hatching: parallel strokes
        n, angle = int(rng.integers(3, 7)), rng.uniform(0, np.pi)
        for off in np.linspace(-0.3, 0.3, n) * cv.side:
            a, b = (
                (cv.side / 2 - cv.u(0.2, 0.35), cv.side / 2 + off),
                (cv.side / 2 + cv.u(0.2, 0.35), cv.side / 2 + off),
            )
            cv.stroke(_turned([a, b], cv.side / 2, cv.side / 2, angle))
    else:  # several random strokes crossing each other
        for _ in range(int(rng.integers(3, 6))):
            cv.stroke([(cv.u(0.1, 0.9), cv.u(0.1, 0.9)) for _ in range(int(rng.integers(2, 4)))])
    return cv.img


SHAPES = ("square", "triangle", "star", "arrow", "house", "heart", "cross", "ringed")


def shape(rng: np.random.Generator) -> Image.Image:
    """A geometric shape drawn with the pen."""
    cv = Canvas(rng)
    kind = SHAPES[int(rng.integers(len(SHAPES)))]
    c, r = cv.side / 2, cv.u(0.28, 0.42)
    turn = float(rng.uniform(-0.4, 0.4))
    if kind == "square":  # or a rectangle
        w, h = r * rng.uniform(0.6, 1.0), r * rng.uniform(0.6, 1.0)
        pts = [(c - w, c - h), (c + w, c - h), (c + w, c + h), (c - w, c + h)]
        cv.stroke(_turned(_closed(pts), c, c, turn))
    elif kind == "triangle":
        a = float(rng.uniform(0, 2 * np.pi))
        pts = [(c + r * np.cos(a + k * 2.094), c + r * np.sin(a + k * 2.094)) for k in range(3)]
        cv.stroke(_closed(pts))
    elif kind == "star":
        a, spikes = float(rng.uniform(0, 2 * np.pi)), int(rng.integers(5, 7))
        inner = rng.uniform(0.35, 0.5)
        pts = [
            (c + r * (1 if k % 2 == 0 else inner) * np.cos(a + k * np.pi / spikes),
             c + r * (1 if k % 2 == 0 else inner) * np.sin(a + k * np.pi / spikes))
            for k in range(2 * spikes)
        ]  # fmt: skip
        cv.stroke(_closed(pts))
    elif kind == "arrow":
        a = float(rng.uniform(0, 2 * np.pi))
        tip = (c + r * np.cos(a), c + r * np.sin(a))
        cv.stroke([(c - r * np.cos(a), c - r * np.sin(a)), tip])
        head = r * rng.uniform(0.35, 0.55)
        for side in (-1, 1):
            b = a + np.pi + side * 0.5
            cv.stroke([tip, (tip[0] + head * np.cos(b), tip[1] + head * np.sin(b))])
    elif kind == "house":
        w = r * rng.uniform(0.6, 0.9)
        body = [(c - w, c), (c - w, c + r), (c + w, c + r), (c + w, c)]
        cv.stroke(_turned(_closed(body), c, c, turn / 3))
        cv.stroke(_turned([(c - w * 1.2, c), (c, c - r), (c + w * 1.2, c)], c, c, turn / 3))
    elif kind == "heart":
        t = np.linspace(0, 2 * np.pi, 60)
        x, y = (
            16 * np.sin(t) ** 3,
            -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)),
        )
        pts = list(zip(c + x * r / 17, c + y * r / 17, strict=True))
        cv.stroke(_turned(pts, c, c, turn))
    elif kind == "cross":  # a plus sign or an X, sometimes in a box
        a = float(rng.uniform(0, np.pi / 2))
        for k in (0, 1):
            b = a + k * np.pi / 2
            cv.stroke(
                [(c - r * np.cos(b), c - r * np.sin(b)), (c + r * np.cos(b), c + r * np.sin(b))]
            )
        if rng.random() < 0.4:
            s = r * 0.75
            cv.stroke(_closed([(c - s, c - s), (c + s, c - s), (c + s, c + s), (c - s, c + s)]))
    else:  # a circle with a cross, a dot, a bar or a smaller circle inside
        ry = r * rng.uniform(0.8, 1.0)
        cv.stroke(ellipse_points(c, c, r, ry, rng.uniform(0, 6.3), 1.05))
        inside = int(rng.integers(4))
        if inside == 0:
            cv.stroke([(c - r * 0.6, c), (c + r * 0.6, c)])
            cv.stroke([(c, c - ry * 0.6), (c, c + ry * 0.6)])
        elif inside == 1:
            cv.dot(c, c, max(cv.pen, r * 0.12))
        elif inside == 2:
            cv.stroke(_turned([(c - r * 0.6, c), (c + r * 0.6, c)], c, c, turn * 2))
        else:
            cv.stroke(ellipse_points(c, c, r * 0.45, ry * 0.45, rng.uniform(0, 6.3), 1.05))
    return cv.img


def face(rng: np.random.Generator) -> Image.Image:
    """A face drawn with strokes: head, eyes, mouth, and sometimes a nose, ears or hair."""
    cv = Canvas(rng)
    c = cv.side / 2
    rx, ry = cv.u(0.3, 0.42), 0.0
    ry = rx * rng.uniform(0.85, 1.15)
    cv.stroke(ellipse_points(c, c, rx, ry, rng.uniform(0, 6.3), 1.03))
    eye_y, gap = c - ry * rng.uniform(0.2, 0.4), rx * rng.uniform(0.3, 0.45)
    eyes = int(rng.integers(3))
    for side in (-1, 1):
        ex = c + side * gap
        if eyes == 0:  # dots
            cv.dot(ex, eye_y, max(cv.pen * 0.7, rx * 0.08))
        elif eyes == 1:  # little circles
            cv.stroke(ellipse_points(ex, eye_y, rx * 0.14, ry * 0.14, 0, 1.05, 16), 0)
        else:  # short strokes
            cv.stroke([(ex, eye_y - ry * 0.1), (ex, eye_y + ry * 0.1)], 0)
    mouth_y, w = c + ry * rng.uniform(0.3, 0.5), rx * rng.uniform(0.35, 0.6)
    mood = int(rng.integers(3))
    a = np.linspace(0.15 * np.pi, 0.85 * np.pi, 20)
    if mood == 0:  # a smile
        cv.stroke(
            list(zip(c + w * np.cos(a), mouth_y - ry * 0.15 + ry * 0.25 * np.sin(a), strict=True))
        )
    elif mood == 1:  # a frown
        cv.stroke(
            list(zip(c + w * np.cos(a), mouth_y + ry * 0.1 - ry * 0.2 * np.sin(a), strict=True))
        )
    else:  # a straight mouth
        cv.stroke([(c - w, mouth_y), (c + w, mouth_y)])
    extra = rng.random(3)
    if extra[0] < 0.4:  # a nose
        cv.stroke(
            [(c, c - ry * 0.1), (c - rx * 0.08, c + ry * 0.12), (c + rx * 0.04, c + ry * 0.14)], 0
        )
    if extra[1] < 0.25:  # ears
        for side in (-1, 1):
            cv.stroke(ellipse_points(c + side * rx * 1.05, c, rx * 0.15, ry * 0.22, 0, 1.0, 16), 0)
    if extra[2] < 0.3:  # hair
        for k in np.linspace(-0.5, 0.5, int(rng.integers(3, 6))):
            x = c + k * rx
            top = c - ry * np.sqrt(max(0.0, 1 - k**2))
            cv.stroke([(x, top), (x + rx * 0.05, top - ry * 0.3)], 0)
    return cv.img


def _fonts(split: str) -> list[str]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return TRAIN_FONTS if split == "train" else MEASURE_FONTS


MAKERS: dict[str, Callable[[np.random.Generator, str], Image.Image]] = {
    "letters": lambda rng, split: letter(rng, _fonts(split)),
    "scribbles": lambda rng, split: scribble(rng),
    "shapes": lambda rng, split: shape(rng),
    "faces": lambda rng, split: face(rng),
}


def _prepared(img: Image.Image) -> np.ndarray | None:
    got = prepare(np.asarray(img, np.float32) / 255.0, MIN_EXTENT)
    return got.image if got.ok else None


def nondigits(kind: str, n: int, seed: int = 0, split: str = "measure") -> np.ndarray:
    """(n, 28, 28) float32 pictures of one kind, each prepared as a drawing is."""
    _fonts(split)  # checks the split
    rng = np.random.default_rng([seed, SPLITS.index(split), KINDS.index(kind)])
    out = []
    while len(out) < n:
        image = _prepared(MAKERS[kind](rng, split))
        if image is not None:  # a drawing prepare calls a stray dot is no test of the check
            out.append(image)
    return np.array(out, np.float32).reshape(n, 28, 28)


def nondigit_set(n_per_kind: int, seed: int = 0, split: str = "measure") -> dict[str, np.ndarray]:
    """`n_per_kind` pictures of each kind, by kind."""
    return {kind: nondigits(kind, n_per_kind, seed, split) for kind in KINDS}


def font_digit(rng: np.random.Generator, digit: int, fonts: Sequence[str]) -> Image.Image:
    """A digit from one of `fonts`, thickened by the pen and turned a little, like `letter`."""
    cv = Canvas(rng)
    face_ = fonts[int(rng.integers(len(fonts)))]
    glyph = Image.new("L", (cv.side, cv.side), 0)
    width = 0 if rng.random() < 0.5 else int(rng.integers(1, max(2, cv.pen // 3)))
    ImageDraw.Draw(glyph).text(
        (cv.side / 2, cv.side / 2),
        str(digit),
        font=_font(face_, int(cv.side * rng.uniform(0.55, 0.85))),
        fill=255,
        anchor="mm",
        stroke_width=width,
        stroke_fill=255,
    )
    return glyph.rotate(float(rng.uniform(-10, 10)), resample=Image.Resampling.BILINEAR)


def stroke_digit(rng: np.random.Generator, strokes: list[Points]) -> Image.Image:
    """A digit's strokes drawn with a random pen, size, position and wobble."""
    cv = Canvas(rng)
    scale, s = rng.uniform(0.55, 1.0) * cv.side / 320, cv.side / 2
    dx, dy = rng.uniform(-0.08, 0.08, 2) * cv.side
    for points in strokes:
        pts = [(s + (x - 160) * scale + dx, s + (y - 160) * scale + dy) for x, y in points]
        cv.stroke(pts, 0.012)
    return cv.img


def drawn_digits(n: int, seed: int = 0, source: str = "strokes") -> tuple[np.ndarray, np.ndarray]:
    """(n, 28, 28) digits drawn on the canvas and prepared, and their (n,) labels.

    `source` "strokes" draws the hand-made stroke templates (STROKE_DIGITS, BROWSER_DIGITS);
    "train-fonts" and "measure-fonts" render digits from the two splits' fonts.
    """
    rng = np.random.default_rng([seed, 7])
    templates = [(d, s) for d, s in STROKE_DIGITS.items()] + list(BROWSER_DIGITS.items())
    images, labels = [], []
    while len(images) < n:
        if source == "strokes":
            digit, strokes = templates[len(images) % len(templates)]
            img = stroke_digit(rng, strokes)
        else:
            digit = len(images) % 10
            img = font_digit(rng, digit, _fonts(source.split("-")[0]))
        image = _prepared(img)
        if image is not None:
            images.append(image)
            labels.append(digit)
    return np.array(images, np.float32).reshape(n, 28, 28), np.array(labels)
