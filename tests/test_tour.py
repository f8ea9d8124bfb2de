"""The guided tour: every step through AppTest, forward and back; odd step values in the URL;
the live lesson learning on real data; and the numbers its words and pictures are made of."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import tour
from core.model_load import load_model
from dashboard import tour as page
from dashboard import tour_figures as figs

REPO = Path(__file__).resolve().parent.parent
TITLES = [f"{i}. {title}" for i, title in enumerate(page.STEPS, start=1)]
# Words a class should not meet without an explanation beside them.
JARGON = ("conv2d", "maxpool", "batchnorm", "relu", "logit", "softmax", "tensor", "epoch")


@pytest.fixture
def app(tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=120)


def shown(at: AppTest) -> str:
    assert not at.exception, [e.value for e in at.exception]
    return at.title[0].value


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def words(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown).lower()


def test_next_and_back_walk_every_step_and_keep_it_in_the_url(app):
    app.run()
    app.switch_page("views/tour.py").run()
    assert shown(app) == TITLES[0]
    assert app.button(key="tour_back").disabled
    for i in range(1, len(TITLES)):
        app.button(key="tour_next").click().run()
        assert shown(app) == TITLES[i]
        assert app.query_params["step"] == str(i + 1)
        assert not any(word in words(app) for word in JARGON), TITLES[i]
    assert app.button(key="tour_next").disabled
    for i in range(len(TITLES) - 2, -1, -1):
        app.button(key="tour_back").click().run()
        assert shown(app) == TITLES[i]
    # A dot jumps straight to its step.
    app.segmented_control(key="step").set_value(6).run()
    assert shown(app) == TITLES[5]
    assert "it read" in words(app) and " of " in words(app)


@pytest.mark.parametrize("value", ["99", "abc", "0", "-2", "2.5", ""])
def test_a_step_that_is_not_one_starts_the_tour_at_the_first(app, value):
    app.query_params["step"] = value
    app.switch_page("views/tour.py").run()
    assert shown(app) == TITLES[0]
    app.button(key="tour_next").click().run()
    assert shown(app) == TITLES[1]


def test_a_link_to_a_step_opens_it(app):
    app.query_params["step"] = "7"
    app.switch_page("views/tour.py").run()
    assert shown(app) == TITLES[6]
    assert "filter" in words(app)
    app.slider(key="tour_where").set_value(0).run()
    assert "added up, make" in words(app)
    button(app, "Slide it all the way").click().run()
    assert shown(app) == TITLES[6]


def test_the_live_lesson_on_the_page_learns_and_waits_for_another_screen(app, monkeypatch):
    # Small and quick: a fifth of the training images, one pass.
    monkeypatch.setattr(tour, "LIVE", tour.LIVE.replace(train_size=4000, epochs=1))
    app.query_params["step"] = "4"
    app.switch_page("views/tour.py").run()
    button(app, "Start learning").click().run()
    assert shown(app) == TITLES[3]
    read_right = next(m for m in app.metric if m.label == "Practice exam read right")
    assert float(read_right.value.rstrip("%")) > 60
    assert any("Done" in s.value for s in app.success)
    # While another screen holds the lesson, this one waits, then says so.
    monkeypatch.setattr(page, "LESSON_WAIT", 0.2)
    assert page.LESSON.acquire(timeout=5)
    try:
        button(app, "Learn again from scratch").click().run()
    finally:
        page.LESSON.release()
    assert any("Another screen is still learning" in w.value for w in app.warning)


def test_live_learning_rises_on_real_data(mnist):
    cfg = tour.LIVE.replace(train_size=6000, epochs=2)
    shots = list(tour.learn(mnist, cfg, every=0.05))
    first, last = shots[0], shots[-1]
    assert first.images == 0 and first.val_accuracy < 0.3  # random weights: about chance
    assert last.done and last.val_accuracy > 0.88
    assert last.images == 2 * 6000
    accuracy = [s.val_accuracy for s in shots]
    assert max(accuracy[: len(accuracy) // 3]) < last.val_accuracy
    _, labels = tour.watched(mnist)
    assert (last.probs.argmax(1) == labels).sum() > (first.probs.argmax(1) == labels).sum()
    assert not np.allclose(first.pictures, last.pictures)  # the weight pictures changed
    seconds = [s.seconds for s in shots]
    assert seconds == sorted(seconds)


def test_time_to_an_accuracy_is_the_first_snapshot_there(mnist):
    cfg = tour.LIVE.replace(train_size=3000, epochs=1)
    reached, final, cpu = tour.time_to(0.6, mnist, cfg, every=0.02)
    assert reached is not None and reached.val_accuracy >= 0.6 and cpu > 0
    assert final >= 0.6
    never, _, _ = tour.time_to(0.999, mnist, cfg, every=0.5)
    assert never is None


def test_the_live_lesson_stops_when_closed(mnist):
    shots = tour.learn(mnist, tour.LIVE.replace(train_size=2000), every=0.0)
    next(shots)
    running = threading.active_count()  # with the threads preparing the next batches
    shots.close()  # as the page does when the class moves on mid-lesson
    assert threading.active_count() < running


def test_confusions_in_words_match_a_hand_count():
    # Rows: what it is; columns: what it was read as.
    cm = np.array([[50, 2, 0], [7, 40, 3], [0, 7, 30]])
    names = ["0", "1", "2"]
    assert tour.confusion_words(cm, names, k=3) == [
        "It read 1 as 0 in 7 of 50 ones.",
        "It read 2 as 1 in 7 of 37 twos.",
        "It read 1 as 2 in 3 of 50 ones.",
    ]
    assert tour.class_words(cm, names, 1) == "Of 50 ones, it read 40 right; it read 7 as 0, 3 as 2."
    assert tour.class_words(np.eye(3, dtype=int) * 5, names, 0) == (
        "Of 5 zeros, it read 5 right and none wrong."
    )
    assert tour.confusion_words(np.eye(3, dtype=int), names) == []
    assert tour.plural("6") == "sixes" and tour.plural("Coat") == "pictures of Coat"


def test_confident_mistakes_are_the_wrong_answers_it_was_surest_of():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.99, 0.01], [0.3, 0.7]])
    labels = np.array([0, 0, 0, 1, 1])
    assert tour.confident_mistakes(probs, labels, k=2).tolist() == [3, 1]


def test_a_neurons_sum_is_what_its_layer_computes(mnist):
    model, _ = load_model(REPO / "data" / "models" / "mlp.npz")
    image = mnist.test_images[0].astype(np.float32) / 255
    layer_out = model.layers[1].forward(model.layers[0].forward(image[None, :, :, None]))[0]
    for n in (0, 17, 127):
        s = tour.neuron_sum(model, image, n)
        assert s.score == pytest.approx(s.up + s.down + s.bias, abs=1e-4)
        assert s.score == pytest.approx(float(layer_out[n]), abs=1e-3)
        assert s.output == max(s.score, 0)


def test_the_sliding_filter_and_the_stages_are_the_cnns_own(mnist):
    model, _ = load_model(REPO / "data" / "models" / "default.npz")
    image = mnist.test_images[1].astype(np.float32) / 255
    kernels, biases = tour.first_filters(model)
    fmap = tour.feature_map(model, image, 3)
    assert fmap.shape == (26, 26)
    for row, col in ((0, 0), (13, 9), (25, 25)):
        by_hand = (image[row : row + 3, col : col + 3] * kernels[3]).sum() + biases[3]
        assert fmap[row, col] == pytest.approx(by_hand, abs=1e-4)
    stages = tour.stages(model, image)
    assert [s.values.shape for s in stages] == [(26, 26, 16), (13, 13, 16), (11, 11, 32),
                                               (5, 5, 32), (256,), (10,)]  # fmt: skip
    chances = stages[-1].values
    expected = model.predict_proba(image[None, :, :, None])[0]
    np.testing.assert_allclose(chances, expected, atol=1e-5)
    for s in stages:
        assert not any(word in s.title.lower() for word in JARGON), s.title


def test_figures_mark_wrong_answers_by_more_than_colour(mnist):
    digits, labels = tour.watched(mnist)
    probs = np.eye(10)[[0, 1, 2, 3, 4, 5, 6, 7, 8, 0]]  # the 9 read as 0
    fig = figs.guesses(digits, labels, probs)
    texts = [a.text for a in fig.layout.annotations]
    assert sum("wrong" in t for t in texts) == 1 and "wrong" in texts[9]
    assert len(fig.layout.shapes) == 1  # the wrong one is outlined
    grid = figs.pixel_grid(mnist.test_images[0].astype(np.float32) / 255)
    assert grid.data[0].z.max() <= 255 and "255" not in grid.data[0].text[0]
    fmap = np.arange(26 * 26, dtype=float).reshape(26, 26)
    slide = figs.slide(np.zeros((28, 28)), np.ones((3, 3)), fmap, 2, 5)
    built = np.asarray(slide.data[2].z, float)
    assert np.isfinite(built).sum() == 2 * 26 + 6  # built up to and with row 2, column 5
    bars = figs.chance_bars(np.array([0.1, 0.7, 0.2]), ["0", "1", "2"], "t", percent=True)
    assert bars.layout.xaxis.title.text == "digit" and "<b>" in bars.data[0].text[1]


def test_presentation_mode_enlarges_every_figure_s_text_by_its_scale(mnist):
    """Text sized in px, which the mode's larger root font does not reach, grows with it."""
    digits, labels = tour.watched(mnist)
    probs = np.eye(10)[[0, 1, 2, 3, 4, 5, 6, 7, 8, 0]]
    image = mnist.test_images[0].astype(np.float32) / 255
    fmap = np.ones((26, 26))
    builders = [
        lambda s: figs.pixel_grid(image, text_scale=s),
        lambda s: figs.neuron_panels(image, image, image, text_scale=s),
        lambda s: figs.neuron_score(3.0, -1.0, 0.5, 2.5, text_scale=s),
        lambda s: figs.chance_bars(probs[1], list("0123456789"), "t", True, text_scale=s),
        lambda s: figs.accuracy_curve([0.5, 1.0], [0.5, 0.9], 0.97, text_scale=s),
        lambda s: figs.guesses(digits, labels, probs, text_scale=s),
        lambda s: figs.slide(image, np.ones((3, 3)), fmap, 2, 5, text_scale=s),
        lambda s: figs.stage(np.ones((13, 13, 4)), "t", text_scale=s),
        lambda s: figs.stage(np.ones(128), "t", text_scale=s),
    ]

    def sizes(fig) -> list[float]:
        found = [fig.layout.font.size] + [a.font.size for a in fig.layout.annotations]
        found += [t.textfont.size for t in fig.data if getattr(t, "textfont", None)]
        return [size for size in found if size]

    for build in builders:
        plain, large = build(1.0), build(1.5)
        assert sizes(plain) and sizes(large) == [round(1.5 * s) for s in sizes(plain)]
        assert large.layout.height >= plain.layout.height
    assert sizes(figs.chance_bars(probs[1], list("0123456789"), "t", True)) == [figs.FONT]
