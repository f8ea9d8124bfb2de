"""The dashboard (`streamlit run app.py`): pages in pages/, shared state in dashboard/."""

import streamlit as st

from dashboard import state

st.set_page_config(page_title="MNIST from scratch", page_icon="✏️", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/draw.py", title="Draw", icon=":material/draw:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
    st.Page("pages/weights.py", title="Weights", icon=":material/grid_on:"),
    st.Page("pages/data.py", title="Data", icon=":material/dataset:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
]

page = st.navigation(PAGES)
st.session_state["model_choice"] = state.model_picker()
state.training_status()
page.run()
