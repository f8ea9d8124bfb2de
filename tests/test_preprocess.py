"""MNIST-style preprocessing of photos, scans and drawings, on synthetic digits and strokes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from core.model_load import load_model
from core.preprocess import MAX_PIXELS, ImageError, load_image, prepare


def ink_box(img: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def assert_mnist_like(img: np.ndarray) -> None:
    assert img.shape == (28, 28) and img.dtype == np.float32
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert max(ink_box(img > 0)) == 20
    cy, cx = ndimage.center_of_mass(img)
    # Placement is by whole pixels (no blurring), so the centre is within a pixel of (14, 14).
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


def blown_up(
    digit: np.ndarray,
    factor: int,
    canvas: tuple[int, int],
    at: tuple[int, int],
    invert: bool = False,
) -> np.ndarray:
    """An MNIST digit scaled up and pasted into a larger sheet, as a photo would show it."""
    big = np.asarray(
        Image.fromarray(digit).resize((28 * factor, 28 * factor), Image.Resampling.BICUBIC)
    )
    sheet = np.zeros(canvas, np.uint8)
    sheet[at[0] : at[0] + big.shape[0], at[1] : at[1] + big.shape[1]] = big
    gray = sheet.astype(np.float32) / 255
    return 1 - gray if invert else gray


@pytest.fixture(scope="module")
def model(small_model_path):
    return load_model(small_model_path)[0]


def predict(model, img: np.ndarray) -> int:
    return int(model.predict_proba(img[None, :, :, None]).argmax())


def test_off_centre_oversized_and_inverted_digits_become_the_mnist_digit(mnist, model):
    checked, agreed, similarities = 0, 0, []
    for digit, label in zip(mnist.test_images[:40], mnist.test_labels[:40], strict=True):
        native = prepare(digit.astype(np.float32) / 255)
        if predict(model, native.image) != label:
            continue  # judge preprocessing only on digits the small model knows
        for invert in (False, True):
            photo = blown_up(digit, 12, (700, 500), at=(20, 150), invert=invert)
            prepared = prepare(photo)
            assert prepared.ok, prepared.reason
            assert_mnist_like(prepared.image)
            agreed += predict(model, prepared.image) == label
            similarities.append(np.corrcoef(prepared.image.ravel(), native.image.ravel())[0, 1])
        checked += 1
    assert checked >= 30
    assert agreed >= 0.95 * 2 * checked  # a small model may flip a borderline digit or two
    # Pixel-exact agreement is not expected (a 1-pixel shift of the centre of mass is within
    # rounding), but the typical digit must come out nearly the same.
    assert np.median(similarities) > 0.95


def test_light_on_dark_and_dark_on_light_give_the_same_image(mnist):
    photo = blown_up(mnist.test_images[0], 5, (300, 300), at=(60, 90))
    a, b = prepare(photo).image, prepare(1 - photo).image
    np.testing.assert_allclose(a, b, atol=1e-5)


def draw(strokes, size=(400, 400), width=20, ink=255, paper=0) -> np.ndarray:
    img = Image.new("L", size, paper)
    pen = ImageDraw.Draw(img)
    for stroke in strokes:
        pen.line(stroke, fill=ink, width=width, joint="curve")
    return np.asarray(img, np.float32) / 255


@pytest.mark.parametrize("width", [3, 12, 45], ids=["thin", "medium", "thick"])
def test_strokes_of_any_width(width):
    seven = draw([[(100, 80), (300, 80), (170, 340)]], width=width)
    prepared = prepare(seven)
    assert_mnist_like(prepared.image)
    h, w = ink_box(prepared.image > 0)
    assert h == 20 and 10 <= w <= 20


def test_a_one_keeps_its_aspect_ratio():
    one = prepare(draw([[(200, 50), (200, 350)]], width=16)).image
    h, w = ink_box(one > 0.05)
    assert h == 20 and w <= 4


def test_off_centre_tiny_digit_touching_the_border():
    zero = draw([[(0, 10), (30, 0), (40, 30), (10, 40), (0, 10)]], size=(320, 240), width=6)
    prepared = prepare(zero)
    assert prepared.ok, prepared.reason
    assert_mnist_like(prepared.image)


@pytest.mark.parametrize(
    ("picture", "reason"),
    [
        (np.zeros((280, 280), np.float32), "blank"),
        (np.ones((50, 80), np.float32), "blank"),
        (np.full((100, 100), 0.5, np.float32), "blank"),
        (draw([[(150, 150), (152, 151)]], width=8), "dot"),
    ],
    ids=["black", "white", "grey", "stray dot"],
)
def test_no_digit_gets_a_reason_not_a_guess(picture, reason):
    prepared = prepare(picture)
    assert not prepared.ok and prepared.image is None
    assert "no digit found" in prepared.reason and reason in prepared.reason


def test_faint_noise_alone_is_blank():
    noise = np.random.default_rng(0).random((200, 200), dtype=np.float32) * 0.05 + 0.9
    assert not prepare(noise).ok


def png_bytes(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def seven_image(mode: str = "L", size=(200, 200)) -> Image.Image:
    img = Image.new("L", size, 255)
    ImageDraw.Draw(img).line([(40, 40), (160, 40), (90, 170)], fill=0, width=14)
    return img.convert(mode)


def test_files_of_many_kinds_load_the_same_digit():
    reference = prepare(load_image(png_bytes(seven_image()))).image
    rgb = png_bytes(seven_image("RGB"), "JPEG", quality=95)
    palette_gif = png_bytes(seven_image("P"), "GIF")
    sixteen = Image.fromarray((np.asarray(seven_image(), np.uint16) * 257).astype(np.uint16))
    # Black strokes on a transparent sheet, as drawing apps export them.
    rgba = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).line([(40, 40), (160, 40), (90, 170)], fill=(0, 0, 0, 255), width=14)
    for name, data in [
        ("jpeg", rgb),
        ("gif", palette_gif),
        ("16-bit", png_bytes(sixteen)),
        ("rgba", png_bytes(rgba)),
    ]:
        got = prepare(load_image(data)).image
        assert got is not None, name
        assert np.abs(got - reference).mean() < 0.03, name


def test_exif_rotation_is_honoured():
    upright = prepare(load_image(png_bytes(seven_image()))).image
    stored_sideways = seven_image().rotate(90, expand=True)  # what the camera wrote
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = png_bytes(stored_sideways.convert("RGB"), "JPEG", exif=exif, quality=95)
    assert np.abs(prepare(load_image(data)).image - upright).mean() < 0.03


def test_unreadable_inputs_get_a_clear_message(tmp_path):
    with pytest.raises(ImageError, match="could not be read as an image"):
        load_image(b"this is not an image")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(ImageError, match=r"notes\.png could not be read"):
        load_image(text)
    with pytest.raises(ImageError, match="could not be read"):
        load_image(png_bytes(seven_image())[:300])  # truncated


def test_an_enormous_image_is_refused_before_decoding():
    side = int(MAX_PIXELS**0.5) + 100
    huge = png_bytes(Image.new("L", (side, side), 0), optimize=False)
    with pytest.raises(ImageError, match="over the limit"):
        load_image(huge)


def test_a_large_photo_is_shrunk_and_still_read():
    big = Image.new("L", (4000, 3000), 230)
    ImageDraw.Draw(big).line([(1000, 600), (3000, 600), (1800, 2600)], fill=20, width=150)
    prepared = prepare(load_image(png_bytes(big)))
    assert prepared.ok
    assert_mnist_like(prepared.image)
