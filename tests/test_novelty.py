"""core/novelty.py: real digits pass; letters, smileys, shapes and scribbles are flagged.

Every non-digit is drawn with PIL and goes through the same `prepare` a drawing gets. Two
sets: core/nondigits.py's "measure" split (fonts and seeds the detector was not trained on),
and the shapes below, drawn by another hand (this file's, written before the detector and
kept unchanged: no wobble, filled blobs, which the training set has none of). The asserted
rates are modest bounds under the measured ones (see each test; the full figures are
benchmarks/bench_ood.py's); the old three-test detector failed them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from streamlit.testing.v1 import AppTest

from core import nondigits, novelty
from core.preprocess import prepare
from dashboard import draw
from tests.test_draw import DEFAULT_MODEL, DIGITS, canvas, open_draw_page, png, upload

REPO = Path(__file__).resolve().parent.parent
FONTS = Path("/usr/share/fonts/truetype")
# The detector learned letters from the DejaVu fonts: only the Liberation ones measure it.
FACES = [
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
    # Neither fitted nor calibrated on: measured 1.1 % false alarms on these 2,000 (0.66 % on
    # all 10,000, bench_ood.py; the old detector 2.1 % and 1.67 %); the goal is at most 1 %.
    some = mnist.test_images[:2000] / 255.0
    assert 1 - detector.passes(some).mean() <= 0.015
    # The same digits through `prepare` (as the CLI's scans are) pass as often: 99.2 %.
    verdicts = [novelty.check(prepare(d).image) for d in some[:500]]
    assert np.mean([v.looks_like_digit for v in verdicts]) >= 0.985


@pytest.fixture(scope="module")
def measure_set() -> dict[str, np.ndarray]:
    # Seed 2: neither the detector's training seed (0) nor the benchmark's (1).
    return nondigits.nondigit_set(60, seed=2, split="measure")


def test_non_digits_are_detected(detector, measure_set):
    # Measured on these 60 of each kind: letters 90 %, scribbles 88 %, shapes 97 %, faces
    # 100 %, 94 % overall. The old detector: 48 %, 68 %, 50 %, 72 %, 60 % overall.
    found = {kind: 1 - detector.passes(x).mean() for kind, x in measure_set.items()}
    assert np.mean(list(found.values())) >= 0.85, found
    assert min(found.values()) >= 0.75, found


def test_the_two_splits_never_share_a_picture():
    train, measure = (nondigits.nondigits("shapes", 20, 0, s) for s in ("train", "measure"))
    assert not any(np.array_equal(a, b) for a in train for b in measure)
    assert set(nondigits.TRAIN_FONTS).isdisjoint(nondigits.MEASURE_FONTS)
    assert not set(nondigits.LETTERS) & set(nondigits.LIKE_DIGITS)
    again = nondigits.nondigits("shapes", 20, 0, "train")
    np.testing.assert_array_equal(train, again)  # a seed gives the same pictures


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


def test_digits_drawn_with_random_pens_and_from_unseen_fonts_are_answered(detector):
    # Measured on these 100 of each: strokes 100 %, Liberation fonts' digits 99 %. (This
    # guards against over-flagging: the old detector, which flagged little, passed it too.)
    strokes, _ = nondigits.drawn_digits(100, seed=2, source="strokes")
    fonts, _ = nondigits.drawn_digits(100, seed=2, source="measure-fonts")
    assert detector.passes(strokes).mean() >= 0.97
    assert detector.passes(fonts).mean() >= 0.95


def test_letters_are_flagged():
    # Measured: upper case 97 %, lower case 94 % of these (20 and 18 letters in 3 fonts); the
    # old detector 72 % and 41 %.
    upper = flagged([letter(c, f) for c in UPPER for f in FACES])
    lower = flagged([letter(c, f) for c in LOWER for f in FACES])
    assert upper >= 0.9 and lower >= 0.85, (upper, lower)
    assert flagged([letter(c, FACES[0]) for c in "AWMKR"]) == 1


@pytest.mark.parametrize(
    ("kind", "least"),
    # Measured on these 50 of each: smileys 100 %, squares 90 %, triangles 100 %, blobs 78 %,
    # scribbles 76 %. The old detector: 92 %, 50 %, 60 %, 80 %, 58 %. Filled blobs are in
    # no training set (the old ink test's kind); these scribbles are long, straight-edged
    # polylines, some close to an 8 or a 2.
    [("smiley", 0.9), ("square", 0.8), ("triangle", 0.9), ("blob", 0.7), ("scribble", 0.7)],
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
    seven = novelty.check(prepare(canvas(DIGITS[7]), draw.CANVAS_MIN_EXTENT).image)
    assert seven.looks_like_digit and seven.score <= seven.threshold == seen.threshold


def test_shipped_detector_is_calibrated_as_the_script_says(mnist, detector):
    # Refitting takes minutes (scripts/fit_novelty.py); here: the file records the script's
    # settings, and its threshold lets through 99.5 % of the held-out training digits.
    info = detector.info
    assert (info["seed"], info["steps"], info["held_out"]) == (0, novelty.STEPS, novelty.HELD_OUT)
    assert info["pass_rate"] == novelty.PASS_RATE
    held = mnist.train_images[-novelty.HELD_OUT :] / 255.0
    assert abs(detector.passes(held).mean() - novelty.PASS_RATE) <= 0.001
    assert novelty.PARAMS.stat().st_size < 2_000_000


def test_one_check_fits_the_draw_pages_budget(detector):
    image = prepare(canvas(DIGITS[3]), draw.CANVAS_MIN_EXTENT).image
    novelty.check(image)
    times = []
    for _ in range(50):
        started = time.perf_counter()
        novelty.check(image)
        times.append(time.perf_counter() - started)
    assert np.median(times) < 0.010


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
    threshold = novelty.shipped().threshold
    for answer in answers:
        assert answer["novelty_threshold"] == pytest.approx(threshold, abs=1e-4)
    assert answers[0]["novelty_score"] > threshold >= answers[1]["novelty_score"]


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
