"""Evaluate: how the selected model does on the 10,000 test images."""

import streamlit as st

from core.metrics import evaluate
from dashboard import state

st.title("Evaluate")
choice, model, meta = state.selected_model()
data = state.dataset()
result = evaluate(model, data.test_images, data.test_labels)
st.metric("Test accuracy", f"{result.accuracy:.2%}")
