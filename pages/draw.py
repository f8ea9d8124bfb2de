"""Draw: a digit drawn on a canvas, recognised live."""

import streamlit as st

from dashboard import state

st.title("Draw a digit")
choice, model, meta = state.selected_model()
st.write("The canvas arrives with the Draw page.")
