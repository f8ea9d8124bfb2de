"""Evaluate: how the selected model does on the 10,000 test images, and where it goes wrong."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core import analysis
from core.data import Dataset
from core.metrics import Evaluation, confusion_matrix
from dashboard import computed, evaluate_figures, images, presentation, state
from dashboard.grids import CHART_CONFIG, CLICKABLE, selected_custom

PAGE_SIZE = 40  # mistakes per page of the viewer: 5 rows of 8
# The confusion matrix's height in px. In presentation mode its numbers are 1.5x larger, so it
# takes the page's whole width (its examples go under it) and grows until "1,135" fits a cell.
CONFUSION_HEIGHT, PRESENTED_CONFUSION_HEIGHT = 540, 720
DAMAGE = {
    "rotate": ("Turned", "how far each image is turned (degrees, either way)", "{:g}°"),
    "shift": ("Moved", "how far each image is moved (pixels, in a random direction)", "{:g} px"),
    "noise": (
        "Speckled",
        "how strong the random speckle is (noise, its standard deviation)",
        "{:g}",
    ),
}


def metric_columns() -> list:
    """Four columns for four metrics; two by two in presentation mode, where four abreast
    would cut the larger labels and numbers short."""
    if presentation.is_on():
        return [column for _ in range(2) for column in st.columns(2)]
    return list(st.columns(4))


def _on_cell_click() -> None:
    """A click on a confusion-matrix cell points the example viewer at that cell."""
    cell = selected_custom(st.session_state.get("eval_confusion"))
    if cell is None:
        return
    st.session_state["eval_true"], st.session_state["eval_pred"] = int(cell[0]), int(cell[1])
    _on_filter_change()


def _on_filter_change() -> None:
    st.session_state["eval_page"] = 1
    st.session_state.pop("eval_pick", None)


def _on_page_change() -> None:
    st.session_state.pop("eval_pick", None)  # show the first example of the new page


def _on_example_click() -> None:
    index = selected_custom(st.session_state.get("eval_examples"))
    if index is not None:
        st.session_state["eval_pick"] = int(index)


def mistakes_tab(
    data: Dataset, result: Evaluation, cm: np.ndarray, names: list[str], noun: str
) -> None:
    presented = presentation.is_on()
    if presented:
        left, right = st.container(), st.container()
    else:
        left, right = st.columns([1, 1], gap="medium")
    with right:
        true_column, read_column = st.columns(2)
        filters = dict(
            options=[None, *range(len(names))],
            format_func=lambda v: "any" if v is None else names[v],
            bind="query-params",
            persist_state="session",
            on_change=_on_filter_change,
        )
        true = true_column.selectbox(f"Really a {noun}", key="eval_true", **filters)
        pred = read_column.selectbox("Read as", key="eval_pred", **filters)
    with left:
        rates = st.toggle(
            "Show shares instead of counts (each row adds up to 100 %)",
            key="eval_rates",
            persist_state="session",
            help=f"Divide each row by its total: of all the real {noun}s of that row, the "
            f"share read as each {noun}.",
        )
        highlight = (true, pred) if true is not None and pred is not None else None
        st.plotly_chart(
            evaluate_figures.confusion_figure(
                cm,
                names,
                rates=rates,
                highlight=highlight,
                noun=noun,
                height=PRESENTED_CONFUSION_HEIGHT if presented else CONFUSION_HEIGHT,
                text_scale=presentation.text_scale(),
            ),
            key="eval_confusion",
            on_select=_on_cell_click,
            **CLICKABLE,
        )
        st.caption(
            f"Rows: the true {noun}. Columns: what the network read. Each number counts test "
            "images. On the diagonal (blue, outlined): read right; elsewhere (orange): mistakes, "
            "darker for more. **Click a cell** to see its images."
        )
    with right:
        picked = analysis.select_examples(
            result.labels, result.predictions, result.confidence, true, pred
        )
        st.markdown(evaluate_figures.examples_heading(len(picked), true, pred, names))
        if len(picked) == 0:
            st.info(
                "No test images here. Pick another cell of the matrix or change the choices above.",
                icon=":material/search_off:",
            )
        else:
            examples(data, result, picked, names)


def examples(data: Dataset, result: Evaluation, picked: np.ndarray, names: list[str]) -> None:
    """A page of the picked test images, and how sure it was of each answer for the one
    chosen."""
    pages = max(1, -(-len(picked) // PAGE_SIZE))
    if st.session_state.get("eval_page", 1) > pages:
        st.session_state["eval_page"] = 1
    shown = picked[(st.session_state.get("eval_page", 1) - 1) * PAGE_SIZE :][:PAGE_SIZE]
    if st.session_state.get("eval_pick") not in set(picked.tolist()):
        st.session_state["eval_pick"] = int(shown[0])
    pick = int(st.session_state["eval_pick"])
    grid = evaluate_figures.examples_grid(
        data.test_images, shown, result.labels, result.predictions, result.confidence, names, pick
    )
    st.plotly_chart(grid, key="eval_examples", on_select=_on_example_click, **CLICKABLE)
    if pages > 1:
        st.pagination(pages, key="eval_page", on_change=_on_page_change, persist_state="session")
    st.caption(
        f"Under each image: true → read as, and how sure it was. Page "
        f"{st.session_state.get('eval_page', 1)} of {pages}. Click an image to see how "
        "sure it was of each answer."
    )
    digit, bars = images.prediction(
        data.test_images[pick],
        result.probs[pick],
        names,
        int(result.labels[pick]),
        source=f"Test image #{pick}",
        heights=(230, 250),
    )
    digit_column, bars_column = st.columns([2, 3])
    digit_column.plotly_chart(digit, key="eval_digit", config=CHART_CONFIG)
    bars_column.plotly_chart(bars, key="eval_bars", config=CHART_CONFIG)


def scores_tab(cm: np.ndarray, names: list[str], noun: str) -> None:
    table = evaluate_figures.scores_table(cm, names, noun)
    percent = dict.fromkeys(
        evaluate_figures.SCORE_COLUMNS, st.column_config.NumberColumn(format="%.2f %%")
    )
    st.dataframe(table, hide_index=True, column_config=percent)
    example = names[min(3, len(names) - 1)]
    st.caption(
        f"**Found** (recall): of all the real {example}s, say, the share it read as "
        f"{example}. **Right when it says so** (precision): of everything it called "
        f"{example}, the share that really was. **One score for both** (F1): a kind of "
        "average of the two that stays low when either is low (their harmonic mean)."
    )


def confidence_tab(result: Evaluation) -> None:
    st.markdown(
        "A network can be allowed to say **“I'm not sure”**: when it is less sure than a "
        "chosen level (the *confidence threshold*) it gives no answer, and a person checks the "
        "image instead."
    )
    percent = st.slider(
        "Answer only when at least this sure (%)",
        min_value=10,
        max_value=99,
        value=90,
        key="eval_threshold",
        persist_state="session",
        help="How sure it is: the chance it gives its top answer (its *confidence*).",
    )
    threshold = percent / 100
    correct = result.predictions == result.labels
    answers = analysis.abstain(result.confidence, correct, threshold)
    wrong = int(np.count_nonzero(~correct))
    metrics = evaluate_figures.abstention_metrics(answers, result.accuracy, wrong)
    for column, metric in zip(metric_columns(), metrics, strict=True):
        column.metric(**metric)
    grid = np.round(np.arange(0.10, 0.995, 0.005), 3)
    coverage, accuracy = analysis.threshold_curve(result.confidence, correct, grid)
    st.plotly_chart(
        evaluate_figures.threshold_figure(grid, coverage, accuracy, threshold),
        key="eval_threshold_curve",
    )
    st.caption(
        "Asking it to be surer makes the network answer fewer images (blue) but get more of "
        "its answers right (green). The dashed line is the slider."
    )


def robustness_tab(
    choice: state.ModelChoice, data: Dataset, data_dir: str, names: list[str], noun: str
) -> None:
    k = len(names)
    st.markdown(
        "How well does it read digits that are **turned, moved or smudged** a little more "
        "than anything it saw? Every test image gets the same kind of damage."
    )
    kind = st.segmented_control(
        "Kind of damage",
        list(DAMAGE),
        format_func=lambda key: DAMAGE[key][0],
        default=computed.FIRST_DAMAGE,
        key="eval_damage",
        persist_state="session",
    )
    kind = kind or computed.FIRST_DAMAGE
    _, axis_title, fmt_amount = DAMAGE[kind]
    rows = computed.sample_rows(data_dir)
    curve = computed.robustness(state.file_key(choice.path), data_dir, kind)
    amounts = [float(a) for a in curve.amounts]
    amount = st.select_slider(
        "How much",
        options=amounts,
        value=amounts[min(3, len(amounts) - 1)],
        format_func=fmt_amount.format,
        key=f"eval_amount_{kind}",
        persist_state="session",
    )
    level = amounts.index(amount)
    curve_column, sample_column = st.columns([3, 2], gap="large")
    with curve_column:
        st.plotly_chart(
            evaluate_figures.robustness_figure(
                curve.amounts, curve.accuracy, axis_title, current=amount, chance=1 / k
            ),
            key="eval_robustness",
        )
        st.caption(
            f"The share read right (accuracy) of {len(rows):,} test images ({len(rows) // k} of "
            f"each {noun}) as the damage grows; the dotted line is what blind guessing would "
            "score."
        )
    with sample_column:
        st.metric(
            f"Read right at {fmt_amount.format(amount)}",
            f"{curve.accuracy[level]:.1%}",
            f"{curve.accuracy[level] - curve.accuracy[0]:+.1%} vs undamaged",
        )
        damaged, read_as = analysis.damaged_examples(
            data.test_images[rows], data.test_labels[rows], curve, level, k
        )
        figure = evaluate_figures.damaged_grid(damaged, read_as, names)
        st.plotly_chart(figure, key="eval_robustness_samples", config=CHART_CONFIG)
        st.caption(f"One of each {noun} with this damage, and what the network read.")


st.title("Evaluate")
choice, model, meta = state.selected_model()
data, data_dir, names = state.model_data(meta)
noun = "digit" if data.name == "MNIST" else "item"
result = computed.evaluation(state.file_key(choice.path), data_dir)
cm = confusion_matrix(result.labels, result.predictions, len(names))
st.caption(
    f"**{choice.label}** on the {len(result.labels):,} test images: {noun}s it never saw while "
    "training."
)
headline = evaluate_figures.headline_metrics(result, cm, names, noun)
for column, metric in zip(metric_columns(), headline, strict=False):  # the 4th needs a mistake
    column.metric(**metric)

state.lazy_tabs(
    {
        "Mistakes": lambda: mistakes_tab(data, result, cm, names, noun),
        f"Scores per {noun}": lambda: scores_tab(cm, names, noun),
        "How sure is sure enough": lambda: confidence_tab(result),
        f"Damaged {noun}s": lambda: robustness_tab(choice, data, data_dir, names, noun),
    },
    key="evaluate_tab",
    renamed={"Confidence": "How sure is sure enough", "Robustness": f"Damaged {noun}s"},
)
with st.expander("For the curious", icon=":material/science:"):
    layers = [info.title for info in analysis.describe_layers(model)]
    st.markdown(evaluate_figures.curious_notes(layers))
