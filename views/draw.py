"""Draw: a digit drawn on a canvas (or a photo of one) recognised live, and what lights up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from core import novelty
from core.losses import softmax
from core.model import ModelFileError
from core.preprocess import Prepared, prepare
from dashboard import draw, images, presentation, state

VERSION, INITIAL, OBJECTS = "draw_canvas_version", "draw_initial", "draw_objects"
PIXELS = "draw_pixels"  # the canvas's last image, for when it is mounted again
# Material icons, drawn from Streamlit's own icon font: an emoji needs an emoji font, and
# on a machine without one it shows as an empty box.
SOURCES = {"draw": ":material/draw: Draw", "photo": ":material/photo_camera: Upload a photo"}
NO_INK = Prepared(None, "no digit found: the picture is blank")
# The canvas sends a finished stroke 200 ms after the mouse or finger lifts, most of the
# 300 ms budget for a live answer. This asks it to send at once, by pressing its own
# toolbar's "Update the app with this drawing" button when a stroke on it ends; should
# a future canvas rename that button, nothing happens and strokes arrive 200 ms later.
# The toolbar itself is hidden (draw.hide_canvas_toolbar); a hidden button can still be
# pressed from a script.
SEND_ON_RELEASE = """
let prefix = null, started = null;
const canvasOf = (event) => event.composedPath().find((el) => el instanceof Element
    && [...el.classList].some((c) => c.startsWith(`st-key-${prefix}`)));
const down = (event) => { started = canvasOf(event) ?? null; };
const up = () => {
    const canvas = started;
    started = null;
    if (!canvas) return;
    // After the canvas's own handlers have added the stroke to the drawing.
    setTimeout(() => {
        const root = canvas.querySelector("[data-testid=stBidiComponentIsolated]")?.shadowRoot;
        root?.querySelector('button[aria-label="Update the app with this drawing"]')?.click();
    }, 0);
};
const events = [["mousedown", down], ["touchstart", down], ["mouseup", up], ["touchend", up]];
export default function ({ data }) {
    prefix = data.prefix;
    // The same handler added twice is added once, so every rerun may call this again.
    for (const [name, handler] of events) window.addEventListener(name, handler, { passive: true });
    return () => {
        for (const [name, handler] of events) window.removeEventListener(name, handler);
    };
}
"""


def clear() -> None:
    # A new key mounts a fresh, empty canvas, so the very next run already sees no ink.
    st.session_state[VERSION] = st.session_state.get(VERSION, 0) + 1
    st.session_state[INITIAL] = None
    st.session_state[OBJECTS] = []
    st.session_state[PIXELS] = None


def undo() -> None:
    objects = st.session_state.get(OBJECTS) or []
    if len(objects) <= 1:
        clear()
        return
    # The canvas redraws itself from a changed initial drawing and sends it back; the
    # counter makes every undo a change, even back to a drawing it was given before.
    count = (st.session_state.get(INITIAL) or {}).get("undo", 0) + 1
    st.session_state[INITIAL] = {"objects": objects[:-1], "undo": count}


@st.cache_resource(show_spinner=False)
def send_on_release() -> Callable[..., Any]:  # registering it again would log a warning
    return st.components.v2.component("mnist_draw_send_on_release", js=SEND_ON_RELEASE)


@st.cache_data(max_entries=8, show_spinner="Reading the photo…")
def read_upload(data: bytes, name: str) -> tuple[Prepared | None, str]:
    return draw.read_upload(data, name)


def drawing() -> tuple[Prepared, float]:
    """The canvas with its buttons; returns what the network will see and when ink arrived."""
    st.caption("Draw one digit, 0 to 9. It answers after each stroke.")
    key = f"draw_canvas_{st.session_state.get(VERSION, 0)}"
    if key not in st.session_state and st.session_state.get(OBJECTS):
        # Back from another page: the canvas mounts afresh, so hand it the drawing it showed;
        # its image is read from the last one it sent until it sends again.
        count = (st.session_state.get(INITIAL) or {}).get("undo", 0) + 1
        st.session_state[INITIAL] = {"objects": st.session_state[OBJECTS], "undo": count}
    canvas = st_canvas(
        stroke_width=draw.PEN,
        stroke_color="#ffffff",
        background_color="#000000",
        width=draw.CANVAS,
        height=draw.CANVAS,
        initial_drawing=st.session_state.get(INITIAL),
        return_image_data=True,
        key=key,
    )
    if canvas.json_data is not None:  # None until a newly mounted canvas reports
        st.session_state[OBJECTS] = canvas.json_data.get("objects", [])
        if not st.session_state[OBJECTS]:
            st.session_state[PIXELS] = None
        elif canvas.image_data is not None:  # a remounted canvas sends its drawing first
            st.session_state[PIXELS] = canvas.image_data
    # One row even on a phone (columns would stack there), so the answer stays in view.
    buttons = st.container(horizontal=True, wrap=False)
    # At presentation mode's 1.5x the long label does not fit half the canvas's width.
    undo_label = "Undo" if presentation.is_on() else "Undo last stroke"
    buttons.button(undo_label, icon=":material/undo:", on_click=undo, width="stretch")
    buttons.button("Clear", icon=":material/delete:", on_click=clear, width="stretch")
    send_on_release()(data={"prefix": "draw_canvas_"}, key="draw_send_on_release")
    draw.hide_canvas_toolbar(key="draw_hide_toolbar")
    started = time.perf_counter()
    pixels = st.session_state.get(PIXELS)
    if pixels is None:
        return NO_INK, started
    return prepare(pixels, min_extent=draw.CANVAS_MIN_EXTENT), started


def photo() -> tuple[Prepared | None, float]:
    """The upload box; returns the prepared photo, or None before there is one."""
    upload = st.file_uploader(
        "A photo or scan of one handwritten digit",
        type=["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"],
        key="draw_upload",
        help="Dark ink on light paper or light on dark: it is cropped and scaled like MNIST.",
    )
    started = time.perf_counter()
    if upload is None:
        st.info("Upload a photo or a scan of one handwritten digit, such as a PNG or JPEG.")
        return None, started
    prepared, error = read_upload(upload.getvalue(), upload.name)
    if error:
        st.error(error)
        return Prepared(None, error), started
    if not prepared.ok:
        st.warning(f"{prepared.reason.capitalize()}. Try another photo of one digit.")
    return prepared, started


st.title("Draw a digit")
# The answer in large type, so it reads at a glance from across the room. It sits beside
# the canvas down to a narrow but readable width (with the sidebar open on a 1024-pixel
# projector there are about 13rem left), and wraps under the canvas below that; on a
# phone it is a little smaller, to fit under the canvas without scrolling.
st.html(
    "<style>[data-testid=stLayoutWrapper]:has(> .st-key-draw_answer) {min-width: 11rem}"
    ".st-key-draw_verdict h1 {font-size: 7rem; line-height: 1; padding: 0}"
    "@media (max-width: 640px) {.st-key-draw_verdict h1 {font-size: 5rem}}</style>"
)
choice, model, meta = state.selected_model()
names = draw.class_names(meta, model.n_classes)
source = st.segmented_control(
    "Input",
    list(SOURCES),
    format_func=SOURCES.get,
    default="draw",
    required=True,
    key="draw_source",
    label_visibility="collapsed",
    persist_state="session",
)


@st.fragment
def recognise() -> None:
    """Input, answer and insides; a stroke reruns only this, not the whole app."""
    # Side by side where there is room; on a narrow screen the answer wraps below the canvas.
    row = st.container(horizontal=True, gap="small")
    with row.container(width=draw.CANVAS + 20):
        prepared, started = photo() if source == "photo" else drawing()
    with row.container(key="draw_answer", width="stretch"):
        if prepared is None or not prepared.ok:
            reason = prepared.reason if prepared else ""
            with st.container(key="draw_verdict"):
                st.markdown("### " + draw.no_digit_message(reason, photo=source == "photo"))
            return
        x = prepared.image[None, :, :, None]
        acts = model.activations(x)
        probs = softmax(acts[-1])[0]
        seconds = time.perf_counter() - started
        answer = draw.verdict(probs, names)
        # The network names a digit, confidently, for anything: a letter, a face. Say so
        # when the drawing is unlike the digits it learned from, and show its guesses as such.
        seen = looks(prepared.image, names)
        with st.container(key="draw_verdict"):
            if seen.looks_like_digit:
                st.title(answer.label if answer.sure else f"{answer.label}?", anchor=False)
                st.markdown(f"**{answer.detail}**" if answer.sure else answer.detail)
            else:
                st.header(draw.NOT_A_DIGIT, anchor=False)
                st.markdown(draw.not_a_digit_message(seen.reason, answer, photo=source == "photo"))
        st.caption(f"Answered in {seconds * 1000:.0f} ms on the server by {choice.label}.")
        if not seen.looks_like_digit:
            st.markdown("**Its closest guesses**")
        with st.container(horizontal=True):
            st.plotly_chart(
                images.probability_bars(probs, names, highlight=answer.index, height=240),
                key="draw_probs",
                width=300,
            )
            st.plotly_chart(
                images.digit(prepared.image, title="What the network sees", height=240),
                key="draw_seen",
                width=200,
            )
    insides(acts, answer, seen.looks_like_digit)
    # The picture was checked already if the selected model is one of digits.
    compare(x, prepared.image, seen if novelty.applies_to(names) else None)


def looks(image: np.ndarray, class_names: list[str]) -> novelty.Verdict:
    """Whether a prepared picture looks like a digit to a model with these classes.

    The check knows MNIST's digits only: a model of other pictures is not second-guessed.
    """
    if not novelty.applies_to(class_names):
        return novelty.LOOKS_LIKE_A_DIGIT
    return novelty.check(image)


def insides(acts: list[np.ndarray], answer: draw.Verdict, is_answer: bool = True) -> None:
    """What lights up inside for the answer, or for the closest guess when there is none."""
    st.subheader("What lights up inside")
    shares = draw.first_layer_contributions(model, acts, answer.index)
    top = draw.top_neurons(shares[1]) if shares else np.array([], int)
    if not is_answer:
        st.warning(draw.closest_guess_note(answer), icon=":material/help:")
    st.caption(draw.insides_caption(answer, marked=len(top) > 0, is_answer=is_answer))
    for i, hidden in enumerate(draw.hidden_layers(model, acts)):
        st.plotly_chart(draw.layer_figure(hidden, top if i == 0 else ()), key=f"draw_layer_{i}")
    if not len(top):
        return
    layer, contributions = shares
    st.markdown(f"**{draw.neurons_heading(answer, is_answer)}**")
    st.caption(
        "What each one looks for: red where ink makes it fire, blue where ink holds it "
        "back. The number is how much it raised the score of "
        f"{answer.label if is_answer else f'its closest guess, {answer.label}'}."
    )
    st.plotly_chart(
        draw.neurons_figure(model.layers[layer].params["W"], top, contributions),
        key="draw_neurons",
    )


def compare(x: np.ndarray, image: np.ndarray, checked: novelty.Verdict | None) -> None:
    """The same picture read by other models, each checked for not being a digit too.

    `checked` is the picture's check if it was made already (it is the same for every
    model of digits).
    """
    st.subheader("Ask other models")
    choices = {c.key: c for c in state.model_choices()}
    if len(choices) < 2:
        st.info("Train a model on the Train page to compare it with this one on your drawing.")
        return
    # The selected model and the newest trained run (else the other shipped model), so a
    # comparison shows straight away.
    others = sorted((k for k in choices if k != choice.key), key=lambda k: not k.startswith("run-"))
    default = [choice.key, *others[:1]]
    picked = st.multiselect(
        "Models",
        list(choices),
        default=[k for k in default if k in choices],
        format_func=lambda k: choices[k].label,
        key="draw_compare",
        persist_state="session",
        help="Pick two or more: each one reads the same 28×28 image.",
    )
    answers = {}
    for key in picked:
        try:
            other, other_meta = state.load(choices[key])
        except (ModelFileError, OSError) as exc:  # a broken checkpoint hides no other
            st.warning(f"{choices[key].label} could not be loaded: {exc}")
            continue
        other_names = draw.class_names(other_meta, other.n_classes)
        answers[choices[key].label] = (other.predict_proba(x)[0], other_names)
    if not answers:
        return
    guesses_only = True
    for column, (label, (p, other_names)) in zip(
        st.columns(len(answers)), answers.items(), strict=True
    ):
        # The same check as the page's own answer: a model of digits shown something that
        # is not one gives a closest guess, not an answer.
        if not novelty.applies_to(other_names):
            seen = novelty.LOOKS_LIKE_A_DIGIT
        else:
            checked = checked or novelty.check(image)
            seen = checked
        guesses_only &= not seen.looks_like_digit
        said = draw.other_answer(draw.verdict(p, other_names), seen)
        column.metric(label, said.value)
        column.caption(said.detail)
    if guesses_only:
        st.caption("How sure each model is of its closest guesses: none of them is an answer.")
    st.plotly_chart(draw.comparison_figure(answers), key="draw_comparison")


recognise()
