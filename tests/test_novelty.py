"""core/novelty.py: real digits pass; letters, smileys, shapes and scribbles are flagged.

Every non-digit is drawn with PIL and goes through the same `prepare` a drawing gets. The
sets were fixed before the detector was measured on them; the asserted rates are the
measured ones rounded down (see each test), not a selection of the shapes that worked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from streamlit.testing.v1 import AppTest

from core import novelty
from core.preprocess import prepare
from dashboard import draw
from tests.test_draw import DEFAULT_MODEL, DIGITS, canvas, open_draw_page, png, upload

REPO = Path(__file__).resolve().parent.parent
FONTS = Path("/usr/share/fonts/truetype")
FACES = [
    "dejavu/DejaVuSans.ttf",
    "dejavu/DejaVuSans-Bold.ttf",
    "dejavu/DejaVuSerif.ttf",
    "liberation/LiberationSans-Regular.ttf",
    "liberation/LiberationSerif-Regular.ttf",
    "liberation/LiberationMono-Regular.ttf",
]
# Letters that are drawn like digits are left out: O and o (0), I, i and l (1), S and s (5),
# Z and z (2), B (8), G and b (6), g and q (9). Passing them is right, not a miss.
UPPER = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in "OISZBG"]
LOWER = [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in "olisbgqz"]
SHAPES = 50  # of each kind: smileys, squares, triangles, blobs, scribbles


def letter(ch: str, face: str) -> np.ndarray:
    img = Image.new("L", (240, 240), 255)
    font = ImageFont.truetype(str(FONTS / face), 160)
    ImageDraw.Draw(img).text((120, 120), ch, font=font, fill=0, anchor="mm")
    return np.asarray(img)


def sheet() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("L", (320, 320), 0)  # a black canvas, white pen, as on the Draw page
    return img, ImageDraw.Draw(img)


def smiley(rng: np.random.Generator) -> np.ndarray:
    img, pen = sheet()
    width, (cx, cy), r = (
        int(rng.integers(8, 22)),
        160 + rng.integers(-20, 21, 2),
        rng.integers(90, 140),
    )
    pen.ellipse([cx - r, cy - r, cx + r, cy + r], outline=255, width=width)
    eye = max(width * 0.8, r * 0.1)
    for side in (-1, 1):
        ex, ey = cx + side * r * 0.4, cy - r * 0.3
        pen.ellipse([ex - eye, ey - eye, ex + eye, ey + eye], fill=255)
    m = r * 0.55
    pen.arc([cx - m, cy - m * 0.6, cx + m, cy + m * 0.9], 20, 160, fill=255, width=width)
    return np.asarray(img)


def polygon(rng: np.random.Generator, sides: int) -> np.ndarray:
    img, pen = sheet()
    width, start, r = int(rng.integers(8, 22)), rng.uniform(0, 2 * np.pi), rng.uniform(90, 140)
    corners = [
        (
            160 + r * np.cos(start + 2 * np.pi * i / sides),
            160 + r * np.sin(start + 2 * np.pi * i / sides),
        )
        for i in range(sides)
    ]
    pen.line([*corners, corners[0]], fill=255, width=width, joint="curve")
    return np.asarray(img)


def blob(rng: np.random.Generator) -> np.ndarray:
    img, pen = sheet()
    a, b = rng.uniform(60, 140, 2)
    pen.ellipse([160 - a, 160 - b, 160 + a, 160 + b], fill=255)
    return np.asarray(img)


def scribble(rng: np.random.Generator) -> np.ndarray:
    img, pen = sheet()
    points = [tuple(p) for p in rng.uniform(30, 290, (int(rng.integers(8, 16)), 2))]
    pen.line(points, fill=255, width=int(rng.integers(8, 22)), joint="curve")
    return np.asarray(img)


def flagged(pictures: list[np.ndarray]) -> float:
    """The share of pictures, each prepared as a drawing is, that are said not to be digits."""
    verdicts = [novelty.check(prepare(p / 255.0).image) for p in pictures]
    return float(np.mean([not v.looks_like_digit for v in verdicts]))


@pytest.fixture(scope="module")
def detector() -> novelty.Detector:
    return novelty.shipped()


def test_mnist_test_digits_pass(mnist, detector):
    # The test digits were used neither to fit nor to calibrate: measured 98.3 %.
    scores = detector.scores(mnist.test_images / 255.0)
    passed = (scores <= detector.thresholds).all(axis=1).mean()
    assert passed >= 0.97
    # The same digits through `prepare` (as the CLI's scans are) pass as often.
    some = mnist.test_images[:1000]
    verdicts = [novelty.check(prepare(d / 255.0).image) for d in some]
    assert np.mean([v.looks_like_digit for v in verdicts]) >= 0.97


def test_drawn_digits_and_a_single_stroke_pass():
    rng = np.random.default_rng(0)
    for digit, strokes in DIGITS.items():
        for pen in (10, draw.PEN, 34):
            for scale in (0.6, 1.0):
                wobbly = [
                    [(x + rng.normal(0, 4), y + rng.normal(0, 4)) for x, y in s] for s in strokes
                ]
                image = prepare(canvas(wobbly, pen=pen, scale=scale), draw.CANVAS_MIN_EXTENT).image
                seen = novelty.check(image)
                assert seen.looks_like_digit, f"{digit} pen {pen} scale {scale}: {seen}"
    one = prepare(canvas([[(160, 40), (160, 280)]]), draw.CANVAS_MIN_EXTENT).image
    assert novelty.check(one).looks_like_digit


def test_letters_are_flagged():
    # Measured: upper case 75 %, lower case 50 % of these (20 and 18 letters in 6 fonts).
    # Many letters are near some way of writing a digit (J and T like 7, L like a 6 or 4,
    # Q like a 0, d like a 6 or 9, y like a 4, t like a 4 or 7), and a model of the digits
    # can only flag what is unlike all of them. A, W, M, K and R are flagged in every font.
    upper = flagged([letter(c, f) for c in UPPER for f in FACES])
    lower = flagged([letter(c, f) for c in LOWER for f in FACES])
    assert upper >= 0.7 and lower >= 0.45, (upper, lower)
    assert flagged([letter(c, FACES[0]) for c in "AWMKQR"]) >= 5 / 6  # Q passes, as a 0


@pytest.mark.parametrize(
    ("kind", "least"),
    # Measured on these 50 of each: smileys 92 %, squares 50 %, triangles 60 %, blobs 80 %,
    # scribbles 58 %. A square or a round blob is close to a 0, a long scribble to an 8.
    [("smiley", 0.9), ("square", 0.45), ("triangle", 0.55), ("blob", 0.75), ("scribble", 0.55)],
)
def test_shapes_are_flagged(kind, least):
    rng = np.random.default_rng(0)
    make = {
        "smiley": smiley,
        "square": lambda r: polygon(r, 4),
        "triangle": lambda r: polygon(r, 3),
        "blob": blob,
        "scribble": scribble,
    }[kind]
    assert flagged([make(rng) for _ in range(SHAPES)]) >= least


def test_the_verdict_says_why_in_words():
    seen = novelty.check(prepare(letter("W", FACES[0]) / 255.0).image)
    assert not seen.looks_like_digit and seen.score > seen.threshold
    assert seen.reason.startswith("That doesn't look like a digit: ")


def test_shipped_detector_is_what_the_script_makes(tmp_path):
    out = tmp_path / "novelty.npz"
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fit_novelty.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    made, shipped = np.load(out), np.load(novelty.PARAMS)
    assert sorted(made.files) == sorted(shipped.files)
    for name in made.files:
        # Eigenvectors may come out with either sign: compare the subspaces they span.
        if name == "basis":
            for a, b in zip(made[name], shipped[name], strict=True):
                np.testing.assert_allclose(a @ a.T, a @ b.T @ b @ a.T, atol=1e-3)
        else:
            np.testing.assert_allclose(made[name], shipped[name], rtol=1e-3, atol=1e-5)


@pytest.fixture
def runs(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))  # away from the real runs
    return tmp_path / "runs"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_cli_says_a_letter_is_not_a_digit_and_still_reads_a_digit(mnist, tmp_path, runs):
    a, seven = tmp_path / "a.png", tmp_path / "seven.png"
    Image.fromarray(letter("A", FACES[0])).save(a)
    digit = mnist.test_images[0]  # a 7
    Image.fromarray(255 - digit).resize((140, 140), Image.Resampling.BICUBIC).save(seven)
    human = cli("predict", str(DEFAULT_MODEL), str(a), str(seven))
    assert human.returncode == 0, human.stderr
    first, second = human.stdout.splitlines()
    assert first.startswith(f"{a}: doesn't look like a digit (closest: ")
    assert second.startswith(f"{seven}: 7 (")
    answers = json.loads(cli("predict", str(DEFAULT_MODEL), str(a), str(seven), "--json").stdout)
    assert answers[0]["digit"] is None and answers[0]["looks_like_digit"] is False
    assert answers[0]["closest"] in "0123456789" and "doesn't look like" in answers[0]["reason"]
    assert answers[1]["digit"] == "7" and answers[1]["looks_like_digit"] is True


def test_the_draw_page_says_a_smiley_is_not_a_digit(runs):
    face = Image.fromarray(255 - smiley(np.random.default_rng(1)))  # dark on white, as a photo
    at = upload(open_draw_page(runs), "smiley.png", png(face), "image/png")
    assert not at.exception
    assert [h.value for h in at.header] == [draw.NOT_A_DIGIT]
    assert len(at.title) == 1  # the page's own title only: no digit in large type
    texts = [m.value for m in at.markdown]
    assert any("That doesn't look like a digit" in t for t in texts)
    assert "**Its closest guesses**" in texts
    assert at.get("plotly_chart")  # the probabilities are still shown


def test_a_model_of_other_pictures_is_not_second_guessed(runs, monkeypatch):
    """The check knows MNIST's digits only: a Fashion-MNIST model's answer stands."""
    from core.config import TrainConfig
    from core.recorder import train_run
    from core.runs import RunStore
    from tests.test_data import FASHION

    monkeypatch.setenv("MNIST_DATA_DIRS", str(FASHION))
    store = RunStore(runs)
    cfg = TrainConfig(data_dir=str(FASHION), train_size=500, val_size=500, epochs=1)
    run = store.create(cfg, "fashion", status="running", pid=os.getpid())
    train_run(store, run)
    face = Image.fromarray(255 - smiley(np.random.default_rng(1)))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.query_params["model"] = f"run-{run.id}"
    at.run()
    at.switch_page("views/draw.py").run()
    at = upload(at, "smiley.png", png(face), "image/png")
    assert not at.exception
    assert [h.value for h in at.header] == []  # no "Not a digit?"
    assert len(at.title) == 2  # the page's title, and the model's answer in large type
