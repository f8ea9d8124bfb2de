"""Home: what this is, in two sentences, and the way to every page."""

import plotly.graph_objects as go
import streamlit as st

from dashboard import state

st.title("See a neural network learn to read handwriting")
st.markdown(
    "This is a neural network, written from scratch in NumPy, that has learned to read "
    "handwritten digits from 60,000 examples. **Draw a digit and it will tell you which one "
    "it is** — then train your own network and look inside to see how it learned."
)
choice, model, meta = state.selected_model()
tour, draw = st.columns(2)
if tour.button("See how it works", icon=":material/school:", type="primary"):
    st.switch_page("views/tour.py")
if draw.button("Draw a digit", icon=":material/draw:"):
    st.switch_page("views/draw.py", query_params={state.MODEL_PARAM: choice.key})

accuracy = meta.get("test_accuracy")
st.caption(
    f"Selected model: **{choice.label}** — {model.n_params:,} weights"
    + (f", {accuracy:.2%} right on 10,000 digits it never saw in training." if accuracy else ".")
)

st.divider()
columns = st.columns(5)
links = [
    ("views/train.py", "Train", ":material/model_training:",
     "Pick the settings, press Start, and watch the network learn live."),
    ("views/evaluate.py", "Evaluate", ":material/fact_check:",
     "Which digits it gets wrong, and which ones it confuses."),
    ("views/weights.py", "Weights", ":material/grid_on:",
     "What each neuron looks for, and how that formed epoch by epoch."),
    ("views/compare.py", "Compare", ":material/compare_arrows:",
     "Runs side by side: does momentum help? Is Adam faster?"),
    ("views/data.py", "Data", ":material/dataset:",
     "The 70,000 handwritten digits the network learns from."),
]  # fmt: skip
for column, (page, label, icon, text) in zip(columns, links, strict=True):
    with column:
        st.page_link(page, label=label, icon=icon)
        st.caption(text)

# The browser's chart code (Plotly, 4.7 MB) loads and compiles the first time a page shows a
# chart: 2 s on a 2-core machine, added to the first page after Home (the tour, in a class).
# An empty chart, hidden, makes the browser do that while people read Home instead.
with st.container(key="home_chart_code"):
    st.plotly_chart(go.Figure(), key="home_chart_code_figure", config={"staticPlot": True})
st.html("<style>.st-key-home_chart_code {display: none}</style>")
