"""The dashboard, `streamlit run app.py`: one file per page in views/, shared state in dashboard/.

The folder is not called pages/ on purpose: Streamlit treats a pages/ folder as its older
multipage mode, and a shared link opened first on a fresh server would then run its page
without this file (no sidebar, no model picker).
"""

from pathlib import Path

import streamlit as st

from core.runs import StoreError
from dashboard import presentation, process, state, warmup

# A file, not a Material icon: Streamlit fetches those from Google's font server, which an
# offline classroom cannot reach.
ICON = Path(__file__).parent / "dashboard" / "assets" / "icon.png"

process.return_big_arrays()  # before any page makes its big arrays
process.one_blas_thread()
st.set_page_config(page_title="MNIST from scratch", page_icon=str(ICON), layout="wide")

PAGES = [
    st.Page("views/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("views/tour.py", title="How it works", icon=":material/school:"),
    st.Page("views/draw.py", title="Draw", icon=":material/draw:"),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    st.Page("views/sweep.py", title="Sweep", icon=":material/tune:"),
    st.Page("views/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
    st.Page("views/weights.py", title="Weights", icon=":material/grid_on:"),
    st.Page("views/data.py", title="Data", icon=":material/dataset:"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:"),
]

page = st.navigation(PAGES)
presentation.apply()
st.session_state[state.CHOICE_KEY] = state.model_picker()
state.training_status()
state.link_notes()
try:
    page.run()
except StoreError as exc:  # a page that needs the run store, when it is broken: one message
    state.show_store_problem(exc)
warmup.start()  # after the first page has run: it needs none of what this prepares
