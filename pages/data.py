"""Data: the handwritten digits the network learns from."""

import streamlit as st

from dashboard import images, state

st.title("Data")
data = state.dataset()
st.plotly_chart(images.digit_grid(data.train_images[:40] / 255, cols=20))
