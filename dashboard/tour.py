"""What the tour page keeps between steps: where it is, the student's own digit, the two
shipped networks, and the one live lesson the server runs at a time.

The step lives in the URL (`?step=3`) through a widget bound to it, so the browser's Back
and Forward, a reload and a shared link all land on the same step; a value that is not a
step is dropped by Streamlit and the tour starts at the first.
"""

from __future__ import annotations

import threading

import numpy as np
import streamlit as st

from core.data import Dataset, to_float
from core.model import Model
from core.preprocess import prepare

from . import draw, state

STEP = "step"  # the session key and the query parameter
STEPS = (
    "A picture is numbers",
    "One neuron is a weighted sum",
    "Ten scores become ten chances",
    "Learning, live",
    "Your turn",
    "Where it goes wrong",
    "Going further",
)
DIGIT = "tour_digit"  # the student's last drawing, as the network sees it (28, 28)
STROKES = "tour_strokes"  # its strokes, to put back on a canvas that is mounted again
# One live lesson at a time in this server: two would halve each other's speed and slow
# every other page on a 2-core machine. Another screen waits for it, at most this long.
LESSON = threading.BoundedSemaphore(1)
LESSON_WAIT = 30.0


def go(delta: int) -> None:
    """Move `delta` steps, staying within the tour (a button's callback)."""
    current = st.session_state.get(STEP) or 1
    st.session_state[STEP] = min(max(current + delta, 1), len(STEPS))


def nav() -> int:
    """Back, the dots, Next: the arrow keys press the buttons. Returns the step (1-based)."""
    steps = range(1, len(STEPS) + 1)
    # No default on the widget (a default and a value set by the buttons would clash):
    # a first visit, or a link with a step that is not one (?step=99), starts at step 1.
    if STEP not in st.session_state and st.query_params.get(STEP) not in map(str, steps):
        st.session_state[STEP] = 1
    current = st.session_state.get(STEP) or 1
    with st.container(horizontal=True, vertical_alignment="center", gap="small", key="tour_nav"):
        st.button(
            "Back",
            icon=":material/arrow_back:",
            shortcut="Left",
            on_click=go,
            args=(-1,),
            key="tour_back",
            disabled=current <= 1,
        )
        step = st.segmented_control(
            "Step",
            list(steps),
            required=True,
            key=STEP,
            bind="query-params",
            label_visibility="collapsed",
        )
        st.button(
            "Next",
            icon=":material/arrow_forward:",
            shortcut="Right",
            on_click=go,
            args=(1,),
            key="tour_next",
            type="primary",
            disabled=current >= len(STEPS),
        )

    return int(step or 1)


def mlp() -> Model:
    """The shipped 784-128-64-10 network: its first layer's weights are pictures."""
    return state.model_at(state.SHIPPED_MLP)[0]


def cnn() -> Model:
    """The shipped convolutional network (99.6 % of test digits right)."""
    return state.model_at(state.DEFAULT_MODEL)[0]


def mnist() -> Dataset:
    """The bundled MNIST digits."""
    return state.dataset()


def canvas(key: str, size: int = 280) -> np.ndarray | None:
    """A black box to draw a digit in, with Undo and Clear (the canvas's own toolbar is
    hidden, as on the Draw page). Returns the drawing as the network sees it (28x28, 0 to
    1), also kept for the other steps; None before any ink."""
    # Imported here: the component registers itself on import, which needs a running app.
    from streamlit_drawable_canvas import st_canvas

    name = _mounted(key)
    if name not in st.session_state:
        # Mounted afresh (another step drew last): it starts from the drawing kept, and is
        # handed the same one on every rerun, since a changed one would redraw it.
        strokes = st.session_state.get(STROKES)
        st.session_state[f"{name}_initial"] = {"objects": strokes} if strokes else None
    initial = st.session_state.get(f"{name}_initial")
    result = st_canvas(
        stroke_width=round(draw.PEN * size / draw.CANVAS),
        stroke_color="#ffffff",
        background_color="#000000",
        width=size,
        height=size,
        initial_drawing=initial,
        return_image_data=True,
        key=name,
    )
    draw.hide_canvas_toolbar(key=f"{key}_hide_toolbar")
    # Under the canvas; named apart from the hidden toolbar's own "Undo".
    buttons = st.container(horizontal=True, gap="small")
    buttons.button(
        "Undo stroke", icon=":material/undo:", on_click=undo, args=(key,), key=f"{key}_undo"
    )
    buttons.button(
        "Clear", icon=":material/delete:", on_click=clear, args=(key,), key=f"{key}_clear"
    )
    if result.json_data is not None:
        objects = result.json_data.get("objects", [])
        st.session_state[STROKES] = objects
        if not objects:
            st.session_state[DIGIT] = None
        elif result.image_data is not None:
            prepared = prepare(result.image_data, min_extent=draw.CANVAS_MIN_EXTENT)
            st.session_state[DIGIT] = prepared.image if prepared.ok else None
    return st.session_state.get(DIGIT)


def _mounted(key: str) -> str:
    """The widget key of the canvas `key` as now mounted: a new one after each Clear."""
    return f"{key}_{st.session_state.get(f'{key}_version', 0)}"


def clear(key: str) -> None:
    """Mount a fresh, empty canvas, and forget the drawing (a button's callback)."""
    st.session_state[f"{key}_version"] = st.session_state.get(f"{key}_version", 0) + 1
    st.session_state[STROKES], st.session_state[DIGIT] = [], None


def undo(key: str) -> None:
    """Take back the last stroke (a button's callback): the canvas redraws itself from the
    drawing without it and sends that back, as on the Draw page."""
    objects = st.session_state.get(STROKES) or []
    if len(objects) <= 1:
        clear(key)
        return
    initial = f"{_mounted(key)}_initial"
    # A counter makes every undo a change, even back to a drawing it was handed before.
    count = (st.session_state.get(initial) or {}).get("undo", 0) + 1
    st.session_state[initial] = {"objects": objects[:-1], "undo": count}
    st.session_state[STROKES] = objects[:-1]


def drawn() -> np.ndarray | None:
    """The student's last drawing (28x28, 0 to 1), or None."""
    return st.session_state.get(DIGIT)


def example(data: Dataset, digit: int, which: int = 0) -> np.ndarray:
    """Test image number `which` of class `digit`, as the network sees it (28x28, 0 to 1)."""
    rows = np.flatnonzero(data.test_labels == digit)
    return to_float(data.test_images[rows[which % len(rows)]][None])[0, :, :, 0]


def pick_digit(key: str, data: Dataset) -> np.ndarray:
    """A row of choices: the student's drawing (once there is one) or a real test digit."""
    options = (["mine"] if drawn() is not None else []) + list(range(10))
    choice = st.segmented_control(
        "Which digit",
        options,
        default=options[0] if drawn() is not None else 3,
        key=key,
        required=True,
        format_func=lambda o: "My drawing" if o == "mine" else str(o),
    )
    mine = drawn()
    if choice == "mine":  # offered only while there is a drawing
        return mine if mine is not None else example(data, 3)
    return example(data, int(choice))
