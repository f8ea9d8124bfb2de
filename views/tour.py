"""How it works: a guided tour in plain words, one idea per screen, on the real digits and
the real shipped networks. Back and Next (or the arrow keys) move; the step is in the URL."""

from __future__ import annotations

import time
from contextlib import closing

import numpy as np
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core import novelty, tour
from core.losses import softmax
from core.metrics import confusion_matrix
from core.model import Model
from dashboard import computed, images, presentation, state
from dashboard import tour as page
from dashboard import tour_figures as figs

# Large type, for a class reading it from the back of the room; a larger canvas too.
DRAW = 300 if presentation.is_on() else 240  # px
BESIDE = DRAW + (40 if presentation.is_on() else 20)  # and its Undo and Clear under it
st.html(
    "<style>.st-key-tour p, .st-key-tour li {font-size: 1.45rem; line-height: 1.5}"
    ".st-key-tour h1 {font-size: 2.6rem; padding-top: 0.5rem}"
    "@media (max-width: 640px) {.st-key-tour h1 {font-size: 2rem}}"
    ".st-key-tour h2 {font-size: 2.6rem}"
    ".st-key-tour [data-testid=stMetricValue] {font-size: 3rem}"
    ".st-key-tour_nav button p {font-size: 1.15rem}"
    # The step picker as a row of dots: the steps behind filled, the current one ringed.
    ".st-key-tour_nav [role=radio] {border-radius: 999px !important; min-width: 2.3rem;"
    " margin: 0 0.1rem; padding: 0.25rem 0.6rem; border-width: 2px !important}"
    ".st-key-tour_nav [role=radio]:has(~ [aria-checked=true]) {background: #dbe6f4}"
    # The answer beside the canvas, never squeezed: below a readable width it wraps under.
    "[data-testid=stLayoutWrapper]:has(> .st-key-tour_answer) {min-width: 220px}"
    "[data-testid=stLayoutWrapper]:has(> .st-key-tour_grid_box) {min-width: 260px}</style>"
)
if presentation.is_on():
    # Presentation mode narrows the page's top margin, and its 1.5x taller header then
    # covers the top half of Back, the dots and Next: they start below it.
    st.html("<style>.st-key-tour_nav {margin-top: 2.5rem}</style>")
step = page.nav()
data = page.mnist()
names = [str(d) for d in range(10)]


def numbers() -> None:
    st.markdown(
        "To a computer a picture is only numbers: a grid of **28 rows of 28 squares**, 784 in "
        "all. Each number says how much ink is in its square, from **0** (empty paper) to "
        "**255** (full ink). **Draw in the black box** and watch the numbers change."
    )
    # The canvas keeps its size; the grid takes the rest, or wraps below on a narrow screen.
    row = st.container(horizontal=True, gap="medium")
    with row.container(width=BESIDE):
        mine = page.canvas("tour_canvas_numbers", size=DRAW)
        if mine is None:
            st.caption("Until you draw, this is a real handwritten 5 from the test digits.")
    image = mine if mine is not None else page.example(data, 5)
    with row.container(width="stretch", key="tour_grid_box"):
        st.plotly_chart(figs.pixel_grid(image), key="tour_grid")
    ink = int(np.count_nonzero(image > 0.05))
    st.container(key="tour_ink").markdown(
        f"**{ink} of 784 squares** have ink. These 784 numbers are all the network sees."
    )


def lesson(words: str, key: str) -> tuple[Model, np.ndarray]:
    """A step's words, then the trained network and a digit to show it (picked under `key`)."""
    st.markdown(words)
    return page.mlp(), page.pick_digit(key, data)


def neuron() -> None:
    model, image = lesson(
        "The network is made of **neurons**: small sums. A neuron gives each of the 784 "
        "squares a **weight**, a number saying how much ink there should push its score up "
        "(red) or down (blue). It multiplies each square by its weight and adds it all up.",
        "tour_neuron_digit",
    )
    dense = next(layer for layer in model.layers if layer.kind == "dense")
    weights = dense.params["W"]
    scores = image.reshape(-1) @ weights + dense.params["b"]
    which = st.slider(
        "Which neuron (the network's first layer has 128)",
        0,
        127,
        value=int(np.argmax(scores)),
        key="tour_neuron",
    )
    s = tour.neuron_sum(model, image, which)
    st.plotly_chart(
        figs.neuron_panels(weights[:, which].reshape(28, 28), image, s.products),
        key="tour_neuron_panels",
    )
    left, right = st.columns([2, 1])
    left.plotly_chart(figs.neuron_score(s.up, s.down, s.bias, s.score), key="tour_neuron_score")
    right.metric("Its score", f"{s.score:.1f}")
    said = "fires: it passes its score on" if s.score > 0 else "stays quiet: below 0 it passes on 0"
    right.markdown(f"This neuron **{said}**. The next neurons add up *these* outputs the same way.")


def chances() -> None:
    model, image = lesson(
        "At the end come **ten neurons, one per digit**, each with a score. Scores can be any "
        "size, so they are turned into **chances that add up to 100 %**: the bigger a score, "
        "the bigger its share. The biggest chance is the answer, and **how sure** it is.",
        "tour_chances_digit",
    )
    smudge = st.slider(
        "Smudge the picture with random specks", 0.0, 0.6, 0.0, 0.05, key="tour_smudge"
    )
    if smudge:
        specks = np.random.default_rng(0).standard_normal(image.shape).astype(np.float32)
        image = np.clip(image + smudge * specks, 0, 1)
    logits = model.forward(image[None, :, :, None])[0]
    probs = softmax(logits[None])[0]
    left, mid, right = st.columns([1, 2, 2])
    left.plotly_chart(images.digit(image, title="It sees", height=300), key="tour_chances_seen")
    mid.plotly_chart(
        figs.chance_bars(logits, names, "Ten scores", percent=False), key="tour_scores"
    )
    right.plotly_chart(
        figs.chance_bars(probs, names, "Ten chances", percent=True), key="tour_chances"
    )
    best = int(np.argmax(probs))
    st.markdown(f"## It reads **{best}**, {probs[best]:.0%} sure")


@st.fragment
def live() -> None:
    st.markdown(
        "Now the same kind of network, 784 squares → 128 → 64 → 10 digits, starts from "
        "**random weights**: it knows nothing. It looks at 55,000 practice digits, a few "
        "hundred at a time, and after each batch nudges every weight a little towards the "
        "right answers. Watch it **learn** in a few seconds."
    )
    digits, labels = tour.watched(data)
    shown = st.session_state.get("tour_live")
    slot = st.empty()
    again = "Learn again from scratch", ":material/replay:"
    if shown is None:
        start = slot.button("Start learning", icon=":material/play_arrow:", type="primary")
    else:
        start = slot.button(*again, type="primary")
    if start and run_lesson(digits, labels):
        if shown is None:  # the button that started it now offers to start again
            slot.button(*again, type="primary")
        return
    if shown is None:
        st.caption("It trains here, on this computer, in a few seconds.")
        return
    draw_lesson(st.container(), shown, digits, labels)


def run_lesson(digits: np.ndarray, labels: np.ndarray) -> bool:
    """Train live, redrawing as it goes; False when another screen's lesson kept it waiting
    too long."""
    board = st.empty()
    if not page.LESSON.acquire(timeout=0.1):
        board.info(
            "Another screen is running this lesson. Waiting for it…",
            icon=":material/hourglass_top:",
        )
        if not page.LESSON.acquire(timeout=page.LESSON_WAIT):
            board.warning(
                "Another screen is still learning. Try again in a moment.",
                icon=":material/hourglass_top:",
            )
            return False
    try:
        frame: dict = {"seconds": [], "accuracy": []}
        with closing(tour.learn(data, tour.LIVE)) as shots:
            for shot in shots:
                frame["seconds"].append(shot.seconds)
                frame["accuracy"].append(shot.val_accuracy)
                frame.update(pictures=shot.pictures, probs=shot.probs, done=shot.done)
                st.session_state["tour_live"] = frame
                draw_lesson(board.container(), frame, digits, labels)
                time.sleep(0.02)  # lets the browser take each frame in
        return True
    finally:
        page.LESSON.release()


def draw_lesson(box: DeltaGenerator, frame: dict, digits: np.ndarray, labels: np.ndarray) -> None:
    # A key per frame: two frames' figures can be the same (the guesses), and one run may
    # not draw an element twice under one id.
    n = len(frame["seconds"])
    with box:
        right = int(np.sum(frame["probs"].argmax(axis=1) == labels))
        a, b = st.columns(2)
        a.metric("Practice exam read right", f"{frame['accuracy'][-1]:.1%}")
        b.metric("Seconds of learning", f"{frame['seconds'][-1]:.1f}")
        curve = figs.accuracy_curve(frame["seconds"], frame["accuracy"], 0.97)
        st.plotly_chart(curve, key=f"tour_curve_{n}")
        st.markdown(f"**The same ten digits, as it reads them now: {right} of 10 right**")
        st.plotly_chart(figs.guesses(digits, labels, frame["probs"]), key=f"tour_guesses_{n}")
        st.markdown("**What 16 of its first neurons look for** (red: ink here raises the score)")
        st.plotly_chart(figs.weight_pictures(frame["pictures"]), key=f"tour_pictures_{n}")
        if frame.get("done"):
            st.success(
                "Done. The practice exam is 5,000 digits it never learned from.",
                icon=":material/check_circle:",
            )


def your_turn() -> None:
    st.markdown("**Draw a digit**, big, in the black box. The trained network reads it.")
    row = st.container(horizontal=True, gap="medium")
    with row.container(width=BESIDE):
        mine = page.canvas("tour_canvas_turn", size=DRAW)
    with row.container(key="tour_answer", width="stretch"):
        if mine is None:
            st.markdown("## Draw one of 0 to 9")
            return
        probs = page.mlp().predict_proba(mine[None, :, :, None])[0]
        best = int(np.argmax(probs))
        seen = novelty.check(mine)
        if not seen.looks_like_digit:  # a network names a digit for anything it is shown
            st.markdown("## That doesn't look like a digit")
            st.markdown(f"To the network's eyes, {seen.reason}. Its closest guess: {best}.")
            return
        sure = "sure" if probs[best] >= 0.6 else "not very sure"
        st.markdown(f"## It reads **{best}**, {probs[best]:.0%} {sure}")
        st.plotly_chart(
            figs.chance_bars(probs, names, "Its ten chances", percent=True), key="tour_turn_bars"
        )


def wrong() -> None:
    model_key = state.file_key(state.SHIPPED_MLP)
    result = computed.evaluation(model_key, "")
    cm = confusion_matrix(result.labels, result.predictions)
    right = int(np.trace(cm))
    st.markdown(
        f"On 10,000 test digits it never saw, it reads **{right:,} right** and "
        f"**{10_000 - right} wrong**. Here are the mistakes it was surest of: some are hard "
        "even for people."
    )
    picks = tour.confident_mistakes(result.probs, result.labels, k=8)
    # A row of digits that wraps (three or more a row on a projector, two on a phone); each
    # caption is text, at the tour's size, under its own digit.
    wide = round(150 * presentation.text_scale())
    with st.container(horizontal=True, gap="medium", key="tour_mistakes"):
        for i in picks:
            with st.container(width=wide, gap=None):
                # Each square as 5x5 pixels: sharp, where the browser would blur it.
                st.image(np.kron(data.test_images[i], np.ones((5, 5), np.uint8)), width=140)
                real = result.labels[i]
                st.markdown(
                    f"{'an' if real == 8 else 'a'} {real}, read as **{result.predictions[i]}**, "
                    f"{result.confidence[i]:.0%} sure"
                )
    st.markdown("**The mistakes it makes most often**")
    st.markdown("\n".join(f"- {line}" for line in tour.confusion_words(cm, names, k=5)))
    digit = st.segmented_control(
        "Tell me about one digit", list(range(10)), default=4, required=True, key="tour_wrong_digit"
    )
    st.markdown(tour.class_words(cm, names, int(digit)))


def further() -> None:
    st.markdown(
        "The best network here works differently: it slides small **filters**, 3×3 squares "
        "of weights, over the picture. At each place it multiplies and adds, as a neuron "
        "does, and writes one number into a **new picture** that shows where the filter "
        "found its pattern. Move the filter and watch the new picture being built."
    )
    model = page.cnn()
    image = page.drawn()
    if image is None:
        image = page.example(data, 2)
        st.caption("Draw a digit on the “Your turn” step to see it here; this is a test digit.")
    sliding(model, image)
    st.markdown("**Then each layer's output for this digit**, from the picture to the answer:")
    for i, s in enumerate(tour.stages(model, image)):
        last = s.values.ndim == 1 and len(s.values) == 10
        st.plotly_chart(
            figs.stage(s.values, s.title, names if last else None), key=f"tour_stage_{i}"
        )


@st.fragment
def sliding(model: Model, image: np.ndarray) -> None:
    """The filter picker, where it is, and a button that slides it all the way."""
    kernels, biases = tour.first_filters(model)
    f = st.segmented_control(
        "Filter",
        list(range(len(kernels))),
        default=0,
        required=True,
        key="tour_filter",
        format_func=lambda i: f"{i + 1}",
    )
    kernel, fmap = kernels[int(f)], tour.feature_map(model, image, int(f))
    side = fmap.shape[0]
    where = st.slider(
        "Where the filter is (left to right, top to bottom)",
        0,
        side * side - 1,
        value=side * side // 2,
        key="tour_where",
    )
    play = st.button("Slide it all the way", icon=":material/play_arrow:", key="tour_play")
    board = st.empty()
    row, col = divmod(where, side)
    if play:  # a row at a time, so the new picture fills in as the class watches
        for r in range(side):
            board.plotly_chart(figs.slide(image, kernel, fmap, r, side - 1), key=f"tour_row_{r}")
            time.sleep(0.15)
        return
    board.plotly_chart(figs.slide(image, kernel, fmap, row, col), key="tour_slide")
    total = float((image[row : row + 3, col : col + 3] * kernel).sum() + biases[int(f)])
    st.markdown(
        f"Here: the 9 squares times the filter's 9 numbers, added up, make **{total:.2f}**."
    )


STEP_PAGES = (numbers, neuron, chances, live, your_turn, wrong, further)
with st.container(key="tour"):
    st.title(f"{step}. {page.STEPS[step - 1]}", anchor=False)
    STEP_PAGES[step - 1]()
