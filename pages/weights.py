"""Weights: what the selected network has learned."""

import streamlit as st

from dashboard import state

st.title("Weights")
choice, model, meta = state.selected_model()
st.write(f"{model.n_params:,} weights in {len(model.layers)} layers.")
