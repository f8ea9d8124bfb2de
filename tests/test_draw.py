"""The Draw page: canvas-style drawings through the preprocessing, its pure helpers, AppTest.

The canvas's output is made here as the canvas makes it (anti-aliased white strokes with
round ends on RGBA); drawing with the mouse is in tests/test_browser_draw.py.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from streamlit.testing.v1 import AppTest

from core import cli, nondigits, novelty
from core.config import TrainConfig
from core.model import Model
from core.model_load import load_model
from core.preprocess import MAX_PIXELS, prepare
from core.runs import RunStore
from dashboard import draw

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "data" / "models" / "default.npz"
SIDE = draw.CANVAS

# Every digit as a person draws it on a 320-pixel canvas: strokes of (x, y) points.
DIGITS = nondigits.STROKE_DIGITS


def canvas(
    strokes,
    pen=draw.PEN,
    scale=1.0,
    shift=(0, 0),
    ink=(255, 255, 255, 255),
    sheet=(0, 0, 0, 255),
    size=SIDE,
) -> np.ndarray:
    """The canvas's RGBA uint8 image of `strokes`, scaled about the centre and shifted."""
    aa = 4  # drawn 4x larger and shrunk, for the canvas's anti-aliased edges
    img = Image.new("RGBA", (size * aa, size * aa), sheet)
    pen_draw = ImageDraw.Draw(img)
    centre = size / 2
    for stroke in strokes:
        points = [
            (
                (centre + (x - centre) * scale + shift[0]) * aa,
                (centre + (y - centre) * scale + shift[1]) * aa,
            )
            for x, y in stroke
        ]
        pen_draw.line(points, fill=ink, width=round(pen * aa), joint="curve")
        r = pen * aa / 2
        for x, y in (points[0], points[-1]):  # round ends, like the canvas's brush
            pen_draw.ellipse([x - r, y - r, x + r, y + r], fill=ink)
    return np.asarray(img.resize((size, size), Image.Resampling.BOX))


def assert_mnist_like(img: np.ndarray) -> None:
    assert img.shape == (28, 28) and img.dtype == np.float32
    assert img.min() >= 0 and img.max() <= 1
    rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == 20
    cy, cx = ndimage.center_of_mass(img)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


@pytest.fixture(scope="module")
def default():
    return load_model(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def mlp():
    return load_model(REPO / "data" / "models" / "mlp.npz")


def probabilities(model: Model, rgba: np.ndarray) -> np.ndarray:
    """The model's class probabilities for a canvas image, as the Draw page computes them."""
    prepared = prepare(rgba, min_extent=draw.CANVAS_MIN_EXTENT)
    assert prepared.ok, prepared.reason
    assert_mnist_like(prepared.image)
    return model.predict_proba(prepared.image[None, :, :, None])[0]


def read(model: Model, rgba: np.ndarray) -> tuple[int, float]:
    probs = probabilities(model, rgba)
    return int(probs.argmax()), float(probs.max())


# The canvas's output through the preprocessing


def test_canvas_uint8_rgba_reads_like_the_same_picture_in_grayscale():
    rgba = canvas(DIGITS[7])
    gray = rgba[..., 0].astype(np.float32) / 255
    np.testing.assert_allclose(prepare(rgba).image, prepare(gray).image, atol=1e-5)


@pytest.mark.parametrize(
    ("ink", "sheet"),
    [((0, 0, 0, 255), (0, 0, 0, 0)), ((255, 255, 255, 255), (0, 0, 0, 0))],
    ids=["black-ink-on-transparent", "white-ink-on-transparent"],
)
def test_strokes_on_a_transparent_canvas_are_read_from_the_alpha_channel(ink, sheet):
    # The canvas's defaults are black ink on a transparent sheet: every colour channel is
    # black, only the alpha channel shows the digit.
    reference = prepare(canvas(DIGITS[3])).image
    prepared = prepare(canvas(DIGITS[3], ink=ink, sheet=sheet))
    assert prepared.ok, prepared.reason
    assert np.abs(prepared.image - reference).mean() < 0.01


@pytest.mark.parametrize(
    ("digit", "kwargs"),
    [
        (7, dict(pen=60)),
        (7, dict(pen=6)),
        (4, dict(scale=0.45, shift=(-80, -80))),
        (3, dict(scale=0.3)),
        (7, dict(scale=1.4, shift=(25, 40))),
        (2, dict(ink=(0, 0, 0, 255), sheet=(255, 255, 255, 255))),
    ],
    ids=["thick", "thin", "off-centre", "tiny", "over-the-border", "inverted"],
)
def test_awkward_canvas_drawings_become_mnist_digits_and_are_recognised(default, digit, kwargs):
    rgba = canvas(DIGITS[digit], **kwargs)
    if "over" in str(kwargs):
        assert rgba[-1, :, 0].max() == 255  # the stroke really leaves the canvas
    assert read(default[0], rgba)[0] == digit


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_every_digit_drawn_with_the_page_pen_is_named_with_confidence(default, digit):
    model, meta = default
    rng = np.random.default_rng(digit)
    for scale in (0.6, 0.8, 1.0):
        wobbly = [
            [(x + rng.normal(0, 4), y + rng.normal(0, 4)) for x, y in s] for s in DIGITS[digit]
        ]
        shift = tuple(rng.integers(-30, 31, 2) * (1.05 - scale))
        probs = probabilities(model, canvas(wobbly, scale=scale, shift=shift))
        answer = draw.verdict(probs, draw.class_names(meta, 10))
        said = f"scale {scale}: said {answer.label} at {answer.confidence:.0%}"
        assert (answer.index, answer.label, answer.sure) == (digit, str(digit), True), said
        assert answer.confidence == pytest.approx(probs.max(), rel=1e-6), said
        assert answer.detail == f"{probs.max():.0%} sure"


@pytest.mark.parametrize(
    ("rgba", "reason", "says"),
    [
        (np.zeros((SIDE, SIDE, 4), np.uint8), "blank", "Draw a digit in the black box"),
        (canvas([]), "blank", "Draw a digit in the black box"),
        (canvas([[(200, 100), (201, 101)]]), "dot", "only a dot. Draw a digit"),
        (canvas([[(100, 200), (130, 205)]]), "dot", "only a dot. Draw a digit"),
    ],
    ids=["transparent", "black", "tap", "slip"],
)
def test_an_empty_canvas_or_a_stray_mark_asks_for_a_digit(rgba, reason, says):
    prepared = prepare(rgba, min_extent=draw.CANVAS_MIN_EXTENT)
    assert not prepared.ok and reason in prepared.reason
    assert says in draw.no_digit_message(prepared.reason)


def test_a_small_deliberate_digit_is_not_taken_for_a_dot(default):
    one = canvas([[(160, 130), (158, 190)]])  # 60 pixels of stroke, 86 with the pen
    assert read(default[0], one)[0] == 1


# What the page says


def test_verdict_names_the_digit_or_says_not_sure():
    names = list("0123456789")
    sure = draw.verdict(np.array([0.01, 0.02, 0.9, 0.07, 0, 0, 0, 0, 0, 0]), names)
    assert (sure.index, sure.label, sure.sure, sure.detail) == (2, "2", True, "90% sure")
    unsure = draw.verdict(np.array([0, 0, 0, 0, 0.45, 0, 0, 0.05, 0, 0.5]), names)
    assert (unsure.label, unsure.sure) == ("9", False)
    assert unsure.detail.startswith("Not sure: maybe 9 (50%) or 4 (45%)")
    threshold = draw.verdict(np.array([0.6, 0.4]), ["cat", "dog"], threshold=0.6)
    assert threshold.sure and threshold.label == "cat"


def test_class_names_come_from_the_model_or_default_to_numbers():
    assert draw.class_names({"class_names": ["a", "b"]}, 2) == ["a", "b"]
    assert draw.class_names({"class_names": ["a", "b"]}, 3) == ["0", "1", "2"]
    assert draw.class_names({}, 2) == ["0", "1"]


def test_no_digit_messages_for_a_photo():
    assert draw.no_digit_message("", photo=True) == "Upload a photo of a digit."
    assert "try another photo" in draw.no_digit_message("no digit found: blank", photo=True)


def png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def scanned_seven() -> bytes:
    """A dark 7 on light paper, as a JPEG scan."""
    sheet = Image.fromarray(255 - canvas(DIGITS[7])[..., 0]).convert("RGB")
    return png(sheet, "JPEG")


def test_an_upload_is_read_or_explained(default):
    prepared, error = draw.read_upload(scanned_seven(), "seven.jpg")
    assert error == "" and prepared.ok
    assert int(default[0].predict_proba(prepared.image[None, :, :, None]).argmax()) == 7
    prepared, error = draw.read_upload(b"%PDF-1.4 not a picture", "letter.png")
    assert prepared is None
    assert (
        error
        == "letter.png could not be read as an image; use a PNG or JPEG photo or scan of one digit."
    )
    side = int(MAX_PIXELS**0.5) + 100
    huge = png(Image.new("L", (side, side), 0))
    prepared, error = draw.read_upload(huge, "huge.png")
    assert prepared is None and "over the limit" in error


# What lights up


def random_model(layers: list[dict], seed: int = 0) -> Model:
    return Model({"input_shape": [28, 28, 1], "layers": layers}, seed=seed)


def test_hidden_layers_of_an_mlp_and_a_cnn(mlp):
    model = mlp[0]
    x = prepare(canvas(DIGITS[5])).image[None, :, :, None]
    hidden = draw.hidden_layers(model, model.activations(x))
    assert [h.values.shape for h in hidden] == [(128,), (64,)]
    assert hidden[0].title == "Layer 1: 128 neurons, each weighing up the pixels (dense → relu)"
    assert hidden[1].title.startswith("Layer 2: 64 neurons, each weighing up the layer before")
    assert all(h.values.min() >= 0 for h in hidden)  # after the ReLU
    cnn = random_model(
        [
            {"type": "conv2d", "filters": 4, "kernel_size": 3},
            {"type": "maxpool2d"},
            {"type": "relu"},
            {"type": "flatten"},
            {"type": "dense", "units": 8},
            {"type": "relu"},
            {"type": "dense", "units": 10},
        ]
    )
    hidden = draw.hidden_layers(cnn, cnn.activations(x))
    assert [h.values.shape for h in hidden] == [(14, 14, 4), (8,)]
    assert hidden[0].title == (
        "Layer 1: 4 pattern finders, each a 14×14 picture of where its pattern is "
        "(4 feature maps: conv2d → maxpool2d → relu)"
    )
    assert draw.first_layer_contributions(cnn, cnn.activations(x), 3) is None
    fig = draw.layer_figure(hidden[0])
    assert fig.data[0].type == "heatmap" and np.asarray(fig.data[0].z).shape == (14, 14 * 4 + 3)
    fig = draw.layer_figure(hidden[1], highlight=[2, 5])
    assert [t.type for t in fig.data] == ["bar", "bar", "scatter"]
    assert list(fig.data[0].x) == [0, 1, 3, 4, 6, 7] and list(fig.data[1].x) == [2, 5]
    assert list(fig.data[1].y) == list(hidden[1].values[[2, 5]])
    # The highlighted neurons are told apart by a triangle over each, not by colour alone.
    assert list(fig.data[2].x) == [2, 5] and fig.data[2].marker.symbol == "triangle-down"
    assert (np.asarray(fig.data[2].y) > hidden[1].values[[2, 5]]).all()
    assert fig.layout.yaxis.title.text == "how strongly it fires"
    assert [t.type for t in draw.layer_figure(hidden[1]).data] == ["bar", "bar"]
    assert fig.data[1].marker.color == draw.ACCENT != fig.data[0].marker.color


def test_contributions_are_activation_times_the_score_slope():
    # Every kind of layer the slope passes through, in float64 for a finite-difference check.
    model = random_model(
        [
            {"type": "flatten"},
            {"type": "dense", "units": 12},
            {"type": "batchnorm"},
            {"type": "tanh"},
            {"type": "dropout", "rate": 0.3},
            {"type": "dense", "units": 9},
            {"type": "leaky_relu"},
            {"type": "dense", "units": 7},
            {"type": "sigmoid"},
            {"type": "dense", "units": 10},
        ]
    ).astype(np.float64)
    rng = np.random.default_rng(0)
    model.layers[2].state["var"][:] = rng.uniform(0.5, 2, 12)
    x = rng.random((1, 28, 28, 1))
    acts = model.activations(x)
    first, shares = draw.first_layer_contributions(model, acts, 4)
    assert first == 1 and shares.shape == (12,)
    hidden = acts[4][0]  # after the first block's dropout

    def score(h: np.ndarray) -> float:
        for layer in model.layers[5:]:
            h = layer.forward(h[None] if h.ndim == 1 else h)
        return float(h[0, 4])

    eps = 1e-6
    for j in range(12):
        bumped = hidden.copy()
        bumped[j] += eps
        slope = (score(bumped) - score(hidden)) / eps
        assert shares[j] == pytest.approx(hidden[j] * slope, rel=1e-4, abs=1e-9)


def test_silencing_the_top_neurons_lowers_the_answer(mlp):
    model = mlp[0]
    x = prepare(canvas(DIGITS[2])).image[None, :, :, None]
    acts = model.activations(x)
    cls = int(acts[-1].argmax())
    first, shares = draw.first_layer_contributions(model, acts, cls)
    top = draw.top_neurons(shares)
    assert len(top) == draw.TOP_NEURONS and np.all(np.diff(shares[top]) <= 0)
    assert np.all(shares[top] > 0) and shares[top[0]] == shares.max()
    h = acts[first + 1].copy()
    h[0, top] = 0
    for layer in model.layers[first + 2 :]:
        h = layer.forward(h)
    # ReLU networks are piecewise linear: the score falls by about what those neurons added.
    drop = acts[-1][0, cls] - h[0, cls]
    assert drop > 0.5 * shares[top].sum()
    fig = draw.neurons_figure(model.layers[first].params["W"], top, shares)
    assert np.asarray(fig.data[0].z).shape == (28, 8 * 30 - 2)
    assert fig.layout.annotations[0].text == f"#{top[0]}: +{shares[top[0]]:.1f}"
    assert len(fig.layout.annotations) == draw.TOP_NEURONS


def test_top_neurons_are_only_those_that_pushed_the_answer_up():
    assert draw.top_neurons(np.array([-1.0, 3.0, 0.0, 2.0]), k=3).tolist() == [1, 3]


def test_comparison_figure_has_one_group_per_model():
    fig = draw.comparison_figure(
        {"a": (np.full(10, 0.1), list("0123456789")), "b": (np.eye(10)[3], list("0123456789"))}
    )
    assert [t.name for t in fig.data] == ["a", "b"] and fig.layout.barmode == "group"
    assert list(fig.data[1].y) == list(np.eye(10)[3])
    # Plain words on the axes: the digits, and how sure each model is of each.
    assert fig.layout.xaxis.title.text == "digit" and fig.layout.yaxis.title.text == "how sure"
    fashion = draw.comparison_figure({"a": (np.full(3, 1 / 3), ["shirt", "bag", "boot"])})
    assert fashion.layout.xaxis.title.text == "answer"


def test_another_models_reading_of_a_non_digit_is_a_closest_guess_not_an_answer():
    sure = draw.verdict(np.eye(10)[4] * 0.9 + 0.01, list("0123456789"))
    assert draw.other_answer(sure, novelty.LOOKS_LIKE_A_DIGIT) == draw.Said("4", "91% sure")
    unlike = novelty.Verdict(False, 3.0, 1.0, "That doesn't look like a digit.")
    said = draw.other_answer(sure, unlike)
    assert said.value == draw.NOT_A_DIGIT and "4" not in said.value
    assert said.detail == "Closest guess 4 (91%), not an answer"


def test_the_insides_say_whose_they_are_in_plain_words():
    answer = draw.verdict(np.eye(10)[7] * 0.9 + 0.01, list("0123456789"))
    caption = draw.insides_caption(answer, marked=True)
    assert "gives 7." in caption and "marked with a triangle" in caption
    guess = draw.insides_caption(answer, marked=False, is_answer=False)
    assert "its closest guess, 7" in guess and "triangle" not in guess
    assert "not an answer" in draw.closest_guess_note(answer)
    assert draw.neurons_heading(answer, is_answer=False).endswith("towards 7, its closest guess")


# The page, through Streamlit's AppTest (the canvas itself renders only in a browser)


@pytest.fixture
def runs(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def open_draw_page(runs: Path) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/draw.py").run()
    assert not at.exception
    return at


def upload(at: AppTest, name: str, data: bytes, mime: str) -> AppTest:
    at.segmented_control(key="draw_source").set_value("photo").run()
    assert not at.exception
    at.file_uploader(key="draw_upload").set_value((name, data, mime)).run()
    assert not at.exception
    return at


def test_the_page_opens_on_an_empty_canvas_that_asks_for_a_digit(runs):
    at = open_draw_page(runs)
    assert at.title[0].value == "Draw a digit"
    # Its input choices carry Material icons, which need no emoji font.
    options = at.segmented_control(key="draw_source").proto.options
    assert [(o.content_icon, o.content) for o in options] == [
        (":material/draw:", "Draw"),
        (":material/photo_camera:", "Upload a photo"),
    ]
    assert any("Draw a digit in the black box" in m.value for m in at.markdown)
    assert not at.error and not at.subheader  # nothing is guessed from an empty canvas
    labels = [b.label for b in at.button]
    assert "Undo last stroke" in labels and "Clear" in labels
    clear = next(b for b in at.button if b.label == "Clear")
    clear.click().run()
    assert not at.exception and at.session_state["draw_canvas_version"] == 1
    undo = next(b for b in at.button if b.label == "Undo last stroke")
    undo.click().run()  # with nothing drawn, undo clears too
    assert not at.exception and at.session_state["draw_canvas_version"] == 2
    assert any("Draw a digit in the black box" in m.value for m in at.markdown)


def test_presentation_mode_shortens_undo_to_fit_beside_clear(runs):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.query_params["present"] = "1"
    at.run()
    at.switch_page("views/draw.py").run()
    assert not at.exception
    labels = [b.label for b in at.button]
    assert "Undo" in labels and "Clear" in labels and "Undo last stroke" not in labels


def test_an_uploaded_scan_is_answered_as_the_cli_answers_it(runs, tmp_path, capsys):
    data = scanned_seven()
    path = tmp_path / "seven.jpg"
    path.write_bytes(data)
    assert cli.main(["predict", str(DEFAULT_MODEL), str(path), "--json"]) == 0
    (expected,) = json.loads(capsys.readouterr().out)
    at = upload(open_draw_page(runs), "seven.jpg", data, "image/jpeg")
    assert expected["digit"] == "7"
    assert at.title[1].value == "7"  # the answer, after the page's own title
    assert f"**{expected['probability']:.0%} sure**" in [m.value for m in at.markdown]
    assert any(c.value.startswith("Answered in") for c in at.caption)
    assert [s.value for s in at.subheader] == ["What lights up inside", "Ask other models"]
    assert at.multiselect(key="draw_compare").value == ["default", "mlp"]  # the shipped two
    # With the shipped MLP selected, the first-layer neurons behind the answer are shown too.
    at.selectbox(key="model").set_value("mlp").run()
    assert not at.exception and at.title[1].value == "7"
    assert any("did most to make it say 7" in m.value for m in at.markdown)
    assert not at.warning  # a digit's insides are its answer's
    assert not any("none of them is an answer" in c.value for c in at.caption)


def test_for_a_letter_no_model_gives_an_answer_and_the_insides_show_a_guess(runs):
    """A letter is not a digit: neither the page, nor the other models, nor what lights up
    inside treat the closest guess as the answer."""
    sheet = Image.new("L", (240, 240), 255)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 160)
    ImageDraw.Draw(sheet).text((120, 120), "A", font=font, fill=0, anchor="mm")
    at = upload(open_draw_page(runs), "letter.png", png(sheet), "image/png")
    at.selectbox(key="model").set_value("mlp").run()
    assert not at.exception
    assert [h.value for h in at.header] == [draw.NOT_A_DIGIT]
    metrics = {m.label: m.value for m in at.metric}
    assert set(metrics.values()) == {draw.NOT_A_DIGIT}, metrics  # both shipped models
    assert all("not an answer" in c.value for c in at.caption if c.value.startswith("Closest"))
    assert any("none of them is an answer" in c.value for c in at.caption)
    assert any("This is not an answer" in w.value for w in at.warning)
    assert any("its closest guess" in m.value for m in at.markdown)
    assert not any("did most to make it say" in m.value for m in at.markdown)


def test_an_unreadable_upload_gets_a_message_not_a_guess(runs):
    at = upload(open_draw_page(runs), "digit.png", b"just some text", "image/png")
    assert at.error[0].value.startswith("digit.png could not be read as an image; use a PNG")
    assert any("No digit found: try another photo." in m.value for m in at.markdown)
    assert not at.subheader
    blank = png(Image.new("L", (300, 200), 255))
    at.file_uploader(key="draw_upload").set_value(("blank.png", blank, "image/png")).run()
    assert not at.exception and not at.error
    assert at.warning[0].value == (
        "No digit found: the picture is blank. Try another photo of one digit."
    )
    assert not at.subheader


def test_the_same_upload_is_compared_across_models(runs):
    store = RunStore(runs)
    run = store.create(TrainConfig(), "untrained", status="running", pid=1)
    store.finish(run.id, "finished", test_accuracy=0.1)
    untrained = random_model(
        [
            {"type": "flatten"},
            {"type": "dense", "units": 16},
            {"type": "relu"},
            {"type": "dense", "units": 10},
        ],
        seed=3,
    )
    untrained.save(run.checkpoint, meta={"class_names": list("0123456789")})
    at = upload(open_draw_page(runs), "seven.jpg", scanned_seven(), "image/jpeg")
    picked = at.multiselect(key="draw_compare")
    assert picked.value == ["default", f"run-{run.id}"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Default model (shipped CNN)"] == "7"
    assert metrics[f"#{run.id} untrained · 10.00%"].endswith("?")  # a random net is not sure
    # Picked in the sidebar's model picker, the untrained model's own answer is not sure.
    at.selectbox(key="model").set_value(f"run-{run.id}").run()
    assert not at.exception
    assert at.title[1].value.endswith("?")
    assert any(m.value.startswith("Not sure: maybe") for m in at.markdown)


@pytest.mark.parametrize("pen", [4, 6])
@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_very_thin_pen_strokes_are_read_at_full_ink(default, digit, pen):
    prepared = prepare(canvas(DIGITS[digit], pen=pen))
    assert prepared.image.max() == pytest.approx(1.0)
    assert read(default[0], canvas(DIGITS[digit], pen=pen))[0] == digit
