"""Evaluate: how the selected model does on the 10,000 test images, and where it goes wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core import analysis
from core.data import Dataset, subset, to_float
from core.metrics import Evaluation, confusion_matrix, evaluate, per_class
from core.model import load_model
from dashboard import images, inspect, state
from dashboard.state import CACHED

PAGE_SIZE = 40  # mistakes per page of the viewer: 5 rows of 8
ROBUST_SIZE = 2000  # test images (200 of each class) each robustness level is measured on
CHART_CONFIG = {"displayModeBar": False}
DAMAGE = {
    "rotate": ("Rotation", "rotation (degrees, either way)", "{:g}°"),
    "shift": ("Shift", "shift (pixels, in a random direction)", "{:g} px"),
    "noise": ("Noise", "noise (standard deviation of the added pixel noise)", "{:g}"),
}


@st.cache_data(
    show_spinner="Running the model on every test image (once per model)…", max_entries=CACHED
)
def _evaluation(path: str, mtime: float, data_key: str, _data: Dataset) -> Evaluation:
    model, _ = load_model(path)
    return evaluate(model, _data.test_images, _data.test_labels)


@st.cache_data(
    show_spinner="Damaging 2,000 test images step by step and measuring…", max_entries=CACHED
)
def _robustness(
    path: str, mtime: float, data_key: str, kind: str, _data: Dataset
) -> tuple[np.ndarray, analysis.Robustness]:
    model, _ = load_model(path)
    rows = subset(np.arange(len(_data.test_labels)), _data.test_labels, ROBUST_SIZE, seed=0)
    curve = analysis.robustness_curve(model, _data.test_images[rows], _data.test_labels[rows], kind)
    return rows, curve


def _short(name: str) -> str:
    return name if len(name) <= 5 else name[:4] + "."


def _heading(n: int, true: int | None, pred: int | None, names: list[str]) -> str:
    """What the example viewer lists, and in which order."""
    if true is not None and true == pred:
        return (
            f"**{n:,}** {names[true]}s read right, **least confident first**: the ones it "
            "nearly got wrong."
        )
    if true is not None and pred is not None:
        what = f"{names[true]}s read as {names[pred]}"
    elif true is not None:
        what = f"mistakes on true {names[true]}s"
    elif pred is not None:
        what = f"mistakes read as {names[pred]}"
    else:
        what = "mistakes"
    return f"**{n:,}** {what}, **most confident first**."


def _on_cell_click() -> None:
    """A click on a confusion-matrix cell points the example viewer at that cell."""
    cell = inspect.selected_custom(st.session_state.get("eval_confusion"))
    if cell is None:
        return
    st.session_state["eval_true"], st.session_state["eval_pred"] = int(cell[0]), int(cell[1])
    st.session_state["eval_page"] = 1
    st.session_state.pop("eval_pick", None)


def _on_filter_change() -> None:
    st.session_state["eval_page"] = 1
    st.session_state.pop("eval_pick", None)


def _on_page_change() -> None:
    st.session_state.pop("eval_pick", None)  # show the first example of the new page


def _on_example_click() -> None:
    index = inspect.selected_custom(st.session_state.get("eval_examples"))
    if index is not None:
        st.session_state["eval_pick"] = int(index)


st.title("Evaluate")
choice, model, meta = state.selected_model()
data, data_dir, names = state.model_data(meta)
noun = "digit" if data.name == "MNIST" else "class"
k = len(names)
result = _evaluation(str(choice.path), choice.path.stat().st_mtime, data_dir, data)
labels, predictions, confidence = result.labels, result.predictions, result.confidence
n_test = len(labels)
cm = confusion_matrix(labels, predictions, k)
n_wrong = int(cm.sum() - np.trace(cm))
off = np.where(np.eye(k, dtype=bool), -1, cm)
worst_true, worst_pred = np.unravel_index(int(off.argmax()), off.shape)

st.caption(
    f"**{choice.label}** on the {n_test:,} test images: {noun}s it never saw while training."
)
columns = st.columns(4)
columns[0].metric("Accuracy", f"{result.accuracy:.2%}", help="Share of test images read right.")
columns[1].metric(
    "Mistakes", f"{n_wrong:,} of {n_test:,}", help="Test images it read as the wrong class."
)
columns[2].metric(
    "Loss",
    f"{result.loss:.4f}",
    help="Cross-entropy: how surprised the model is by the right answers, on average. "
    "Lower is better.",
)
if n_wrong:
    columns[3].metric(
        "Most common mistake",
        f"{names[worst_true]} → {names[worst_pred]}",
        f"{cm[worst_true, worst_pred]} times",
        delta_color="off",
        delta_arrow="off",
        help="The true class and what the model read it as, most often.",
    )

mistakes_tab, scores_tab, confidence_tab, robust_tab = st.tabs(
    ["Mistakes", f"Scores per {noun}", "Confidence", "Robustness"],
    key="evaluate_tab",
    on_change="rerun",
    bind="query-params",
)

if mistakes_tab.open:
    with mistakes_tab:
        left, right = st.columns([1, 1], gap="medium")
        options = [None, *range(k)]

        def fmt(v: int | None) -> str:
            return "any" if v is None else names[v]

        with right:
            a, b = st.columns(2)
            true = a.selectbox(
                f"True {noun}",
                options,
                format_func=fmt,
                key="eval_true",
                bind="query-params",
                persist_state="session",
                on_change=_on_filter_change,
            )
            pred = b.selectbox(
                "Read as",
                options,
                format_func=fmt,
                key="eval_pred",
                bind="query-params",
                persist_state="session",
                on_change=_on_filter_change,
            )
        with left:
            rates = st.toggle(
                "Show rates (each row adds up to 100 %)",
                key="eval_rates",
                persist_state="session",
                help="Divide each row by its total: the share of that class read as each class.",
            )
            highlight = (true, pred) if true is not None and pred is not None else None
            st.plotly_chart(
                inspect.confusion_figure(cm, names, rates=rates, highlight=highlight, noun=noun),
                key="eval_confusion",
                on_select=_on_cell_click,
                selection_mode="points",
                config=CHART_CONFIG,
            )
            st.caption(
                f"Rows: the true {noun}. Columns: what the network read. Green: read right; "
                "red: mistakes, darker for more. **Click a cell** to see its images."
            )

        with right:
            picked = analysis.select_examples(labels, predictions, confidence, true, pred)
            st.markdown(_heading(len(picked), true, pred, names))
            if len(picked) == 0:
                st.info(
                    "No test images here. Pick another cell of the matrix or change the "
                    "filters above.",
                    icon=":material/search_off:",
                )
            else:
                pages = max(1, -(-len(picked) // PAGE_SIZE))
                if st.session_state.get("eval_page", 1) > pages:
                    st.session_state["eval_page"] = 1
                shown = picked[(st.session_state.get("eval_page", 1) - 1) * PAGE_SIZE :][:PAGE_SIZE]
                if st.session_state.get("eval_pick") not in set(picked.tolist()):
                    st.session_state["eval_pick"] = int(shown[0])
                pick = int(st.session_state["eval_pick"])
                captions = [
                    f"{_short(names[labels[i]])}→{_short(names[predictions[i]])} "
                    f"{confidence[i]:.0%}"
                    for i in shown
                ]
                hover = [
                    f"test image #{i}: a {names[labels[i]]}, read as {names[predictions[i]]} "
                    f"({confidence[i]:.1%} sure)<br>click for all its probabilities"
                    for i in shown
                ]
                colors = [
                    inspect.RIGHT_INK if labels[i] == predictions[i] else inspect.WRONG_INK
                    for i in shown
                ]
                here = np.flatnonzero(shown == pick)
                grid = inspect.tile_grid(
                    data.test_images[shown] / 255,
                    8,
                    hover=hover,
                    customdata=shown.tolist(),
                    captions=captions,
                    caption_colors=colors,
                    highlight=int(here[0]) if len(here) else None,
                    tile_px=60,
                )
                st.plotly_chart(
                    grid,
                    key="eval_examples",
                    on_select=_on_example_click,
                    selection_mode="points",
                    config=CHART_CONFIG,
                )
                if pages > 1:
                    st.pagination(
                        pages, key="eval_page", on_change=_on_page_change, persist_state="session"
                    )
                st.caption(
                    f"Under each image: true → read as, and how sure it was. Page "
                    f"{st.session_state.get('eval_page', 1)} of {pages}. Click an image for its "
                    "probabilities."
                )
                d, bars = st.columns([2, 3])
                d.plotly_chart(
                    images.digit(data.test_images[pick] / 255, height=230),
                    key="eval_digit",
                    config=CHART_CONFIG,
                )
                bars.plotly_chart(
                    images.probability_bars(
                        result.probs[pick],
                        names,
                        highlight=int(predictions[pick]),
                        title=f"Test image #{pick}: a {names[labels[pick]]}, "
                        f"read as {names[predictions[pick]]}",
                        height=250,
                    ),
                    key="eval_bars",
                    config=CHART_CONFIG,
                )

if scores_tab.open:
    with scores_tab:
        scores = per_class(cm)
        confused = [
            f"{names[int(off[c].argmax())]} ({int(off[c].max())}×)" if off[c].max() > 0 else "—"
            for c in range(k)
        ]
        table = pd.DataFrame(
            {
                noun.capitalize(): names,
                "Precision": scores["precision"] * 100,
                "Recall": scores["recall"] * 100,
                "F1": scores["f1"] * 100,
                "Test images": scores["support"].astype(int),
                "Most often read as": confused,
            }
        )
        percent = st.column_config.NumberColumn(format="%.2f %%")
        st.dataframe(
            table,
            hide_index=True,
            column_config={"Precision": percent, "Recall": percent, "F1": percent},
        )
        st.caption(
            f"**Recall**: of all the real {noun}s of a class, the share it found. "
            f"**Precision**: of everything it called that class, the share that really was. "
            "**F1** balances the two (their harmonic mean)."
        )

if confidence_tab.open:
    with confidence_tab:
        st.markdown(
            "A network can be allowed to say **“I'm not sure”**: below a confidence threshold "
            "it abstains and a person checks the image instead."
        )
        percent = st.slider(
            "Answer only when at least this sure (%)",
            10,
            99,
            90,
            1,
            key="eval_threshold",
            persist_state="session",
            help="Confidence is the probability the model gives its top answer.",
        )
        threshold = percent / 100
        correct = predictions == labels
        coverage, accuracy = analysis.threshold_curve(confidence, correct, np.array([threshold]))
        answered = int(np.count_nonzero(confidence >= threshold))
        right = int(correct[confidence >= threshold].sum())
        columns = st.columns(4)
        columns[0].metric(
            "Answers", f"{coverage[0]:.1%}", f"{answered:,} images", "off", delta_arrow="off"
        )
        columns[1].metric(
            "Accuracy on its answers",
            f"{accuracy[0]:.2%}" if answered else "—",
            f"{accuracy[0] - result.accuracy:+.2%} vs always answering" if answered else None,
        )
        columns[2].metric("Says “not sure”", f"{n_test - answered:,}")
        columns[3].metric(
            "Mistakes left", f"{answered - right:,}", f"of {n_wrong:,}", "off", delta_arrow="off"
        )
        grid = np.round(np.arange(0.10, 0.995, 0.005), 3)
        curve_coverage, curve_accuracy = analysis.threshold_curve(confidence, correct, grid)
        st.plotly_chart(
            inspect.threshold_figure(grid, curve_coverage, curve_accuracy, threshold),
            key="eval_threshold_curve",
        )
        st.caption(
            "Raising the threshold makes the network answer fewer images (blue) but get more "
            "of its answers right (green). The dashed line is the slider."
        )

if robust_tab.open:
    with robust_tab:
        st.markdown(
            "How well does it read digits that are **turned, moved or smudged** a little more "
            "than anything it saw? Every test image gets the same kind of damage."
        )
        kind = st.segmented_control(
            "Damage",
            list(DAMAGE),
            format_func=lambda key: DAMAGE[key][0],
            default="rotate",
            key="eval_damage",
            persist_state="session",
        )
        kind = kind or "rotate"
        label, axis_title, fmt_amount = DAMAGE[kind]
        rows, curve = _robustness(
            str(choice.path), choice.path.stat().st_mtime, data_dir, kind, data
        )
        amounts = [float(a) for a in curve.amounts]
        amount = st.select_slider(
            "Amount",
            options=amounts,
            value=amounts[min(3, len(amounts) - 1)],
            format_func=fmt_amount.format,
            key=f"eval_amount_{kind}",
            persist_state="session",
        )
        level = amounts.index(amount)
        a, b = st.columns([3, 2], gap="large")
        with a:
            st.plotly_chart(
                inspect.robustness_figure(
                    curve.amounts, curve.accuracy, axis_title, current=amount, chance=1 / k
                ),
                key="eval_robustness",
            )
            st.caption(
                f"Accuracy on {len(rows):,} test images ({len(rows) // k} of each {noun}) as "
                "the damage grows; the dotted line is what blind guessing would score."
            )
        with b:
            st.metric(
                f"Accuracy at {fmt_amount.format(amount)}",
                f"{curve.accuracy[level]:.1%}",
                f"{curve.accuracy[level] - curve.accuracy[0]:+.1%} vs undamaged",
            )
            sample = np.array([int(np.flatnonzero(result.labels[rows] == c)[0]) for c in range(k)])
            damaged = analysis.perturb(
                to_float(data.test_images[rows])[..., 0], kind, amount, seed=0
            )[sample]
            guesses = curve.predictions[level, sample]
            st.plotly_chart(
                inspect.tile_grid(
                    damaged,
                    5,
                    captions=[f"read as {names[g]}" for g in guesses],
                    caption_colors=[
                        inspect.RIGHT_INK if g == c else inspect.WRONG_INK
                        for c, g in enumerate(guesses)
                    ],
                    tile_px=64,
                ),
                key="eval_robustness_samples",
                config=CHART_CONFIG,
            )
            st.caption(f"One {noun} of each class with this damage, and what the network read.")
