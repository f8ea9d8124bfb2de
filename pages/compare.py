"""Compare: training runs side by side."""

import streamlit as st

from dashboard import state

st.title("Compare")
runs = state.store().list()
st.write(f"{len(runs)} runs in the store.")
